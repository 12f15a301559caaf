"""interrupter with natural speech: a monologue with pauses between sentences is one monologue.

Each scenario is drawn with a seed: 7-12 sentences of 4-25 words, pauses of 0.2-1.5 s, and LLM/TTS
timings like real providers' (first token 0.4 s, first audio byte 0.2 s), so the framework commits
turns in the longer pauses and starts replies that the user then talks over. Whatever happened in
the pauses, the cut-in follows the limit's sentence, once, and nothing is answered twice.
"""

from __future__ import annotations

import random

import pytest

from testkit.inproc import Harness, metric
from testkit.scenarios import Monologue, monologue

pytestmark = pytest.mark.timeout(240)
AGENT = "interrupter"
# realistic provider timings (the fakes default to near zero)
LLM_TTFT_S = 0.4
TTS_TTFB_S = 0.2
# STT interim lag + TTS first byte + scheduling on a busy 2-core machine; measured 0.3-0.7 s
MAX_CUT_IN_LATENCY_S = 2.0



def talked_over() -> float:
    return sum(metric("voice_agent_interruptions_total", agent=AGENT, kind=k)
               for k in ("barge_in", "preempted"))


async def _run(start_session, mono: Monologue, **env: str) -> tuple[Harness, float, float]:  # noqa: ANN001
    h = await start_session(AGENT, script=list(mono.vocabulary), **env)
    h.oai.config.ttft_s = LLM_TTFT_S
    h.oai.config.tts_ttfb_s = TTS_TTFB_S
    start, end = await h.speak(mono.speech)
    await h.wait_quiet(3.0)
    return h, start, end


def timeline(h: Harness, start: float) -> str:
    """What the session saw, relative to the start of the speech: the evidence on a failure."""
    lines = []
    for t, name, ev in h.events:
        if name == "user_input_transcribed":
            what = f"{'final' if ev.is_final else 'interim'} {ev.transcript!r}"
        else:
            what = f"{name.split('_')[0]} {ev.old_state} -> {ev.new_state}"
        lines.append(f"{t - start:7.2f} {what}")
    lines += [f"{t - start:7.2f} CUT IN" for t in h.agent.cut_in_times]
    lines += [f"{s.start - start:7.2f} agent audio (interrupted={s.interrupted})"
              for s in h.speaker.segments]
    return "\n".join(sorted(lines, key=lambda line: float(line.split()[0])))


def _check_one_cut_in(h: Harness, start: float, end: float) -> float:
    """One cut-in, spoken in full while the user talks; nothing said after the user stopped.
    Returns the wall-clock time of the cut-in's first audio."""
    assert h.agent.cut_ins == 1, f"{h.agent.cut_ins} cut-ins\n{timeline(h, start)}"
    decided = h.agent.cut_in_times[0]
    preface = next(s for s in h.speaker.segments if s.start >= decided)
    assert not preface.interrupted
    assert preface.start < end, "the cut-in must play while the user is still talking"
    late = [round(s.start - end, 2) for s in h.speaker.segments if s.start > end]
    assert not late, f"the agent spoke again after the monologue ended: {late}"
    return preface.start


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_cut_in_follows_the_limits_sentence_once(start_session, seed: int) -> None:
    mono = monologue(random.Random(seed))
    before = talked_over()
    h, start, end = await _run(start_session, mono)

    audio = _check_one_cut_in(h, start, end)
    third_ends = start + mono.voice_end(2)
    fourth_ends = start + mono.voice_end(3)
    replies_before = sum(1 for r in h.oai.requests
                         if r["endpoint"] == "chat" and r["time"] < h.agent.cut_in_times[0])
    print(f"\n{mono.describe()}\ncut-in decided {h.agent.cut_in_times[0] - third_ends:+.2f} s, "
          f"audio {audio - third_ends:+.2f} s after the voice of sentence 3 ended; replies "
          f"started in pauses before it: {replies_before}, talked over: "
          f"{talked_over() - before:g}")
    assert third_ends < h.agent.cut_in_times[0] < fourth_ends, (
        f"not the limit's sentence: {mono.describe()}\n{timeline(h, start)}")
    assert audio - third_ends < MAX_CUT_IN_LATENCY_S
    # every reply the agent started in a pause was talked over (or replaced by the cut-in)
    assert talked_over() - before == replies_before
    # the history holds the whole monologue up to the cut-in, once
    history = " ".join(h.chat_messages("user"))
    for sentence in mono.sentences[:3]:
        assert history.count(sentence.text) == 1, sentence.text


async def test_word_limit_counts_across_pauses(start_session) -> None:
    mono = monologue(random.Random(11), sentences=8)
    limit = sum(len(s.words) for s in mono.sentences[:3]) + 2  # two words into sentence 4
    h, start, end = await _run(start_session, mono, INTERRUPT_MAX_SENTENCES="0",
                               INTERRUPT_MAX_WORDS=str(limit))
    audio = _check_one_cut_in(h, start, end)
    word = mono.speech.words[limit - 1]
    print(f"\n{mono.describe()}\nword limit {limit}: audio {audio - start - word.end:+.2f} s after "
          f"word {limit} ended")
    # espeak word timings are approximate (±0.15 s): the sentence before is exact
    assert start + mono.voice_end(2) < h.agent.cut_in_times[0] < start + mono.voice_end(4)
    assert audio - (start + word.end) < MAX_CUT_IN_LATENCY_S


async def test_seconds_limit_counts_across_pauses(start_session) -> None:
    mono = monologue(random.Random(12), sentences=8)
    limit = 9.0
    h, start, end = await _run(start_session, mono, INTERRUPT_MAX_SENTENCES="0",
                               INTERRUPT_MAX_SECONDS=str(limit))
    audio = _check_one_cut_in(h, start, end)
    print(f"\n{mono.describe()}\nseconds limit {limit:g}: audio {audio - start:.2f} s into it")
    # counted from the first transcript, which trails the voice by the STT's delay
    assert start + limit < h.agent.cut_in_times[0] < start + limit + MAX_CUT_IN_LATENCY_S + 1.5


async def test_a_reply_heard_to_the_end_starts_a_new_monologue(start_session) -> None:
    """Two short monologues with a real exchange between them: the count starts again."""
    rng = random.Random(21)
    first = monologue(rng, sentences=2, pause_s=0.6)
    second = monologue(rng, sentences=2, pause_s=0.6)
    h = await start_session(AGENT,
                            script=[*first.vocabulary, *second.vocabulary])
    await h.speak(first.speech)
    await h.wait_quiet(1.5)  # the agent answers and is heard to the end
    assert h.agent.monologues_ended >= 1
    await h.speak(second.speech)
    await h.wait_quiet(1.5)
    # 4 sentences in all, never 3 in one monologue
    assert h.agent.cut_ins == 0
    assert len(h.speaker.segments) == 2 and not any(s.interrupted for s in h.speaker.segments)
