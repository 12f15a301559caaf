"""uninterruptable in a real AgentSession: speaks first, finishes while the user talks over it,
and answers in its second and third turns (livekit/agents #4316, #4443, #2368 fail there).

The user's timings are drawn with a seed: two sentences over the greeting with a natural pause
between them, and questions 0.5-1.5 s after the agent has stopped."""

from __future__ import annotations

import asyncio
import random

import pytest

from testkit.inproc import Harness, metric
from testkit.scenarios import reply_wait, said
from testkit.speech import synthesize

pytestmark = pytest.mark.timeout(150)

GREETING = ("Welcome to the quarterly facilities update. The north parking lot will be "
            "resurfaced next week, so please use the south entrance until further notice.")
OVERLAP = ["Wait, which entrance did you say?", "I did not catch that."]
QUESTION = ["When does the resurfacing start?"]
THIRD = ["And how long will it take?"]
MS_PER_CHAR = 0.065  # the fake TTS speaks 65 ms per character
QUIET_S = 0.4  # less than any wait of the user's: the agent has stopped


async def _talk_over_greeting(h: Harness, overlap, after_s: float) -> None:  # noqa: ANN001
    await h.wait_for(lambda: h.speaker.speaking, timeout=15)
    await asyncio.sleep(after_s)
    await h.speak(overlap)


@pytest.mark.parametrize(("mode", "seed"), [("discard", 4), ("keep", 6)])
async def test_finishes_its_speech_while_the_user_talks_over_it(start_session, mode, seed) -> None:
    rng = random.Random(seed)
    overlap = said(rng, OVERLAP)
    # past the framework's echo-cancellation warm-up (3 s), during which the STT hears silence
    # whatever the mode; the talk-over (at most 5 s) ends before the greeting does (9.8 s)
    over_after_s = rng.uniform(3.5, 3.9)
    waits = [reply_wait(rng), reply_wait(rng)]
    question, third = synthesize(QUESTION), synthesize(THIRD)
    suppressed = metric("voice_agent_interruptions_total", agent="uninterruptable",
                        kind="suppressed")
    h = await start_session("uninterruptable", script=[*overlap.vocabulary, question, third],
                            replies=[GREETING], PROTECTED_SPEECH_USER_AUDIO=mode)
    print(f"\ntalk-over {over_after_s:.2f} s into the greeting, {overlap.describe()}; questions "
          f"{waits[0]:.2f} s and {waits[1]:.2f} s after the agent stopped")

    # it speaks first: the seeded greeting, before the user says anything
    await _talk_over_greeting(h, overlap.speech, over_after_s)
    await h.wait_quiet(2.0)
    greeting = h.speaker.segments[0]
    assert greeting.start < h.mic.speech_started_at[0]
    assert not greeting.interrupted and greeting.pauses == 0
    assert greeting.audio_s == pytest.approx(len(GREETING) * MS_PER_CHAR, abs=0.3)
    # one attempt per stretch of speech the VAD heard: a sentence each if the user paused long
    # enough between them (Silero's 0.55 s of silence), else one
    attempts = metric("voice_agent_interruptions_total", agent="uninterruptable",
                      kind="suppressed") - suppressed
    assert 1 <= attempts <= len(OVERLAP), f"{attempts:g} suppressed ({overlap.describe()})"

    if mode == "discard":  # the words said over protected speech are gone, not answered
        # the STT, which knows them, heard silence in their place
        assert not any("entrance" in t or "catch" in t for t in h.dg.transcripts), h.dg.transcripts
        assert len(h.oai.chat_requests) == 1
        assert "which entrance" not in " ".join(h.chat_messages("user"))
    else:  # kept: answered once the greeting has finished, after it, not over it
        assert len(h.oai.chat_requests) == 2
        assert "which entrance" in str(h.oai.chat_requests[1]["messages"])
        assert h.speaker.segments[1].start >= greeting.end

    # second and third turns are answered
    for utt, needle, wait_s in ((question, "resurfacing start", waits[0]),
                                (third, "how long", waits[1])):
        before = len(h.oai.chat_requests)
        segments = len(h.speaker.segments)
        await h.wait_quiet(QUIET_S)
        await asyncio.sleep(wait_s - QUIET_S)
        _, spoken_end = await h.speak(utt)
        await h.wait_quiet(1.5)
        assert len(h.oai.chat_requests) == before + 1, f"no answer to {needle!r}"
        assert needle in str(h.oai.chat_requests[-1]["messages"][-1])
        answer = h.speaker.segments[segments]
        assert answer.start > spoken_end and not answer.interrupted
