"""interrupter in a real AgentSession: cuts in after the third sentence, while the user talks,
once; keeps the history; does not answer the same monologue a second time."""

from __future__ import annotations

import pytest

from testkit.inproc import metric
from testkit.scenarios import WEEKEND
from testkit.speech import synthesize

pytestmark = pytest.mark.timeout(120)

MONOLOGUE = list(WEEKEND)
SHORT = ["Hello there.", "Can you help me plan a trip?"]



async def test_cuts_in_once_after_the_third_sentence_while_the_user_talks(start_session) -> None:
    monologue = synthesize(MONOLOGUE)
    h = await start_session("interrupter", script=[monologue])
    cut_ins_before = metric("voice_agent_interruptions_total", agent="interrupter", kind="cut_in")

    start, end = await h.speak(monologue)
    await h.wait_quiet(4.0)

    assert h.speaker.segments, "the agent never spoke"
    first = h.speaker.segments[0]
    third_ends = start + monologue.sentences[2].end
    fifth_starts = start + monologue.sentences[4].start
    latency = first.start - third_ends
    print(f"\ncut-in audio {latency:.3f}s after the third sentence ended (as spoken)")
    assert third_ends < first.start < fifth_starts
    assert first.start < end, "the cut-in must play while the user is still talking"
    assert not first.interrupted

    # exactly one cut-in: one LLM request (its reply), and nothing said after the user stopped
    assert h.agent.cut_ins == 1
    assert len(h.oai.chat_requests) == 1
    assert all(seg.start < end for seg in h.speaker.segments), "a second reply"
    # the preface, then the reply, both spoken in full
    spoken = [s["input"] for s in h.oai.bodies("speech")]
    assert spoken[0] == h.settings.interrupt_preface and len(spoken) >= 2
    assert not any(seg.interrupted for seg in h.speaker.segments)

    assert metric("voice_agent_interruptions_total", agent="interrupter",
                  kind="cut_in") == cut_ins_before + 1
    assert metric("voice_agent_cut_in_latency_seconds_count", agent="interrupter") >= 1


async def test_history_is_kept_and_the_monologue_is_not_answered_twice(start_session) -> None:
    short, monologue, answer = (synthesize(SHORT), synthesize(MONOLOGUE),
                                synthesize(["Sure, the lake was the best part."]))
    h = await start_session("interrupter", script=[short, monologue, answer])

    await h.speak(short)
    await h.wait_quiet(1.5)
    assert len(h.oai.chat_requests) == 1, "a short turn gets an ordinary reply"
    await h.speak(monologue)
    await h.wait_quiet(3.0)
    assert h.agent.cut_ins == 1
    assert len(h.oai.chat_requests) == 2, "the monologue got a second reply"

    # the cut-in's LLM request carries the earlier turn and what was heard of the monologue
    cut_in_messages = h.oai.chat_requests[1]["messages"]
    texts = " ".join(str(m.get("content")) for m in cut_in_messages)
    assert "Can you help me plan a trip?" in texts
    assert "weekend in the mountains" in texts and "icy" in texts and "old cabin" in texts

    # the user answers the agent's question: an ordinary turn and reply again
    await h.speak(answer)
    await h.wait_quiet(1.5)
    assert len(h.oai.chat_requests) == 3
    assert "lake was the best part" in str(h.oai.chat_requests[2]["messages"][-1])
    history = " ".join(h.chat_messages("user"))
    for needle in ("plan a trip", "weekend in the mountains", "lake was the best part"):
        assert needle in history
    assistant = h.chat_messages("assistant")
    assert h.settings.interrupt_preface in assistant
    assert len(assistant) >= 4  # reply to the short turn, preface, cut-in reply, last reply


async def test_short_turns_are_never_cut(start_session) -> None:
    short = synthesize(SHORT)
    h = await start_session("interrupter", script=[short])
    start, end = await h.speak(short)
    await h.wait_quiet(1.5)
    assert h.agent.cut_ins == 0
    assert len(h.speaker.segments) == 1 and h.speaker.segments[0].start > end


async def test_word_limit_cuts_in_mid_sentence(start_session) -> None:
    monologue = synthesize(MONOLOGUE[:3])
    h = await start_session("interrupter", script=[monologue],
                            INTERRUPT_MAX_SENTENCES="0", INTERRUPT_MAX_WORDS="14")
    start, end = await h.speak(monologue)
    await h.wait_quiet(3.0)
    assert h.agent.cut_ins == 1
    fourteenth = monologue.words[13]
    assert h.speaker.segments[0].start > start + fourteenth.end
    assert h.speaker.segments[0].start < start + monologue.sentences[2].start


async def test_recipe_would_double_count_the_same_stream(start_session) -> None:
    """The interim stream our agent saw, replayed into the recipe's buffer, trips too early."""
    from testkit.recipe_buffer import RecipeBuffer

    monologue = synthesize(MONOLOGUE)
    h = await start_session("interrupter", script=[monologue])
    await h.speak(monologue)
    await h.wait_quiet(2.0)
    transcripts = [ev for _, name, ev in h.events if name == "user_input_transcribed"]
    assert any(not t.is_final for t in transcripts) and any(t.is_final for t in transcripts)
    recipe = RecipeBuffer(max_sentences=3)
    tripped_at = next(i for i, t in enumerate(transcripts)
                      if recipe.feed(t.transcript, t.is_final))
    ours_tripped_at = _trip_index(transcripts)
    assert tripped_at < ours_tripped_at


def _trip_index(transcripts: list) -> int:  # noqa: ANN001
    from services.interrupter.policy import SentenceBudget

    budget = SentenceBudget(max_sentences=3)
    return next(i for i, t in enumerate(transcripts) if budget.feed(t.transcript, t.is_final))


async def test_one_cut_in_at_a_time_even_with_tiny_limits(start_session) -> None:
    monologue = synthesize(MONOLOGUE[:4])
    h = await start_session("interrupter", script=[monologue],
                            INTERRUPT_MAX_SENTENCES="1")
    start, end = await h.speak(monologue)
    await h.wait_quiet(3.0)
    # the first sentence trips it; sentences spoken while it cuts in don't start another
    assert h.agent.cut_ins == 1
    assert len(h.oai.chat_requests) == 1
