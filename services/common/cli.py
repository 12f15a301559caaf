"""`python -m services <agent> <command>`: validate the configuration, then hand over to the
LiveKit CLI (start, dev, console, connect, download-files).

Validation runs before livekit is even imported, so a bad deployment fails within a second with
exit code 2 and one line naming the variable; the stock `start` would exit 0 without LIVEKIT_URL,
which an orchestrator reads as success.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from services import registry

from . import config

if TYPE_CHECKING:
    from livekit.agents import JobContext

EXIT_CONFIG_ERROR = 2
EXIT_LIVEKIT_UNREACHABLE = 1
_LIVEKIT_LOG_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "ERROR"}


def _command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(service: str, argv: list[str],
         entrypoint: Callable[[JobContext], Awaitable[None]] | None = None) -> None:
    """Run `service` (a name of services.registry.AGENTS) with the LiveKit CLI's `argv`;
    `entrypoint` replaces the agent's job entrypoint (the benchmarks' bare framework job)."""
    if service not in registry.AGENTS:
        print(f"unknown agent {service!r}: one of {', '.join(registry.AGENTS)}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)
    config.load_dotenv_file()
    command = _command(argv)
    try:
        settings = config.load(service, command=command or "")
    except config.ConfigError as e:
        print(f"{service}: configuration error: {e}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)

    # livekit-agents reads NUM_CPUS itself, and warns twice a second about an empty one (as
    # .env.example leaves it): empty means "not set"
    if not os.environ.get("NUM_CPUS", "unset").strip():
        del os.environ["NUM_CPUS"]

    # the LiveKit CLI reads its log level from here; transcripts are only logged at DEBUG
    os.environ.setdefault("LIVEKIT_LOG_LEVEL", _LIVEKIT_LOG_LEVELS[settings.log_level])

    from livekit.agents import cli

    from .worker import build_server

    server = build_server(settings, entrypoint or registry.module(service).entrypoint)
    sys.argv = [sys.argv[0], *argv]  # what the LiveKit CLI parses: without the agent name
    try:
        cli.run_app(server)
    except SystemExit as e:
        if e.code not in (None, 0) or not _gave_up(server):
            raise
    # After LIVEKIT_MAX_RETRY failed connections livekit-agents logs "worker failed", drains and
    # ends with exit code 0, which an orchestrator reads as a clean stop: say it failed.
    if _gave_up(server):
        sys.exit(EXIT_LIVEKIT_UNREACHABLE)


def _gave_up(server: object) -> bool:
    # livekit-agents 1.8 keeps this only as a private flag (its health endpoint answers 503 on it)
    return bool(getattr(server, "_connection_failed", False))
