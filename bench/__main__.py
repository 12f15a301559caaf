"""The benchmark suite: ours measured side by side with the recipes and the framework.

    python -m bench [--quick] [--json PATH] [--only PART,...]

Prints a table of medians and ratios (ours / baseline, each baseline measured in the same run)
against the targets, and writes every figure as JSON (default bench/results/latest.json).
Parts, in the order they run:
  policy    per-event counting cost at minutes 1/5/10 vs the recipe, count fidelity, golden
            sentence-boundary rules vs the recipe regex, blingfire and pySBD (bench.policy_bench)
  scrape    the worker's /metrics handler with 1 and 50 job processes' files (bench.scrape)
  cut_in    overshoot and latency of a word-limit cut-in vs the framework's user_turn_limit
  overhead  response latency of our wiring vs a bare AgentSession (bench.sessions)
  capacity  CPU and RSS per session, worker cold start and job-process prewarm on a real
            livekit-server with real worker processes (bench.capacity)
`--quick` runs one iteration of each (a smoke run, about 70 s); the full run takes about a quarter
of an hour. The machine's load average is sampled throughout and reported.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import capacity, policy_bench, scrape, sessions
from .common import REPO, ROW_NAMES, LoadSampler, Row, fmt, missing_row

PARTS = ("policy", "scrape", "cut_in", "overhead", "capacity")
# which rows each part produces (a part that fails or is skipped reports these as such)
PART_ROWS: dict[str, tuple[str, ...]] = {
    "policy": ("per event cost min 1", "per event cost min 5", "per event cost min 10",
               "fidelity", "golden rules"),
    "scrape": ("scrape time 1", "scrape time 50"),
    "cut_in": ("overshoot", "cut-in latency"),
    "overhead": ("overhead",),
    "capacity": ("CPU per session", "RSS per session", "cold start", "prewarm"),
}
assert sorted(r for rows in PART_ROWS.values() for r in rows) == sorted(ROW_NAMES)
DEFAULT_JSON = REPO / "bench" / "results" / "latest.json"
POLICY_TARGET_US = 50.0
FLAT_MAX_GROWTH = 1.5  # "flat with length": minute 10 costs at most 1.5x minute 1


# --- rows of the policy part (its figures come from bench.policy_bench.run) -------------------


def policy_rows(res: dict[str, Any]) -> list[Row]:
    per_event = res["per_event"]
    first = per_event["minute_1"]["ours_us"]
    out = []
    for minute in policy_bench.MINUTES:
        row = per_event[f"minute_{minute}"]
        ours, recipe = row["ours_us"], row["recipe_us"]
        met = ours <= POLICY_TARGET_US
        target = f"≤ {POLICY_TARGET_US:.0f} µs"
        note = f"median over {row['events']} events in [{minute}:00, {minute}:30)"
        if minute == max(policy_bench.MINUTES):
            growth = ours / first
            met = met and growth <= FLAT_MAX_GROWTH
            target += ", flat"
            note += f"; minute {minute} / minute 1 = {growth:.2f} (recipe {recipe / per_event['minute_1']['recipe_us']:.1f})"  # noqa: E501
        out.append(Row(f"per event cost min {minute}", "µs", ours, recipe, "recipe", target,
                       met=met, note=note))
    fid = res["fidelity"]
    ours, recipe = fid["ours"], fid["recipe"]
    out.append(Row(
        "fidelity", "counted/spoken", ours["sentence_ratio"], recipe["sentence_ratio"], "recipe",
        "1.00", met=ours["sentence_ratio"] == 1.0 and ours["word_ratio"] == 1.0, has_ratio=False,
        ours_text=f"{ours['sentence_ratio']:.2f} (words {ours['word_ratio']:.2f})",
        baseline_text=f"{recipe['sentence_ratio']:.2f} (words {recipe['word_ratio']:.2f})",
        note=(f"sentences {ours['sentences_counted']}/{ours['sentences_spoken']}, words "
              f"{ours['words_counted']}/{ours['words_spoken']} at the end of a 10.5-minute turn; "
              f"recipe {recipe['sentences_counted']} sentences, {recipe['words_counted']} words"),
    ))
    golden = res["golden"]
    total = golden["ours"]["total"]

    def correct(name: str) -> str:
        row = golden.get(name, {})
        return f"{row['correct']}" if "correct" in row else "n/a"

    one_shot = res["one_shot_segmentation"]
    costs = ", ".join(f"{name} {one_shot[name]['median_us']} µs" for name in
                      ("ours", "recipe_regex", "blingfire", "pysbd") if name in one_shot)
    out.append(Row(
        "golden rules", f"/{total}", golden["ours"]["correct"], golden["recipe_regex"]["correct"],
        "recipe regex", f"≥ {total - 1}/{total}", met=golden["ours"]["correct"] >= total - 1,
        ours_text=f"{golden['ours']['correct']}/{total}",
        baseline_text=(f"recipe {correct('recipe_regex')}, blingfire {correct('blingfire')}, "
                       f"pySBD {correct('pysbd')}"),
        note=(f"ours misses: {', '.join(golden['ours']['misses']) or 'none'}; one-shot "
              f"segmentation of {one_shot['ours']['chars']} chars: {costs}"),
    ))
    return out


# --- running --------------------------------------------------------------------------------


def _run_parts(selected: list[str], quick: bool, sampler: LoadSampler
               ) -> tuple[dict[str, Any], dict[str, list[Row]], dict[str, str]]:
    raw: dict[str, Any] = {}
    rows: dict[str, list[Row]] = {}
    errors: dict[str, str] = {}

    def attempt(part: str, fn: Callable[[], Any], build: Callable[[Any], list[Row]]) -> None:
        started = time.time()
        print(f"[bench] {part} ...", file=sys.stderr, flush=True)
        try:
            res = fn()
            raw[part] = res
            rows[part] = build(res)
        except Exception as e:  # noqa: BLE001 - a failed part is reported, the others still run
            errors[part] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        took = time.time() - started
        raw.setdefault(part, {})
        if isinstance(raw[part], dict):
            raw[part]["_seconds"] = round(took, 1)
            raw[part]["_load1"] = sampler.between(started, time.time())
        print(f"[bench] {part} done in {took:.0f} s", file=sys.stderr, flush=True)

    for part in selected:
        if part == "policy":
            attempt(part, lambda: policy_bench.run(quick), policy_rows)
        elif part == "scrape":
            attempt(part, lambda: scrape.run(quick), scrape.rows)
        elif part in ("cut_in", "overhead"):
            def one(p: str = part) -> dict[str, Any]:
                res = sessions.run(quick, lambda name: name == p)[p]
                if "error" in res:
                    raise RuntimeError(res["error"])
                return dict(res)

            attempt(part, one, lambda r, p=part: sessions.rows({p: r}))
        elif part == "capacity":
            attempt(part, lambda: capacity.run(quick), capacity.rows)
    return raw, rows, errors


def _all_rows(selected: list[str], rows: dict[str, list[Row]], errors: dict[str, str]
              ) -> list[Row]:
    by_name: dict[str, Row] = {}
    for part, names in PART_ROWS.items():
        built = {r.name: r for r in rows.get(part, [])}
        for name in names:
            if name in built:
                by_name[name] = built[name]
            elif part in errors:
                by_name[name] = missing_row(name, "error", errors[part])
            elif part not in selected:
                by_name[name] = missing_row(name, "skipped", f"part {part!r} not run")
            else:
                by_name[name] = missing_row(name, "error", "the part produced no such row")
    return [by_name[name] for name in ROW_NAMES]


# --- output ---------------------------------------------------------------------------------


def _ratio_text(ratio: float | None) -> str:
    if ratio is None or not math.isfinite(ratio):
        return "-"
    if ratio == 0:
        return "0×"
    if ratio < 0.1:
        return f"{ratio:.2g}× (1/{1 / ratio:.0f})"
    return f"{ratio:.2f}×"


def _verdict(row: Row) -> str:
    if row.status != "ok":
        return row.status
    return {True: "met", False: "MISSED", None: "-"}[row.met]


def format_table(result: dict[str, Any], rows: list[Row]) -> str:
    lines = [
        "| row | ours | baseline | ours / baseline | target | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ours = r.ours_text or fmt(r.ours, r.unit)
        base = r.baseline_text or fmt(r.baseline, r.unit)
        if r.baseline_label and not r.baseline_text and r.baseline is not None:
            base = f"{base} ({r.baseline_label})"
        lines.append(f"| {r.name} | {ours} | {base} | {_ratio_text(r.ratio)} | "
                     f"{r.target or '-'} | {_verdict(r)} |")
    lines.append("")
    for r in rows:
        if r.note:
            lines.append(f"- {r.name}: {r.note}")
    load = result["load"]
    lines.append("")
    lines.append(
        f"{'quick' if result['quick'] else 'full'} run, {result['seconds']:.0f} s; load average "
        f"(1 min) min {load['load1_min']} / median {load['load1_median']} / max "
        f"{load['load1_max']} on {load['cores']} cores")
    return "\n".join(lines)


def _sane(value: Any) -> Any:
    """JSON without NaN/inf (not valid JSON) and with tuples as lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _sane(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_sane(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="one iteration of everything: a smoke run (about 70 s)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help=f"where to write the figures (default: {DEFAULT_JSON.relative_to(REPO)})")  # noqa: E501
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts to run (default: all of {', '.join(PARTS)})")
    args = parser.parse_args(argv)
    selected = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in selected if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")

    started = time.time()
    with LoadSampler() as sampler:
        raw, part_rows, errors = _run_parts(selected, args.quick, sampler)
    rows = _all_rows(selected, part_rows, errors)
    result: dict[str, Any] = {
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "parts_run": selected,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "load": sampler.summary(),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "rows": [r.to_json() for r in rows],
        "errors": errors,
        "parts": raw,
    }
    print(format_table(result, rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(_sane(result), indent=2, ensure_ascii=False) + "\n")
    print(f"\nfigures written to {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
