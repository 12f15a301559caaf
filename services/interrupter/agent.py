"""interrupter: counts the sentences of the user's live transcript and politely cuts in when the
user has talked for too long.

What is counted is the user's monologue: everything they said since the agent last had the
floor. People pause between sentences, and the framework commits a user turn (and starts a
reply) at every pause of about a second; a turn the agent did not get to answer audibly, and a
reply the user talked over, do not end the monologue. It ends when the agent has spoken to the
end of a reply, or for INTERRUPT_FLOOR_SECONDS, without being talked over.

When the budget trips (on an interim, mid-sentence if need be) the agent says a short preface and
then an LLM reply that acknowledges what it heard; neither can be interrupted, so both play while
the user is still talking. What was heard and not yet in the history goes in as the user's
message. While the cut-in plays the STT hears silence (the framework's default for protected
speech), so words said over it are not transcribed; what the user says after it, until they stop,
is kept in the history but not answered a second time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from livekit.agents import (
    Agent,
    AgentStateChangedEvent,
    JobContext,
    SpeechCreatedEvent,
    StopResponse,
    UserInputTranscribedEvent,
    UserStateChangedEvent,
    llm,
)
from livekit.agents.voice import SpeechHandle

from services.common.attributes import AttributePublisher
from services.common.session import AgentSpec, run_job
from services.common.session_metrics import SessionMetrics

from .policy import SentenceBudget
from .settings import Settings

logger = logging.getLogger("voice_agents.interrupter")

INSTRUCTIONS = (
    "You are a helpful voice assistant. Answer briefly, in plain spoken sentences. "
    "If the user talks for a long time, you politely interrupt to keep the conversation focused."
)
# Silence after which the rest of a monologue that was cut into is over (STT finals trail the
# audio by a few hundred ms, and people pause between sentences for up to about 1.5 s).
LATE_TRANSCRIPT_GRACE = 1.5


class InterrupterAgent(Agent):
    def __init__(self, settings: Settings, session_metrics: SessionMetrics | None = None):
        super().__init__(instructions=settings.agent_instructions or INSTRUCTIONS)
        self._settings = settings
        self._metrics = session_metrics
        self._budget = SentenceBudget(
            max_sentences=settings.interrupt_max_sentences or None,
            max_words=settings.interrupt_max_words,
            max_seconds=settings.interrupt_max_seconds,
        )
        self._floor_seconds: float = settings.interrupt_floor_seconds
        # how much of the budget's text the framework already put in the history (committed
        # turns of this monologue); the cut-in adds only the rest
        self._committed_chars = 0
        self._floor_timer: asyncio.TimerHandle | None = None
        self._agent_talked_over = False  # the user spoke while the agent was speaking
        self._audible: set[str] = set()  # ids of replies whose audio started
        self._cut_in: asyncio.Task[None] | None = None
        # After a cut-in, the rest of the user's monologue is not a new turn: it ends once the
        # user has been silent for LATE_TRANSCRIPT_GRACE (and the cut-in has finished).
        self._overrun_active = False
        self._overrun_until = 0.0
        # what happened, for tests and debugging: when each cut-in was decided (wall clock), and
        # how often the agent took the floor
        self.cut_in_times: list[float] = []
        self.monologues_ended = 0
        # the budget's state for the room (README, "What the agents publish")
        self._attributes = AttributePublisher()

    async def on_enter(self) -> None:
        self.session.on("user_input_transcribed", self._on_transcript)
        self.session.on("user_state_changed", self._on_user_state)
        self.session.on("agent_state_changed", self._on_agent_state)
        self.session.on("speech_created", self._on_speech_created)
        self._attributes.update(**{
            "interrupter.max_sentences": self._settings.interrupt_max_sentences or None,
            "interrupter.max_words": self._settings.interrupt_max_words,
            "interrupter.max_seconds": self._settings.interrupt_max_seconds,
            "interrupter.cut_ins": 0,
        })
        self._publish_budget()

    def _publish_budget(self) -> None:
        self._attributes.update(**{"interrupter.sentences": self._budget.sentences,
                                   "interrupter.words": self._budget.words})

    @property
    def cut_ins(self) -> int:
        return len(self.cut_in_times)

    async def on_exit(self) -> None:
        self.session.off("user_input_transcribed", self._on_transcript)
        self.session.off("user_state_changed", self._on_user_state)
        self.session.off("agent_state_changed", self._on_agent_state)
        self.session.off("speech_created", self._on_speech_created)
        self._cancel_floor_timer()

    # -- the monologue ---------------------------------------------------------------------------

    def _end_monologue(self, why: str) -> None:
        """The agent had the floor: what the user says next is a new monologue."""
        logger.debug("monologue ended", extra={"why": why})
        self.monologues_ended += 1
        self._budget.reset()
        self._committed_chars = 0
        self._publish_budget()

    def _on_speech_created(self, ev: SpeechCreatedEvent) -> None:
        ev.speech_handle.add_done_callback(self._on_speech_done)

    def _on_speech_done(self, handle: SpeechHandle) -> None:
        audible = handle.id in self._audible
        self._audible.discard(handle.id)
        logger.debug("speech done", extra={"speech_id": handle.id, "audible": audible,
                                           "interrupted": handle.interrupted,
                                           "user_state": self.session.user_state})
        # played to its end without being interrupted: the user heard the agent out. (Agent and
        # user states are not enough: on a busy machine the STT can interrupt a reply before
        # the VAD has flagged the user as speaking.)
        if audible and not handle.interrupted and self._cut_in is None:
            self._end_monologue("reply heard to the end")

    def _on_agent_state(self, ev: AgentStateChangedEvent) -> None:
        logger.debug("agent state", extra={"old": ev.old_state, "new": ev.new_state,
                                           "user_state": self.session.user_state})
        if ev.new_state == "speaking":
            if (speech := self.session.current_speech) is not None:
                self._audible.add(speech.id)
            self._agent_talked_over = self.session.user_state == "speaking"
            self._cancel_floor_timer()
            self._floor_timer = asyncio.get_running_loop().call_later(
                self._floor_seconds, self._floor_held, speech)
        elif ev.old_state == "speaking":
            self._cancel_floor_timer()

    def _floor_held(self, speech: SpeechHandle | None) -> None:
        self._floor_timer = None
        current = self.session.current_speech
        if (current is speech and current is not None and not current.interrupted
                and self.session.agent_state == "speaking" and not self._agent_talked_over
                and self._cut_in is None):
            self._end_monologue(f"agent spoke {self._floor_seconds:g} s unopposed")

    def _cancel_floor_timer(self) -> None:
        if self._floor_timer is not None:
            self._floor_timer.cancel()
            self._floor_timer = None

    # -- transcripts and turns -------------------------------------------------------------------

    def _in_overrun(self) -> bool:
        return (self._cut_in is not None or self._overrun_active
                or time.monotonic() < self._overrun_until)

    def _on_transcript(self, ev: UserInputTranscribedEvent) -> None:
        logger.debug("user transcript", extra={"final": ev.is_final, "text": ev.transcript})
        if self._in_overrun():
            return  # one cut-in at a time; the overrun is not counted towards a new one
        tripped = self._budget.feed(ev.transcript, ev.is_final)
        self._publish_budget()
        if tripped:
            self._start_cut_in()

    def _on_user_state(self, ev: UserStateChangedEvent) -> None:
        logger.debug("user state", extra={"old": ev.old_state, "new": ev.new_state,
                                          "agent_state": self.session.agent_state})
        if ev.new_state == "speaking":
            if self.session.agent_state == "speaking":
                self._agent_talked_over = True
            if self._cut_in is None and time.monotonic() < self._overrun_until:
                # still the monologue that was cut into: a pause, not the end of it
                self._overrun_active = True
        elif ev.old_state == "speaking" and self._overrun_active and self._cut_in is None:
            self._overrun_active = False
            self._overrun_until = time.monotonic() + LATE_TRANSCRIPT_GRACE

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        if self._in_overrun():
            # the cut-in already answered this monologue: keep the words, don't reply again
            ctx = self.chat_ctx.copy()
            ctx.items.append(new_message)
            await self.update_chat_ctx(ctx)
            raise StopResponse()
        # the framework adds this turn to the history and answers it; the monologue goes on
        # unless that answer is heard (see _on_agent_state)
        self._committed_chars = len(self._budget.text)

    # -- the cut-in ------------------------------------------------------------------------------

    def _start_cut_in(self) -> None:
        limit_reached_at = time.time()
        heard = self._budget.text[self._committed_chars:].strip()
        self.cut_in_times.append(limit_reached_at)
        logger.info("cutting in", extra={"limit": self._budget.tripped_by,
                                         "sentences": self._budget.sentences,
                                         "words": self._budget.words})
        if self._metrics is not None:
            self._metrics.record_cut_in_started(limit_reached_at)
        self._attributes.update(**{"interrupter.cut_ins": self.cut_ins,
                                   "interrupter.cut_in_by": self._budget.tripped_by})
        self._overrun_active = True
        # the final that triggered us is appended to the user turn after this callback returns,
        # so the turn is cleared on the next loop iteration, not now
        asyncio.get_running_loop().call_soon(self.session.clear_user_turn)
        self._cut_in = asyncio.create_task(self._cut_in_task(heard))

    async def _cut_in_task(self, heard: str) -> None:
        try:
            # a reply to an earlier pause of the monologue may still be pending or playing: the
            # cut-in replaces it
            self.session.interrupt()
            preface = self.session.say(self._settings.interrupt_preface,
                                       allow_interruptions=False)
            # user_input puts what was heard into the history as the user's message
            reply = self.session.generate_reply(
                **({"user_input": heard} if heard else {}),
                instructions=self._settings.interrupt_instructions,
                allow_interruptions=False,
                tool_choice="none",
            )
            await preface
            await reply
        except Exception:
            logger.exception("cut-in failed")
        finally:
            self._cut_in = None
            self._end_monologue("cut in")
            if self.session.user_state == "speaking":
                self._overrun_active = True  # ends when the user falls silent
            else:
                self._overrun_active = False
                self._overrun_until = time.monotonic() + LATE_TRANSCRIPT_GRACE


def _session_options(_settings: Settings) -> dict[str, Any]:
    return {
        # a reply started in a pause of the monologue is dropped when the user goes on: nothing
        # is gained by generating it before the turn is over
        "preemptive_generation": False,
        # no echo-cancellation warm-up by default: a user who talks over the first reply (in a
        # pause of their monologue) would otherwise go unheard by the STT for its first 3 s
        "aec_warmup_default": 0.0,
    }


SPEC = AgentSpec(make_agent=InterrupterAgent, session_options=_session_options)


async def entrypoint(ctx: JobContext) -> None:
    await run_job(SPEC, ctx)
