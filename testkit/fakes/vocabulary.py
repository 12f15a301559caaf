"""What a test STT can recognise: the sentences a scenario may say, with words and levels.

`Vocabulary.add` takes a testkit `Utterance` or its `.script()` dict (also as JSON from another
process). Each sentence becomes one `Entry`: its exact duration (trimmed audio), its words with
espeak's approximate timings (see testkit/speech.py) and its level envelope: 10 ms windows
at four 2.5 ms phases from the script's "levels" (received windows fall anywhere on the
sentence), or one phase cut from an older script's whole "envelope".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

WINDOW_S = 0.01
FLOOR_DB = -60.0  # levels are clipped here: zeros, dither and Opus noise all look alike


@dataclass(frozen=True)
class KnownWord:
    text: str  # punctuated, as spoken in the scenario ("Hello,")
    word: str  # normalised, as Deepgram's "word" ("hello")
    start: float  # seconds from the sentence start
    end: float


@dataclass
class View:
    """A sentence's levels on one phase of the 10 ms window grid."""

    env: np.ndarray  # dBFS per window, clipped to FLOOR_DB
    t0: float  # sentence time where window 0 starts


@dataclass
class Entry:
    """One known sentence."""

    text: str
    words: list[KnownWord]
    views: list[View]  # received windows fall anywhere: one view per 2.5 ms phase
    duration: float  # exact (trimmed audio), unlike inner word ends


def normalise(text: str) -> str:
    return re.sub(r"[^\w'$%.-]|(?<!\d)\.|\.(?!\d)", "", text.lower()) or text.lower()


class Vocabulary:
    """The sentences the recogniser can hear; `add` takes what the scenario may say."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, utterance: Any) -> list[Entry]:
        """A `testkit.utterance.Utterance`, its `.script()` dict, or such a dict from JSON."""
        data = utterance.script() if hasattr(utterance, "script") else utterance
        whole = data.get("envelope")
        added = []
        for s in data["sentences"]:
            views = _views(s, whole)
            if not views or not s["words"]:
                raise ValueError(f"sentence {s.get('text')!r} has no envelope or no words")
            t0 = float(s["start"])
            words = [
                KnownWord(w["text"], normalise(w["text"]), w["start"] - t0, w["end"] - t0)
                for w in s["words"]
            ]
            entry = Entry(s["text"], words, views, float(s["end"]) - t0)
            if not any(_same(entry, e) for e in self.entries):  # scenarios repeat sentences
                self.entries.append(entry)
                added.append(entry)
        return added

    def clear(self) -> None:
        self.entries.clear()


def _same(a: Entry, b: Entry) -> bool:
    """The same sentence from the same synthesis (resampling edges differ by a few 0.1 dB)."""
    x, y = a.views[0].env, b.views[0].env
    return a.text == b.text and len(x) == len(y) and bool(np.allclose(x, y, atol=1.0))


def _views(s: dict[str, Any], whole: list[float] | None) -> list[View]:
    def clip(x: Any) -> np.ndarray:
        return np.clip(np.asarray(x, dtype=np.float64), FLOOR_DB, 0.0)

    lv = s.get("levels")
    if lv:  # fine levels: every hop, phase p is every (window / hop)-th value from p
        step = max(1, round(WINDOW_S / lv["hop_s"]))
        db = lv["db"]
        return [View(clip(db[p::step]), lv["start_s"] + p * lv["hop_s"]) for p in range(step)]
    env = s.get("envelope")
    if env is None and whole is not None:  # an older script: cut the whole envelope
        env = whole[round(s["start"] / WINDOW_S) : round(s["end"] / WINDOW_S)]
    return [View(clip(env), 0.0)] if env else []
