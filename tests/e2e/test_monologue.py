"""interrupter on a real livekit-server with natural pauses: a sweep of the pause between sentences.

A caller tells a story of seven sentences (drawn with a seed) with the same pause after each,
swept from 0.4 to 1.2 s, and LLM/TTS timings like real providers'. In the longer pauses the
framework commits a turn and starts a reply that the caller talks over; the cut-in must still
follow the third sentence, once, and nothing may be answered after the caller stops.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from testkit.fakes_runner import Fakes
from testkit.livekit_server import LiveKitServer
from testkit.reporting import report
from testkit.scenarios import monologue
from testkit.worker import Worker

TALKED_OVER = ("barge_in", "preempted")
SEED = 5


def _talked_over(w: Worker) -> float:
    return sum(w.metric("voice_agent_interruptions_total", agent="interrupter", kind=k) or 0.0
               for k in TALKED_OVER)


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("pause_s", [0.4, 0.7, 1.0, 1.2])
async def test_cut_in_follows_the_third_sentence_whatever_the_pauses(
    lk_server: LiveKitServer, fakes: Fakes, start_worker: Callable[..., Worker],
    participant: Any, room_name: str, pause_s: float,
) -> None:
    # a worker of its own that logs at DEBUG: the monologue's bookkeeping is the evidence
    # (its own agent name too: the suite's shared interrupter worker must not take the call)
    interrupter = start_worker("interrupter", env={"LOG_LEVEL": "DEBUG",
                                                   "AGENT_NAME": "interrupter-sweep"})
    mono = monologue(random.Random(SEED), sentences=7, pause_s=pause_s)
    fakes.openai("config", ttft_s=0.4, tts_ttfb_s=0.2)
    fakes.deepgram("know", utterances=[u.script() for u in mono.vocabulary])
    talked_over_before = _talked_over(interrupter)

    async with participant(lk_server, room_name) as p:
        await p.dispatch(interrupter.agent_name)
        spoken = await p.say(mono.speech)
        # long enough for a wrong second reply: endpointing + the agent's grace + LLM + TTS
        await asyncio.sleep(max(0.0, spoken.end + 5.0 - time.time()))
        await p.agent_audio.wait_for_quiet(2.0, timeout=30)
        timeline = p.agent_audio.describe(since=spoken.start)
        segments = p.agent_audio.segments_after(spoken.start)
    chats = fakes.openai_requests("chat", spoken.start)
    decisions = interrupter.find("cutting in", room=room_name)
    talked_over = _talked_over(interrupter) - talked_over_before

    assert len(decisions) == 1, f"{len(decisions)} cut-ins ({mono.describe()}): {timeline}"
    decided = decisions[0]["_t"]
    followed = sum(1 for i in range(len(mono.sentences)) if spoken.sentence_end(i) < decided)
    cut_in = next((s for s in segments if s.start >= decided), None)
    assert cut_in is not None, f"no agent audio after the cut-in decision: {timeline}"
    latency = cut_in.start - spoken.sentence_end(2)
    replies_in_pauses = sum(1 for s in segments if s.start < decided)
    report(f"monologue sweep: pause {pause_s:.1f} s: cut-in followed sentence {followed}, audio "
           f"{latency:.2f} s after the end of its voice (decided "
           f"{decided - spoken.sentence_end(2):+.2f} s); {len(chats) - 1} replies started in "
           f"pauses, {replies_in_pauses} of them audible, {talked_over:g} talked over")
    ended = [(round(r["_t"] - spoken.start, 2), r.get("why"))
             for r in interrupter.find("monologue ended", room=room_name)]
    assert followed == 3, (f"the cut-in followed sentence {followed}, not 3: {timeline}; "
                           f"monologue ended at {ended}")
    assert decisions[0].get("limit") == "sentences", decisions[0]
    assert cut_in.start < spoken.end, "the cut-in must play while the caller is still talking"
    after = [round(s.start - spoken.end, 2) for s in segments if s.start > spoken.end]
    assert not after, f"the agent spoke after the caller stopped: {after} ({timeline})"
    # every reply started before the cut-in (one LLM request each) was talked over
    assert talked_over == len(chats) - 1, (talked_over, len(chats), timeline)
