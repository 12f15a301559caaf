"""interrupter on a real livekit-server: a long monologue gets exactly one polite cut-in, the words
that overran it are kept but not answered again, and the next question gets its answer.

The caller tells the story with pauses drawn from 0.2-1.5 s (seeded), so the framework may commit
turns in them and start replies that the caller talks over; those count as `preempted` or
`barge_in`, never as a second cut-in.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from testkit.audio import merge_turns
from testkit.fakes_runner import Fakes
from testkit.livekit_server import LiveKitServer
from testkit.reporting import report, speech
from testkit.scenarios import MOUNTAIN_TRIP, said
from testkit.worker import Worker

QUESTION = ["What should I pack for my next trip?"]
CUT_IN = {"agent": "interrupter", "kind": "cut_in"}
SEED = 2
# after the monologue, the caller waits until the agent has been quiet this long: the words after
# a cut-in are kept but not answered until the caller has been silent 1.5 s (the overrun)
QUIET_S = 2.0


def _talked_over(w: Worker) -> float:
    return sum(w.metric("voice_agent_interruptions_total", agent="interrupter", kind=k) or 0.0
               for k in ("barge_in", "preempted"))


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_cuts_in_once_after_the_third_sentence(
    lk_server: LiveKitServer, fakes: Fakes, interrupter: Worker, participant: Any, room_name: str
) -> None:
    mono, question = said(random.Random(SEED), MOUNTAIN_TRIP), speech(QUESTION)
    fakes.deepgram("know", utterances=[u.script() for u in (*mono.vocabulary, question)])
    # every series exists from the worker's first scrape (dashboards and rate() see zeros)
    before = interrupter.metric("voice_agent_interruptions_total", **CUT_IN)
    assert before is not None, "no cut_in series in /metrics before the first session"
    talked_over_before = _talked_over(interrupter)

    async with participant(lk_server, room_name) as p:
        join = await p.dispatch("interrupter")
        assert join.agent_name == "interrupter"
        report(f"interrupter: dispatch -> agent joined {join.joined_s:.2f}s")
        since = time.time()
        spoken = await p.say(mono.speech)
        # long enough for a wrong second reply: endpointing + the agent's grace + LLM + TTS
        await asyncio.sleep(max(0.0, spoken.end + 5.0 - time.time()))
        await p.agent_audio.wait_for_quiet(QUIET_S, timeout=30)
        segments = p.agent_audio.segments_after(since)
        monologue_chats = fakes.openai_requests("chat", since)
        heard = [f["transcript"] for f in fakes.deepgram.state()["finals"] if f["transcript"]]

        asked = await p.say(question)
        answer = await p.agent_audio.wait_for_speech(after=asked.end, timeout=15)
        await p.agent_audio.wait_for_quiet(1.5, timeout=30)
        chats = fakes.openai_requests("chat", since)
        timeline = p.agent_audio.describe(since=spoken.start)
        stt = fakes.deepgram.state()

    s3_end, s5_start = spoken.sentence_end(2), spoken.sentence_start(4)
    decisions = interrupter.find("cutting in", room=room_name)
    talked_over = _talked_over(interrupter) - talked_over_before
    report(f"interrupter: {mono.describe()}; monologue {spoken.end - spoken.start:.2f}s, "
           f"sentence 3 ends {s3_end - spoken.start:.2f}s, sentence 5 starts "
           f"{s5_start - spoken.start:.2f}s; {len(monologue_chats) - 1} replies started in "
           f"pauses, {talked_over:g} talked over; agent audio {timeline}; STT "
           f"{stt['counts'].get('connections')} connection(s)")
    assert len(decisions) == 1, f"worker decided to cut in {len(decisions)} times: {decisions}"
    assert decisions[0].get("limit") == "sentences", decisions[0]
    decided = decisions[0]["_t"]
    cut_ins = merge_turns(segments, 1.0, decided)
    assert cut_ins, f"no agent audio after the cut-in decision: {timeline}"
    assert len(cut_ins) == 1, f"expected one cut-in and no second reply, agent audio: {timeline}"
    cut_in = cut_ins[0]
    latency = cut_in.start - s3_end
    report(f"interrupter: end-to-end cut-in latency (agent audio start - end of sentence 3) "
           f"{latency:.3f}s (worker decided at +{decided - s3_end:.3f}s); answer to the next "
           f"question {answer.start - asked.end:.2f}s")
    assert s3_end < cut_in.start < s5_start, (
        f"cut-in audio started at {cut_in.start - spoken.start:.2f}s, expected between the end "
        f"of sentence 3 ({s3_end - spoken.start:.2f}s) and the start of sentence 5 "
        f"({s5_start - spoken.start:.2f}s)")
    # one reply to the monologue that was heard out: the cut-in; any reply started in a pause
    # was talked over (and counted so), and nothing was answered after the caller stopped
    assert talked_over >= len(monologue_chats) - 1, (
        f"{len(monologue_chats)} LLM replies to the monologue, {talked_over:g} talked over: "
        f"{[c['messages'][-1] for c in monologue_chats]}")

    # the next turn works, and the history holds everything the STT delivered, answered once
    assert len(chats) == len(monologue_chats) + 1, [c["messages"][-1] for c in chats]
    assert 0.0 < answer.start - asked.end < 5.0, timeline
    history = chats[-1]["messages"]
    assert history[-1]["role"] == "user" and QUESTION[0] in str(history[-1]["content"])
    users = _words(" ".join(str(m["content"]) for m in history[:-1] if m["role"] == "user"))
    missing = [t for t in heard if _words(t) not in users]
    assert not missing, f"user words missing from the history: {missing}\nhistory: {history}"
    twice = [t for t in heard if users.count(_words(t)) > 1]
    assert not twice, f"user words twice in the history: {twice}\nhistory: {history}"
    assert any(m["role"] == "assistant" for m in history), history

    after = interrupter.metric("voice_agent_interruptions_total", **CUT_IN)
    assert after is not None and after - before == 1.0, (before, after)
    if before == 0.0:  # the first session of this worker: the exposition reads exactly 1
        assert ('voice_agent_interruptions_total{agent="interrupter",kind="cut_in"} 1.0'
                in interrupter.metrics_text())
    errors = [r for r in interrupter.errors() if r.get("room") == room_name]
    assert not errors, f"errors in the worker log: {errors}"
