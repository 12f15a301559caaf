"""The metrics observer on real sessions: barge-ins, false interruptions, response and stage
latencies, sessions and provider errors are counted from what really happened."""

from __future__ import annotations

import asyncio

import pytest

from testkit.inproc import metric
from testkit.speech import synthesize

pytestmark = pytest.mark.timeout(120)
AGENT = "interrupter"
LONG_REPLY = ("Let me walk you through the whole plan, step by step, starting with the budget, "
              "then the schedule, then the people involved, and finally the risks we see.")



def hist_count(name: str) -> float:
    return metric(f"voice_agent_{name}_count", agent=AGENT)


async def test_barge_in_and_latencies(start_session) -> None:
    question = synthesize(["Can you explain the plan?"])
    barge = synthesize(["Wait, I have a different question about the budget."])
    before = {n: hist_count(n) for n in ("response_latency_seconds", "llm_ttft_seconds",
                                         "tts_ttfb_seconds", "end_of_utterance_delay_seconds",
                                         "stt_delay_seconds")}
    barge_ins = metric("voice_agent_interruptions_total", agent=AGENT, kind="barge_in")
    h = await start_session(AGENT, script=[question, barge],
                            replies=[LONG_REPLY, "Sure."])
    await h.speak(question)
    await h.wait_for(lambda: h.speaker.speaking)
    await asyncio.sleep(1.5)
    await h.speak(barge)
    await h.wait_quiet(1.5)

    assert h.speaker.segments[0].interrupted
    assert metric("voice_agent_interruptions_total", agent=AGENT,
                  kind="barge_in") == barge_ins + 1
    for name, count in before.items():
        assert hist_count(name) >= count + 1, name
    # the response latency observed matches what the speaker heard
    q_end = h.mic.speech_started_at[0] + question.duration
    assert h.speaker.segments[0].start - q_end < 3.0


async def test_false_interruption_resumes_and_is_counted(start_session) -> None:
    question = synthesize(["Can you explain the plan?"])
    cough = synthesize(["Hmm, hmm."])  # not in the STT script: heard by the VAD, no transcript
    falses = metric("voice_agent_interruptions_total", agent=AGENT, kind="false")
    h = await start_session(AGENT, script=[question], replies=[LONG_REPLY])
    await h.speak(question)
    await h.wait_for(lambda: h.speaker.speaking)
    await asyncio.sleep(1.5)
    await h.speak(cough)
    await h.wait_quiet(1.5, timeout=40)
    first = h.speaker.segments[0]
    assert first.pauses >= 1 and not first.interrupted
    assert metric("voice_agent_interruptions_total", agent=AGENT, kind="false") == falses + 1


async def test_sessions_and_provider_errors(start_session) -> None:
    question = synthesize(["Can you explain the plan?"])
    active = metric("voice_agent_sessions_active", agent=AGENT)
    completed = metric("voice_agent_sessions_total", agent=AGENT, outcome="completed")
    llm_errors = metric("voice_agent_provider_errors_total", agent=AGENT, component="llm")
    h = await start_session(AGENT, script=[question, question],
                            PROVIDER_MAX_RETRIES="0")
    assert metric("voice_agent_sessions_active", agent=AGENT) == active + 1
    h.oai.fail("chat", "status", status=500)
    await h.speak(question)
    await h.wait_quiet(1.5)
    assert metric("voice_agent_provider_errors_total", agent=AGENT,
                  component="llm") >= llm_errors + 1
    # the caller is told, not left in silence
    assert " ".join(h.oai.speech_inputs) == h.settings.fallback_line  # sent per sentence
    # the session survived: the next turn is answered
    requests = len(h.oai.chat_requests)
    await h.speak(question)
    await h.wait_quiet(1.5)
    assert len(h.oai.chat_requests) > requests and h.speaker.segments
    await h.session.aclose()
    assert metric("voice_agent_sessions_active", agent=AGENT) == active
    assert metric("voice_agent_sessions_total", agent=AGENT,
                  outcome="completed") == completed + 1
