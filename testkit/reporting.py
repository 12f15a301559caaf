"""What a suite reports and how it fails for a missing tool: figures for the run log and the
terminal summary, espeak-ng speech that fails (never skips) with the install hint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from testkit.processes import SETUP_HINT


def speech(sentences: Sequence[str], **kw: Any) -> Any:
    """espeak-ng speech (cached) as a `testkit.utterance.Utterance` at 48 kHz."""
    import pytest

    from testkit import speech as sp

    try:
        return sp.synthesize(list(sentences), **kw)
    except sp.EspeakMissingError as e:
        pytest.fail(f"{e} (or {SETUP_HINT})", pytrace=False)


class Figures:
    """Figures and facts for a suite's run log: each printed at once (seen with -s and in a
    failure's captured output) and repeated in the terminal summary (`summarise`)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        print(f"[{self.tag}] {line}", flush=True)

    def summarise(self, terminalreporter: Any, title: str) -> None:
        """For a conftest's `pytest_terminal_summary`."""
        if self.lines:
            terminalreporter.section(title)
            for line in self.lines:
                terminalreporter.write_line(line)


report = Figures("e2e")  # the end-to-end suite's (workers, bench's capacity part)
