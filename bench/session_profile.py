"""Where one session's CPU goes: by thread and by Python function, ours and the bare framework
session (bench.baseline) on the same run.

    python -m bench.session_profile --py-spy PATH [--seconds S] [--json PATH]

One caller talks to one worker (a short question every TALK_EVERY_S, as bench.capacity); over the
window its job process is measured by thread from /proc (Python's own threads are all named
"python"; WebRTC's, Opus' and tokio's native threads carry their own names) and sampled with
py-spy (not a project dependency: pass its binary, e.g. from `pip install py-spy` in a temporary
venv). Functions are ranked by own time (the leaf frame of active samples) and, for code of this
repository, by inclusive time. py-spy sees Python frames only: time in native threads shows in
the thread table, not in the function tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .capacity import QUESTIONS, _bare_worker, _job_pids, _talk, _thread_cpu
from .common import REPO, save

TOP = 12
# Leaf frames of a thread that waits (py-spy's idle detection misses these in --nonblocking mode):
# the event loop's epoll, executor threads blocked on their queue, condition waits. Not CPU.
WAITING = ("EpollSelector.select ", "Condition.wait ", "Event.wait ",
           "_worker (concurrent/futures/thread.py:81)")


def _collapse(raw: str) -> tuple[Counter[str], Counter[str], int]:
    """py-spy's raw (collapsed) stacks -> own time per leaf function, inclusive time per
    function of ours (services/, bench/), samples that were not waiting."""
    own: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith("thread ")
                  and not f.startswith("process ")]
        if not frames or frames[-1].startswith(WAITING):
            continue
        own[frames[-1]] += n
        total += n
        for f in set(frames):
            # py-spy names files by their last two path parts
            if f.split("(")[-1].startswith(("common/", "interrupter/", "uninterruptable/",
                                             "bench/baseline")):
                ours[f] += n
    return own, ours, total


async def _session(server: Any, worker: Any, utts: list[Any], seconds: float, py_spy: Path,
                   out: Path) -> dict[str, Any]:
    from testkit.participant import Participant

    p = Participant(server, f"profile-{worker.name}-{int(time.time()) % 10**6}", "caller")
    stop = asyncio.Event()
    await p.join()
    try:
        await p.dispatch(worker.agent_name, timeout=30)
        room = p.room_name
        talker = asyncio.create_task(_talk(p, utts, 0.0, stop))
        pid = None
        for _ in range(100):
            pid = _job_pids(worker, {room}).get(room)
            if pid:
                break
            await asyncio.sleep(0.1)
        if pid is None:
            raise RuntimeError(f"no job process found for {room}")
        await asyncio.sleep(3.0)  # first question answered: the steady state
        threads0 = _thread_cpu(pid)
        t0 = time.monotonic()
        raw = out.with_suffix(".txt")
        spy = await asyncio.create_subprocess_exec(
            str(py_spy), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100",
            "-f", "raw", "-o", str(raw), "--nonblocking",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await spy.wait()
        wall = time.monotonic() - t0
        threads = {n: round((s - threads0.get(n, 0.0)) / wall, 4)
                   for n, s in _thread_cpu(pid).items() if s - threads0.get(n, 0.0) > 0}
        stop.set()
        await talker
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await p.leave()
    own, ours, total = _collapse(raw.read_text() if raw.exists() else "")
    return {
        "cpu_by_thread": dict(sorted(threads.items(), key=lambda kv: -kv[1])),
        "cpu_total": round(sum(threads.values()), 4),
        "samples": total,
        "own_top": [(f, round(n / total, 4)) for f, n in own.most_common(TOP)] if total else [],
        "ours_inclusive_top": [(f, round(n / total, 4)) for f, n in ours.most_common(TOP)]
        if total else [],
        "raw": str(raw),
    }


def run(py_spy: Path, seconds: float) -> dict[str, Any]:
    from testkit.fakes_runner import Fakes
    from testkit.livekit_server import LiveKitServer
    from testkit.polling import wait_until
    from testkit.speech import synthesize
    from testkit.worker import Worker, worker_env

    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    server = LiveKitServer(workdir / "server").start()
    fakes = Fakes(workdir).start()
    workers: list[Any] = []
    out: dict[str, Any] = {"seconds": seconds, "workdir": str(workdir)}
    try:
        utts = [synthesize(q) for q in QUESTIONS]
        fakes.deepgram("know", utterances=[u.script() for u in utts])
        env = {"INTERRUPT_MAX_SENTENCES": "1000"}
        makers = {"ours": lambda e, d, n: Worker("interrupter", e, d, name=n),
                  "bare": _bare_worker}
        for name, make in makers.items():
            wdir = workdir / name
            w = make(worker_env("interrupter", server, fakes, wdir, **env), wdir, name)
            workers.append(w.start())
            w.wait_ready(timeout=90)
            wait_until(lambda w=w: w.find("process initialized"), 60, f"{name}'s prewarm")
        for name, w in zip(makers, workers, strict=True):
            out[name] = asyncio.run(_session(server, w, utts, seconds, py_spy,
                                             workdir / f"{name}-pyspy"))
    finally:
        for w in workers:
            w.stop()
        fakes.stop()
        server.stop()
    return out


def _summary(res: dict[str, Any]) -> str:
    lines = []
    for name in ("ours", "bare"):
        r = res[name]
        threads = ", ".join(f"{n} {v:.3f}" for n, v in list(r["cpu_by_thread"].items())[:8])
        lines.append(f"{name}: {r['cpu_total']:.3f} of a core; by thread: {threads}")
        lines.append(f"  own time (share of {r['samples']} py-spy samples not waiting):")
        lines += [f"    {share:6.1%}  {f}" for f, share in r["own_top"]]
        if r["ours_inclusive_top"]:
            lines.append("  our code, inclusive:")
            lines += [f"    {share:6.1%}  {f}" for f, share in r["ours_inclusive_top"][:6]]
    o, b = res["ours"]["cpu_total"], res["bare"]["cpu_total"]
    if b:
        lines.append(f"job process CPU: ours {o:.3f} / bare {b:.3f} = {o / b:.2f}x")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.session_profile",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--py-spy", type=Path, required=True, help="the py-spy binary")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "profile.json")
    args = parser.parse_args(argv)
    if not args.py_spy.is_file():
        parser.error(f"no py-spy at {args.py_spy}")  # exits 2
    res = run(args.py_spy, args.seconds)
    return save(res, args.json, _summary(res))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
