"""interrupter: counts the sentences of the user's live transcript and politely cuts in when the
user has talked for too long.

When the budget trips (on an interim, mid-sentence if need be) the agent says a short preface and
then an LLM reply that acknowledges what it heard; neither can be interrupted, so both play while
the user is still talking. What was heard goes into the conversation history as the user's
message. While the cut-in plays the STT hears silence (the framework's default for protected
speech), so words said over it are not transcribed; what the user says after it, until they stop,
is kept in the history but not answered a second time.
"""

from __future__ import annotations

import asyncio
import logging
import time

from livekit.agents import (
    Agent,
    JobContext,
    StopResponse,
    UserInputTranscribedEvent,
    UserStateChangedEvent,
    llm,
)

from services.common import config
from services.common.session import build_session, run_in_room
from services.common.session_metrics import SessionMetrics

from .policy import SentenceBudget

SERVICE = "interrupter"
logger = logging.getLogger("voice_agents.interrupter")

INSTRUCTIONS = (
    "You are a helpful voice assistant. Answer briefly, in plain spoken sentences. "
    "If the user talks for a long time, you politely interrupt to keep the conversation focused."
)
# Seconds after the user falls silent during which a late final transcript still belongs to the
# monologue that was cut into (STT finals trail the audio by a few hundred ms).
LATE_TRANSCRIPT_GRACE = 1.5


class InterrupterAgent(Agent):
    def __init__(self, settings: config.Settings, session_metrics: SessionMetrics | None = None):
        super().__init__(instructions=settings["AGENT_INSTRUCTIONS"] or INSTRUCTIONS)
        self._settings = settings
        self._metrics = session_metrics
        self._budget = SentenceBudget(
            max_sentences=settings["INTERRUPT_MAX_SENTENCES"] or None,
            max_words=settings["INTERRUPT_MAX_WORDS"],
            max_seconds=settings["INTERRUPT_MAX_SECONDS"],
        )
        self._cut_in: asyncio.Task[None] | None = None
        # After a cut-in, the rest of the user's monologue is not a new turn: it ends once the
        # user has been silent for LATE_TRANSCRIPT_GRACE (and the cut-in has finished).
        self._overrun_active = False
        self._overrun_until = 0.0
        self.cut_ins = 0

    async def on_enter(self) -> None:
        self.session.on("user_input_transcribed", self._on_transcript)
        self.session.on("user_state_changed", self._on_user_state)

    async def on_exit(self) -> None:
        self.session.off("user_input_transcribed", self._on_transcript)
        self.session.off("user_state_changed", self._on_user_state)

    def _in_overrun(self) -> bool:
        return (self._cut_in is not None or self._overrun_active
                or time.monotonic() < self._overrun_until)

    def _on_transcript(self, ev: UserInputTranscribedEvent) -> None:
        logger.debug("user transcript", extra={"final": ev.is_final, "text": ev.transcript})
        if self._in_overrun():
            return  # one cut-in at a time; the overrun is not counted towards a new one
        if self._budget.feed(ev.transcript, ev.is_final):
            self._start_cut_in()

    def _on_user_state(self, ev: UserStateChangedEvent) -> None:
        if ev.old_state == "speaking" and self._overrun_active and self._cut_in is None:
            self._overrun_active = False
            self._overrun_until = time.monotonic() + LATE_TRANSCRIPT_GRACE

    def _start_cut_in(self) -> None:
        limit_reached_at = time.time()
        heard = self._budget.text
        self.cut_ins += 1
        logger.info("cutting in", extra={"limit": self._budget.tripped_by,
                                         "sentences": self._budget.sentences,
                                         "words": self._budget.words})
        if self._metrics is not None:
            self._metrics.record_cut_in_started(limit_reached_at)
        self._overrun_active = True
        # the final that triggered us is appended to the user turn after this callback returns,
        # so the turn is cleared on the next loop iteration, not now
        asyncio.get_running_loop().call_soon(self.session.clear_user_turn)
        self._cut_in = asyncio.create_task(self._cut_in_task(heard))

    async def _cut_in_task(self, heard: str) -> None:
        try:
            preface = self.session.say(self._settings["INTERRUPT_PREFACE"],
                                       allow_interruptions=False)
            # user_input puts what was heard into the history as the user's message
            reply = self.session.generate_reply(
                user_input=heard,
                instructions=self._settings["INTERRUPT_INSTRUCTIONS"],
                allow_interruptions=False,
                tool_choice="none",
            )
            await preface
            await reply
        except Exception:
            logger.exception("cut-in failed")
        finally:
            self._cut_in = None
            self._budget.reset()
            if self.session.user_state == "speaking":
                self._overrun_active = True  # ends when the user falls silent
            else:
                self._overrun_active = False
                self._overrun_until = time.monotonic() + LATE_TRANSCRIPT_GRACE

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        self._budget.reset()
        if self._in_overrun():
            # the cut-in already answered this monologue: keep the words, don't reply again
            ctx = self.chat_ctx.copy()
            ctx.items.append(new_message)
            await self.update_chat_ctx(ctx)
            raise StopResponse()


async def entrypoint(ctx: JobContext) -> None:
    settings: config.Settings = ctx.proc.userdata["settings"]
    session = build_session(settings, ctx.proc.userdata["vad"], preemptive_generation=False,
                            components=ctx.proc.userdata["providers"])
    session_metrics = SessionMetrics(session, SERVICE)
    await run_in_room(ctx, session, InterrupterAgent(settings, session_metrics), session_metrics,
                      settings)
