"""The AgentSession both agents run: providers, VAD and turn-taking pinned from configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import Agent, AgentSession, APIConnectOptions, ErrorEvent, JobContext, vad
from livekit.agents.voice import room_io
from livekit.agents.voice.agent_session import SessionConnectOptions

from . import providers
from .session_metrics import SessionMetrics
from .settings import CommonSettings


@dataclass(frozen=True)
class AgentSpec:
    """What makes one agent (each agent module exports its `SPEC`; services/registry.py lists the
    modules): the agent, and the options of its session beyond what configuration sets."""

    make_agent: Callable[[CommonSettings, SessionMetrics | None], Agent]
    session_options: Callable[[CommonSettings], dict[str, Any]] = field(
        default=lambda _settings: {})


async def run_job(spec: AgentSpec, ctx: JobContext) -> None:
    """A job of the agent: its session on the job process's prewarmed VAD and providers."""
    settings: CommonSettings = ctx.proc.userdata["settings"]
    session = build_session(settings, ctx.proc.userdata["vad"],
                            components=ctx.proc.userdata["providers"],
                            **spec.session_options(settings))
    session_metrics = SessionMetrics(session, settings.service)
    await run_in_room(ctx, session, spec.make_agent(settings, session_metrics), session_metrics,
                      settings)


def connect_options(settings: CommonSettings) -> SessionConnectOptions:
    opts = APIConnectOptions(
        max_retry=settings.provider_max_retries,
        retry_interval=0.5,
        timeout=settings.provider_timeout_seconds,
    )
    return SessionConnectOptions(
        stt_conn_options=opts, llm_conn_options=opts, tts_conn_options=opts
    )


def turn_handling(settings: CommonSettings, *, discard_audio_if_uninterruptible: bool = True,
                  preemptive_generation: bool = True) -> dict[str, Any]:
    """Explicit turn detection and VAD-based interruption.

    Both are pinned: left unset, the framework picks modes by what is available, and with LiveKit
    Cloud credentials in dev mode it switches on cloud-only adaptive interruption.
    """
    return {
        "turn_detection": settings.turn_detection,
        "endpointing": {"mode": "fixed", "min_delay": settings.min_endpointing_delay},
        "interruption": {
            "mode": "vad",
            "discard_audio_if_uninterruptible": discard_audio_if_uninterruptible,
        },
        "preemptive_generation": {"enabled": preemptive_generation},
    }


def build_session(
    settings: CommonSettings,
    vad_model: vad.VAD,
    *,
    discard_audio_if_uninterruptible: bool = True,
    preemptive_generation: bool = True,
    components: providers.Providers | None = None,
    aec_warmup_default: float = 3.0,
    **overrides: Any,
) -> AgentSession:
    """The session both agents run: providers from configuration (or `components`, built ahead
    by the prewarm), the prewarmed VAD, pinned turn handling, provider timeouts and retries.

    `aec_warmup_default` applies when AEC_WARMUP_SECONDS is empty: for its first seconds of
    speech in a call the framework ignores the user (no interruption, silence for the STT).
    """
    components = components or providers.build(settings)
    warmup = settings.aec_warmup_seconds
    warmup = aec_warmup_default if warmup is None else warmup
    return AgentSession(
        stt=components.stt,
        llm=components.llm,
        tts=components.tts,
        vad=vad_model,
        turn_handling=turn_handling(  # type: ignore[arg-type]
            settings,
            discard_audio_if_uninterruptible=discard_audio_if_uninterruptible,
            preemptive_generation=preemptive_generation,
        ),
        conn_options=connect_options(settings),
        aec_warmup_duration=warmup or None,  # None: no warm-up
        **overrides,
    )


async def run_in_room(ctx: JobContext, session: AgentSession, agent: Agent,
                      session_metrics: SessionMetrics, settings: CommonSettings) -> None:
    """Start the session in the job's room; the job ends when the session does."""
    # Without this a job outlives its call (the caller hung up, the session closed) until the
    # server closes the room, and a draining worker waits for nothing.
    session.on("close", lambda _ev: ctx.shutdown(reason="session closed"))
    say_fallback_on_llm_failure(session, settings.fallback_line)

    async def closed() -> None:
        session_metrics.close()

    ctx.add_shutdown_callback(closed)
    await session.start(agent=agent, room=ctx.room, room_options=ROOM_OPTIONS)


# The caller's audio as the models take it: Silero runs at 16 kHz and the streaming STTs take
# 16 kHz (Deepgram's default; OpenAI's non-streaming STT any rate). The framework's default room
# input is 24 kHz, which the VAD stream and the STT stream then each resample to 16 kHz, frame by
# frame; at 16 kHz the SDK's one resampling from 48 kHz Opus is the only one.
INPUT_SAMPLE_RATE = 16000
ROOM_OPTIONS = room_io.RoomOptions(audio_input=room_io.AudioInputOptions(
    sample_rate=INPUT_SAMPLE_RATE))


def say_fallback_on_llm_failure(session: AgentSession, line: str) -> None:
    """When the LLM fails a turn for good (retries spent), say so instead of going silent.

    Speaking also resets the framework's count of consecutive failures, which would otherwise
    close the session - hanging up on the caller - after a few failed turns in a row.
    """

    def on_error(ev: ErrorEvent) -> None:
        error = ev.error
        if getattr(error, "type", None) == "llm_error" and not error.recoverable:
            session.say(line, add_to_chat_ctx=False)

    session.on("error", on_error)
