"""Metrics against the real thing: a real Prometheus scrapes both real workers (and livekit-server)
every second while they run real sessions in their job processes, loads the shipped rules and
answers every dashboard panel query.

The module runs its sessions once, concurrently, then each test asks Prometheus's HTTP API:
  - interrupter: a monologue it cuts into, then a question it answers (cut_in, response latency)
  - uninterruptable: the user talks over its greeting, then asks a question (suppressed)
  - a third call whose job process is SIGKILLed mid-session: its live gauge must not linger
The Deepgram fake scripts connections in the order they first hear speech: the monologue is the
first speech anywhere (the talk-over is discarded for the STT, the third caller is silent), and
every other burst is the one question both callers ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.fakes_runner import Fakes
from testkit.livekit_server import LiveKitServer
from testkit.participant import Participant
from testkit.polling import HarnessError, wait_for, wait_until
from testkit.processes import REPO, free_port, http_get, require_tool, spawn, tail, terminate
from testkit.reporting import report, speech
from testkit.worker import Worker, running_worker
from tests.support.promql import DASHBOARDS, panel_data

# the release docker-compose.yml deploys, built by scripts/setup.sh (not whatever is on PATH)
PROMETHEUS_BIN = REPO / ".cache/bin/prometheus"
RULES = REPO / "deploy/prometheus/rules"
NAMES = {"interrupter": "metrics-interrupter", "uninterruptable": "metrics-uninterruptable"}

# The interrupter's limit is three sentences: it cuts in as the third ends, over the fourth. The
# fourth keeps the cut-in in the run when the STT fake misses a sentence's end, as it did once in
# CI on a busy machine (the jitter buffer had warped it): this fixture is about the metrics.
MONOLOGUE = [
    "I want to tell you about my weekend trip to the mountains.",
    "We left early on Saturday morning and drove for three hours.",
    "The weather was cold but the sky was perfectly clear.",
    "We stopped twice on the way for coffee.",
]
GREETING = ("Here is a long and boring story about paper clips. They were invented a long time "
            "ago. Many people improved them over the years. Now they are found in every office.")
TALK_OVER = ["Wait, stop, I have a question.", "Can you please stop talking now?"]
# Both callers ask it: whichever STT connection hears it next transcribes it right (see `run`).
QUESTION = ["What should I pack for my next trip?"]


class Prometheus:
    """Prometheus on a free 127.0.0.1 port, scraping and evaluating every second."""

    def __init__(self, workdir: Path, jobs: dict[str, list[str]]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.jobs = jobs
        self.log_path = workdir / "prometheus.log"
        self.proc: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        require_tool(PROMETHEUS_BIN, "prometheus")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(RULES / "*.yml")],
            "scrape_configs": [
                {"job_name": job, "metrics_path": "/metrics",
                 "static_configs": [{"targets": targets}]}
                for job, targets in self.jobs.items()
            ],
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        self.proc = spawn([str(PROMETHEUS_BIN), f"--config.file={path}",
                           f"--storage.tsdb.path={self.workdir / 'data'}",
                           f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                          log=self.log_path)

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise HarnessError(f"prometheus exited {self.proc.returncode}:\n"
                                   f"{tail(self.log_path)}")
            return http_get(self.url + "/-/ready")[0] == 200

        wait_until(ready, 30, "prometheus to be ready", evidence=lambda: tail(self.log_path))
        return self

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, timeout=5)
            self.proc = None

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, body = http_get(f"{self.url}/api/v1/{path}{query}", timeout=10)
        data = json.loads(body) if body.startswith("{") else {}
        if status != 200 or data.get("status") != "success":
            raise HarnessError(f"prometheus /api/v1/{path} {params}: {status} {body[:500]}")
        return data["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def values(self, expr: str, *by: str) -> dict[tuple[str, ...], float]:
        """{label values of `by`: value} of an instant vector."""
        return {tuple(r["metric"].get(b, "") for b in by): float(r["value"][1])
                for r in self.query(expr)}


@dataclass
class Run:
    """What the module's sessions did."""

    workers: dict[str, Worker]
    prom: Prometheus
    lk_server: LiveKitServer
    killed_pid: int = 0
    # the framework answers a second job request "not available" while the first is accepted
    # but not yet running (its estimate for it is LOAD_THRESHOLD / NUM_IDLE_PROCESSES), and
    # livekit-server then drops that dispatch: the two interrupter calls are dispatched in turn
    cut_in_joined: asyncio.Event = field(default_factory=asyncio.Event)
    active_before_kill: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


# --- the sessions -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _caller(server: LiveKitServer, room: str, identity: str) -> Any:
    p = Participant(server, room, identity)
    await p.join()
    try:
        yield p
    finally:
        await p.leave()


async def _interrupter_call(run: Run, room: str) -> None:
    monologue, question = speech(MONOLOGUE), speech(QUESTION)
    async with _caller(run.lk_server, room, "monologue") as p:
        await p.dispatch(NAMES["interrupter"])
        run.cut_in_joined.set()
        await asyncio.sleep(1.0)  # the session listens by then: the monologue is heard whole
        spoken = await p.say(monologue)
        await p.agent_audio.wait_for_speech(after=spoken.start, timeout=20)  # the cut-in
        await asyncio.sleep(max(0.0, spoken.end + 3.0 - time.time()))
        await p.agent_audio.wait_for_quiet(1.5, timeout=30)
        asked = await p.say(question)
        await p.agent_audio.wait_for_speech(after=asked.end, timeout=15)
        await p.agent_audio.wait_for_quiet(1.0, timeout=30)
        run.notes["interrupter"] = p.agent_audio.describe(since=spoken.start)


async def _uninterruptable_call(run: Run, room: str) -> None:
    talk_over, question = speech(TALK_OVER), speech(QUESTION)
    async with _caller(run.lk_server, room, "talker") as p:
        since = time.time()
        await p.dispatch(NAMES["uninterruptable"])
        greeting = await p.agent_audio.wait_for_speech(after=since, timeout=20)
        await asyncio.sleep(max(0.0, greeting.start + 1.5 - time.time()))
        await p.say(talk_over)
        await p.agent_audio.wait_for_quiet(1.5, timeout=40)
        asked = await p.say(question)
        await p.agent_audio.wait_for_speech(after=asked.end, timeout=15)
        await p.agent_audio.wait_for_quiet(1.0, timeout=30)
        run.notes["uninterruptable"] = p.agent_audio.describe(since=greeting.start)


async def _killed_call(run: Run, room: str) -> None:
    """A call whose job process dies (SIGKILL: no session close, no decrement)."""
    w = run.workers["interrupter"]
    async with _caller(run.lk_server, room, "victim") as p:
        await asyncio.wait_for(run.cut_in_joined.wait(), 30)
        join = await p.dispatch(NAMES["interrupter"])

        def job_pid() -> int | None:
            pids = {r.get("pid") for r in w.records() if r.get("room") == room
                    and r.get("job_id") and r.get("pid") != w.pid}
            return pids.pop() if len(pids) == 1 else None

        pid = await wait_for(job_pid, 10, f"the job process of {room} in the log", interval=0.2)
        run.active_before_kill = w.metric("voice_agent_sessions_active",
                                          agent="interrupter") or 0.0
        os.kill(pid, signal.SIGKILL)
        run.killed_pid = pid
        await wait_for(lambda: p.agent_left_at(join.identity), 30, "the dead agent to leave")


async def _sessions(run: Run, room: str) -> None:
    await asyncio.gather(_interrupter_call(run, f"{room}-cut-in"),
                         _uninterruptable_call(run, f"{room}-talk-over"),
                         _killed_call(run, f"{room}-killed"))


@pytest.fixture(scope="module")
def run(e2e_dir: Path, lk_server: LiveKitServer, fakes: Fakes) -> Iterator[Run]:
    require_tool(PROMETHEUS_BIN, "prometheus")  # before anything starts
    wdir = e2e_dir / "prometheus"
    with contextlib.ExitStack() as stack:
        workers = {agent: stack.enter_context(running_worker(
            agent, lk_server, fakes, wdir / agent, name=f"metrics-{agent}",
            AGENT_NAME=NAMES[agent])) for agent in NAMES}
        prom = Prometheus(wdir, {
            "voice-agents": [w.metrics_url.split("/")[2] for w in workers.values()],
            "livekit-server": [lk_server.metrics_url.split("/")[2]],
        }).start()
        stack.callback(prom.stop)
        run = Run(workers, prom, lk_server)
        # every target scraped once before the sessions: counters are seen rising from 0
        wait_until(lambda: len(prom.query("up == 1")) == 3, 20, "three targets up",
                   evidence=lambda: json.dumps(prom.api("targets"))[:2000])

        fakes.reset()
        # what the callers may say; the STT fake recognises it on whichever connection hears it
        question = speech(QUESTION).script()
        fakes.deepgram("know", utterances=[speech(MONOLOGUE).script(), question,
                                           speech(TALK_OVER).script()])
        fakes.openai("reply", replies=[GREETING])  # the first chat is the greeting
        started = time.time()
        try:
            asyncio.run(_sessions(run, f"metrics-{int(started * 1000) % 10**8}"))
        except Exception:
            stt = fakes.deepgram.state()
            print(f"deepgram fake: {stt['counts']}\nfinals: {stt['finals']}\n"
                  f"chats: {[c['messages'][-1] for c in fakes.openai_requests('chat')]}")
            raise
        report(f"prometheus: sessions ran {time.time() - started:.1f}s; agent audio "
               f"{run.notes}")
        run.notes["asked"] = [str(c["messages"][-1]["content"])
                              for c in fakes.openai_requests("chat")]
        # the gauges of ended and killed sessions are gone from the exposition, then from
        # Prometheus; rules have had a few evaluations
        wait_until(lambda: prom.values("sum by (agent) (voice_agent_sessions_active)", "agent")
                   == {("interrupter",): 0.0, ("uninterruptable",): 0.0}, 20,
                   "voice_agent_sessions_active back to 0 in Prometheus",
                   evidence=lambda: str(prom.query("voice_agent_sessions_active")))
        time.sleep(3)
        yield run


# --- the tests ----------------------------------------------------------------------------------


def test_interruptions_counted_by_kind_and_agent(run: Run) -> None:
    got = run.prom.values("sum by (agent, kind) (voice_agent_interruptions_total)",
                          "agent", "kind")
    report(f"prometheus: interruptions {dict(sorted(got.items()))}")
    assert got.get(("interrupter", "cut_in"), 0) >= 1, got
    assert got.get(("uninterruptable", "suppressed"), 0) >= 1, got
    assert got.get(("uninterruptable", "cut_in"), 0) == 0, got
    rate = run.prom.values("agent_kind:voice_agent_interruptions:rate5m", "agent", "kind")
    assert rate.get(("interrupter", "cut_in"), 0) > 0, rate
    assert rate.get(("uninterruptable", "suppressed"), 0) > 0, rate


def test_no_barge_in_on_the_uninterruptable_agent(run: Run) -> None:
    got = run.prom.values("sum by (agent, kind) (voice_agent_interruptions_total)",
                          "agent", "kind")
    # the LLM requests show the superseded preemptive generation (a prefix of the question)
    assert got.get(("uninterruptable", "barge_in"), 0) == 0, (got, run.notes["asked"])


def test_latency_histograms_filled(run: Run) -> None:
    counts, sums = {}, {}
    for name in ("response_latency", "cut_in_latency", "llm_ttft", "tts_ttfb",
                 "end_of_utterance_delay", "stt_delay"):
        counts[name] = run.prom.values(
            f"sum by (agent) (voice_agent_{name}_seconds_count)", "agent")
        sums[name] = run.prom.values(f"sum by (agent) (voice_agent_{name}_seconds_sum)", "agent")
    report("prometheus: histograms (count, sum s) " + "; ".join(
        f"{name} " + ", ".join(f"{a[0]} {n:g}/{sums[name].get(a, 0):.2f}"
                               for a, n in sorted(by_agent.items()))
        for name, by_agent in counts.items()))
    for name, by_agent in counts.items():
        for agent in NAMES:
            if name == "cut_in_latency" and agent == "uninterruptable":
                continue  # it never cuts in
            assert by_agent.get((agent,), 0) > 0, f"voice_agent_{name}_seconds empty for {agent}"


def test_worker_framework_series_present(run: Run) -> None:
    """lk_agents_* come from the framework's own registry in the worker's main process: they
    are only in the merged exposition when multiprocess mode was set up before Python started."""
    got = run.prom.query('count by (instance, __name__) ({__name__=~"lk_agents_.+"})')
    seen = {(r["metric"]["instance"], r["metric"]["__name__"]) for r in got}
    for w in run.workers.values():
        instance = w.metrics_url.split("/")[2]
        for name in ("lk_agents_worker_load", "lk_agents_child_process_count",
                     "lk_agents_active_job_count",
                     "lk_agents_proc_initialize_duration_seconds_count"):
            assert (instance, name) in seen, f"{name} missing for {w.name}: {sorted(seen)}"


def test_dead_job_process_gauge_does_not_linger(run: Run) -> None:
    w = run.workers["interrupter"]
    assert run.killed_pid and run.active_before_kill >= 1, (
        f"the killed job was not counted active ({run.active_before_kill})")
    assert w.metric("voice_agent_sessions_active", agent="interrupter") == 0.0
    mp_dir = Path(w.env["PROMETHEUS_MULTIPROC_DIR"])
    left = sorted(p.name for p in mp_dir.glob(f"gauge_live*_{run.killed_pid}.db"))
    assert not left, f"the killed process's live gauge files are still there: {left}"
    active = run.prom.values("agent:voice_agent_sessions_active:sum", "agent")
    assert active == {("interrupter",): 0.0, ("uninterruptable",): 0.0}, active
    ended = run.prom.values("sum by (agent, outcome) (voice_agent_sessions_total)",
                            "agent", "outcome")
    report(f"prometheus: sessions ended {dict(sorted(ended.items()))}")
    assert ended.get(("interrupter", "completed"), 0) >= 1, ended
    assert ended.get(("uninterruptable", "completed"), 0) >= 1, ended


def test_every_dashboard_panel_returns_data(run: Run) -> None:
    got = panel_data(run.prom.query, DASHBOARDS)
    report(f"prometheus: {got.summary()}")
    for line in got.empty:
        print(f"EMPTY PANEL {line}")
    assert got.queries
    assert not got.empty, "panels without data:\n" + "\n".join(got.empty)


def test_rules_load_and_recording_rules_evaluate(run: Run) -> None:
    groups = run.prom.api("rules")["groups"]
    files = {Path(g["file"]).name for g in groups}
    assert files == {p.name for p in RULES.glob("*.yml")}, files
    rules = [r for g in groups for r in g["rules"]]
    broken = [(r["name"], r.get("lastError")) for r in rules if r.get("health") != "ok"]
    assert not broken, broken
    recorded = sorted({r["name"] for r in rules if r["type"] == "recording"})
    empty = [name for name in recorded if not run.prom.query(name)]
    report(f"prometheus: {len(recorded)} recording rules, {len(rules) - len(recorded)} alerts "
           f"loaded; empty: {empty or 'none'}")
    assert not empty, f"recording rules without series: {empty}"


def test_metrics_endpoint_response_time(run: Run) -> None:
    w = run.workers["interrupter"]
    times = []
    for _ in range(20):
        t = time.perf_counter()
        status, body = http_get(w.metrics_url, timeout=5)
        times.append(time.perf_counter() - t)
        assert status == 200 and "voice_agent_sessions_total" in body
    median = statistics.median(times)
    files = len(list(Path(w.env["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db")))
    report(f"prometheus: worker /metrics median {median * 1000:.1f} ms over 20 requests "
           f"(max {max(times) * 1000:.1f} ms, {files} multiprocess files, "
           f"{len(body)} bytes)")
    assert median < 0.5, f"/metrics takes {median:.3f}s"
