"""uninterruptable: finishes everything it says, even when the user talks over it.

It speaks first on entering, so the behaviour can be tried without saying anything. What the user
says during protected speech is, by configuration, either dropped (the STT hears silence; counted
as `suppressed`) or kept and answered once the agent has finished.
"""

from __future__ import annotations

import logging

from livekit.agents import Agent, JobContext

from services.common import config
from services.common.session import build_session
from services.common.session_metrics import SessionMetrics

SERVICE = "uninterruptable"
logger = logging.getLogger("voice_agents.uninterruptable")

INSTRUCTIONS = (
    "You are a helpful assistant communicating through voice. You cannot be interrupted, so "
    "keep each answer to a few spoken sentences."
)


class UninterruptableAgent(Agent):
    def __init__(self, settings: config.Settings) -> None:
        super().__init__(
            instructions=settings["AGENT_INSTRUCTIONS"] or INSTRUCTIONS,
            allow_interruptions=False,
        )
        self._greeting = settings["GREETING_INSTRUCTIONS"]

    async def on_enter(self) -> None:
        self.session.generate_reply(user_input=self._greeting)


async def entrypoint(ctx: JobContext) -> None:
    settings = config.load(SERVICE)
    session = build_session(
        settings,
        ctx.proc.userdata["vad"],
        discard_audio_if_uninterruptible=settings["PROTECTED_SPEECH_USER_AUDIO"] == "discard",
    )
    session_metrics = SessionMetrics(session, SERVICE)
    ctx.add_shutdown_callback(lambda: _close(session_metrics))
    await session.start(agent=UninterruptableAgent(settings), room=ctx.room)


async def _close(session_metrics: SessionMetrics) -> None:
    session_metrics.close()
