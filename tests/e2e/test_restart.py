"""livekit-server restarts under a running worker: it registers again within a bounded time and
new dispatches are served."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from testkit.fakes_runner import Fakes
from testkit.livekit_server import LiveKitServer
from testkit.reporting import report, speech
from testkit.worker import Worker

# The worker retries at 0, 2, 4, 6... s (livekit-agents backoff): two seconds of outage must be
# over well within this.
REREGISTER_BOUND_S = 15.0
DOWN_S = 2.0
QUESTION = ["Hello, can you hear me?"]


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_worker_reregisters_after_server_restart(
    start_lk_server: Callable[[], LiveKitServer], fakes: Fakes,
    start_worker: Callable[..., Worker], participant: Any, room_name: str,
) -> None:
    server = start_lk_server()  # its own server: the others' workers are not disturbed
    worker = start_worker("interrupter", server=server, name="restart")
    question = speech(QUESTION)

    stopped_at = time.time()
    server.restart(down_s=DOWN_S)
    up_at = time.time()
    worker.wait_ready(timeout=REREGISTER_BOUND_S + 10, after=up_at)
    registered_at = worker.find("registered worker")[-1]["_t"]
    report(f"restart: server down {up_at - stopped_at:.2f}s; worker registered again "
           f"{registered_at - up_at:.2f}s after the server was back")
    assert len(worker.find("registered worker")) == 2
    assert registered_at - up_at < REREGISTER_BOUND_S
    assert worker.proc is not None and worker.proc.poll() is None

    async with participant(server, room_name) as p:
        join = await p.dispatch("interrupter")
        report(f"restart: dispatch -> agent joined {join.joined_s:.2f}s")
        assert join.agent_name == "interrupter"
        fakes.deepgram("know", utterances=[question.script()])
        spoken = await p.say(question)
        answer = await p.agent_audio.wait_for_speech(after=spoken.end, timeout=15)
        report(f"restart: answered {answer.start - spoken.end:.2f}s after the question")
