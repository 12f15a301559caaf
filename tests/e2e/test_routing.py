"""Both workers on one livekit-server: explicit dispatch by agent name routes each room to the
agent it asked for, never the other."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from testkit.livekit_server import LiveKitServer
from testkit.reporting import report
from testkit.worker import AGENTS, Worker


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_each_room_gets_the_agent_it_asked_for(
    lk_server: LiveKitServer, interrupter: Worker, uninterruptable: Worker, participant: Any,
    room_name: str,
) -> None:
    workers = {"interrupter": interrupter, "uninterruptable": uninterruptable}
    for agent, w in workers.items():
        assert w.info().get("agent_name") == agent, w.info()  # the worker's own /worker view

    rooms = {agent: f"{room_name}-{agent}" for agent in AGENTS}
    async with (participant(lk_server, rooms["interrupter"], "user-a") as pa,
                participant(lk_server, rooms["uninterruptable"], "user-b") as pb):
        users = {"interrupter": pa, "uninterruptable": pb}
        # dispatch both at once: the server must not mix them up under concurrency either
        joins = dict(zip(AGENTS, await asyncio.gather(
            *(users[a].dispatch(a) for a in AGENTS)), strict=True))
        await asyncio.sleep(2.0)  # time for a wrong second agent to show up
        present = {a: [(q.identity, q.attributes.get("lk.agent.name"))
                       for q in users[a].agent_participants()] for a in AGENTS}

    for agent in AGENTS:
        report(f"routing: {agent} dispatch -> agent joined {joins[agent].joined_s:.2f}s")
        assert joins[agent].agent_name == agent, joins[agent]
        assert present[agent] == [(joins[agent].identity, agent)], present
        other = next(a for a in AGENTS if a != agent)
        served = {r["room"] for r in workers[agent].find("received job request")}
        assert rooms[agent] in served, f"{agent} worker never got {rooms[agent]}: {served}"
        assert rooms[other] not in served, f"{agent} worker was offered {other}'s room"
        # the harness passes every default, NUM_CPUS="" included: the framework must not see it
        assert "failed to parse NUM_CPUS" not in workers[agent].log_text()
