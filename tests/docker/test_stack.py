"""`docker compose up` of the unmodified docker-compose.yml (plus tests/docker/compose.fakes.yml,
which only adds the provider fakes and keeps published ports on loopback), on our own dockerd with
the stand-in images; a real WebRTC participant on the host reaches it through the published
ports, as a browser on the Docker host would.

The tests share one stack and run in file order: calls, Prometheus, drain on `compose stop`,
`compose restart livekit`, and last `compose down`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.polling import HarnessError, wait_for
from testkit.processes import http_get
from testkit.reporting import speech
from testkit.scenarios import MOUNTAIN_TRIP
from tests.e2e.test_browser import browse, check_cut_in, check_greeting, monologue_wav
from tests.support.promql import DASHBOARDS, panel_data

from .conftest import REPO, Builds, Docker, figure
from .stack import (
    GREETING,
    OVERRIDE,
    PROMETHEUS,
    SERVICES,
    Stack,
    StackLiveKit,
    compose_up,
    joined,
    room_name,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def stack(docker: Docker, images: Builds) -> Iterator[Stack]:
    s = Stack(docker, StackLiveKit())
    s.compose("down", "--volumes", "--remove-orphans", "-t", "10", check=False)  # a leftover
    s.up_s = compose_up(s)
    figure(f"stack: docker compose up -d --wait -> every service healthy in {s.up_s:.1f}s "
           "(images present)")
    s.connect_fakes()
    try:
        yield s
    finally:
        s.compose("down", "--volumes", "--remove-orphans", "-t", "30", check=False)


# --- the stack is up -----------------------------------------------------------------------------

def test_every_service_healthy_and_published_on_loopback(stack: Stack) -> None:
    ps = stack.ps()
    assert set(ps) == SERVICES, f"services running: {sorted(ps)} (grafana: no image here)"
    for service, row in ps.items():
        assert row["State"] == "running" and row["Health"] == "healthy", (service, row)
        for pub in row.get("Publishers") or []:
            if pub.get("PublishedPort"):
                assert pub["URL"] == "127.0.0.1", f"{service} publishes on {pub['URL']}"
    for agent in ("interrupter", "uninterruptable"):
        assert "registered worker" in stack.logs(agent)


def test_override_only_adds_the_fakes_and_loopback_ports() -> None:
    base = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    # !reset / !override are compose tags: read them as plain values here
    loader = type("L", (yaml.SafeLoader,), {})
    for tag in ("!reset", "!override"):
        loader.add_constructor(tag, lambda ld, node: (
            ld.construct_sequence(node) if isinstance(node, yaml.SequenceNode)
            else ld.construct_mapping(node)))
    over = yaml.load(OVERRIDE.read_text(), Loader=loader)  # noqa: S506 - SafeLoader subclass
    assert set(over["services"]) - set(base["services"]) == {"fakes"}
    for name in ("livekit", "prometheus"):
        assert over["services"][name]["ports"] == [
            f"127.0.0.1:{p}" for p in base["services"][name]["ports"]], name
    for agent in ("interrupter", "uninterruptable"):
        env = over["services"][agent]["environment"]
        assert set(env) == {"OPENAI_API_KEY", "OPENAI_BASE_URL", "DEEPGRAM_API_KEY",
                            "DEEPGRAM_BASE_URL"}
        assert urllib.parse.urlsplit(env["OPENAI_BASE_URL"]).hostname == "fakes"
        assert urllib.parse.urlsplit(env["DEEPGRAM_BASE_URL"]).hostname == "fakes"
    assert over["services"]["grafana"] == {"profiles": ["grafana"]}


# --- calls through the containers ----------------------------------------------------------------

WEB = "http://127.0.0.1:8080"  # docker-compose.yml publishes the web client there


@pytest.mark.timeout(300)
def test_browser_talks_to_the_agents_through_the_web_service(stack: Stack,
                                                              tmp_path: Path) -> None:
    """tests/e2e/test_browser.py's page checks, against the web container of the stack."""
    assert stack.deepgram is not None and stack.openai is not None
    for query in ("", "?agent=nobody"):
        assert http_get(f"{WEB}/api/connection-details{query}")[0] == 400
    wav, utt = monologue_wav(tmp_path / "monologue.wav")
    stack.reset_fakes()
    stack.deepgram("know", utterances=[utt.script()])
    seen = browse(WEB, "interrupter", "cut_in", wav=wav, timeout_s=120,
                  log=tmp_path / "browser-interrupter.json")
    figure(f"stack browser/interrupter: {check_cut_in(seen)}")
    stack.reset_fakes()
    stack.openai("reply", replies=[GREETING])
    stack.deepgram("know", utterances=[utt.script()])
    seen = browse(WEB, "uninterruptable", "agent_audio", wav=wav, timeout_s=60, settleMs=2000)
    figure(f"stack browser/uninterruptable: {check_greeting(seen)}")


@pytest.mark.timeout(180)
async def test_interrupter_cuts_in(stack: Stack) -> None:
    assert stack.deepgram is not None
    stack.reset_fakes()
    # the e2e cut-in story, without its pauses: the first agent audio is the cut-in
    utt = speech(MOUNTAIN_TRIP)
    stack.deepgram("know", utterances=[utt.script()])
    async with joined(stack, room_name("interrupter")) as p:
        join = await p.dispatch("interrupter")
        assert join.agent_name == "interrupter"
        spoken = await p.say(utt, wait=False)
        cut_in = await p.agent_audio.wait_for_speech(after=spoken.start, timeout=60)
        await asyncio.sleep(max(0.0, spoken.end - time.time()))
        await p.agent_audio.wait_for_quiet(1.5, timeout=40)
    s3_end = spoken.sentence_end(2)
    figure(f"stack interrupter: dispatch -> joined {join.joined_s:.2f}s; cut-in audio "
           f"{cut_in.start - s3_end:+.2f}s after sentence 3 ended, "
           f"{spoken.end - cut_in.start:.1f}s before the monologue's end")
    assert s3_end < cut_in.start < spoken.end, (
        f"the cut-in must start after sentence 3 and while the user still talks: sentence 3 "
        f"ended {s3_end - spoken.start:.2f}s, cut-in {cut_in.start - spoken.start:.2f}s, "
        f"monologue ends {spoken.end - spoken.start:.2f}s")
    assert "cutting in" in stack.logs("interrupter")


@pytest.mark.timeout(120)
async def test_uninterruptable_greeting_is_heard(stack: Stack) -> None:
    assert stack.openai is not None
    stack.reset_fakes()
    stack.openai("reply", replies=[GREETING])
    async with joined(stack, room_name("greeting")) as p:
        join = await p.dispatch("uninterruptable")
        assert join.agent_name == "uninterruptable"
        greeting = await p.agent_audio.wait_for_speech(after=join.dispatched_at, timeout=30)
        await p.agent_audio.wait_for_quiet(1.5, timeout=60)
    figure(f"stack uninterruptable: dispatch -> greeting audio "
           f"{greeting.start - join.dispatched_at:.2f}s, {greeting.audio_s:.1f}s long")
    assert greeting.audio_s > 1.0


# --- Prometheus in the stack ---------------------------------------------------------------------

def prom(path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    status, body = http_get(f"{PROMETHEUS}{path}{query}", timeout=5)
    assert status == 200, f"{path}: {status} {body[:300]}"
    return json.loads(body)["data"]


@pytest.mark.timeout(120)
def test_prometheus_targets_rules_and_cut_in(stack: Stack) -> None:
    def targets_up() -> list[dict[str, Any]] | None:
        active = prom("/api/v1/targets")["activeTargets"]
        return active if active and all(t["health"] == "up" for t in active) else None

    deadline = time.monotonic() + 60
    while not (active := targets_up()):
        if time.monotonic() > deadline:
            raise AssertionError(f"targets not all up: {prom('/api/v1/targets')['activeTargets']}")
        time.sleep(1)
    jobs = {(t["labels"]["job"], t["labels"]["instance"]) for t in active}
    assert jobs == {("voice-agents", "interrupter:9100"), ("voice-agents", "uninterruptable:9100"),
                    ("livekit-server", "livekit:6789"), ("prometheus", "localhost:9090")}, jobs

    groups = prom("/api/v1/rules")["groups"]
    files = {Path(g["file"]).name for g in groups}
    expected = {p.name for p in (REPO / "deploy" / "prometheus" / "rules").glob("*.yml")}
    assert files == expected, f"rule files loaded {files}, in deploy/prometheus/rules {expected}"
    rules = sum(len(g["rules"]) for g in groups)
    assert all(r["health"] == "ok" for g in groups for r in g["rules"])

    query = 'sum(voice_agent_interruptions_total{kind="cut_in"})'
    deadline = time.monotonic() + 60  # scrape_interval is 15 s
    value = 0.0
    while time.monotonic() < deadline:
        result = prom("/api/v1/query", query=query)["result"]
        value = float(result[0]["value"][1]) if result else 0.0
        if value >= 1:
            break
        time.sleep(2)
    figure(f"stack prometheus: {len(active)} targets up, {len(groups)} rule groups "
           f"({rules} rules) loaded, {query} = {value:g}")
    assert value >= 1



@pytest.mark.timeout(180)
def test_every_dashboard_panel_returns_data(stack: Stack) -> None:
    """The e2e check of the dashboards (tests/e2e/test_prometheus.py), against the compose
    stack's Prometheus after the calls above. Series of the last call and the recording rules
    over them show up within a scrape and an evaluation (15 s each)."""
    def query(expr: str) -> list[dict[str, Any]]:
        return list(prom("/api/v1/query", query=expr)["result"])

    deadline = time.monotonic() + 90
    while (got := panel_data(query, DASHBOARDS)).empty and time.monotonic() < deadline:
        time.sleep(5)
    figure(f"stack prometheus: {got.summary()}")
    assert got.queries
    assert not got.empty, "panels without data:\n" + "\n".join(got.empty)

# --- lifecycle: drain, restart, down -------------------------------------------------------------

@pytest.mark.timeout(300)
async def test_compose_stop_drains_a_call(stack: Stack) -> None:
    """`docker compose stop` sends SIGTERM: the call goes on, the container exits 0 once it ends."""
    assert stack.openai is not None
    stack.reset_fakes()
    stack.openai("reply", replies=[GREETING])
    cid = stack.compose("ps", "-q", "uninterruptable").stdout.strip()
    result: dict[str, Any] = {}

    def stop() -> None:
        t0 = time.monotonic()
        r = stack.compose("stop", "uninterruptable", check=False)
        result.update(rc=r.returncode, out=r.stdout + r.stderr, s=time.monotonic() - t0)

    async with joined(stack, room_name("drain")) as p:
        join = await p.dispatch("uninterruptable")
        await p.agent_audio.wait_for_speech(after=join.dispatched_at, timeout=30)
        thread = threading.Thread(target=stop, daemon=True)
        stopped_at = time.time()
        thread.start()
        await wait_for(lambda: "draining worker" in stack.logs("uninterruptable", stopped_at - 1),
                       20, "the worker to start draining")
        await asyncio.sleep(3.0)
        assert stack.docker.inspect(cid)["State"]["Running"], "exited during a call"
        assert p.agent_participants(), "the agent left the call while draining"
        # the greeting (about 10 s) was under way at SIGTERM and went on playing
        heard = [s for s in p.agent_audio.segments if (s.end or time.time()) > stopped_at + 2.5]
        assert heard, f"no agent audio after SIGTERM: {p.agent_audio.describe()}"
        left_at = time.time()
    # the participant left: the job ends, the worker finishes draining and exits
    await wait_for(lambda: "s" in result, 120, "docker compose stop to return",
                   evidence=lambda: stack.logs("uninterruptable", stopped_at)[-3000:])
    state = stack.docker.inspect(cid)["State"]
    figure(f"stack drain: compose stop returned {result['s']:.1f}s after SIGTERM; the container "
           f"exited {time.time() - left_at:.1f}s (or less) after the caller left, exit code "
           f"{state['ExitCode']}; the call's audio went on during the drain")
    assert result["rc"] == 0, result["out"]
    assert state["ExitCode"] == 0 and not state["OOMKilled"]
    assert result["s"] < 660, "compose would have killed it"
    # back for the tests after this one
    compose_up(stack, "uninterruptable")


@pytest.mark.timeout(300)
async def test_restart_livekit_and_agents_register_again(stack: Stack) -> None:
    assert stack.openai is not None
    t0 = time.time()
    stack.compose("restart", "livekit")

    def registered(agent: str) -> bool:
        return stack.logs(agent, t0).count("registered worker") >= 1

    for agent in ("interrupter", "uninterruptable"):
        try:
            await wait_for(lambda a=agent: registered(a), 120, f"{agent} to register again")
        except HarnessError as e:
            raise AssertionError(f"{e}\n{stack.logs(agent, t0)[-3000:]}") from None
    figure(f"stack: compose restart livekit -> both agents registered again within "
           f"{time.time() - t0:.1f}s")
    stack.reset_fakes()
    stack.openai("reply", replies=[GREETING])
    async with joined(stack, room_name("after-restart")) as p:
        join = await p.dispatch("uninterruptable")
        await p.agent_audio.wait_for_speech(after=join.dispatched_at, timeout=30)


def test_down_leaves_nothing(stack: Stack) -> None:
    t0 = time.monotonic()
    stack.compose("down", "--volumes", "--remove-orphans", "-t", "60")
    figure(f"stack: compose down in {time.monotonic() - t0:.1f}s")
    project = "label=com.docker.compose.project=voice-agents"
    assert stack.docker.out("ps", "-a", "-q", "--filter", project) == ""
    assert stack.docker.out("network", "ls", "-q", "--filter", project) == ""
    assert stack.docker.out("volume", "ls", "-q", "--filter", project) == ""
