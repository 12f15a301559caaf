"""Drain on SIGTERM (a rolling update): the worker takes no new job, its call goes on to the end,
and it exits 0 within DRAIN_TIMEOUT_SECONDS."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from testkit.fakes_runner import Fakes
from testkit.livekit_server import LiveKitServer
from testkit.polling import wait_for
from testkit.reporting import report, speech
from testkit.worker import Worker

# its own agent name: the session's long-lived workers on the same server must not take the jobs
AGENT_NAME = "drain-test"
DRAIN_TIMEOUT_S = 20
QUESTION = ["Are you still there?"]


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_sigterm_drains_then_exits_zero(
    lk_server: LiveKitServer, fakes: Fakes, start_worker: Callable[..., Worker],
    participant: Any, room_name: str,
) -> None:
    env = {"AGENT_NAME": AGENT_NAME, "DRAIN_TIMEOUT_SECONDS": str(DRAIN_TIMEOUT_S)}
    old = start_worker("uninterruptable", name="old", env=env)
    question = speech(QUESTION)

    async with participant(lk_server, f"{room_name}-1", "caller-1") as p1:
        await p1.dispatch(AGENT_NAME)
        assert old.find("received job request", room=f"{room_name}-1")
        # the replacement comes up while the call runs, as in a rolling update
        new = start_worker("uninterruptable", name="new", env=env, wait=False)
        await new.ready()
        report(f"drain: replacement worker ready in {new.ready_s:.2f}s")
        await p1.agent_audio.wait_for_speech(timeout=20)  # the call is live: the agent greets

        term_at = old.sigterm()
        await wait_for(lambda: old.find("draining worker"), 10, "the old worker to drain",
                       evidence=lambda: old.log_text()[-3000:])

        async with participant(lk_server, f"{room_name}-2", "caller-2") as p2:
            join2 = await p2.dispatch(AGENT_NAME)
            report(f"drain: dispatch during drain -> agent joined {join2.joined_s:.2f}s")
        assert new.find("received job request", room=f"{room_name}-2"), "new worker not used"
        assert not old.find("received job request", room=f"{room_name}-2"), (
            "the draining worker was offered a new job")

        # the old worker's call still works: finish the greeting, then one more exchange
        await p1.agent_audio.wait_for_quiet(1.0, timeout=30)
        fakes.deepgram("know", utterances=[question.script()])
        spoken = await p1.say(question)
        answer = await p1.agent_audio.wait_for_speech(after=spoken.end, timeout=15)
        await p1.agent_audio.wait_for_quiet(1.0, timeout=30)
        assert old.proc is not None and old.proc.poll() is None, "exited during its call"
        hangup_at = time.time()

    code = old.wait_exit(DRAIN_TIMEOUT_S + 5 - (time.time() - term_at))
    exited_at = time.time()
    report(f"drain: answered {answer.start - spoken.end:.2f}s after the question while "
           f"draining; exit {code} {exited_at - hangup_at:.2f}s after hang-up, "
           f"{exited_at - term_at:.2f}s after SIGTERM")
    assert code == 0, f"exit code {code} (None: still running)\n{old.log_text()[-3000:]}"
    timed_out = old.find("drain timed out")
    assert not timed_out, (
        f"the worker only exited when the drain timed out, {exited_at - hangup_at:.1f}s after "
        f"the call ended: its job did not end with the session "
        f"({[r['message'][:60] for r in old.find('closing agent session')]})")
    assert exited_at - term_at < DRAIN_TIMEOUT_S
    assert new.proc is not None and new.proc.poll() is None, "the new worker went down too"
