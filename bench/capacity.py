"""Capacity and start-up of the real worker (testkit/): a real livekit-server, the
interrupter started exactly as the image starts it (`services/entrypoint.sh interrupter start`),
fake providers in their own process, and users joining over real WebRTC.

* CPU and RSS per session: k users in k rooms talk to the agent (a short question every few
  seconds, each answered by the fake LLM and TTS); each job process (one per session) is
  measured with psutil over a fixed window: CPU seconds per wall second (and by thread, from
  /proc), RSS, USS and PSS at the end (forked job processes share pages with the forkserver,
  so RSS counts those in every process). Baseline: the same, on a worker started the same way
  whose jobs run a bare framework session (bench.baseline), with the phases interleaved.
  Also reported: the Silero VAD alone per real-time stream, an idle prewarmed job process, and
  (full run) one session on a worker that does not preload the framework's local inference
  models into its forkserver.
* cold start: worker process start -> "registered worker" logged (and health answering);
  baseline: a fresh interpreter importing livekit.agents and the three plugins (bench.probe).
* prewarm: the framework's own "process initialized" elapsed time per job process (the
  `lk_agents_proc_initialize_duration_seconds` histogram agrees); baseline: `silero.VAD.load()`
  alone in a fresh process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from .common import REPO, Row, fmt, median, spread, stop

FULL_SESSIONS = (1, 3, 6)
QUICK_SESSIONS = (1,)
QUESTIONS = [
    ["Hello there.", "Can you help me plan a trip?"],
    ["What is the weather like today?"],
    ["Tell me something interesting about cats."],
]
TALK_EVERY_S = 6.0  # each user asks a short question this often: a conversation, not a lecture
MB = 1024 * 1024


def _probe(reps: int) -> dict[str, Any]:
    """Fresh-interpreter baselines (bench.probe), `reps` times."""
    cold, load, cpu = [], [], []
    env = {**os.environ, "PYTHONPATH": str(REPO), "ORT_DISABLE_TELEMETRY": "1"}
    for _ in range(reps):
        spawned = time.time()
        out = subprocess.run([sys.executable, "-m", "bench.probe"], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True, timeout=120)
        data = json.loads(out.stdout.strip().splitlines()[-1])
        cold.append(data["imported_at"] - spawned)
        load.append(data["vad_load_s"])
        cpu.append(data["vad_cpu_per_audio_s"])
    return {"imports_s": spread(cold), "vad_load_s": spread(load, 4),
            "vad_cpu_per_audio_s": spread(cpu, 5)}


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def _thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds by thread name: Python's own threads are all "python", WebRTC's and tokio's
    native threads carry their own names, so this splits interpreter work from media work."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                name = stat[stat.index("(") + 1:stat.rindex(")")]
                fields = stat[stat.rindex(")") + 2:].split()
                out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


def _memory(proc: psutil.Process) -> dict[str, float]:
    try:
        m = proc.memory_full_info()
        return {"rss_mb": m.rss / MB, "uss_mb": m.uss / MB, "pss_mb": m.pss / MB}
    except psutil.AccessDenied:
        return {"rss_mb": proc.memory_info().rss / MB}


def _job_pids(worker: Any, rooms: set[str]) -> dict[str, int]:
    """room -> pid of the job process serving it, from the worker's JSON log."""
    found: dict[str, int] = {}
    for rec in worker.records():
        room, pid = rec.get("room"), rec.get("pid")
        if room in rooms and rec.get("job_id") and pid and pid != worker.pid:
            found[room] = int(pid)
    return found


def _job_processes(worker: Any) -> list[psutil.Process]:
    """Every process the forkserver made (job processes, idle or busy)."""
    procs = []
    for child in psutil.Process(worker.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "forkserver" in " ".join(child.cmdline()) and child.ppid() != worker.pid:
                procs.append(child)
    return procs


async def _dispatch(p: Any, worker: Any, attempts: int = 3) -> float:
    """Dispatch the worker's agent into p's room; returns dispatch -> joined seconds.

    The worker reports itself full while the whole machine's CPU (2.5 s average) is at its
    load threshold, and livekit-server then drops the dispatch instead of queueing it: on a
    shared machine, wait for headroom and try again.
    """
    from testkit.polling import HarnessError

    for attempt in range(attempts):
        deadline = time.monotonic() + 30
        while worker.info().get("worker_load", 0.0) >= 0.9 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        try:
            return float((await p.dispatch(worker.agent_name, timeout=20)).joined_s)
        except HarnessError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


async def _talk(p: Any, utts: list[Any], offset: float, stop: asyncio.Event) -> int:
    """Ask a question every TALK_EVERY_S until `stop`; returns how many were asked."""
    asked = 0
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), offset)
    while not stop.is_set():
        started = time.monotonic()
        await p.say(utts[asked % len(utts)])
        asked += 1
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, TALK_EVERY_S - (time.monotonic()
                                                                           - started)))
    return asked


async def _phase(server: Any, worker: Any, utts: list[Any], k: int, window_s: float
                 ) -> dict[str, Any]:
    from testkit.participant import Participant

    tag = f"{worker.name}-{int(time.time() * 1000) % 10**8}"
    participants: list[Any] = []
    stop = asyncio.Event()
    talkers: list[asyncio.Task[int]] = []
    try:
        joins = []
        for i in range(k):  # one at a time: the worker reserves capacity per pending job
            p = Participant(server, f"bench-k{k}-{i}-{tag}", identity=f"bench-user-{i}")
            participants.append(p)
            await p.join()
            joins.append(await _dispatch(p, worker))
        rooms = {p.room_name for p in participants}
        pids: dict[str, int] = {}
        deadline = time.monotonic() + 20
        while len(pids) < k and time.monotonic() < deadline:
            pids = _job_pids(worker, rooms)
            await asyncio.sleep(0.2)
        if len(pids) < k:
            raise RuntimeError(f"found {len(pids)} of {k} job processes in the worker log")
        procs = {room: psutil.Process(pid) for room, pid in pids.items()}
        talkers = [asyncio.create_task(_talk(p, utts, i * TALK_EVERY_S / k, stop))
                   for i, p in enumerate(participants)]
        await asyncio.sleep(min(3.0, window_s / 3))  # first question asked and answered

        others = {"worker": psutil.Process(worker.pid), "livekit_server":
                  psutil.Process(server.proc.pid), "bench": psutil.Process()}
        cpu0 = {room: _cpu_s(pr) for room, pr in procs.items()}
        threads0 = {room: _thread_cpu(pr.pid) for room, pr in procs.items()}
        other0 = {name: _cpu_s(pr) for name, pr in others.items()}
        t0 = time.monotonic()
        await asyncio.sleep(window_s)
        wall = time.monotonic() - t0
        cpu = {room: (_cpu_s(pr) - cpu0[room]) / wall for room, pr in procs.items()}
        by_thread: dict[str, float] = {}
        for room, pr in procs.items():
            for name, sec in _thread_cpu(pr.pid).items():
                delta = (sec - threads0[room].get(name, 0.0)) / wall / k
                by_thread[name] = by_thread.get(name, 0.0) + delta
        other = {name: round((_cpu_s(pr) - other0[name]) / wall, 4)
                 for name, pr in others.items()}
        mem = {room: _memory(pr) for room, pr in procs.items()}
        busy = set(pids.values())
        idle = [_memory(pr) for pr in _job_processes(worker) if pr.pid not in busy]
        stop.set()
        asked = sum(await asyncio.gather(*talkers))
        load1 = os.getloadavg()[0]
    finally:
        stop.set()
        for t in talkers:
            t.cancel()
        for p in participants:
            with contextlib.suppress(Exception):
                await p.leave()
    rss = [m["rss_mb"] for m in mem.values()]
    return {
        "sessions": k,
        "window_s": round(wall, 2),
        "dispatch_to_join_s": spread(joins, 2),
        "questions_asked": asked,
        "cpu_per_session": spread(list(cpu.values()), 4),
        "cpu_per_session_mean": round(sum(cpu.values()) / k, 4),
        # per session, by thread name (clock ticks: 10 ms resolution)
        "cpu_per_session_by_thread": {n: round(v, 4) for n, v in sorted(
            by_thread.items(), key=lambda item: -item[1]) if v > 0},
        "rss_mb_per_session": spread(rss, 1),
        "rss_mb_sum": round(sum(rss), 1),
        "uss_mb_per_session": spread([m.get("uss_mb", 0.0) for m in mem.values()], 1),
        "pss_mb_per_session": spread([m.get("pss_mb", 0.0) for m in mem.values()], 1),
        "idle_process_rss_mb": [round(m["rss_mb"], 1) for m in idle],
        "other_cpu_share": other,
        "load1_at_end": round(load1, 2),
    }


def _prewarm_times(workers: list[Any]) -> list[float]:
    return [float(r["elapsed_time"]) for w in workers for r in w.find("process initialized")
            if r.get("elapsed_time") is not None]


def _bare_worker(env: dict[str, str], workdir: Path, name: str) -> Any:
    """A worker started like the interrupter's (same CLI, settings and prewarm) whose jobs run the
    bare framework session of bench.baseline."""
    from testkit.processes import PYTHON
    from testkit.worker import Worker

    class BareWorker(Worker):
        def argv(self) -> list[str]:
            Path(self.env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
            return [PYTHON, "-c", "from bench.baseline import main; main()", "start"]

    from .baseline import BARE_AGENT_NAME

    return BareWorker("interrupter", {**env, "AGENT_NAME": BARE_AGENT_NAME,
                                      "ORT_DISABLE_TELEMETRY": "1"}, workdir, name=name)


def run(quick: bool) -> dict[str, Any]:
    from testkit.fakes_runner import Fakes
    from testkit.livekit_server import LIVEKIT_SERVER_BIN, LiveKitServer
    from testkit.polling import wait_until
    from testkit.speech import synthesize
    from testkit.worker import Worker, worker_env

    if not os.access(LIVEKIT_SERVER_BIN, os.X_OK):
        raise RuntimeError(f"livekit-server not found at {LIVEKIT_SERVER_BIN}: run "
                           "`bash scripts/setup.sh`")
    reps = 1 if quick else 3
    ks = QUICK_SESSIONS if quick else FULL_SESSIONS
    window_s = 6.0 if quick else 30.0
    out: dict[str, Any] = {"baselines": _probe(reps)}
    utts = [synthesize(q) for q in QUESTIONS]
    workdir = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    server = fakes = None
    workers: list[Any] = []

    def start(make: Any, name: str, **env: str) -> Any:
        wdir = workdir / name
        w = make(worker_env("interrupter", server, fakes, wdir, **env), wdir, name)
        workers.append(w.start())
        return w

    def ready(w: Any) -> float:
        seconds = float(w.wait_ready(timeout=90))
        # the idle job process is prewarmed after registration: its figure is wanted too
        wait_until(lambda: w.find("process initialized"), 60, f"{w.name}'s prewarmed process")
        return seconds

    def ours(env: dict[str, str], wdir: Path, name: str) -> Any:
        return Worker("interrupter", env, wdir, name=name)

    def settle(w: Any) -> None:
        # the sessions end when their users leave, and their job processes exit
        wait_until(lambda: len(_job_processes(w)) <= 2, 30, f"{w.name}'s job processes to exit")

    try:
        server = LiveKitServer(workdir / "server").start()
        fakes = Fakes(workdir).start()
        fakes.deepgram("know", utterances=[u.script() for u in utts])
        cold = []
        for i in range(reps):
            w = start(ours, f"interrupter-{i}")
            cold.append(ready(w))
            if i < reps - 1:
                w.stop()
        out["cold_start_s"] = spread(cold)
        worker = workers[-1]
        bare = start(_bare_worker, "bare")
        ready(bare)
        phases: dict[str, list[dict[str, Any]]] = {"ours": [], "bare": []}
        for i, k in enumerate(ks):
            # alternate who goes first, so load drift falls on both
            order = (("ours", worker), ("bare", bare))
            for name, w in order if i % 2 == 0 else order[::-1]:
                phases[name].append(asyncio.run(_phase(server, w, utts, k, window_s)))
                settle(w)
        out["phases"] = phases["ours"]
        out["bare_phases"] = phases["bare"]
        hist_sum = worker.metric("lk_agents_proc_initialize_duration_seconds_sum")
        hist_count = worker.metric("lk_agents_proc_initialize_duration_seconds_count")
        out["prewarm_histogram"] = {
            "count": hist_count,
            "mean_s": round(hist_sum / hist_count, 4) if hist_sum and hist_count else None,
        }
        if not quick:
            # what the framework preloads into the forkserver that a VAD-only agent never uses
            # (the end-of-turn model): the same worker with that preload switched off
            worker.stop()
            bare.stop()
            lean = start(ours, "interrupter-no-eot-preload",
                         LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE="0")
            ready(lean)
            out["no_local_inference_preload"] = asyncio.run(
                _phase(server, lean, utts, 1, window_s))
        out["prewarm_s"] = spread(_prewarm_times(workers), 2)
    except Exception as e:
        # the worker, server and fakes logs are the evidence: keep them and say where
        raise RuntimeError(f"{e} (logs kept in {workdir})") from e
    finally:
        stop(*workers, fakes, server)
    shutil.rmtree(workdir, ignore_errors=True)  # reached only on success
    return out


def rows(res: dict[str, Any]) -> list[Row]:
    base = res["baselines"]
    phases, bare = res.get("phases", []), res.get("bare_phases", [])
    out: list[Row] = []
    if phases and bare:
        worst = max(range(len(phases)), key=lambda i: phases[i]["cpu_per_session_mean"])
        ours_cpu = phases[worst]["cpu_per_session_mean"] * 100
        bare_cpu = bare[worst]["cpu_per_session_mean"] * 100
        per_k = ", ".join(
            f"k={p['sessions']}: {fmt(p['cpu_per_session_mean'] * 100)} vs "
            f"{fmt(b['cpu_per_session_mean'] * 100)}" for p, b in zip(phases, bare, strict=True))
        vad = base["vad_cpu_per_audio_s"]["median"] * 100
        threads = phases[worst].get("cpu_per_session_by_thread", {})
        py = threads.get("python", 0.0) * 100
        native = sum(v for n, v in threads.items() if n != "python") * 100
        out.append(Row(
            "CPU per session", "% core", ours_cpu, bare_cpu, "bare framework session",
            "≤ 5% core", met=ours_cpu <= 5.0,
            note=(f"job process CPU / wall over {phases[0]['window_s']:.0f} s at the worst k "
                  f"(k={phases[worst]['sessions']}); ours vs bare {per_k}; of ours: Python "
                  f"threads (event loop, executors, Silero inference) {fmt(py, '%')}, native "
                  f"WebRTC/Opus/tokio threads {fmt(native, '%')}; Silero VAD alone "
                  f"{fmt(vad, '%')}"),
        ))
        worst = max(range(len(phases)), key=lambda i: phases[i]["rss_mb_per_session"]["median"])
        ours_rss = phases[worst]["rss_mb_per_session"]["median"]
        bare_rss = bare[worst]["rss_mb_per_session"]["median"]
        idle = [r for p in phases for r in p["idle_process_rss_mb"]]
        per_k = ", ".join(
            f"k={p['sessions']}: RSS {fmt(p['rss_mb_per_session']['median'])} / PSS "
            f"{fmt(p['pss_mb_per_session']['median'])} / USS "
            f"{fmt(p['uss_mb_per_session']['median'])}" for p in phases)
        lean = res.get("no_local_inference_preload")
        lean_note = ("; forkserver without the framework's local inference models "
                     "(LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE=0), k=1: RSS "
                     f"{fmt(lean['rss_mb_per_session']['median'])} / PSS "
                     f"{fmt(lean['pss_mb_per_session']['median'])} / USS "
                     f"{fmt(lean['uss_mb_per_session']['median'])} MB" if lean else "")
        out.append(Row(
            "RSS per session", "MB", ours_rss, bare_rss, "bare framework session", "≤ 250 MB",
            met=ours_rss <= 250.0,
            note=(f"median job process RSS at the worst k; {per_k} MB; idle prewarmed process "
                  f"{fmt(median(idle) if idle else None, 'MB')}{lean_note}"),
        ))
    if "cold_start_s" in res:
        cs = res["cold_start_s"]
        out.append(Row(
            "cold start", "s", cs["median"], base["imports_s"]["median"],
            "interpreter + livekit imports",
            note=f"process start -> registered worker, {cs['n']} starts: {cs['values']}",
        ))
    if "prewarm_s" in res and res["prewarm_s"]["n"]:
        pw, hist = res["prewarm_s"], res["prewarm_histogram"]
        out.append(Row(
            "prewarm", "s", pw["median"], base["vad_load_s"]["median"], "VAD.load() alone",
            note=(f"'process initialized' elapsed_time, {pw['n']} job processes "
                  f"({pw['min']}-{pw['max']} s); histogram mean {hist['mean_s']} s over "
                  f"{hist['count']:.0f}"),
        ))
    return out
