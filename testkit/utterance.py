"""Utterances: speech as int16 PCM with sentence and word timings (`Word`, `Sentence`,
`Utterance`), what the Deepgram fake is told to expect (`Utterance.script()`), and the PCM helpers
around them (resample, frames, silence, WAV, voiced bounds, concat).
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from livekit import rtc

from testkit.audio import rms_dbfs, window_rms_dbfs

WINDOW_S = 0.01
# -40 dBFS RMS over 10 ms: below every voiced/fricative window espeak produces, well above the
# noise floor of Opus-decoded silence. The Deepgram fake uses the same detector for onsets.
DEFAULT_THRESHOLD_DBFS = -40.0
STT_RATE = 16000  # what the Deepgram plugin sends
LEVELS_HOP_S = 0.0025  # script() levels: four phases of 10 ms windows


@dataclass(frozen=True)
class Word:
    text: str  # as written in the sentence, punctuation kept ("Hello,")
    start: float
    end: float


@dataclass(frozen=True)
class Sentence:
    text: str
    start: float
    end: float
    words: tuple[Word, ...]


@dataclass(frozen=True)
class Utterance:
    """Mono int16 PCM plus where each sentence and word is in it (seconds from sample 0)."""

    pcm: np.ndarray = field(repr=False)
    sample_rate: int
    sentences: tuple[Sentence, ...]

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)

    @property
    def words(self) -> list[Word]:
        return [w for s in self.sentences for w in s.words]

    @property
    def onset(self) -> float:
        """Start of the first sentence's audio (the lead-in silence before it)."""
        return self.sentences[0].start if self.sentences else 0.0

    def script(self) -> dict[str, Any]:
        """JSON-able text and timings relative to the speech onset: what FakeDeepgram consumes.

        "envelope" is the level of each 10 ms window (dBFS, rounded) of the whole speech from
        the onset. Each sentence has "levels": 10 ms windows every 2.5 ms from 10 ms before its
        start, at 16 kHz (what the Deepgram plugin sends): FakeDeepgram's recogniser finds which
        sentence, and where in it, received audio is, whatever the phase of its windows.
        """
        t0 = self.onset
        a = round(t0 * self.sample_rate)
        b = round(self.sentences[-1].end * self.sample_rate) if self.sentences else a
        pcm16 = resample(self.pcm, self.sample_rate, STT_RATE)
        return {
            "text": self.text,
            "envelope": _rounded(window_rms_dbfs(self.pcm[a:b], self.sample_rate)),
            "sentences": [
                {
                    "text": s.text,
                    "start": round(s.start - t0, 4),
                    "end": round(s.end - t0, 4),
                    "levels": {
                        "rate": STT_RATE,
                        "start_s": -WINDOW_S,
                        "hop_s": LEVELS_HOP_S,
                        "db": _rounded(_fine_levels(pcm16, s.start, s.end)),
                    },
                    "words": [
                        {
                            "text": w.text,
                            "start": round(w.start - t0, 4),
                            "end": round(w.end - t0, 4),
                        }
                        for w in s.words
                    ],
                }
                for s in self.sentences
            ],
        }

    def padded(self, before_s: float = 0.0, after_s: float = 0.0) -> Utterance:
        """Silence before/after, timings shifted to match."""
        pre = np.zeros(round(before_s * self.sample_rate), np.int16)
        post = np.zeros(round(after_s * self.sample_rate), np.int16)
        shift = len(pre) / self.sample_rate
        return Utterance(
            pcm=frozen(np.concatenate([pre, self.pcm, post])),
            sample_rate=self.sample_rate,
            sentences=tuple(shift_sentence(s, shift) for s in self.sentences),
        )

    def resampled(self, sample_rate: int) -> Utterance:
        return replace(
            self,
            pcm=frozen(resample(self.pcm, self.sample_rate, sample_rate)),
            sample_rate=sample_rate,
        )

    def frames(self, frame_ms: int = 20, sample_rate: int | None = None) -> list[rtc.AudioFrame]:
        """The audio as rtc.AudioFrames of `frame_ms` (last one zero-padded)."""
        pcm = self.pcm
        rate = sample_rate or self.sample_rate
        if rate != self.sample_rate:
            pcm = resample(pcm, self.sample_rate, rate)
        return frames(pcm, rate, frame_ms)

    def wav_bytes(self) -> bytes:
        return to_wav(self.pcm, self.sample_rate)
# --- audio helpers ----------------------------------------------------------------------------


def resample(pcm: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """int16 mono resampling with libsoxr (via livekit.rtc); output is aligned, not delayed."""
    pcm = np.asarray(pcm, dtype=np.int16)
    if from_rate == to_rate or len(pcm) == 0:
        return pcm.copy()
    rs = rtc.AudioResampler(
        from_rate, to_rate, num_channels=1, quality=rtc.AudioResamplerQuality.HIGH
    )
    out = rs.push(rtc.AudioFrame(pcm.tobytes(), from_rate, 1, len(pcm))) + rs.flush()
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in out]).copy()


def chunks(pcm: np.ndarray, sample_rate: int, frame_ms: int = 20) -> list[np.ndarray]:
    """Cut into frames of `frame_ms` (10 or 20 for WebRTC); the last one is zero-padded."""
    n = sample_rate * frame_ms // 1000
    pcm = np.asarray(pcm, dtype=np.int16)
    if len(pcm) % n:
        pcm = np.concatenate([pcm, np.zeros(n - len(pcm) % n, np.int16)])
    return [pcm[i : i + n] for i in range(0, len(pcm), n)]


def frames(pcm: np.ndarray, sample_rate: int, frame_ms: int = 20) -> list[rtc.AudioFrame]:
    return [
        rtc.AudioFrame(c.tobytes(), sample_rate, 1, len(c))
        for c in chunks(pcm, sample_rate, frame_ms)
    ]


def silence(seconds: float, sample_rate: int = 48000) -> np.ndarray:
    return np.zeros(round(seconds * sample_rate), np.int16)


def to_wav(pcm: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.asarray(pcm, dtype=np.int16).tobytes())
    return buf.getvalue()


def _fine_levels(pcm16: np.ndarray, start: float, end: float) -> np.ndarray:
    """10 ms window levels every LEVELS_HOP_S, the first window starting 10 ms before `start`,
    the last ending by `end` (16 kHz PCM; silence before the utterance's first sample)."""
    n, hop = round(WINDOW_S * STT_RATE), round(LEVELS_HOP_S * STT_RATE)
    a, b = round(start * STT_RATE) - n, round(end * STT_RATE)
    x = np.concatenate([np.zeros(max(0, -a), np.int16), pcm16[max(0, a) : b]]).astype(np.float64)
    k = max(0, (len(x) - n) // hop + 1)
    idx = np.arange(k)[:, None] * hop + np.arange(n)[None, :]
    return rms_dbfs(x[idx])


def _rounded(levels: np.ndarray) -> list[float]:
    return [round(max(-100.0, float(x)), 1) for x in levels]


def voiced_bounds(
    pcm: np.ndarray, sample_rate: int, threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS
) -> tuple[float, float] | None:
    """(first, last) voiced instant in seconds by 10 ms windows, None for silence."""
    voiced = np.nonzero(window_rms_dbfs(pcm, sample_rate) > threshold_dbfs)[0]
    if len(voiced) == 0:
        return None
    return voiced[0] * WINDOW_S, (voiced[-1] + 1) * WINDOW_S


def shift_sentence(s: Sentence, dt: float) -> Sentence:
    return Sentence(
        s.text,
        s.start + dt,
        s.end + dt,
        tuple(Word(w.text, w.start + dt, w.end + dt) for w in s.words),
    )


def frozen(pcm: np.ndarray) -> np.ndarray:
    # shared via the cache: make accidental in-place edits fail loudly
    pcm = np.ascontiguousarray(pcm, dtype=np.int16)
    pcm.flags.writeable = False
    return pcm


def concat(utterances: Iterable[Utterance], gap_s: float = 0.0) -> Utterance:
    """Join utterances (same rate) with `gap_s` of silence; timings follow."""
    utts = list(utterances)
    if not utts:
        raise ValueError("concat() needs at least one utterance")
    rate = utts[0].sample_rate
    parts, sentences, t = [], [], 0.0
    for i, u in enumerate(utts):
        if u.sample_rate != rate:
            raise ValueError("concat() needs utterances of one sample rate")
        if i:
            parts.append(silence(gap_s, rate))
            t += len(parts[-1]) / rate
        sentences.extend(shift_sentence(s, t) for s in u.sentences)
        parts.append(u.pcm)
        t += len(u.pcm) / rate
    return Utterance(
        pcm=frozen(np.concatenate(parts)), sample_rate=rate, sentences=tuple(sentences)
    )
