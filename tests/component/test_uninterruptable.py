"""uninterruptable in a real AgentSession: speaks first, finishes while the user talks over it,
and answers in its second and third turns (livekit/agents #4316, #4443, #2368 fail there)."""

from __future__ import annotations

import asyncio

import pytest

from testkit.inproc import Harness, metric
from testkit.speech import synthesize

pytestmark = pytest.mark.timeout(150)

GREETING = ("Welcome to the quarterly facilities update. The north parking lot will be "
            "resurfaced next week, so please use the south entrance until further notice.")
OVERLAP = ["Wait, which entrance did you say?", "I did not catch that."]
QUESTION = ["When does the resurfacing start?"]
THIRD = ["And how long will it take?"]
MS_PER_CHAR = 0.065  # the fake TTS speaks 65 ms per character



async def _talk_over_greeting(h: Harness, overlap) -> None:  # noqa: ANN001
    await h.wait_for(lambda: h.speaker.speaking, timeout=15)
    # past the framework's echo-cancellation warm-up (3 s), during which the STT hears silence
    # whatever the mode
    await asyncio.sleep(3.5)
    await h.speak(overlap)


@pytest.mark.parametrize("mode", ["discard", "keep"])
async def test_finishes_its_speech_while_the_user_talks_over_it(start_session, mode) -> None:
    overlap, question, third = synthesize(OVERLAP), synthesize(QUESTION), synthesize(THIRD)
    suppressed = metric("voice_agent_interruptions_total", agent="uninterruptable",
                        kind="suppressed")
    h = await start_session("uninterruptable", script=[overlap, question, third],
                            replies=[GREETING], PROTECTED_SPEECH_USER_AUDIO=mode)

    # it speaks first: the seeded greeting, before the user says anything
    await _talk_over_greeting(h, overlap)
    await h.wait_quiet(2.0)
    greeting = h.speaker.segments[0]
    assert greeting.start < h.mic.speech_started_at[0]
    assert not greeting.interrupted and greeting.pauses == 0
    assert greeting.audio_s == pytest.approx(len(GREETING) * MS_PER_CHAR, abs=0.3)
    assert metric("voice_agent_interruptions_total", agent="uninterruptable",
                  kind="suppressed") == suppressed + 1

    if mode == "discard":  # the words said over protected speech are gone, not answered
        assert len(h.oai.chat_requests) == 1
        assert "which entrance" not in " ".join(h.chat_messages("user"))
    else:  # kept: answered once the greeting has finished, after it, not over it
        assert len(h.oai.chat_requests) == 2
        assert "which entrance" in str(h.oai.chat_requests[1]["messages"])
        assert h.speaker.segments[1].start >= greeting.end

    # second and third turns are answered
    for utt, needle in ((question, "resurfacing start"), (third, "how long")):
        before = len(h.oai.chat_requests)
        segments = len(h.speaker.segments)
        _, spoken_end = await h.speak(utt)
        await h.wait_quiet(1.5)
        assert len(h.oai.chat_requests) == before + 1, f"no answer to {needle!r}"
        assert needle in str(h.oai.chat_requests[-1]["messages"][-1])
        answer = h.speaker.segments[segments]
        assert answer.start > spoken_end and not answer.interrupted
