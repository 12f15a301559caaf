"""Audio primitives shared by the WebRTC and the in-process paths: the level meter (RMS in dBFS),
`Segment` (a stretch of agent speech) with turn merging, and `Playlist` (queued utterances cut
into real-time frames: what every microphone of the kit plays)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

SILENCE_DBFS = -120.0  # the meter's floor: digital silence


def rms_dbfs(pcm: np.ndarray) -> np.ndarray:
    """RMS level in dBFS of int16 samples along the last axis (a frame, or rows of windows);
    silence and empty input read SILENCE_DBFS."""
    x = np.asarray(pcm, dtype=np.float64)
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1], SILENCE_DBFS)
    rms = np.sqrt((x * x).mean(axis=-1)) / 32768.0
    return 20 * np.log10(np.maximum(rms, 10 ** (SILENCE_DBFS / 20)))


def window_rms_dbfs(pcm: np.ndarray, sample_rate: int, window_s: float = 0.01) -> np.ndarray:
    """RMS level of each whole window in dBFS (a trailing partial window is dropped)."""
    n = max(1, round(sample_rate * window_s))
    k = len(pcm) // n
    return rms_dbfs(np.asarray(pcm[: k * n]).reshape(k, n))


@dataclass
class Segment:
    """One stretch of agent speech as a listener heard it; times are wall clock."""

    start: float
    end: float | None = None  # None while still speaking
    audio_s: float = 0.0  # seconds of audio in it (counted in samples, not wall time)
    interrupted: bool = False  # in-process speaker: playback was cleared
    pauses: int = 0  # in-process speaker: times the framework paused it

    @property
    def duration(self) -> float:
        return (self.end if self.end is not None else time.time()) - self.start


def merge_turns(segments: Iterable[Segment], gap_s: float, after: float = 0.0) -> list[Segment]:
    """Segments starting at or after `after`, merged across pauses shorter than `gap_s` (one
    spoken reply = one turn); the inputs are not changed."""
    merged: list[Segment] = []
    for s in segments:
        if s.start < after:
            continue
        last = merged[-1] if merged else None
        if last is not None and last.end is not None and s.start - last.end < gap_s:
            last.end = s.end
            last.audio_s += s.audio_s
        else:
            merged.append(Segment(s.start, s.end, s.audio_s))
    return merged


@dataclass
class Queued:
    """An utterance in a `Playlist`: when its first sample is heard, when its last one is."""

    pcm: np.ndarray
    started: asyncio.Future[float]
    ended: asyncio.Future[float]


@dataclass
class Playlist:
    """Queued int16 mono PCM cut into frames of `samples_per_frame`, digital silence when nothing
    is queued; an utterance follows the previous one in the same frame, with no gap."""

    samples_per_frame: int
    sample_rate: int
    started_at: list[float] = field(default_factory=list)  # wall clock of each first sample
    _pending: deque[Queued] = field(default_factory=deque)
    _current: Queued | None = None
    _pos: int = 0

    def add(self, pcm: np.ndarray) -> Queued:
        loop = asyncio.get_running_loop()
        q = Queued(np.asarray(pcm, dtype=np.int16), loop.create_future(), loop.create_future())
        self._pending.append(q)
        return q

    @property
    def playing(self) -> bool:
        return self._current is not None

    def next_frame(self, heard_at: float) -> np.ndarray:
        """The next frame, whose first sample is heard at wall-clock `heard_at`. An utterance's
        `ended` resolves to `heard_at` of the frame that carries its last sample."""
        n = self.samples_per_frame
        frame = np.zeros(n, np.int16)
        filled = 0
        while filled < n:
            if self._current is None:
                if not self._pending:
                    break
                self._current, self._pos = self._pending.popleft(), 0
                t = heard_at + filled / self.sample_rate
                self.started_at.append(t)
                _resolve(self._current.started, t)
            pcm = self._current.pcm
            take = min(n - filled, len(pcm) - self._pos)
            frame[filled:filled + take] = pcm[self._pos:self._pos + take]
            filled += take
            self._pos += take
            if self._pos >= len(pcm):
                _resolve(self._current.ended, heard_at)
                self._current = None
        return frame

    def cancel(self) -> None:
        for q in (*self._pending, *([self._current] if self._current else [])):
            q.started.cancel()
            q.ended.cancel()


def _resolve(fut: asyncio.Future[float], t: float) -> None:
    if not fut.done():
        fut.set_result(t)
