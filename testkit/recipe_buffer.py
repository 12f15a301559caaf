"""Baseline: the LiveKit "interrupt user" recipe's counting, behind SentenceBudget's interface.

Our own re-implementation of its behaviour, kept faithful on purpose (it is what we measure
against): every interim is appended to one buffer, finals are ignored, and sentences are counted
with a simple terminal-punctuation regex over the whole buffer on every event. When it fires it
clears the buffer, so unlike SentenceBudget it can fire again within the same turn.
"""

from __future__ import annotations

import re
import time

RECIPE_SENTENCE_RE = re.compile(r"[^.!?]+[.!?](?:\s|$)")


def recipe_count(text: str) -> int:
    """The recipe's sentence counter."""
    return len(RECIPE_SENTENCE_RE.findall(text))


class RecipeBuffer:
    def __init__(
        self,
        max_sentences: int | None = 3,
        max_words: int | None = None,
        max_seconds: float | None = None,
    ) -> None:
        # the recipe only has a sentence limit; words/seconds use its buffer for comparisons
        self._max_sentences = max_sentences or None
        self._max_words = max_words or None
        self._max_seconds = max_seconds or None
        self.reset()

    def reset(self) -> None:
        self._buffer = ""
        self._sentences = 0
        self._words = 0
        self._started_at: float | None = None
        self._tripped_by: str | None = None

    def feed(self, text: str, is_final: bool, now: float | None = None) -> bool:
        if now is None:
            now = time.monotonic()
        if text.strip() and self._started_at is None:
            self._started_at = now
        if is_final:
            return False  # the recipe only logs finals
        self._buffer = (self._buffer + " " + text).strip()
        self._sentences = recipe_count(self._buffer)
        self._words = len(self._buffer.split())
        tripped: str | None = None
        if self._max_sentences and self._sentences >= self._max_sentences:
            tripped = "sentences"
        elif self._max_words and self._words >= self._max_words:
            tripped = "words"
        elif (
            self._max_seconds
            and self._started_at is not None
            and now - self._started_at >= self._max_seconds
        ):
            tripped = "seconds"
        if tripped:
            self._tripped_by = tripped
            self._buffer = ""  # the recipe empties its buffer after cutting in
        return tripped is not None

    @property
    def sentences(self) -> int:
        return self._sentences

    @property
    def words(self) -> int:
        return self._words

    @property
    def text(self) -> str:
        return self._buffer

    @property
    def tripped_by(self) -> str | None:
        return self._tripped_by
