"""Provider faults injected by the fakes into a real worker's real session: a Deepgram socket
dropped mid-utterance, an LLM answering 500, an LLM answering 429, an LLM hanging past its
timeout, a TTS answering 500.

Each fault lasts as long as the worker's retries (PROVIDER_MAX_RETRIES=1: two attempts), so the
turn it hits really fails. For each: the participant and the agent stay in the room, the agent
answers the next question, the failed requests are counted in /metrics
(voice_agent_provider_errors_total{component}), and the worker's log holds neither the canary API
keys it was started with (at any level) nor the user's words (at INFO or above; the worker runs
at DEBUG, and the transcripts found there prove the search works).

A turn the LLM fails for good gets the configured fallback line instead of silence. A longer
outage is where the framework alone would give up (it closes the session after a few failed
turns in a row); `test_sustained_llm_outage_keeps_the_call` shows the agent stays on the line.

One worker of the module's own serves every test (its own agent name, keys and timeouts); each
test is its own room and session, and reads the error counters as deltas.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from livekit import rtc

from testkit.audio import Segment
from testkit.fakes_runner import Fakes, heard
from testkit.livekit_server import LiveKitServer
from testkit.participant import Participant
from testkit.polling import wait_for
from testkit.reporting import report, speech
from testkit.worker import Worker, running_worker

AGENT_NAME = "faults-interrupter"  # the session's shared interrupter must not take these jobs
TIMEOUT_S = 3
RETRIES = 1
ATTEMPTS = RETRIES + 1  # a fault served this many times fails the whole request
CANARY_OPENAI = f"sk-canary-{secrets.token_hex(16)}"
CANARY_DEEPGRAM = f"dg-canary-{secrets.token_hex(16)}"
LEVELS = {"DEBUG": 10, "INFO": 20, "WARN": 30, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


@pytest.fixture(scope="module")
def fault_worker(e2e_dir: Path, lk_server: LiveKitServer, fakes: Fakes) -> Iterator[Worker]:
    with running_worker(
        "interrupter", lk_server, fakes, e2e_dir / "faults", name="faults",
        AGENT_NAME=AGENT_NAME, OPENAI_API_KEY=CANARY_OPENAI, DEEPGRAM_API_KEY=CANARY_DEEPGRAM,
        PROVIDER_TIMEOUT_SECONDS=str(TIMEOUT_S), PROVIDER_MAX_RETRIES=str(RETRIES),
        LOG_LEVEL="DEBUG",
    ) as w:
        yield w


# --- what one fault did --------------------------------------------------------------------------


@dataclass
class Outcome:
    fault_turn: list[Segment]  # agent audio from the faulty question until the next one
    answer_s: float  # end of the next question -> agent audio
    errors: float  # provider errors counted for the component during the test
    served: int  # faults the fake actually served
    chats: list[dict[str, Any]]  # LLM requests of the test
    timeline: str

    @property
    def fallback(self) -> str:
        return "said something" if self.fault_turn else "silent"


def _counter(worker: Worker, component: str) -> float:
    value = worker.metric("voice_agent_provider_errors_total", agent="interrupter",
                          component=component)
    assert value is not None, f"no provider error series for {component} in /metrics"
    return value


def _served(control: Any, key: str) -> int:
    return int(control.state()["faults_served"].get(key, 0))


async def run_fault(
    p: Participant, fakes: Fakes, worker: Worker, *, component: str, served_key: str,
    arm: Callable[[], Any], fault_q: list[str], next_q: list[str], times: int = ATTEMPTS,
    settle_s: float = 3.0,
) -> Outcome:
    """Ask `fault_q` with the fault armed, wait until the fake served it `times` and for
    `settle_s` after the question (longer than a healthy answer takes to start, and than the
    worker's retries take to give up), then ask `next_q` and time the answer."""
    uf, un = speech(fault_q), speech(next_q)
    fakes.deepgram("know", utterances=[uf.script(), un.script()])
    control = fakes.deepgram if served_key.startswith("audio") else fakes.openai
    before = _counter(worker, component)
    since = time.time()
    join = await p.dispatch(AGENT_NAME)
    arm()

    said = await p.say(uf)
    await wait_for(lambda: _served(control, served_key) >= times,
                   20, f"the fake to serve {served_key} x{times}", interval=0.2,
                   evidence=lambda: json.dumps(control.state().get("faults_pending")))
    await asyncio.sleep(max(0.0, said.end + settle_s - time.time()))
    await p.agent_audio.wait_for_quiet(1.5, timeout=30)
    fault_turn = p.agent_audio.turns(gap_s=1.0, after=said.start)

    asked = await p.say(un)
    answer = await p.agent_audio.wait_for_speech(after=asked.end, timeout=15)
    await p.agent_audio.wait_for_quiet(1.0, timeout=30)

    # the session survived: both still in the room, nobody left
    assert p.room.connection_state == rtc.ConnectionState.CONN_CONNECTED
    assert join.identity in p.room.remote_participants, "the agent left the room"
    assert p.agent_left_at(join.identity) is None, "the agent left the room"
    chats = fakes.openai_requests("chat", since)
    last = chats[-1]["messages"][-1]
    assert last["role"] == "user" and heard(next_q[0], str(last["content"])), (
        f"the answer was not to the next question: {last}")
    return Outcome(fault_turn=fault_turn, answer_s=answer.start - asked.end,
                   errors=_counter(worker, component) - before,
                   served=_served(control, served_key), chats=chats,
                   timeline=p.agent_audio.describe(since=said.start))


# --- what the log may not hold -------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def _trigrams(sentences: list[str]) -> set[str]:
    words = _norm(" ".join(sentences)).split()
    return {" ".join(words[i:i + 3]) for i in range(len(words) - 2)}


def assert_log_clean(worker: Worker, said: list[str]) -> None:
    """No API key anywhere in the log; none of the user's words (any three in a row) in a record
    at INFO or above, nor in a line that is not a JSON record (those are always printed)."""
    text = worker.log_text()
    for canary in (CANARY_OPENAI, CANARY_DEEPGRAM):
        assert canary not in text, f"API key {canary[:12]}... in {worker.log_path}"
    grams = _trigrams(said)
    leaks, debug_hits = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line) if line.startswith("{") else None
        except ValueError:
            rec = None
        level = LEVELS.get(str(rec.get("level", "")).upper(), 50) if rec else 50
        norm = _norm(line)
        hit = next((g for g in grams if g in norm), None)
        if hit is None:
            continue
        if level >= LEVELS["INFO"]:
            leaks.append(f"{hit!r} in {line[:300]}")
        else:
            debug_hits += 1
    assert not leaks, "user transcript in the log at INFO or above:\n" + "\n".join(leaks[:5])
    # positive control: the same search does find the words where they may be (DEBUG)
    assert debug_hits, f"no transcript found even at DEBUG in {worker.log_path}: search broken?"


def assert_every_attempt_failed_then_recovered(o: Outcome, failed: str, worker: Worker,
                                               said: list[str]) -> None:
    """The fault hit every attempt, each counted; the next question was answered in time; the
    log stayed clean."""
    assert o.served == ATTEMPTS
    assert o.errors == ATTEMPTS, f"{ATTEMPTS} {failed}, {o.errors:g} counted"
    assert 0 < o.answer_s < 6.0, f"slow answer to the next question: {o.timeline}"
    assert_log_clean(worker, said)


def _report(name: str, o: Outcome) -> None:
    report(f"fault {name}: served {o.served}, provider errors +{o.errors:g}, fault turn "
           f"{o.fallback}, next answer after {o.answer_s:.2f}s; agent audio {o.timeline}")


# --- the faults ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_stt_socket_dropped_mid_utterance(
    lk_server: LiveKitServer, fakes: Fakes, fault_worker: Worker, participant: Any,
    room_name: str,
) -> None:
    fault_q = ["Please tell me about the purple elephant parade in the old town square."]
    next_q = ["What time does the harmonica concert start tonight?"]
    async with participant(lk_server, room_name) as p:
        o = await run_fault(
            p, fakes, fault_worker, component="stt", served_key="audio:drop",
            arm=lambda: fakes.deepgram("fault", mode="drop", after_words=4),
            fault_q=fault_q, next_q=next_q, times=1)
    _report("stt drop", o)
    stt = fakes.deepgram.state()
    assert stt["counts"].get("drops") == 1, stt["counts"]
    assert o.errors == 1, f"one dropped Deepgram socket, {o.errors:g} stt errors counted"
    # the plugin reconnected within the utterance: the words after the drop were answered
    heard = [str(c["messages"][-1]["content"]) for c in o.chats]
    assert o.fault_turn and any("town square" in h for h in heard), (
        f"the rest of the utterance after the drop was not answered: {heard}; {o.timeline}")
    assert_log_clean(fault_worker, fault_q + next_q)


# LLM faults: how the fake fails every attempt, what the failures are called, the question it
# fails and the next one (answered once the fault is gone).
LLM_FAULTS = {
    "500": ({"mode": "status", "status": 500, "retry_after": 1}, "failed",
            "How do I repot a cactus without hurting my fingers?",
            "Which soil is best for a young lemon tree?"),
    "429": ({"mode": "status", "status": 429, "retry_after": 1}, "failed",
            "Where can I buy fresh mackerel near the harbour?",
            "How long should I grill a sardine?"),
    "hang": ({"mode": "hang"}, "timed-out",
             "Can you explain how a lighthouse keeper trims the lantern wick?",
             "What is the tallest lighthouse in Scotland?"),
}


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("fault", LLM_FAULTS)
async def test_llm_fault(
    lk_server: LiveKitServer, fakes: Fakes, fault_worker: Worker, participant: Any,
    room_name: str, fault: str,
) -> None:
    how, failed, fault_q, next_q = LLM_FAULTS[fault]
    hangs = how["mode"] == "hang"
    async with participant(lk_server, room_name) as p:
        o = await run_fault(
            p, fakes, fault_worker, component="llm", served_key=f"chat:{how['mode']}",
            arm=lambda: fakes.openai("fault", endpoint="chat", count=ATTEMPTS, **how),
            fault_q=[fault_q], next_q=[next_q],
            # the fake serves the last hang when the last attempt starts; it times out later
            settle_s=3.0 + ATTEMPTS * TIMEOUT_S if hangs else 3.0)
    _report(f"llm {fault}", o)
    if not hangs:
        times = [r["time"] for r in fakes.openai.state()["requests"] if r["endpoint"] == "chat"]
        report(f"fault llm {fault}: the retry came {times[1] - times[0]:.2f}s after the first "
               f"attempt (the fake sent Retry-After: 1)")
    assert o.fault_turn, f"the caller was left in silence (no fallback line): {o.timeline}"
    assert_every_attempt_failed_then_recovered(o, f"{failed} LLM requests", fault_worker,
                                               [fault_q, next_q])


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_tts_error(
    lk_server: LiveKitServer, fakes: Fakes, fault_worker: Worker, participant: Any,
    room_name: str,
) -> None:
    fault_q = ["Tell me a short story about a clockmaker and his parrot."]
    next_q = ["Does the parrot ever learn to whistle?"]
    async with participant(lk_server, room_name) as p:
        o = await run_fault(
            p, fakes, fault_worker, component="tts", served_key="speech:status",
            arm=lambda: fakes.openai("fault", endpoint="speech", mode="status", status=500,
                                     count=ATTEMPTS),
            fault_q=fault_q, next_q=next_q)
    _report("tts 500", o)
    # the reply the user never heard is not in the history as if it had been said
    history = o.chats[-1]["messages"]
    assert not any(m["role"] == "assistant" for m in history), history
    assert_every_attempt_failed_then_recovered(o, "failed TTS requests", fault_worker,
                                               fault_q + next_q)


OUTAGE = [
    "Is the swimming pool open on Sundays?",
    "Do I need to bring my own towel?",
    "Are there lockers near the changing rooms?",
    "Can children swim there without a lifeguard?",
    "How much does a monthly pass cost?",
]


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_sustained_llm_outage_keeps_the_call(
    lk_server: LiveKitServer, fakes: Fakes, fault_worker: Worker, participant: Any,
    room_name: str,
) -> None:
    """What a caller wants from an LLM outage of four turns: the agent stays on the line, and
    answers once the LLM is back."""
    utts = [speech([q]) for q in OUTAGE]
    fakes.deepgram("know", utterances=[u.script() for u in utts])
    failed = fault_worker.metric("voice_agent_sessions_total", agent="interrupter",
                                 outcome="failed")
    async with participant(lk_server, room_name) as p:
        join = await p.dispatch(AGENT_NAME)
        fakes.openai("fault", endpoint="chat", mode="status", status=500, count=4 * ATTEMPTS)
        for i, utt in enumerate(utts[:4]):
            asked = await p.say(utt)
            await wait_for(lambda n=(i + 1) * ATTEMPTS: _served(fakes.openai, "chat:status") >= n,
                           15, f"failed LLM turn {i + 1}", interval=0.2)
            # the caller hears the agent's fallback line out ("could you say that again?"),
            # then asks again; talking over it would make the questions one monologue, which
            # the interrupter cuts into
            await p.agent_audio.wait_for_speech(after=asked.end, timeout=15)
            await p.agent_audio.wait_for_quiet(0.8, timeout=30)
        left = p.agent_left_at(join.identity)
        failed_now = fault_worker.metric("voice_agent_sessions_total", agent="interrupter",
                                         outcome="failed")
        report(f"fault llm outage: after 4 failed turns the agent "
               f"{'left the call' if left else 'is still there'}; failed sessions "
               f"{failed} -> {failed_now}")
        assert left is None, "the agent hung up on the caller after 4 failed LLM turns"
        asked = await p.say(utts[4])
        await p.agent_audio.wait_for_speech(after=asked.end, timeout=10)
    assert_log_clean(fault_worker, OUTAGE)
