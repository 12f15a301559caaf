"""Turns AgentSession events into the Prometheus metrics of `metrics.py`.

One `SessionMetrics` per session. It only observes: the agents report their own decisions
(cut-ins) through `record_cut_in_started`.
"""

from __future__ import annotations

from livekit.agents import (
    AgentFalseInterruptionEvent,
    AgentSession,
    AgentStateChangedEvent,
    CloseEvent,
    ConversationItemAddedEvent,
    ErrorEvent,
    SpeechCreatedEvent,
    UserStateChangedEvent,
    llm,
    stt,
    tts,
)
from livekit.agents.voice import SpeechHandle

from . import metrics


class SessionMetrics:
    def __init__(self, session: AgentSession, agent: str) -> None:
        self._agent = agent
        self._user_stopped_at: float | None = None
        self._cut_in_started_at: float | None = None
        self._session = session
        self._talked_over: SpeechHandle | None = None  # what was playing when the user spoke
        self._audible: set[str] = set()  # ids of speech whose audio started
        # with preemptive generation on, the framework also creates (and discards) replies
        # ahead of the end of the turn; only those it scheduled were real replies
        self._preemptive = bool(session.options.preemptive_generation.get("enabled", True))
        self._closed = False
        metrics.init_labels(agent)
        metrics.SESSIONS_ACTIVE.labels(agent=agent).inc()

        session.on("user_state_changed", self._on_user_state)
        session.on("agent_state_changed", self._on_agent_state)
        session.on("speech_created", self._on_speech_created)
        session.on("agent_false_interruption", self._on_false_interruption)
        session.on("conversation_item_added", self._on_item)
        session.on("error", self._on_error)
        session.on("close", self._on_close)

    # -- reported by the agents ------------------------------------------------------------------

    def record_cut_in_started(self, limit_reached_at: float) -> None:
        """The interrupter decided to cut in; latency is measured to the agent's first audio."""
        metrics.INTERRUPTIONS.labels(agent=self._agent, kind="cut_in").inc()
        self._cut_in_started_at = limit_reached_at

    # -- session events --------------------------------------------------------------------------

    def _on_user_state(self, ev: UserStateChangedEvent) -> None:
        agent_speaking = self._session.agent_state == "speaking"
        if ev.new_state == "speaking":
            self._user_stopped_at = None
            speech = self._session.current_speech
            self._talked_over = speech if agent_speaking else None
            if speech is not None and not speech.done() and not speech.allow_interruptions:
                metrics.INTERRUPTIONS.labels(agent=self._agent, kind="suppressed").inc()
        elif ev.old_state == "speaking" and not agent_speaking:
            # a user who stops while the agent talks (over a cut-in, say) is not waiting for
            # a response
            self._user_stopped_at = ev.created_at

    def _on_agent_state(self, ev: AgentStateChangedEvent) -> None:
        if ev.new_state != "speaking":
            return
        if (speech := self._session.current_speech) is not None:
            self._audible.add(speech.id)
        if self._cut_in_started_at is not None:
            metrics.CUT_IN_LATENCY.labels(agent=self._agent).observe(
                max(0.0, ev.created_at - self._cut_in_started_at))
            self._cut_in_started_at = None
            self._user_stopped_at = None  # a cut-in is not a response to a finished turn
        elif self._user_stopped_at is not None:
            metrics.RESPONSE_LATENCY.labels(agent=self._agent).observe(
                max(0.0, ev.created_at - self._user_stopped_at))
            self._user_stopped_at = None

    def _on_speech_created(self, ev: SpeechCreatedEvent) -> None:
        handle = ev.speech_handle

        def done(h: SpeechHandle) -> None:
            audible = h.id in self._audible
            self._audible.discard(h.id)
            if not h.interrupted:
                return
            # barge_in: only speech the user was hearing when they started to talk
            if h is self._talked_over and audible:
                metrics.INTERRUPTIONS.labels(agent=self._agent, kind="barge_in").inc()
            elif (self._session.user_state == "speaking"
                  and (h.scheduled or not self._preemptive)):
                # a reply dropped while the user talked on, before they could hear it out
                metrics.INTERRUPTIONS.labels(agent=self._agent, kind="preempted").inc()

        handle.add_done_callback(done)

    def _on_false_interruption(self, ev: AgentFalseInterruptionEvent) -> None:
        if ev.resumed:
            metrics.INTERRUPTIONS.labels(agent=self._agent, kind="false").inc()

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        """Stage latencies, from the per-turn report the framework attaches to each message."""
        item = ev.item
        if not isinstance(item, llm.ChatMessage) or not item.metrics:
            return
        report, agent = item.metrics, self._agent
        for key, hist in (("end_of_turn_delay", metrics.END_OF_UTTERANCE_DELAY),
                          ("transcription_delay", metrics.STT_DELAY),
                          ("llm_node_ttft", metrics.LLM_TTFT),
                          ("tts_node_ttfb", metrics.TTS_TTFB)):
            value = report.get(key)
            if value is not None and value >= 0:
                hist.labels(agent=agent).observe(value)

    def _on_error(self, ev: ErrorEvent) -> None:
        component = _component_of(ev.source)
        if component is not None:
            metrics.PROVIDER_ERRORS.labels(agent=self._agent, component=component).inc()

    def _on_close(self, ev: CloseEvent) -> None:
        self.close(failed=ev.error is not None)

    def close(self, *, failed: bool = False) -> None:
        """Idempotent: called by the close event and by the job's shutdown hook."""
        if self._closed:
            return
        self._closed = True
        metrics.SESSIONS_ACTIVE.labels(agent=self._agent).dec()
        outcome = "failed" if failed else "completed"
        metrics.SESSIONS.labels(agent=self._agent, outcome=outcome).inc()


def _component_of(source: object) -> str | None:
    if isinstance(source, stt.STT):
        return "stt"
    if isinstance(source, llm.LLM):
        return "llm"
    if isinstance(source, tts.TTS):
        return "tts"
    return None
