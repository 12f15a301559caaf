"""Component tests: in-process sessions (see testkit/inproc.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from livekit.plugins import silero

from testkit.inproc import Harness, SessionFactory, metric

__all__ = ["Harness", "metric"]


@pytest.fixture(scope="session")
def vad() -> silero.VAD:
    return silero.VAD.load()


@pytest.fixture
async def start_session(vad: silero.VAD) -> AsyncIterator[Callable[..., Any]]:
    """`await start_session(service, script=[...], replies=[...], **env)` -> Harness (the agent
    and its session as services.registry declares them)."""
    async with SessionFactory(vad) as start:
        yield start
