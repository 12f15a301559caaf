"""`/metrics` scrape time as job processes accumulate in PROMETHEUS_MULTIPROC_DIR.

prometheus-client's multiprocess mode keeps one set of .db files per process that ever recorded a
value, and every scrape merges all of them; counters and histograms of exited job processes stay
(only live gauges are dropped when a process is marked dead). A worker that has run 50 jobs
therefore scrapes 50 processes' files.

The directory is populated by real processes: one helper imports services.common.metrics (and
the framework's own lk_agents_* metrics) once, then forks a "worker" that records what the
worker records and N "job processes" that each run a session's worth of metrics (init_labels,
latencies, interruptions, the session gauge), each under its own pid. Forking after the import
keeps 50 processes cheap; the files are the same as those of separately started ones.
The timed call is the worker's own handler, livekit.agents.telemetry.http_server.metrics.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import REPO, Row, spread

JOB_COUNTS = (1, 50)
AGENT = "interrupter"


def _record_job(seed: int) -> None:
    """One job process's metrics: a session of a dozen turns with one cut-in."""
    from services.common import metrics as m

    rng = random.Random(seed)
    m.init_labels(AGENT)
    m.SESSIONS_ACTIVE.labels(agent=AGENT).inc()
    for _ in range(12):
        m.RESPONSE_LATENCY.labels(agent=AGENT).observe(rng.uniform(0.5, 1.5))
        m.END_OF_UTTERANCE_DELAY.labels(agent=AGENT).observe(rng.uniform(0.4, 0.8))
        m.STT_DELAY.labels(agent=AGENT).observe(rng.uniform(0.1, 0.4))
        m.LLM_TTFT.labels(agent=AGENT).observe(rng.uniform(0.2, 0.9))
        m.TTS_TTFB.labels(agent=AGENT).observe(rng.uniform(0.1, 0.4))
    m.CUT_IN_LATENCY.labels(agent=AGENT).observe(rng.uniform(0.1, 0.3))
    m.INTERRUPTIONS.labels(agent=AGENT, kind="cut_in").inc()
    m.INTERRUPTIONS.labels(agent=AGENT, kind="barge_in").inc(rng.randint(0, 3))
    m.SESSIONS.labels(agent=AGENT, outcome="completed").inc()
    # still counted as live: the worst case, as if no job process had been marked dead
    m.SESSIONS_ACTIVE.labels(agent=AGENT).dec()


def _record_worker() -> None:
    """The worker process's own series: the framework's lk_agents_* and our zeroed series."""
    from livekit.agents.telemetry import metrics as lk

    from services.common import metrics as m

    m.init_labels(AGENT)
    lk.proc_initialized(time_elapsed=0.12)
    lk.job_started()
    lk.job_ended()
    lk._update_worker_load(0.2)
    lk._update_child_proc_count()


def _run_forked(fn: Any, *args: Any) -> None:
    pid = os.fork()
    if pid == 0:  # child: record, then leave without running the parent's atexit handlers
        code = 0
        try:
            fn(*args)
        except BaseException:  # noqa: BLE001 - report through the exit code
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"metrics process {pid} failed")


def populate_main(directory: str, jobs: int) -> None:
    """Entry of the helper process (PROMETHEUS_MULTIPROC_DIR already exported)."""
    import livekit.agents.telemetry.metrics  # noqa: F401 - imported once, before forking

    import services.common.metrics  # noqa: F401

    _run_forked(_record_worker)
    for i in range(jobs):
        _run_forked(_record_job, i)


def _populate(directory: Path, jobs: int) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "bench.scrape", str(directory), str(jobs)], cwd=REPO,
                   env=env, check=True, timeout=300)


def _time_scrapes(directory: Path, reps: int) -> tuple[list[float], int]:
    """Seconds per call of the worker's real /metrics handler, and the body size."""
    from livekit.agents.telemetry import http_server

    previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)  # the handler reads it per call

    async def scrape_all() -> tuple[list[float], int]:
        times, size = [], 0
        await http_server.metrics(None)  # type: ignore[arg-type]  # warm-up (executor thread)
        for _ in range(reps):
            started = time.perf_counter()
            resp = await http_server.metrics(None)  # type: ignore[arg-type]  # request unused
            times.append(time.perf_counter() - started)
            size = len(resp.body)  # type: ignore[arg-type]
        return times, size

    try:
        return asyncio.run(scrape_all())
    finally:
        if previous is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous


def run(quick: bool) -> dict[str, Any]:
    reps = 30 if quick else 300
    out: dict[str, Any] = {"reps": reps}
    root = Path(tempfile.mkdtemp(prefix="bench-multiproc-"))
    try:
        for jobs in JOB_COUNTS:
            directory = root / f"jobs-{jobs}"
            directory.mkdir()
            _populate(directory, jobs)
            times, size = _time_scrapes(directory, reps)
            out[f"jobs_{jobs}"] = {
                "files": len(list(directory.glob("*.db"))),
                "body_bytes": size,
                "ms": spread([t * 1000 for t in times], 2),
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def rows(res: dict[str, Any]) -> list[Row]:
    one, fifty = res["jobs_1"], res["jobs_50"]
    m1, m50 = one["ms"]["median"], fifty["ms"]["median"]
    p90 = statistics.quantiles(fifty["ms"]["values"], n=10)[-1] if fifty["ms"]["n"] > 1 else m50
    return [
        Row("scrape time 1", "ms", m1, None, "", "",
            note=(f"worker handler, worker + 1 job process ({one['files']} files, "
                  f"{one['body_bytes']} bytes), median of {one['ms']['n']}")),
        Row("scrape time 50", "ms", m50, m1, "1 job process", "≤ 50 ms", met=m50 <= 50.0,
            note=(f"worker + 50 job processes ({fifty['files']} files, {fifty['body_bytes']} "
                  f"bytes), median of {fifty['ms']['n']}, p90 {p90:.1f} ms")),
    ]


if __name__ == "__main__":
    populate_main(sys.argv[1], int(sys.argv[2]))
