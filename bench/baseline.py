"""The framework baseline every session benchmark compares against: a bare AgentSession with the
options of services.common.session.build_session and a plain Agent, nothing of ours around it.

Also a job entrypoint for a worker whose jobs run that baseline (the capacity benchmark starts it
next to the real interrupter worker):

    python -c "from bench.baseline import main; main()" start

Kept light on purpose (no test helpers imported): job processes import this module, and their
memory is what the capacity benchmark measures.
"""

from __future__ import annotations

import sys
from typing import Any

from livekit.agents import Agent, AgentSession, JobContext, vad

from services.common import providers
from services.common.session import connect_options, turn_handling
from services.common.settings import CommonSettings
from services.interrupter.agent import INSTRUCTIONS

BARE_AGENT_NAME = "bench-bare"


def framework_session(
    settings: CommonSettings,
    vad_model: vad.VAD,
    *,
    discard_audio_if_uninterruptible: bool = True,
    preemptive_generation: bool = True,
    user_turn_limit: dict[str, Any] | None = None,
    **overrides: Any,
) -> AgentSession:
    """build_session's options on a bare AgentSession, optionally with the framework's own user
    turn limit. `same_options()` checks that the two do not drift apart."""
    handling = turn_handling(settings,
                             discard_audio_if_uninterruptible=discard_audio_if_uninterruptible,
                             preemptive_generation=preemptive_generation)
    if user_turn_limit is not None:
        handling["user_turn_limit"] = user_turn_limit
    return AgentSession(
        stt=providers.build_stt(settings),
        llm=providers.build_llm(settings),
        tts=providers.build_tts(settings),
        vad=vad_model,
        turn_handling=handling,  # type: ignore[arg-type]
        conn_options=connect_options(settings),
        **overrides,
    )


def same_options(ours: AgentSession, bare: AgentSession) -> bool:
    """The baseline differs from our session only where intended (the user turn limit)."""
    a = {k: v for k, v in ours.options.turn_handling.items() if k != "user_turn_limit"}
    b = {k: v for k, v in bare.options.turn_handling.items() if k != "user_turn_limit"}
    return repr(a) == repr(b) and ours.conn_options == bare.conn_options


def plain_agent(*_: Any) -> Agent:
    """The framework's Agent as it comes (default on_user_turn_exceeded included)."""
    return Agent(instructions=INSTRUCTIONS)


async def entrypoint(ctx: JobContext) -> None:
    """A job like the interrupter's (same settings and prewarmed VAD), minus our wiring."""
    settings: CommonSettings = ctx.proc.userdata["settings"]
    session = framework_session(settings, ctx.proc.userdata["vad"], preemptive_generation=False)
    await session.start(agent=plain_agent(), room=ctx.room)


def main() -> None:
    """The interrupter's CLI (config validation, build_server) with the bare job entrypoint."""
    from services.common.cli import main as cli_main

    cli_main("interrupter", sys.argv[1:], entrypoint=entrypoint)
