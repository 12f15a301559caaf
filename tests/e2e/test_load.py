"""Load: concurrent calls on ONE worker, every caller talking for a minute.

The worker is the interrupter with its sentence limit out of reach (1000): it listens to every
word (VAD, STT stream, the incremental sentence counter on a growing transcript) and answers once
the caller stops, which is the heavier of the two agents per second of call; the uninterruptable
would greet first and hear silence while it speaks. Its job processes are all prewarmed
(NUM_IDLE_PROCESSES = sessions) and the rooms are dispatched one after the other before anyone
talks: the worker's load is the machine's CPU (LOAD_THRESHOLD=1, and the harness server's
agents.target_load 1.0), and a dispatch while the calls already saturate two cores would measure
admission control, not capacity.

Six sessions are what two cores allow with the callers (about 10% of a core each with 40 ms frames,
for their WebRTC and Opus), livekit-server and the fakes on the same machine: 97-100% busy, and the
answers come 2-10 s after the caller stops (the VAD falls up to ~2 s behind). At eight the job
processes' VAD falls 5-9 s behind the audio, the answers come that much later, and the STT's final
transcripts can reach the agent before its VAD has heard any speech; the framework then ends the
user's turn on the transcript alone, and the agent talks over the caller (seen in CI). So the
worker's default LOAD_THRESHOLD of 0.7 matters in production.
E2E_LOAD_SESSIONS overrides.

No session may fail: every room gets its agent, every caller hears it within 15 s of stopping
(the VAD kept up), the agent never talks over its caller (a reply started in a pause is stopped by
the caller's voice within MAX_EARLY_AUDIO_S), no session ends `failed`, no ERROR record.
The worker's process tree is sampled from /proc every second; CPU (% of one core) and memory per
session are printed and written to `load.json` in the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from testkit.fakes_runner import Fakes
from testkit.livekit_server import LiveKitServer
from testkit.participant import Participant
from testkit.polling import wait_for, wait_until
from testkit.reporting import report, speech
from testkit.worker import Worker, running_worker

SESSIONS = int(os.environ.get("E2E_LOAD_SESSIONS", "6"))
AGENT_NAME = "load-interrupter"
TALK_S = 60.0
# ~4 s each at espeak's 160 wpm with 0.25 s between them: short of Silero's 0.55 s end of speech,
# so the minute is one user turn.
MONOLOGUE = [
    "Let me tell you about the community garden we started on our street last spring.",
    "At first there were only four of us and a pile of old wooden pallets.",
    "We asked the city for permission to use the empty lot behind the bakery.",
    "It took almost two months before anyone even answered our letter.",
    "In the meantime we collected seeds from neighbours and from the library.",
    "When the permit finally came we spent a whole weekend clearing rubbish.",
    "The soil was poor, so we built raised beds and filled them with compost.",
    "A local farmer brought two truckloads of manure for free.",
    "The smell was terrible for a week, but the tomatoes loved it.",
    "By June we had lettuce, radishes, beans and more courgettes than we could eat.",
    "Children from the school across the road came every Thursday to help.",
    "We set up a little table where anyone could take vegetables for free.",
    "Now we are planning a small greenhouse so we can grow through the winter.",
    "We still need a few more volunteers and a lot more patience.",
    "If you know anyone who likes digging, please send them our way.",
]
# Agent audio a caller may hear at a stretch while still talking: a reply the framework started in
# a pause, cut short by the caller's voice (VAD interruption: 0.5 s of speech, plus the audio
# already in flight).
MAX_EARLY_AUDIO_S = 3.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# --- the worker's process tree, from /proc --------------------------------------------------------


@dataclass
class ProcSample:
    cpu_s: float  # user + system
    rss: int  # bytes


@dataclass
class TreeSampler:
    """Samples the root process and all its descendants every `interval` s on a thread."""

    root: int
    interval: float = 1.0
    samples: list[tuple[float, dict[int, ProcSample]]] = field(default_factory=list)
    pss: dict[int, int] = field(default_factory=dict)  # pid -> largest PSS seen (bytes)
    uss: dict[int, int] = field(default_factory=dict)  # pid -> largest private memory seen
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            tree = self.sample()
            self.samples.append((time.time(), tree))
            if n % 10 == 5:  # smaps_rollup walks every mapping: every 10 s is enough
                for pid in tree:
                    if (mem := _pss_uss(pid)) is not None:
                        self.pss[pid] = max(self.pss.get(pid, 0), mem[0])
                        self.uss[pid] = max(self.uss.get(pid, 0), mem[1])
            n += 1
            self._stop.wait(self.interval)

    def sample(self) -> dict[int, ProcSample]:
        stats: dict[int, tuple[int, ProcSample]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                raw = Path(f"/proc/{entry}/stat").read_text()
                # the command name may hold spaces: fields resume after its closing parenthesis
                f = raw[raw.rindex(")") + 2:].split()
                stats[int(entry)] = (int(f[1]), ProcSample(
                    cpu_s=(int(f[11]) + int(f[12])) / CLK_TCK, rss=int(f[21]) * PAGE))
        tree, frontier = {}, [self.root]
        while frontier:
            pid = frontier.pop()
            if pid in stats and pid not in tree:
                tree[pid] = stats[pid][1]
                frontier += [c for c, (ppid, _) in stats.items() if ppid == pid]
        return tree

    def cpu_between(self, t0: float, t1: float, pids: set[int] | None = None) -> float:
        """CPU seconds the tree (or `pids` of it) used between t0 and t1; a process that
        started within the window counts from 0, one that ended counts to its last sample."""
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        before = [s for t, s in self.samples if t <= t0]
        base = before[-1] if before else {}
        for t, tree in self.samples:
            if t0 <= t <= t1:
                for pid, s in tree.items():
                    if pids is None or pid in pids:
                        first.setdefault(pid, base[pid].cpu_s if pid in base else 0.0)
                        last[pid] = s.cpu_s
        return sum(last[p] - first[p] for p in last)

    def max_rss(self, pid: int, t0: float, t1: float) -> int:
        return max((s[pid].rss for t, s in self.samples if t0 <= t <= t1 and pid in s),
                   default=0)


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + f[4]  # idle + iowait
    return sum(f) - idle, sum(f)


def _pss_uss(pid: int) -> tuple[int, int] | None:
    """(PSS, USS) in bytes. A job process is forked from a forkserver that preloaded the
    plugins: its RSS counts those shared pages in full, PSS counts its share, USS (private
    pages) is what the session itself adds."""
    with contextlib.suppress(OSError, ValueError):
        kb = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, value = line.split(":", 1)
            kb[key] = int(value.split()[0])
        return kb["Pss"] * 1024, (kb["Private_Clean"] + kb["Private_Dirty"]) * 1024
    return None


def _cpu_s(pid: int | None) -> float:
    with contextlib.suppress(OSError, ValueError, IndexError, TypeError):
        raw = Path(f"/proc/{pid}/stat").read_text()
        f = raw[raw.rindex(")") + 2:].split()
        return (int(f[11]) + int(f[12])) / CLK_TCK
    return 0.0


# --- the test --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def load_worker(e2e_dir: Path, lk_server: LiveKitServer, fakes: Fakes) -> Iterator[Worker]:
    with running_worker(
        "interrupter", lk_server, fakes, e2e_dir / "load", name="load",
        AGENT_NAME=AGENT_NAME, NUM_IDLE_PROCESSES=str(SESSIONS), INTERRUPT_MAX_SENTENCES="1000",
    ) as w:
        # all job processes warm before the first call (each loads Silero in its prewarm)
        wait_until(lambda: len(w.find("process initialized")) >= SESSIONS, 60,
                   f"{SESSIONS} prewarmed job processes", evidence=w.log_text)
        yield w


def _stage_means(text: str) -> dict[str, float | None]:
    """Mean of each latency histogram of the worker (it served only this test's sessions)."""
    from testkit.worker import metric_value

    out: dict[str, float | None] = {}
    for stage in ("end_of_utterance_delay", "stt_delay", "llm_ttft", "tts_ttfb",
                  "response_latency"):
        name = f"voice_agent_{stage}_seconds"
        total = metric_value(text, f"{name}_sum", agent="interrupter")
        count = metric_value(text, f"{name}_count", agent="interrupter")
        out[stage] = round(total / count, 3) if total is not None and count else None
    return out


def _mb(n: float) -> float:
    return round(n / 2**20, 1)


@pytest.fixture
def coarse_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The callers are load generators here: 40 ms frames instead of 10-20 ms cut their Python
    work per second of audio (each frame is a round trip through livekit-rtc's FFI) to a third,
    and answers measured in seconds need no finer clock."""
    from testkit.webrtc_audio import AudioMonitor, Microphone

    monkeypatch.setattr(Microphone, "FRAME_MS", 40)
    monkeypatch.setattr(AudioMonitor, "FRAME_MS", 40)


@pytest.mark.slow
@pytest.mark.timeout(200)
@pytest.mark.usefixtures("coarse_callers")
async def test_concurrent_minute_long_calls_on_one_worker(
    lk_server: LiveKitServer, fakes: Fakes, load_worker: Worker, participant: Any,
    room_name: str, tmp_path: Path,
) -> None:
    assert SESSIONS >= 6, "E2E_LOAD_SESSIONS below the required 6"
    w = load_worker
    utt = speech(MONOLOGUE)
    assert TALK_S - 5 <= utt.duration <= TALK_S + 8, f"monologue lasts {utt.duration:.1f}s"
    fakes.deepgram("know", utterances=[utt.script()])  # every connection says it
    sampler = TreeSampler(w.pid).start()
    rooms = [f"{room_name}-{i}" for i in range(SESSIONS)]
    users: list[Participant] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            users = list(await asyncio.gather(*(
                stack.enter_async_context(participant(lk_server, r, f"caller-{i}"))
                for i, r in enumerate(rooms))))
            joins = []
            for p in users:  # one by one: see the module docstring
                joins.append(await p.dispatch(AGENT_NAME, timeout=30))
            # the rest of the machine's load, for the record: callers, server, fakes
            others = {"callers (pytest)": [os.getpid()], "livekit-server": [lk_server.proc.pid],
                      "fakes": fakes.pids}
            others0 = {k: sum(map(_cpu_s, pids)) for k, pids in others.items()}
            busy0 = _machine_busy()
            talk = await asyncio.gather(*(p.say(utt) for p in users))
            busy1 = _machine_busy()
            others1 = {k: sum(map(_cpu_s, pids)) for k, pids in others.items()}
            t0 = min(s.start for s in talk)
            t1 = max(s.end for s in talk)
            heard = await asyncio.gather(*(
                p.agent_audio.wait_for_speech(after=s.end, timeout=30)
                for p, s in zip(users, talk, strict=True)))
            await asyncio.gather(*(p.agent_audio.wait_for_quiet(1.0, timeout=30) for p in users))
            timelines = [p.agent_audio.describe(since=s.start)
                         for p, s in zip(users, talk, strict=True)]
            # each stretch of agent audio heard while its caller was still talking (s)
            early = [[round((g.end or s.end) - g.start, 2) for g in p.agent_audio.segments
                      if g.start < s.end]
                     for p, s in zip(users, talk, strict=True)]
            # the longest the caller's own audio stalled: the agent hears that as silence
            starved = [round(p.mic.starved_between(s.t0, s.end), 2) if p.mic else None
                       for p, s in zip(users, talk, strict=True)]
        ended = time.time()
        # every job ends with its session: wait until all are counted
        await wait_for(lambda: (w.metric("voice_agent_sessions_total", agent="interrupter",
                                         outcome="completed") or 0)
                       + (w.metric("voice_agent_sessions_total", agent="interrupter",
                                   outcome="failed") or 0) >= SESSIONS,
                       30, "every session to end", interval=0.5)
    finally:
        sampler.stop()

    # -- figures
    records = w.records()
    job_pids = {int(r["pid"]) for r in records
                if r.get("room") in rooms and r.get("job_id") and r.get("pid") != w.pid}
    wall = t1 - t0
    cpu_tree = sampler.cpu_between(t0, t1)
    cpu_jobs = sampler.cpu_between(t0, t1, job_pids)
    cpu_main = sampler.cpu_between(t0, t1, {w.pid})
    rss_jobs = [sampler.max_rss(pid, t0, t1) for pid in sorted(job_pids)]
    pss_jobs = [sampler.pss[p] for p in job_pids if p in sampler.pss]
    uss_jobs = [sampler.uss[p] for p in job_pids if p in sampler.uss]
    latencies = [h.start - s.end for h, s in zip(heard, talk, strict=True)]
    figures = {
        "sessions": SESSIONS,
        "talk_s": round(wall, 2),
        "cpu_tree_pct_of_core_per_session": round(100 * cpu_tree / wall / SESSIONS, 1),
        "cpu_job_pct_of_core_per_session": round(100 * cpu_jobs / wall / SESSIONS, 1),
        "cpu_worker_main_pct_of_core": round(100 * cpu_main / wall, 1),
        "cpu_tree_pct_of_machine": round(100 * cpu_tree / wall / (os.cpu_count() or 1), 1),
        "rss_mb_per_job_process": {
            "mean": _mb(statistics.mean(rss_jobs)) if rss_jobs else None,
            "max": _mb(max(rss_jobs, default=0)),
        },
        "pss_mb_per_job_process_mean": _mb(statistics.mean(pss_jobs)) if pss_jobs else None,
        "uss_mb_per_job_process_mean": _mb(statistics.mean(uss_jobs)) if uss_jobs else None,
        "rss_mb_worker_main": _mb(sampler.max_rss(w.pid, t0, t1)),
        "processes_in_tree": max(len(s) for _, s in sampler.samples),
        # the framework warns when Silero's inference runs slower than the audio, with its own
        # running total of the lag (inference time only: frames queued before it are not in it)
        "vad_behind_max_s": round(max((float(r.get("delay") or 0) for r in records
                                       if r.get("message") == "VAD inference is slower than "
                                       "realtime" and r.get("room") in rooms), default=0.0), 2),
        "caller_audio_stall_max_s": max((x for x in starved if x is not None), default=None),
        "answer_latency_s": {"median": round(statistics.median(latencies), 2),
                             "max": round(max(latencies), 2)},
        "dispatch_to_join_s": {"median": round(statistics.median(j.joined_s for j in joins), 2),
                               "max": round(max(j.joined_s for j in joins), 2)},
        # everything on the machine: also livekit-server, the fakes, the callers (and whatever
        # else runs on a shared runner)
        "machine_cpu_pct": round(100 * (busy1[0] - busy0[0]) / (busy1[1] - busy0[1]), 1),
        "others_pct_of_core": {k: round(100 * (others1[k] - others0[k]) / wall, 1)
                               for k in others},
        "stage_means_s": _stage_means(w.metrics_text()),
    }
    out = tmp_path / "load.json"
    out.write_text(json.dumps(figures, indent=2))
    report(f"load: {SESSIONS} sessions x {wall:.0f}s talk on one worker: CPU "
           f"{figures['cpu_tree_pct_of_core_per_session']}% of a core per session (job "
           f"process {figures['cpu_job_pct_of_core_per_session']}%, worker main "
           f"{figures['cpu_worker_main_pct_of_core']}% in all), RSS "
           f"{figures['rss_mb_per_job_process']['mean']} MB per job process (PSS "
           f"{figures['pss_mb_per_job_process_mean']} MB, private "
           f"{figures['uss_mb_per_job_process_mean']} MB), answers "
           f"{figures['answer_latency_s']['median']}s median / "
           f"{figures['answer_latency_s']['max']}s max after the caller stopped (stage means "
           f"{figures['stage_means_s']}); machine CPU {figures['machine_cpu_pct']}% (others, "
           f"% of a core: {figures['others_pct_of_core']}); VAD-behind warnings up to "
           f"{figures['vad_behind_max_s']}s; callers' audio stalled up to "
           f"{figures['caller_audio_stall_max_s']}s; {out}")

    # -- no session failed
    for j in joins:
        assert j.agent_name == AGENT_NAME, j
    assert len({j.identity for j in joins}) == SESSIONS
    assert len(job_pids) == SESSIONS, f"job processes {job_pids}"
    for r, lat, tl in zip(rooms, latencies, timelines, strict=True):
        # loose: the figure is reported; 15 s late means the job fell that far behind the audio.
        # On this 2-core rig (callers, server and fakes on the same cores) the machine is now
        # 97-99 % busy at 6 sessions and answers come 3-11 s late (1-4 s in earlier sessions).
        assert 0 < lat < 15, (f"{r}: answer {lat:.2f}s after the caller stopped (the framework's "
                              f"VAD-behind warnings peaked at {figures['vad_behind_max_s']}s); "
                              f"audio {tl}")
    failed = w.metric("voice_agent_sessions_total", agent="interrupter", outcome="failed")
    completed = w.metric("voice_agent_sessions_total", agent="interrupter", outcome="completed")
    assert failed == 0 and completed == SESSIONS, (failed, completed)
    assert not w.find("cutting in"), "the interrupter cut in: the load is not what it claims"
    errors = [r for r in records if r.get("level") in ("ERROR", "CRITICAL")]
    assert not errors, f"ERROR records: {[r['message'][:200] for r in errors]}"
    # At saturation the job processes' VAD falls behind the audio and the framework now and then
    # ends a user turn in a 0.25 s pause; the reply it starts is talked over and stopped at once
    # (`preempted`, or `barge_in` once audible). That is the load showing, not a failure; a reply
    # that goes on over the caller, or one nobody stopped, is.
    stopped = sum(w.metric("voice_agent_interruptions_total", agent="interrupter", kind=k) or 0
                  for k in ("preempted", "barge_in"))
    report(f"load: agent audio while callers talked (s): {early}; replies talked over and "
           f"stopped: {stopped:g}")
    assert max(sum(early, [0.0])) <= MAX_EARLY_AUDIO_S, (
        f"the agent talked over a caller: {early}; {timelines}; longest stall of each caller's "
        f"own audio (s): {starved}")
    assert stopped >= sum(1 for x in early if x), (early, stopped)
    report(f"load: sessions ended {ended - t1:.1f}s after the callers stopped talking")
