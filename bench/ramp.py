"""Calls per pod, measured: raise the concurrent sessions on ONE worker until the answer-latency
objective breaks, for our interrupter and for a bare framework session (bench.baseline) in the
same run, steps interleaved.

    python -m bench.ramp [--quick] [--max-sessions N] [--json PATH]
    python -m bench.ramp --ab K [--reps N]   # CPU per session at K sessions, A/B (see below)

The objective (deploy/monitoring/definition.py): p95 response latency <= RESPONSE_P95_MAX (from
the end of a caller's question to the first agent audio the caller hears), no "VAD inference is
slower than realtime" warning, no failed session (every room gets its agent, every question an
answer within UNANSWERED_S). A step of k sessions: k callers join k rooms, the worker is
dispatched into each (one at a time), then each caller asks a short question every TALK_EVERY_S
for the window. Measured over the window: CPU of each job process (one per session) and of the
whole worker tree, and the callers' own CPU.

The callers run in another process (`python -m bench.ramp callers`, its own process group).
Where the machine has at least two cores, the worker's process tree is pinned to core 0 and
everything else (callers, livekit-server, the fake providers, this process) to the others, so the
worker has exactly one CPU: the largest k that meets the objective is then calls per CPU. On two
cores that leaves one core for the callers, the server and the fakes; if that core saturates
first, the figure is a lower bound for the worker (the callers' CPU is reported to tell). Pinning
does not isolate the caches or the memory bus, nor other users' processes on the worker's core.
The worker's LOAD_THRESHOLD is 1 here (its load is the whole machine's CPU, which pinning does
not change): admission control would otherwise end the ramp before the objective does.

`--ab K` measures a change of ours instead: steps of K sessions, interleaved, `--reps` times, on
our worker, on our worker with the framework's default room input (24 kHz instead of
services.common.session.INPUT_SAMPLE_RATE) and on the bare framework session.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from .capacity import (
    QUESTIONS,
    TALK_EVERY_S,
    _bare_worker,
    _cpu_s,
    _dispatch,
    _job_pids,
    _job_processes,
)
from .common import REPO, median, save, stop

UNANSWERED_S = 10.0  # a question with no agent audio this long after it: a failed session
VAD_BEHIND = "VAD inference is slower than realtime"
DEFAULT_JSON = REPO / "bench" / "results" / "ramp.json"


def objective() -> float:
    from deploy.monitoring.definition import RESPONSE_P95_MAX

    return RESPONSE_P95_MAX


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)  # nearest rank: the smallest value with 95 % at or below it
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


# --- the callers' process ------------------------------------------------------------------------


async def _callers(spec: dict[str, Any]) -> dict[str, Any]:
    """k callers: join, get the agent dispatched, ask every TALK_EVERY_S for the window, time
    each answer. Prints {"ready": rooms} once every room has its agent, then returns figures."""
    from testkit.livekit_server import LiveKitServer
    from testkit.participant import Participant
    from testkit.speech import synthesize
    from testkit.webrtc_audio import AudioMonitor, Microphone

    # load generators: 40 ms frames cut the callers' per-frame work (as tests/e2e/test_load.py)
    Microphone.FRAME_MS = 40  # type: ignore[misc]
    AudioMonitor.FRAME_MS = 40  # type: ignore[misc]

    class Server:  # what Participant needs of a LiveKitServer, from the parent's figures
        ws_url, http_url = spec["ws_url"], spec["http_url"]
        token = LiveKitServer.token
        api = LiveKitServer.api

    class Agent:  # what _dispatch needs of a Worker
        agent_name = spec["agent_name"]

        @staticmethod
        def info() -> dict[str, Any]:
            return {}

    utts = [synthesize(q) for q in QUESTIONS]
    k, window = spec["sessions"], spec["window_s"]
    users = [Participant(Server(), f"{spec['tag']}-{i}", identity=f"caller-{i}")  # type: ignore[arg-type]
             for i in range(k)]
    latencies: list[float] = []
    unanswered = 0
    failed_rooms: list[str] = []
    try:
        for p in users:
            await p.join()
            try:
                await _dispatch(p, Agent)
            except Exception:  # noqa: BLE001 - a room without its agent is a failed session
                failed_rooms.append(p.room_name)
        print(json.dumps({"ready": [p.room_name for p in users]}), flush=True)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()

        async def talk(i: int, p: Any) -> None:
            nonlocal unanswered
            await asyncio.sleep(i * TALK_EVERY_S / k)
            n = 0
            while time.monotonic() - t0 < window:
                started = time.monotonic()
                spoken = await p.say(utts[n % len(utts)])
                n += 1
                try:
                    seg = await p.agent_audio.wait_for_speech(after=spoken.end,
                                                              timeout=UNANSWERED_S)
                    latencies.append(seg.start - spoken.end)
                except Exception:  # noqa: BLE001 - HarnessError: no answer
                    unanswered += 1
                await asyncio.sleep(max(0.0, TALK_EVERY_S - (time.monotonic() - started)))

        await asyncio.gather(*(talk(i, p) for i, p in enumerate(users)
                               if p.room_name not in failed_rooms))
        wall = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        for p in users:
            with contextlib.suppress(Exception):
                await p.leave()
    return {"latencies": [round(x, 3) for x in latencies], "unanswered": unanswered,
            "failed_rooms": failed_rooms, "wall_s": round(wall, 2),
            "callers_cpu": round((ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime)
                                 / wall, 4)}


def callers_main(spec_json: str) -> None:
    res = asyncio.run(_callers(json.loads(spec_json)))
    print(json.dumps({"done": res}), flush=True)


# --- the ramp ------------------------------------------------------------------------------------


def _pin(pids: list[int], cores: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError, psutil.Error):
            os.sched_setaffinity(pid, cores)


def _tree(pid: int) -> list[int]:
    with contextlib.suppress(psutil.Error):
        return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    return []


def _step(server: Any, worker: Any, k: int, window_s: float, pin: dict[str, set[int]] | None,
          others: dict[str, list[int]]) -> dict[str, Any]:
    tag = f"ramp-{worker.name}-k{k}-{int(time.time() * 1000) % 10**8}"
    spec = {"ws_url": server.ws_url, "http_url": server.http_url, "agent_name": worker.agent_name,
            "sessions": k, "window_s": window_s, "tag": tag}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if pin:  # new job processes fork from the forkserver: keep the whole tree on its core
        _pin(_tree(worker.pid), pin["worker"])
    proc = subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "bench.ramp", "callers", json.dumps(spec)], cwd=REPO, env=env,
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        if pin:
            _pin([proc.pid], pin["rest"])
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline() or "{}").get("ready")
        if ready is None:
            raise RuntimeError(f"the callers of {tag} exited {proc.wait()} before the calls began")
        rooms = set(ready)
        deadline = time.monotonic() + 20
        pids: dict[str, int] = {}
        while len(pids) < k and time.monotonic() < deadline:
            pids = _job_pids(worker, rooms)
            time.sleep(0.2)
        jobs = {room: psutil.Process(pid) for room, pid in pids.items()}
        tree = psutil.Process(worker.pid)
        other_procs = {name: [psutil.Process(p) for p in ps] for name, ps in others.items()}
        cpu0 = {room: _cpu_s(p) for room, p in jobs.items()}
        tree0 = sum(_cpu_s(psutil.Process(p)) for p in _tree(worker.pid))
        other0 = {n: sum(_cpu_s(p) for p in ps) for n, ps in other_procs.items()}
        t0 = time.monotonic()
        done = json.loads(proc.stdout.readline() or "{}").get("done")
        wall = time.monotonic() - t0
        if done is None:
            raise RuntimeError(f"the callers of {tag} exited {proc.wait()} mid-step")
        cpu = {}
        for room, p in jobs.items():
            with contextlib.suppress(psutil.Error):
                cpu[room] = (_cpu_s(p) - cpu0[room]) / wall
        tree1 = sum(_cpu_s(psutil.Process(p)) for p in _tree(tree.pid))
        other = {n: round((sum(_cpu_s(p) for p in ps) - other0[n]) / wall, 4)
                 for n, ps in other_procs.items()}
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        if proc.poll() is None:
            proc.kill()
    behind = [r for r in worker.records()
              if r.get("message") == VAD_BEHIND and r.get("room") in rooms]
    errors = [r for r in worker.records()
              if r.get("level") in ("ERROR", "CRITICAL") and r.get("room") in rooms]
    lat = done["latencies"]
    failed = len(done["failed_rooms"]) + done["unanswered"] + len(errors) + (k - len(jobs))
    q95 = p95(lat)
    return {
        "sessions": k,
        "window_s": round(wall, 1),
        "answers": len(lat),
        "latency_p50_s": round(median(lat), 3) if lat else None,
        "latency_p95_s": q95,
        "vad_behind_warnings": len(behind),
        "failed": failed,
        "met": bool(lat) and q95 is not None and q95 <= objective() and not behind
        and failed == 0,
        "cpu_per_session": round(statistics.mean(cpu.values()), 4) if cpu else None,
        "cpu_worker_tree": round((tree1 - tree0) / wall, 4),
        "cpu_callers": done["callers_cpu"],
        "cpu_others": other,
    }


async def default_input_entrypoint(ctx: Any) -> None:
    """The interrupter's job with the framework's default room input options (the A/B's
    "before"). A job entrypoint: job processes import it from here, so the change is made in
    the job process itself."""
    from livekit.agents.voice import room_io

    from services.common import session
    from services.interrupter.agent import entrypoint

    session.ROOM_OPTIONS = room_io.RoomOptions()
    await entrypoint(ctx)


def _ours_default_input(env: dict[str, str], workdir: Path, name: str) -> Any:
    from testkit.processes import PYTHON
    from testkit.worker import Worker

    code = ("import sys; from bench.ramp import default_input_entrypoint as e; "
            "from services.common.cli import main; main('interrupter', sys.argv[1:], e)")

    class DefaultInputWorker(Worker):
        def argv(self) -> list[str]:
            Path(self.env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
            return [PYTHON, "-c", code, "start"]

    return DefaultInputWorker("interrupter", {**env, "AGENT_NAME": "bench-ours-24k"}, workdir,
                              name=name)


def _settle(worker: Any) -> None:
    from testkit.polling import wait_until

    wait_until(lambda: len(_job_processes(worker)) <= 2, 60, f"{worker.name}'s jobs to end")


def run(quick: bool, max_sessions: int, ab: int = 0, reps: int = 3) -> dict[str, Any]:
    from testkit.fakes_runner import Fakes
    from testkit.livekit_server import LiveKitServer
    from testkit.polling import wait_until
    from testkit.speech import synthesize
    from testkit.worker import Worker, worker_env

    window_s = 8.0 if quick else 24.0
    cores = sorted(os.sched_getaffinity(0))
    pin = {"worker": {cores[0]}, "rest": set(cores[1:])} if len(cores) >= 2 else None
    workdir = Path(tempfile.mkdtemp(prefix="bench-ramp-"))
    server = fakes = None
    workers: list[Any] = []
    out: dict[str, Any] = {"objective_p95_s": objective(), "cores": len(cores),
                           "pinned": bool(pin), "window_s": window_s, "workdir": str(workdir)}
    try:
        if pin:
            _pin([os.getpid()], pin["rest"])  # inherited by the server and the fakes
        server = LiveKitServer(workdir / "server").start()
        fakes = Fakes(workdir).start()
        utts = [synthesize(q) for q in QUESTIONS]
        fakes.deepgram("know", utterances=[u.script() for u in utts])
        env = {"LOAD_THRESHOLD": "1", "INTERRUPT_MAX_SENTENCES": "1000"}

        def start(make: Any, name: str) -> Any:
            wdir = workdir / name
            w = make(worker_env("interrupter", server, fakes, wdir, **env), wdir, name)
            workers.append(w.start())
            w.wait_ready(timeout=90)
            wait_until(lambda: w.find("process initialized"), 60, f"{name}'s prewarm")
            return w

        ours = start(lambda e, d, n: Worker("interrupter", e, d, name=n), "ours")
        bare = start(_bare_worker, "bare")
        others = {"livekit_server": [server.proc.pid], "fakes": fakes.pids}
        if ab:
            variants = {"ours": ours, "ours_24k": start(_ours_default_input, "ours_24k"),
                        "bare": bare}
            runs: dict[str, list[dict[str, Any]]] = {n: [] for n in variants}
            for rep in range(reps):
                names = list(variants)[rep % 3:] + list(variants)[:rep % 3]  # rotate the order
                for name in names:
                    runs[name].append(_step(server, variants[name], ab, window_s, pin, others))
                    print(f"[ab] {name} rep {rep}: CPU/session "
                          f"{runs[name][-1]['cpu_per_session']}, p95 "
                          f"{runs[name][-1]['latency_p95_s']}", file=sys.stderr, flush=True)
                    _settle(variants[name])
            out["ab"] = {"sessions": ab, "runs": runs}
            return out
        steps: dict[str, list[dict[str, Any]]] = {"ours": [], "bare": []}
        live = {"ours": ours, "bare": bare}
        k = 1
        while live and k <= max_sessions:
            order = list(live.items()) if k % 2 else list(live.items())[::-1]
            for name, w in order:
                step = _step(server, w, k, window_s, pin, others)
                steps[name].append(step)
                print(f"[ramp] {name} k={k}: p95 {step['latency_p95_s']} s, VAD behind "
                      f"{step['vad_behind_warnings']}, failed {step['failed']}, CPU/session "
                      f"{step['cpu_per_session']}, callers {step['cpu_callers']}",
                      file=sys.stderr, flush=True)
                _settle(w)
                if not step["met"]:
                    del live[name]  # the objective broke: this worker's ramp ends here
            k += 1
        out["steps"] = steps
        for name, ss in steps.items():
            ok = [s["sessions"] for s in ss if s["met"]]
            # the largest k below the first broken step
            first_broken = next((s["sessions"] for s in ss if not s["met"]), None)
            best = max((x for x in ok if first_broken is None or x < first_broken), default=0)
            out[name] = {"max_sessions_at_objective": best,
                         "broke_at": first_broken,
                         "cpus": 1 if pin else len(cores)}
    finally:
        stop(*workers, fakes, server)
    return out


def _ab_summary(res: dict[str, Any]) -> str:
    ab = res["ab"]
    cpu = {n: median([r["cpu_per_session"] for r in rs if r["cpu_per_session"]])
           for n, rs in ab["runs"].items()}
    lines = [f"A/B at {ab['sessions']} sessions, {len(ab['runs']['bare'])} interleaved reps, "
             f"{res['window_s']} s each; median CPU per session (of a core) and p95 answer:"]
    for n, rs in ab["runs"].items():
        p95s = [r["latency_p95_s"] for r in rs]
        lines.append(f"  {n}: {cpu[n]:.3f} ({cpu[n] / cpu['bare']:.2f}x bare), runs "
                     f"{[r['cpu_per_session'] for r in rs]}, p95 {p95s}")
    return "\n".join(lines)


def _summary(res: dict[str, Any]) -> str:
    if "ab" in res:
        return _ab_summary(res)
    lines = [f"objective: p95 answer <= {res['objective_p95_s']} s, no VAD-behind warning, no "
             f"failed session; worker {'pinned to 1 core' if res['pinned'] else 'not pinned'} "
             f"of {res['cores']}; {res['window_s']} s per step",
             "| worker | k | p50 s | p95 s | VAD behind | failed | CPU/session | worker tree | "
             "callers | met |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("ours", "bare"):
        for s in res["steps"][name]:
            lines.append(f"| {name} | {s['sessions']} | {s['latency_p50_s']} | "
                         f"{s['latency_p95_s']} | {s['vad_behind_warnings']} | {s['failed']} | "
                         f"{s['cpu_per_session']} | {s['cpu_worker_tree']} | {s['cpu_callers']} "
                         f"| {s['met']} |")
    for name in ("ours", "bare"):
        r = res[name]
        broke = (f"broke at k={r['broke_at']}" if r["broke_at"] else
                 "never broke: a lower bound, raise --max-sessions")
        lines.append(f"{name}: {r['max_sessions_at_objective']} calls at the objective on "
                     f"{r['cpus']} CPU ({broke}) -> "
                     f"{r['max_sessions_at_objective'] / r['cpus']:.1f} calls per CPU")
    pairs = [(o["cpu_per_session"], b["cpu_per_session"]) for o, b in
             zip(res["steps"]["ours"], res["steps"]["bare"], strict=False)
             if o["cpu_per_session"] and b["cpu_per_session"]]
    if pairs:
        ours_m = median([o for o, _ in pairs])
        bare_m = median([b for _, b in pairs])
        lines.append(f"CPU per session (median over common k): ours {ours_m:.3f}, bare "
                     f"{bare_m:.3f} of a core -> {ours_m / bare_m:.2f}x")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["callers"]:
        callers_main(argv[1])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.ramp", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short steps, at most 2 sessions")
    parser.add_argument("--max-sessions", type=int, default=12)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--ab", type=int, default=0, metavar="K",
                        help="A/B of the room input rate at K sessions instead of the ramp")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    if args.max_sessions < 1:
        parser.error("--max-sessions must be at least 1")  # exits 2
    if args.ab < 0 or args.reps < 1:
        parser.error("--ab must be positive and --reps at least 1")
    res = run(args.quick, 2 if args.quick else args.max_sessions, args.ab, args.reps)
    res["load1_at_end"] = round(os.getloadavg()[0], 2)
    return save(res, args.json, _summary(res))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
