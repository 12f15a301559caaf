"""uninterruptable: finishes everything it says, even when the user talks over it.

It speaks first on entering, so the behaviour can be tried without saying anything. What the user
says during protected speech is, by configuration, either dropped (the STT hears silence; counted
as `suppressed`) or kept and answered once the agent has finished.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from livekit.agents import (
    Agent,
    AgentStateChangedEvent,
    ConversationItemAddedEvent,
    JobContext,
    UserInputTranscribedEvent,
    UserStateChangedEvent,
    llm,
)

from services.common.attributes import AttributePublisher
from services.common.session import AgentSpec, run_job

from .settings import Settings

logger = logging.getLogger("voice_agents.uninterruptable")

INSTRUCTIONS = (
    "You are a helpful assistant communicating through voice. You cannot be interrupted, so "
    "keep each answer to a few spoken sentences."
)
# After protected speech ends, how long a user turn that ended during it may still be picked up
# by the framework itself (its end-of-turn decision lags the user's silence) before we answer it.
SETTLE_SECONDS = 1.0


class UninterruptableAgent(Agent):
    def __init__(self, settings: Settings) -> None:
        super().__init__(
            instructions=settings.agent_instructions or INSTRUCTIONS,
            allow_interruptions=False,
        )
        self._greeting = settings.greeting_instructions
        self._keep = settings.protected_speech_user_audio == "keep"
        self._settle = settings.min_endpointing_delay + SETTLE_SECONDS
        # finals the framework has not (yet) put into the history as a user turn
        self._unanswered: list[str] = []
        self._answer_later: asyncio.Task[None] | None = None
        # times the user started speaking over protected speech, for the room (README, "What
        # the agents publish"); the metric of the same name is counted in session_metrics.py
        self._suppressed = 0
        self._attributes = AttributePublisher()

    async def on_enter(self) -> None:
        self.session.on("user_state_changed", self._on_user_state)
        self._attributes.update(**{"uninterruptable.suppressed": 0,
                                   "uninterruptable.user_audio": "keep" if self._keep
                                   else "discard"})
        if self._keep:
            self.session.on("user_input_transcribed", self._on_transcript)
            self.session.on("conversation_item_added", self._on_item)
            self.session.on("agent_state_changed", self._on_agent_state)
        self.session.generate_reply(user_input=self._greeting)

    async def on_exit(self) -> None:
        self.session.off("user_state_changed", self._on_user_state)
        if self._keep:
            self.session.off("user_input_transcribed", self._on_transcript)
            self.session.off("conversation_item_added", self._on_item)
            self.session.off("agent_state_changed", self._on_agent_state)

    def _on_user_state(self, ev: UserStateChangedEvent) -> None:
        speech = self.session.current_speech
        if (ev.new_state == "speaking" and speech is not None and not speech.done()
                and not speech.allow_interruptions):
            self._suppressed += 1
            self._attributes.update(**{"uninterruptable.suppressed": self._suppressed})

    # `keep` mode: the framework drops a user turn that ends while speech cannot be interrupted
    # ("skipping reply to user input"), without even adding it to the history. We hold on to
    # its finals and answer them once the protected speech is over.

    def _on_transcript(self, ev: UserInputTranscribedEvent) -> None:
        if ev.is_final and ev.transcript.strip():
            self._unanswered.append(ev.transcript.strip())

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        if isinstance(ev.item, llm.ChatMessage) and ev.item.role == "user":
            self._unanswered.clear()  # the framework (or we) took the turn

    def _on_agent_state(self, ev: AgentStateChangedEvent) -> None:
        pending = self._answer_later is not None and not self._answer_later.done()
        if ev.old_state == "speaking" and self._unanswered and not pending:
            self._answer_later = asyncio.create_task(self._answer_after_settling())

    async def _answer_after_settling(self) -> None:
        await asyncio.sleep(self._settle)
        session = self.session
        if (not self._unanswered or session.user_state == "speaking"
                or session.agent_state in ("thinking", "speaking")):
            return  # nothing left, or a turn in progress will carry these words
        text = " ".join(self._unanswered)
        self._unanswered.clear()
        logger.debug("answering speech heard during protected speech", extra={"text": text})
        session.generate_reply(user_input=text)


def _session_options(settings: Settings) -> dict[str, Any]:
    discard = settings.protected_speech_user_audio == "discard"
    return {"discard_audio_if_uninterruptible": discard}


SPEC = AgentSpec(make_agent=lambda settings, _metrics: UninterruptableAgent(settings),
                 session_options=_session_options)


async def entrypoint(ctx: JobContext) -> None:
    await run_job(SPEC, ctx)
