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


class _Deadline:
    def __init__(self, timeout: float, what: str, evidence: Callable[[], str]) -> None:
        self.at = time.monotonic() + timeout
        self.timeout, self.what, self.evidence = timeout, what, evidence

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise HarnessError(
                f"timed out after {self.timeout:.0f}s waiting for {self.what}\n{self.evidence()}")


def wait_until(
    cond: Callable[[], Any], timeout: float, what: str, *, interval: float = 0.1,
    evidence: Callable[[], str] = _none,
) -> Any:
    """Poll `cond` every `interval` seconds, blocking the thread."""
    deadline = _Deadline(timeout, what, evidence)
    while not (value := cond()):
        deadline.check()
        time.sleep(interval)
    return value


async def wait_for(
    cond: Callable[[], Any], timeout: float, what: str, *, interval: float = 0.05,
    evidence: Callable[[], str] = _none,
) -> Any:
    """`wait_until` for async code: polls without blocking the event loop."""
    deadline = _Deadline(timeout, what, evidence)
    while not (value := cond()):
        deadline.check()
        await asyncio.sleep(interval)
    return value
