"""Waiting for a condition: the one polling loop of the kit, in a blocking and an async form.

Both poll `cond` until it returns something truthy and return that value; past `timeout` they
raise `HarnessError` naming what was awaited, with `evidence()` (a log tail, a timeline) attached.
In async code use `wait_for`: it never blocks the event loop (WebRTC audio runs on it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class HarnessError(RuntimeError):
    """Something the harness needs did not happen in time; the message carries the evidence."""


def _none() -> str:
    return ""


class _Poll:
    """One poll of `cond` against a deadline; `block` and `wait` repeat it."""

    def __init__(self, cond: Callable[[], Any], timeout: float, what: str,
                 evidence: Callable[[], str]) -> None:
        self.cond, self.timeout, self.what, self.evidence = cond, timeout, what, evidence
        self.at = time.monotonic() + timeout
        self.value: Any = None

    def done(self) -> bool:
        self.value = self.cond()
        if self.value:
            return True
        if time.monotonic() > self.at:
            raise HarnessError(
                f"timed out after {self.timeout:.0f}s waiting for {self.what}\n{self.evidence()}")
        return False

    def block(self, interval: float) -> Any:
        while not self.done():
            time.sleep(interval)
        return self.value

    async def wait(self, interval: float) -> Any:
        while not self.done():
            await asyncio.sleep(interval)
        return self.value


def wait_until(cond: Callable[[], Any], timeout: float, what: str, *, interval: float = 0.1,
               evidence: Callable[[], str] = _none) -> Any:
    """Poll `cond` every `interval` seconds, blocking the thread."""
    return _Poll(cond, timeout, what, evidence).block(interval)


async def wait_for(cond: Callable[[], Any], timeout: float, what: str, *, interval: float = 0.05,
                   evidence: Callable[[], str] = _none) -> Any:
    """`wait_until` for async code: polls without blocking the event loop."""
    return await _Poll(cond, timeout, what, evidence).wait(interval)
