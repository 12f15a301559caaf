"""uninterruptable on a real livekit-server: it finishes what it says although the user talks
over it, and the turns after that still work (livekit/agents #4316, #4443, #2368).

The caller talks like a person (timings drawn with a seed): two sentences over the greeting with a
natural pause between them, then two questions, each 0.5-1.5 s after the agent has stopped. The
STT fake transcribes what it hears, so in `discard` mode it is the silence the agent sends in
place of the talk-over that keeps it from being answered.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testkit.audio import Segment
from testkit.fakes_runner import Fakes, heard
from testkit.livekit_server import LiveKitServer
from testkit.participant import Participant, Spoken
from testkit.reporting import report, speech
from testkit.scenarios import Monologue, reply_wait, said
from testkit.worker import Worker, running_worker

# Scripted as the LLM's first answer (the greeting): long enough to talk over.
GREETING = (
    "Here is a long and boring story about paper clips. They were invented a long time ago. "
    "Many people improved them over the years. Now they are found in every office. Some of "
    "them are even made of colourful plastic."
)
TALK_OVER = ["Wait, stop, I have a question.", "Can you please stop talking now?"]
QUESTION_1 = ["What is the weather like today?"]
QUESTION_2 = ["And what should I wear tomorrow?"]
SEED_DISCARD, SEED_KEEP = 3, 8
SUPPRESSED = {"agent": "uninterruptable", "kind": "suppressed"}
# The agent is quiet this long before the caller's wait starts counting: its replies play as one
# stretch of audio, and a caller's wait is at least 0.5 s.
QUIET_S = 0.4


@dataclass(frozen=True)
class Caller:
    talk_over: Monologue  # TALK_OVER with a drawn pause between its sentences
    over_after_s: float  # into the greeting
    waits_s: tuple[float, float]  # after the agent stops, before each question

    def describe(self) -> str:
        return (f"talk-over {self.over_after_s:.2f} s into the greeting, pause "
                f"{self.talk_over.pauses[0]:.2f} s; questions "
                f"{self.waits_s[0]:.2f} s and {self.waits_s[1]:.2f} s after the agent stopped")


def caller(seed: int) -> Caller:
    rng = random.Random(seed)
    # past the framework's 3 s echo-cancellation warm-up, during which the STT hears silence
    # whatever the mode (the greeting lasts 13 s: the talk-over, at most 5.7 s, is all over it)
    over_after_s = rng.uniform(3.5, 5.0)
    return Caller(said(rng, TALK_OVER), over_after_s, (reply_wait(rng), reply_wait(rng)))


def tts_seconds(fakes: Fakes, since: float) -> tuple[float, list[str]]:
    """Audio the fake TTS produced for requests after `since`: its tone lasts
    `tts_ms_per_char` per input character (at least 0.1 s), see testkit/fakes/openai_server.py."""
    state = fakes.openai.state()
    per_char = state["config"]["tts_ms_per_char"] / 1000
    texts = [r["body"]["input"] for r in state["requests"]
             if r["endpoint"] == "speech" and r["time"] >= since]
    return sum(max(0.1, len(t) * per_char) for t in texts), texts


async def ask(p: Participant, question: Any, wait_s: float, *, timeout: float = 15.0
              ) -> tuple[Spoken, Segment]:
    """Wait `wait_s` after the agent stops, say the question; return it and the agent audio that
    answers it."""
    stopped = await p.agent_audio.wait_for_quiet(QUIET_S, timeout=40)
    await asyncio.sleep(max(0.0, stopped + wait_s - time.time()))
    spoken = await p.say(question)
    return spoken, await p.agent_audio.wait_for_speech(after=spoken.end, timeout=timeout)


async def answer_latencies(p: Participant, questions: Sequence[Any],
                           waits_s: Sequence[float]) -> list[float]:
    """Ask each question after its wait: how long after each its answer began."""
    out = []
    for q, wait_s in zip(questions, waits_s, strict=True):
        spoken, answer = await ask(p, q, wait_s)
        out.append(answer.start - spoken.end)
    await p.agent_audio.wait_for_quiet(1.5, timeout=30)
    return out


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_finishes_its_sentence_and_keeps_answering(
    lk_server: LiveKitServer, fakes: Fakes, uninterruptable: Worker, participant: Any,
    room_name: str,
) -> None:
    who, q1, q2 = caller(SEED_DISCARD), speech(QUESTION_1), speech(QUESTION_2)
    suppressed_before = uninterruptable.metric("voice_agent_interruptions_total", **SUPPRESSED)
    assert suppressed_before is not None, "no suppressed series in /metrics"
    # the STT would recognise the talk-over if it heard it
    fakes.deepgram("know", utterances=[u.script() for u in (*who.talk_over.vocabulary, q1, q2)])
    fakes.openai("reply", replies=[GREETING])

    async with participant(lk_server, room_name) as p:
        since = time.time()
        join = await p.dispatch("uninterruptable")
        assert join.agent_name == "uninterruptable"
        report(f"uninterruptable: dispatch -> agent joined {join.joined_s:.2f}s")

        # 1. the agent speaks first; talk over it
        greeting_start = (await p.agent_audio.wait_for_speech(after=since, timeout=20)).start
        await asyncio.sleep(max(0.0, greeting_start + who.over_after_s - time.time()))
        over = await p.say(who.talk_over.speech)
        greeting_end = await p.agent_audio.wait_for_quiet(QUIET_S, timeout=40)
        greeting_turns = p.agent_audio.turns(gap_s=1.0, after=since)
        expected_s, texts = tts_seconds(fakes, since)
        timeline = p.agent_audio.describe(since=greeting_start)

        # 2. and 3.: two more turns
        answers = await answer_latencies(p, (q1, q2), who.waits_s)
        chats = fakes.openai_requests("chat", since)
        timeline = p.agent_audio.describe(since=greeting_start)

    report(f"uninterruptable: {who.describe()}; greeting heard "
           f"{greeting_end - greeting_start:.2f}s "
           f"(fake TTS produced {expected_s:.2f}s for {texts}); talk-over "
           f"{over.start - greeting_start:.2f}-{over.end - greeting_start:.2f}s; "
           f"answers {answers[0]:.2f}s and {answers[1]:.2f}s after the questions; "
           f"agent audio {timeline}")
    assert " ".join(texts).split() == GREETING.split(), f"TTS was asked for {texts}"
    assert over.start < greeting_end, f"the agent had stopped before the talk-over: {timeline}"
    assert len(greeting_turns) == 1, f"the greeting was cut into pieces: {timeline}"
    greeting = greeting_turns[0]
    # the whole text was played: nothing cut when the user started talking
    assert greeting.audio_s >= expected_s - 0.5, (
        f"heard {greeting.audio_s:.2f}s of greeting audio, the TTS produced {expected_s:.2f}s: "
        f"{timeline}")
    assert over.end < greeting_end, f"the talk-over was not all over protected speech: {timeline}"

    # exactly three LLM turns: the greeting and the two questions (the talk-over was dropped)
    assert len(chats) == 3, [c["messages"][-1] for c in chats]
    history = chats[1]["messages"]
    spoken_greeting = [m for m in history if m["role"] == "assistant"]
    assert spoken_greeting and spoken_greeting[-1]["content"].split() == GREETING.split(), (
        f"the history does not hold the whole greeting: {spoken_greeting}")
    for chat, q in ((chats[1], QUESTION_1), (chats[2], QUESTION_2)):
        last = chat["messages"][-1]
        assert last["role"] == "user" and heard(q[0], str(last["content"])), last
    # the STT, which knows the talk-over, heard silence in its place
    finals = [f["transcript"] for f in fakes.deepgram.state()["finals"]]
    assert not any("question" in t or "stop talking" in t for t in finals), (
        f"the STT heard what was said over protected speech: {finals}")
    assert all(0.0 < latency < 5.0 for latency in answers), f"slow or missing answer: {timeline}"

    suppressed = uninterruptable.metric("voice_agent_interruptions_total", **SUPPRESSED)
    assert suppressed is not None and suppressed - suppressed_before >= 1.0, (
        f"talking over protected speech was not counted as suppressed "
        f"({suppressed_before} -> {suppressed})")
    errors = [r for r in uninterruptable.errors() if r.get("room") == room_name]
    assert not errors, f"errors in the worker log: {errors}"


KEEP_AGENT = "uninterruptable-keep"


@pytest.fixture(scope="module")
def keep_worker(e2e_dir: Path, lk_server: LiveKitServer, fakes: Fakes) -> Iterator[Worker]:
    with running_worker("uninterruptable", lk_server, fakes, e2e_dir / "keep", name="keep",
                        AGENT_NAME=KEEP_AGENT, PROTECTED_SPEECH_USER_AUDIO="keep") as w:
        yield w


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_keep_mode_answers_what_was_said_over_it_afterwards(
    lk_server: LiveKitServer, fakes: Fakes, keep_worker: Worker, participant: Any,
    room_name: str,
) -> None:
    """PROTECTED_SPEECH_USER_AUDIO=keep: the talk-over is transcribed from the audio and
    answered once the greeting has finished, and two questions after it are answered too."""
    who, q1, q2 = caller(SEED_KEEP), speech(QUESTION_1), speech(QUESTION_2)
    fakes.deepgram("know", utterances=[u.script() for u in (*who.talk_over.vocabulary, q1, q2)])
    fakes.openai("reply", replies=[GREETING])

    async with participant(lk_server, room_name) as p:
        since = time.time()
        await p.dispatch(KEEP_AGENT)
        greeting_start = (await p.agent_audio.wait_for_speech(after=since, timeout=20)).start
        await asyncio.sleep(max(0.0, greeting_start + who.over_after_s - time.time()))
        over = await p.say(who.talk_over.speech)
        spoke_over = p.agent_audio.speaking or any(
            t.start <= over.end <= (t.end or 0) for t in p.agent_audio.turns(1.0, since))
        # the greeting, then the answer to what was said over it
        await p.agent_audio.wait_for_speech(after=over.end, timeout=20)
        await p.agent_audio.wait_for_quiet(QUIET_S, timeout=40)
        played = sum(g.audio_s for g in p.agent_audio.segments if g.start >= greeting_start)
        produced, texts = tts_seconds(fakes, since)
        answers = await answer_latencies(p, (q1, q2), who.waits_s)
        chats = fakes.openai_requests("chat", since)
        timeline = p.agent_audio.describe(since=greeting_start)

    report(f"uninterruptable keep: {who.describe()}; talk-over {over.start - greeting_start:.2f}-"
           f"{over.end - greeting_start:.2f}s into the greeting; {played:.2f}s of agent audio "
           f"heard before the questions, the TTS produced {produced:.2f}s; answers "
           f"{answers[0]:.2f}s and {answers[1]:.2f}s after the questions; "
           f"agent audio {timeline}")
    assert spoke_over, f"the greeting had ended before the talk-over did: {timeline}"
    # four LLM turns: the greeting, the kept talk-over, the two questions
    users = [str(c["messages"][-1]["content"]) for c in chats]
    assert len(chats) == 4, users
    assert "have a question" in users[1] and "stop talking" in users[1], users
    assert heard(QUESTION_1[0], users[2]) and heard(QUESTION_2[0], users[3]), users
    # nothing cut: the whole greeting and the whole answer to the kept words were played
    assert " ".join(texts).split()[: len(GREETING.split())] == GREETING.split(), texts
    assert played >= produced - 0.5, f"heard {played:.2f}s of {produced:.2f}s: {timeline}"
    assert all(0.0 < latency < 5.0 for latency in answers), f"slow or missing answer: {timeline}"
    errors = [r for r in keep_worker.errors() if r.get("room") == room_name]
    assert not errors, f"errors in the worker log: {errors}"
