"""What a suite reports and how it fails for a missing tool: figures for the run log and the
terminal summary, timings, espeak-ng speech that fails (never skips) with the install hint."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from testkit.processes import SETUP_HINT


def speech(sentences: Sequence[str], **kw: Any) -> Any:
    """espeak-ng speech (cached) as a `testkit.speech.Utterance` at 48 kHz."""
    import pytest

    from testkit import speech as sp

    try:
        return sp.synthesize(list(sentences), **kw)
    except sp.EspeakMissingError as e:
        pytest.fail(f"{e} (or {SETUP_HINT})", pytrace=False)


@contextlib.contextmanager
def timed(label: str, sink: dict[str, float]) -> Iterator[None]:
    t = time.monotonic()
    try:
        yield
    finally:
        sink[label] = round(time.monotonic() - t, 3)


REPORTED: list[str] = []


def report(line: str) -> None:
    """A figure or fact for the run log: printed (seen with -s and in a failure's captured
    output) and repeated in the terminal summary."""
    REPORTED.append(line)
    print(f"[e2e] {line}", flush=True)
