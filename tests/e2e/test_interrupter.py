"""interrupter on a real livekit-server: a long monologue gets exactly one polite cut-in, the words
that overran it are kept but not answered again, and the next question gets its answer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from testkit.fakes_runner import Fakes
from testkit.livekit_server import LiveKitServer
from testkit.reporting import report, speech
from testkit.scenarios import MOUNTAIN_TRIP
from testkit.worker import Worker

MONOLOGUE = list(MOUNTAIN_TRIP)
QUESTION = ["What should I pack for my next trip?"]
CUT_IN = {"agent": "interrupter", "kind": "cut_in"}


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_cuts_in_once_after_the_third_sentence(
    lk_server: LiveKitServer, fakes: Fakes, interrupter: Worker, participant: Any, room_name: str
) -> None:
    utt, question = speech(MONOLOGUE), speech(QUESTION)
    # What the user says after the cut-in: while it plays, the user's audio is discarded for the
    # STT (protected speech), which ends the first STT stream; the words after it arrive on a new
    # stream as a new burst. Scripted for both shapes: one connection hearing three bursts, or a
    # second connection (the default script) hearing the overrun and then the question.
    overrun = speech(MONOLOGUE[4:])
    fakes.deepgram("script", utterances=[overrun.script(), question.script()])
    fakes.deepgram("script", mode="queue",
                   utterances=[utt.script(), overrun.script(), question.script()])
    # every series exists from the worker's first scrape (dashboards and rate() see zeros)
    before = interrupter.metric("voice_agent_interruptions_total", **CUT_IN)
    assert before is not None, "no cut_in series in /metrics before the first session"

    async with participant(lk_server, room_name) as p:
        join = await p.dispatch("interrupter")
        assert join.agent_name == "interrupter"
        report(f"interrupter: dispatch -> agent joined {join.joined_s:.2f}s")
        since = time.time()
        spoken = await p.say(utt)
        # long enough for a wrong second reply: endpointing + the agent's grace + LLM + TTS
        await asyncio.sleep(max(0.0, spoken.end + 5.0 - time.time()))
        await p.agent_audio.wait_for_quiet(2.0, timeout=30)
        turns = p.agent_audio.turns(gap_s=1.0, after=since)
        monologue_chats = fakes.openai_requests("chat", since)
        heard = [f["transcript"] for f in fakes.deepgram.state()["finals"] if f["transcript"]]

        asked = await p.say(question)
        answer = await p.agent_audio.wait_for_speech(after=asked.end, timeout=15)
        await p.agent_audio.wait_for_quiet(1.5, timeout=30)
        chats = fakes.openai_requests("chat", since)
        timeline = p.agent_audio.describe(since=spoken.start)
        stt = fakes.deepgram.state()

    s3_end, s5_start = spoken.sentence_end(2), spoken.sentence_start(4)
    report(f"interrupter: monologue {spoken.end - spoken.start:.2f}s, sentence 3 ends "
           f"{s3_end - spoken.start:.2f}s, sentence 5 starts {s5_start - spoken.start:.2f}s; "
           f"agent audio {timeline}; STT {stt['counts'].get('connections')} connection(s), "
           f"{stt['counts'].get('bursts')} burst(s)")
    decisions = interrupter.find("cutting in", room=room_name)
    assert turns, f"the agent never cut in (agent audio: {timeline})"
    assert len(turns) == 1, f"expected one cut-in and no second reply, agent audio: {timeline}"
    cut_in = turns[0]
    latency = cut_in.start - s3_end
    decided = decisions[0]["_t"] - s3_end if decisions else float("nan")
    report(f"interrupter: end-to-end cut-in latency (agent audio start - end of sentence 3) "
           f"{latency:.3f}s (worker decided at +{decided:.3f}s); answer to the next question "
           f"{answer.start - asked.end:.2f}s")
    assert s3_end < cut_in.start < s5_start, (
        f"cut-in audio started at {cut_in.start - spoken.start:.2f}s, expected between the end "
        f"of sentence 3 ({s3_end - spoken.start:.2f}s) and the start of sentence 5 "
        f"({s5_start - spoken.start:.2f}s)")
    assert len(monologue_chats) == 1, (
        f"expected one LLM reply to the monologue (the cut-in), got {len(monologue_chats)}: "
        f"{[c['messages'][-1] for c in monologue_chats]}")
    assert len(decisions) == 1, f"worker decided to cut in {len(decisions)} times: {decisions}"
    assert decisions[0].get("limit") == "sentences", decisions[0]

    # the next turn works, and the history holds everything the STT delivered, answered once
    assert len(chats) == 2, [c["messages"][-1] for c in chats]
    assert 0.0 < answer.start - asked.end < 5.0, timeline
    history = chats[1]["messages"]
    assert history[-1]["role"] == "user" and QUESTION[0] in str(history[-1]["content"])
    said = _words(" ".join(str(m["content"]) for m in history[:-1] if m["role"] == "user"))
    missing = [t for t in heard if _words(t) not in said]
    assert not missing, f"user words missing from the history: {missing}\nhistory: {history}"
    assert any(m["role"] == "assistant" for m in history), history

    after = interrupter.metric("voice_agent_interruptions_total", **CUT_IN)
    assert after is not None and after - before == 1.0, (before, after)
    if before == 0.0:  # the first session of this worker: the exposition reads exactly 1
        assert ('voice_agent_interruptions_total{agent="interrupter",kind="cut_in"} 1.0'
                in interrupter.metrics_text())
    errors = [r for r in interrupter.errors() if r.get("room") == room_name]
    assert not errors, f"errors in the worker log: {errors}"
