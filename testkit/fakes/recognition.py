"""What the recogniser (recogniser.py) is tuned by and reports: its configuration, the words it
heard, one tick per 10 ms window, and the sentence it is following (a track)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .vocabulary import WINDOW_S, Entry, View


@dataclass
class RecogniserConfig:
    interim_delay_s: float = 0.25  # a word is emitted this long after its audio ended
    word_margin_s: float = 0.15  # agreeing audio past an inner word's estimated end (its error)
    threshold_dbfs: float = -40.0  # a 10 ms window above this is voiced
    min_onset_s: float = 0.03  # a voiced run this long is an onset
    align_s: float = 0.4  # audio compared to identify what is said
    align_max_s: float = 1.2  # listen up to this long to tell similar sentences apart
    min_voiced_s: float = 0.1  # voice needed in the first align_s to try at all
    align_mid_s: float = 0.8  # a fit that starts mid-sentence must hold this long ...
    align_tail_s: float = 0.5  # ... or to the sentence end, if at least this much is left
    onset_slack_s: float = 0.05  # fits this close to a sentence start count as its start
    attack_s: float = 0.1  # an onset's first audio is skipped: gain control is still settling
    settle_s: float = 0.3  # a pause this long makes the next voice an onset (for back-filling)
    agc_pause_s: float = 0.1  # after a pause this long gain control boosts the voice ...
    agc_settle_s: float = 0.12  # ... for this long: only voicing is checked there
    align_max_db: float = 1.6  # the right sentence: 0.0-0.4 (Opus), 0.2-1.5 (e2e); others 1.3+
    align_margin_db: float = 0.4  # the best must beat every other text by this much
    track_max_db: float = 4.5  # spread (MAD) of level - slope * sentence level over 0.3 s
    verify_lag_s: float = 0.1  # audio is verified this late (the running median needs it)
    lost_s: float = 0.05  # voice gone (or a voice in a pause) this long: no longer heard
    early_end_s: float = 0.25  # the voice gone this close to the sentence end: it ended early


@dataclass(frozen=True)
class Heard:
    """A recognised word on the connection's timeline."""

    text: str
    word: str
    start: float
    end: float  # where its audio ended (the sentence end for a last word)
    due: float  # when it may be emitted: end + interim_delay_s
    sentence: str
    index: int  # position in the sentence


@dataclass
class Tick:
    """One 10 ms window processed: its end time and what happened in it."""

    t: float
    voiced: bool
    onset: bool = False  # a voiced run just became an onset (started at onset_t)
    onset_t: float = 0.0
    words: list[Heard] = field(default_factory=list)


@dataclass
class _Track:
    entry: Entry
    view: View
    shift: int  # received window index of the view's window 0
    good: int = 0  # entry windows verified (a prefix)
    bad_run: int = 0  # consecutive windows of voice gone / voice where none belongs
    slope: float = 1.0  # level compression seen at identification
    drift: int = 0  # windows resynced so far (bounded: a jitter buffer, not another sentence)
    diffs: deque[float] = field(default_factory=lambda: deque(maxlen=30))  # dB vs slope * entry
    next_word: int = 0
    started: int = 0  # received window where it began


def _base(tr: _Track) -> float:
    """Received time of the track's sentence time 0."""
    return tr.shift * WINDOW_S - tr.view.t0


def _upcoming(entry: Entry, view: View, offset: int, n: int = 3) -> tuple[str, ...]:
    """The next words heard from window `offset` of a view (what a pick would emit)."""
    t = view.t0 + offset * WINDOW_S
    return tuple(w.word for w in entry.words if (w.start + w.end) / 2 >= t)[:n]
