"""Judge what a test STT emitted against what was actually spoken into it.

    sc = Scenario(rate=16000)
    sc.say(utt); sc.pause(0.8); sc.say(other, cut_at=1.2); sc.say(unknown, known=False)
    report = check_heard(emitted, sc.words, delay=0.25)   # emitted: [(emitted_at, text, start)]
    assert not report.violations, report.violations

Times are seconds of audio on the STT's own timeline (samples received / rate). A word counts as
sent when its audio reached the STT: its end before any cut, its middle after a mid-sentence
start. The rules a streaming STT keeps, whatever its recognition quality:
- every emitted word was spoken, and sent;
- it comes `delay` after its audio ended: a sentence's last word after the exact sentence end
  (to one window), an inner word after its estimated end (espeak word ends are approximate, so
  `inner_tol_s` of slack);
- no spoken word comes out twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from testkit import utterance

from .vocabulary import normalise


@dataclass(frozen=True)
class SpokenWord:
    text: str
    start: float
    end: float  # the sentence end for a last word (exact), else espeak's estimate
    last: bool
    sent: bool  # its audio reached the STT
    known: bool  # its sentence is in the STT's vocabulary
    sentence: int  # running number of the sentence in the scenario


class Scenario:
    """Audio for an STT, built from utterances, pauses and cuts, with what was said when."""

    def __init__(self, rate: int = 16000) -> None:
        self.rate = rate
        self.parts: list[np.ndarray] = []
        self.words: list[SpokenWord] = []
        self.sentence_ends: list[float] = []
        self._n = 0  # samples so far
        self._sentences = 0

    @property
    def t(self) -> float:
        return self._n / self.rate

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, np.int16)

    def pause(self, seconds: float) -> Scenario:
        return self._add(np.zeros(round(seconds * self.rate), np.int16))

    def say(
        self,
        utt: utterance.Utterance,
        *,
        cut_at: float | None = None,
        from_s: float = 0.0,
        known: bool = True,
        dropped: bool = False,
    ) -> Scenario:
        """Speak `utt` (seconds from its first sample), optionally only from `from_s`, and with
        zeros instead of its audio from `cut_at` (what the framework sends while discarding),
        or with nothing at all (`dropped`: the stream jumps to what follows)."""
        pcm = utterance.resample(utt.pcm, utt.sample_rate, self.rate)
        a = round(from_s * self.rate)
        pcm = pcm[a:].copy()
        if cut_at is not None:
            cut = max(0, round((cut_at - from_s) * self.rate))
            pcm = pcm[:cut] if dropped else pcm
            pcm[cut:] = 0
        t0 = self.t - from_s  # scenario time of the utterance's sample 0
        stop = cut_at if cut_at is not None else utt.duration
        for s in utt.sentences:
            for k, w in enumerate(s.words):
                last = k == len(s.words) - 1
                end = s.end if last else w.end
                sent = end <= stop + 1e-6 and (w.start + w.end) / 2 >= from_s
                self.words.append(
                    SpokenWord(w.text, t0 + w.start, t0 + end, last, sent, known, self._sentences)
                )
            self.sentence_ends.append(t0 + s.end)
            self._sentences += 1
        return self._add(pcm)

    def _add(self, pcm: np.ndarray) -> Scenario:
        self.parts.append(np.asarray(pcm, dtype=np.int16))
        self._n += len(pcm)
        return self


@dataclass
class Report:
    violations: list[str] = field(default_factory=list)
    matched: list[tuple[float, SpokenWord]] = field(default_factory=list)  # (emitted_at, word)
    expected: int = 0  # words sent from known sentences

    @property
    def recall(self) -> float:
        return len(self.matched) / self.expected if self.expected else 1.0

    def delays(self, *, last_only: bool = False) -> list[float]:
        """Emission time minus the end of the word's audio."""
        return [t - w.end for t, w in self.matched if w.last or not last_only]


def check_heard(
    emitted: list[tuple[float, str, float]],
    spoken: list[SpokenWord],
    *,
    delay: float,
    window_s: float = 0.015,
    inner_tol_s: float = 0.1,
    match_s: float = 0.25,
) -> Report:
    """`emitted`: (emitted_at, text, start) of every word the STT sent, in order."""
    rep = Report(expected=sum(w.sent and w.known for w in spoken))
    used: set[int] = set()
    for at, text, start in emitted:
        key = normalise(text)
        near = [
            (abs(w.start - start), i)
            for i, w in enumerate(spoken)
            if normalise(w.text) == key and abs(w.start - start) <= match_s
        ]
        if not near:
            rep.violations.append(f"{text!r} at {start:.2f}s (emitted {at:.2f}s) was not spoken")
            continue
        _, i = min(near)
        w = spoken[i]
        if i in used:
            rep.violations.append(f"{text!r} at {w.start:.2f}s emitted twice")
            continue
        used.add(i)
        if not w.sent:
            rep.violations.append(
                f"{text!r} at {w.start:.2f}s emitted at {at:.2f}s but its audio was never sent"
            )
            continue
        tol = window_s if w.last else inner_tol_s
        if at < w.end + delay - tol:
            rep.violations.append(
                f"{text!r} emitted at {at:.2f}s, before its audio ended at {w.end:.2f}s "
                f"+ {delay:.2f}s"
            )
            continue
        rep.matched.append((at, w))
    return rep
