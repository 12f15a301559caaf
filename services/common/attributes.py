"""Agent state for the room's other participants, as attributes of the agent's participant.

The contract (names, meaning) is in the README ("What the agents publish"). Values are strings
(LiveKit attributes are string maps); no transcript text ever goes in. Updates are coalesced: at
most one `set_attributes` call is in flight, and the latest values win.
"""

from __future__ import annotations

import asyncio
import logging

from livekit.agents import get_job_context

logger = logging.getLogger("voice_agents.attributes")
CONNECT_WAIT_S = 30.0


class AttributePublisher:
    def __init__(self) -> None:
        self._published: dict[str, str] = {}
        self._pending: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    def update(self, **values: object) -> None:
        """Publish these attributes; None leaves one out (an empty value would delete it)."""
        for key, value in values.items():
            if value is None:
                continue
            text = str(value)
            if self._published.get(key) != text or key in self._pending:
                self._pending[key] = text
        if self._pending and self._task is None:
            self._task = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        ctx = get_job_context(required=False)
        try:
            if ctx is None:  # an in-process session (tests): no room to publish to
                self._pending.clear()
                return
            # the agent starts before the job has joined its room: publish once it has
            for _ in range(int(CONNECT_WAIT_S / 0.05)):
                if ctx.room.isconnected():
                    break
                await asyncio.sleep(0.05)
            while self._pending:
                batch, self._pending = self._pending, {}
                try:
                    await ctx.room.local_participant.set_attributes(batch)
                    self._published.update(batch)
                except Exception as e:  # a closing room: nobody left to tell
                    logger.warning("could not publish attributes", extra={"error": str(e)})
        finally:
            self._task = None
