"""Smoke test of the benchmark suite (`python -m bench`).

The whole quick run takes over a minute (real sessions, a real livekit-server), so this runs its
cheapest parts through the real command and checks the JSON: every row of the table is there,
the parts that ran have sane numbers, the others say why they have none. The row builders of the
session and capacity parts are checked on figures shaped like theirs. Targets are not asserted:
that is what the benchmark reports.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.common import ROW_NAMES, Row, spread

REPO = Path(__file__).resolve().parents[2]
CHEAP_PARTS = ("policy", "scrape")
CHEAP_ROWS = {
    "per event cost min 1", "per event cost min 5", "per event cost min 10", "fidelity",
    "golden rules", "scrape time 1", "scrape time 50",
}

pytestmark = pytest.mark.timeout(180)


def _no_nan(name: str) -> Any:
    raise ValueError(f"non-JSON number {name} in the results")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench") / "latest.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", ",".join(CHEAP_PARTS),
         "--json", str(out)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=170, check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text(), parse_constant=_no_nan), proc.stdout


def test_every_row_is_reported_in_order(run: tuple[dict[str, Any], str]) -> None:
    result, stdout = run
    rows = result["rows"]
    assert [r["name"] for r in rows] == list(ROW_NAMES)
    for r in rows:
        expected = "ok" if r["name"] in CHEAP_ROWS else "skipped"
        assert r["status"] == expected, r
        assert f"| {r['name']} |" in stdout  # the printed table has every row too
    assert result["quick"] is True and result["parts_run"] == list(CHEAP_PARTS)
    assert result["load"]["cores"] >= 1 and result["load"]["load1_median"] >= 0


def test_numbers_are_sane(run: tuple[dict[str, Any], str]) -> None:
    rows = {r["name"]: r for r in run[0]["rows"]}
    for minute in (1, 5, 10):
        r = rows[f"per event cost min {minute}"]
        assert 0 < r["ours"] < 10_000 and 0 < r["baseline"] < 1_000_000  # µs
        assert math.isclose(r["ratio"], r["ours"] / r["baseline"], rel_tol=1e-3)
        assert isinstance(r["met"], bool)
    fid = rows["fidelity"]
    assert 0 < fid["ours"] <= 10 and 0 < fid["baseline"] <= 100 and fid["ratio"] is None
    golden = rows["golden rules"]
    assert 0 <= golden["ours"] <= 40 and 0 <= golden["baseline"] <= 40
    one, fifty = rows["scrape time 1"], rows["scrape time 50"]
    assert 0 < one["ours"] < 10_000 and 0 < fifty["ours"] < 10_000  # ms
    assert fifty["baseline"] == one["ours"]
    scrape = run[0]["parts"]["scrape"]
    assert scrape["jobs_50"]["files"] > scrape["jobs_1"]["files"] > 0


def test_session_and_capacity_rows_build_from_their_figures() -> None:
    from bench import __main__ as cli
    from bench import capacity, sessions

    def s(*values: float) -> dict[str, Any]:
        return spread(values)

    rep = {"latency_s": 0.1, "overshoot_words": 0, "cut_ins_during_monologue": 1,
           "replies_after_user_stopped": 0}
    per_system = {"overshoot_words": s(0, 1), "latency_s": s(0.1, 0.2), "no_cut_in": 0,
                  "cut_ins_per_monologue": s(1, 1), "replies_after_user_stopped": s(0, 0)}
    cut_in = {"word_limits": [10, 11], "words_spoken": 45, "full_monologue": True,
              "reps": [rep], "ours": per_system, "framework": {**per_system,
                                                              "overshoot_words": s(4, 5)}}
    overhead = {"ours_s": s(0.77, 0.78), "bare_s": s(0.76, 0.77), "unanswered": {},
                "paired_difference_ms": s(10, -5)}
    phase = {"sessions": 1, "window_s": 30.0, "cpu_per_session_mean": 0.09,
             "rss_mb_per_session": s(395), "pss_mb_per_session": s(165),
             "uss_mb_per_session": s(55), "idle_process_rss_mb": [365.0]}
    cap = {"baselines": {"imports_s": s(1.5), "vad_load_s": s(0.04),
                         "vad_cpu_per_audio_s": s(0.01)},
           "phases": [phase], "bare_phases": [phase], "cold_start_s": s(3.0),
           "prewarm_s": s(0.09), "prewarm_histogram": {"count": 2.0, "mean_s": 0.1},
           "no_local_inference_preload": phase}
    built = sessions.rows({"cut_in": cut_in, "overhead": overhead}) + capacity.rows(cap)
    assert {r.name for r in built} == set(ROW_NAMES) - CHEAP_ROWS - {"scrape time 1",
                                                                      "scrape time 50"}
    for r in built:
        assert r.status == "ok" and r.ours is not None and r.note
    result = {"quick": False, "seconds": 1.0, "load": {
        "load1_min": 0.1, "load1_median": 0.2, "load1_max": 0.3, "cores": 2}}
    table = cli.format_table(result, built)
    assert all(f"| {r.name} |" in table for r in built)
    # a zero (no overshoot at all) divides nothing
    zero = cli.format_table(result, [Row("overshoot", "words", 0.0, 5.0)])
    assert "| overshoot | 0 words | 5.00 words | 0× |" in zero


def test_ramp_summary_and_bad_arguments() -> None:
    """bench.ramp: p95, the summary on figures shaped like a run's, and exit 2 on a bad value."""
    from bench import ramp

    assert ramp.p95([1.0] * 19 + [9.0]) == 1.0 and ramp.p95([1.0] * 18 + [9.0] * 2) == 9.0
    step = {"sessions": 1, "latency_p50_s": 1.0, "latency_p95_s": 1.1, "vad_behind_warnings": 0,
            "failed": 0, "cpu_per_session": 0.2, "cpu_worker_tree": 0.25, "cpu_callers": 0.1,
            "met": True}
    broken = {**step, "sessions": 2, "latency_p95_s": 2.0, "met": False}
    res = {"objective_p95_s": 1.5, "cores": 2, "pinned": True, "window_s": 8.0,
           "steps": {"ours": [step, broken], "bare": [{**step, "cpu_per_session": 0.25}]},
           "ours": {"max_sessions_at_objective": 1, "broke_at": 2, "cpus": 1},
           "bare": {"max_sessions_at_objective": 1, "broke_at": None, "cpus": 1}}
    text = ramp._summary(res)
    assert "ours: 1 calls at the objective on 1 CPU (broke at k=2) -> 1.0 calls per CPU" in text
    assert "bare: 1 calls" in text and "a lower bound" in text
    assert "ours 0.200, bare 0.250 of a core -> 0.80x" in text
    proc = subprocess.run([sys.executable, "-m", "bench.ramp", "--max-sessions", "0"], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "--max-sessions must be at least 1" in proc.stderr
