"""Dispatch when every worker is full: livekit-server offers a job only to a worker that reports
itself available (load under its LOAD_THRESHOLD, and under the server's `agents.target_load`);
with none, the dispatch is not served and not queued. What the caller sees: they are alone in the
room, with no agent and no audio, for as long as they stay; a free worker that registers later
does not pick the old dispatch up, only a new dispatch is served. (Hence the chart's advice to
scale before the workers fill up, and deploy/livekit/livekit.yaml's target_load = LOAD_THRESHOLD.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from testkit.livekit_server import LiveKitServer
from testkit.polling import HarnessError, wait_until
from testkit.reporting import report
from testkit.worker import Worker

AGENT_NAME = "e2e-full"
# Any CPU use at all is above this (the caller's own mic is sending audio): the worker is "full".
FULL_THRESHOLD = "0.001"
UNSERVED_S = 12.0  # well past the ~1 s a served dispatch takes here


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_a_caller_gets_no_agent_when_every_worker_is_full(
    lk_server: LiveKitServer, start_worker: Callable[..., Worker], participant: Any,
    room_name: str,
) -> None:
    full = start_worker("interrupter", name="full",
                        env={"AGENT_NAME": AGENT_NAME, "LOAD_THRESHOLD": FULL_THRESHOLD})
    async with participant(lk_server, room_name, "caller") as caller:
        wait_until(lambda: full.find("worker is at full capacity"), 30,
                   "the worker to report itself full", evidence=full.log_text)

        started = time.monotonic()
        with pytest.raises(HarnessError, match="to join room"):
            await caller.dispatch(AGENT_NAME, timeout=UNSERVED_S)
        # what the caller has: nobody else in the room, not a sample of agent audio
        assert caller.agent_participants() == []
        assert not caller.agent_tracks_at
        assert not full.find("received job request"), "the full worker was offered the job"
        async with lk_server.api() as lk:
            from livekit import api

            dispatches = await lk.agent_dispatch.list_dispatch(room_name)
            rooms = await lk.room.list_rooms(api.ListRoomsRequest(names=[room_name]))
        # the dispatch is on record, the room holds one participant: the caller
        assert AGENT_NAME in [d.agent_name for d in dispatches]
        assert [r.num_participants for r in rooms.rooms] == [1]
        # and livekit-server says why (the worker's answer to its affinity request: none)
        refused = [line for line in lk_server.log_text().splitlines()
                   if "no servers available" in line and f'"agentName": "{AGENT_NAME}"' in line]
        assert refused, "livekit-server logged no refused job request for the dispatch"
        unserved_s = time.monotonic() - started

        # a worker with room registers: the old dispatch stays unserved, a new one is served
        free = start_worker("interrupter", name="free", env={"AGENT_NAME": AGENT_NAME})
        await asyncio.sleep(5.0)
        assert caller.agent_participants() == [], "the dropped dispatch was served late"
        join = await caller.dispatch(AGENT_NAME, timeout=30)
        assert join.agent_name == AGENT_NAME
        assert free.find("received job request", room=room_name)
        assert not full.find("received job request")
    report(f"dispatch with every worker full: no agent and no audio for {unserved_s:.0f} s; "
           f"a new dispatch to a free worker joined in {join.joined_s:.2f} s")
