"""A pure speech recogniser for tests: it transcribes the known sentences it actually hears.

    vocab = Vocabulary()
    vocab.add(utterance)                       # a testkit Utterance or its .script() dict
    rec = Recogniser(vocab, sample_rate=16000)
    for tick in rec.push(pcm):                 # int16 mono, any chunking
        tick.words                             # words due at tick.t (connection seconds)

The vocabulary (vocabulary.py) holds every sentence that may be said, with its words and its
level envelope. The recogniser keeps its own sample clock and works on 10 ms windows:

- Searching: from a voiced onset (its first `attack_s` skipped), `align_s` of received levels
  are compared with every sentence at every offset and 2.5 ms window phase. The transmission may
  apply gain control (WebRTC does: the voice comes out louder, compressed, boosted after each
  pause), so the fit is affine over the windows voiced in both, plus a penalty for voicing that
  disagrees. The best fit below `align_max_db` is what is being said, and where in it: a burst
  that starts mid-sentence (after discarded audio, on a reconnected socket) gets only the words
  from there, after stricter checks (`align_mid_s`); a burst that began with the sentence and
  voices alike gets its whole opening. Sentences that say otherwise and fit almost as well keep
  it listening, up to `align_max_s`. Nothing fits: the audio is unknown, the search slides on
  0.1 s, nothing is emitted.
- Tracking: the sentence is followed window by window. `lost_s` of voice gone (zeros, silence,
  a gap in the stream) or of a voice where the sentence pauses, or level differences that
  spread more than `track_max_db` (other speech; a jitter buffer's few-window drift is
  followed) end it: no further word of it, and a fresh search starts there.
- Emitting: a word is heard once the agreeing audio covers its end (a sentence's last word: the
  exact sentence end; an inner word: its estimated end + `word_margin_s`, so an estimate that
  runs early cannot beat the real voice) and is due `interim_delay_s` after its end, as a
  streaming STT hears a word and then emits it. Silence and zeros match nothing, so they yield
  nothing.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator

import numpy as np

from testkit.audio import rms_dbfs

from .matching import candidates, fit, median, score_at, spread, windows
from .recognition import Heard, RecogniserConfig, Tick, _base, _Track, _upcoming
from .vocabulary import FLOOR_DB, WINDOW_S, Entry, View, Vocabulary


class Recogniser:
    def __init__(
        self,
        vocab: Vocabulary,
        sample_rate: int,
        config: RecogniserConfig | None = None,
        counts: Counter[str] | None = None,
    ) -> None:
        self.vocab = vocab
        self.rate = sample_rate
        self.cfg = config or RecogniserConfig()
        self.n = round(sample_rate * WINDOW_S)  # samples per window
        self._buf = np.zeros(0, np.int16)
        self.levels: list[float] = []  # every window received, clipped dB
        self.voiced_run = 0
        self.last_voiced = 0.0  # end time of the last voiced window
        self.search_from: int | None = None
        self.track: _Track | None = None
        self._last: _Track | None = None  # for a track re-found after a glitch
        self._cands: tuple[int, list[tuple[float, Entry, View, int]]] | None = None
        self.onset_i = 0  # window of the last onset after a pause
        self._last_voiced_i = -1000
        self._pause_end = -1000
        self._since_pause: list[int] = []  # per window: windows since voice resumed
        self.pending: list[Heard] = []
        # recognised, unknown, unknown_slides, lost, words_skipped, words (shareable)
        self.stats: Counter[str] = Counter() if counts is None else counts
        self.log: list[tuple[float, str, int, float]] = []  # (t, sentence, offset windows, dB)

    @property
    def t(self) -> float:
        return len(self.levels) * WINDOW_S

    @property
    def busy(self) -> bool:
        """Words may still come for audio already received (a sentence under way or unsure)."""
        return (
            bool(self.pending)
            or self.search_from is not None
            or (self.track is not None and self.track.next_word < len(self.track.entry.words))
        )

    def push(self, pcm: np.ndarray) -> Iterator[Tick]:
        buf = np.concatenate([self._buf, np.asarray(pcm, dtype=np.int16)])
        k = len(buf) // self.n
        self._buf = buf[k * self.n :]
        if k == 0:
            return
        levels = rms_dbfs(buf[: k * self.n].reshape(k, self.n))
        for level in levels:
            yield self._step(float(level))

    def flush(self) -> list[Heard]:
        """Everything heard so far, due or not (Deepgram's Finalize: transcribe what you have)."""
        if self.track is None and self.search_from is not None:
            self._identify(final=True)
        tr = self.track
        if tr is not None:
            if tr.bad_run == 0 and self._fits(tr):  # no more audio to wait for: verified
                tr.good = max(tr.good, len(self.levels) - tr.shift)
            self._hear(tr, flushing=True)
        out, self.pending = self.pending, []
        self._count("words", len(out))
        return out

    # --- per window -----------------------------------------------------------------------

    def _step(self, level: float) -> Tick:
        cfg = self.cfg
        i = len(self.levels)
        voiced = level > cfg.threshold_dbfs
        self.levels.append(max(FLOOR_DB, min(0.0, level)))
        tick = Tick(self.t, voiced)
        self.voiced_run = self.voiced_run + 1 if voiced else 0
        if voiced:
            self.last_voiced = self.t
        if self.voiced_run == windows(cfg.min_onset_s):
            tick.onset, tick.onset_t = True, (i + 1 - self.voiced_run) * WINDOW_S
            if i - self.voiced_run > self._last_voiced_i + windows(cfg.settle_s):
                self.onset_i = i + 1 - self.voiced_run  # after a real pause
        if voiced:
            if i - self._last_voiced_i > windows(cfg.agc_pause_s):
                self._pause_end = i  # gain control boosts the voice after a pause
            self._last_voiced_i = i
        self._since_pause.append(i - self._pause_end)
        if self.track is not None:
            self._follow(self.track, i)
        if self.track is None:
            if self.search_from is None and tick.onset:
                self.search_from = i + 1 - self.voiced_run
            heard = i + 1 - (self.search_from or 0)
            if self.search_from is not None and heard >= windows(cfg.align_s + cfg.attack_s):
                self._identify()
        due = [w for w in self.pending if w.due <= self.t + 1e-9]
        if due:
            self.pending = [w for w in self.pending if w.due > self.t + 1e-9]
            tick.words = due
            self._count("words", len(due))
        return tick

    def _follow(self, tr: _Track, i: int) -> None:
        """Verify window i against the entry; end the track when it is done or lost."""
        cfg, env = self.cfg, tr.view.env
        j = i - tr.shift
        if j >= len(env):  # the sentence is over: its tail is verified if nothing went wrong
            if tr.bad_run == 0 and self._fits(tr):
                tr.good = len(env)
            self._hear(tr)
            self._end_track(tr, resume_at=i if self._voiced(i) else None)
            return
        level, near = self.levels[i], env[max(0, j - 1) : j + 2]
        thr = cfg.threshold_dbfs
        gone = level <= thr and near.min() > thr + 6  # silence or zeros where the voice is
        extra = level > thr + 6 and near.max() <= FLOOR_DB + 10  # a voice where it pauses
        if gone or extra:
            tr.bad_run += 1
            if (
                tr.bad_run >= windows(cfg.lost_s)
                and gone
                and self._resync(tr, i - tr.bad_run)
                and (self.levels[i] > thr or env[min(i - tr.shift, len(env) - 1)] <= thr)
            ):
                tr.bad_run = 0  # a gap the jitter buffer put in: the voice goes on later
                return
            if tr.bad_run >= windows(cfg.lost_s):
                first_bad = i + 1 - tr.bad_run
                if self._fits(tr):  # what came before the cut was this sentence
                    tr.good = max(tr.good, first_bad - tr.shift)
                    if gone and len(env) - tr.good <= windows(cfg.early_end_s):
                        # the voice ended this close to the sentence end: the jitter buffer
                        # squeezed the sentence (by up to 0.2 s under load), it was said whole
                        tr.good = len(env)
                        self._count("early_ends")
                self._count("lost_gone" if gone else "lost_extra")
                self._lose(tr, first_bad)
            return
        tr.bad_run = 0
        settled = self._since_pause[i] >= windows(cfg.agc_settle_s)
        if settled and level > thr and env[j] > thr:  # gain drifts (AGC): compare shapes
            gain = median(tr.diffs) if tr.diffs else level - tr.slope * float(env[j])
            d = level - tr.slope * near  # +-1 window: the fit is only that precise
            tr.diffs.append(float(d[np.argmin(np.abs(d - gain))]))
        if not self._fits(tr) and not self._resync(tr, i):  # drifted into other speech
            self._count("lost_drift")
            self._lose(tr, i + 1 - len(tr.diffs) // 2)
            return
        # verified with a lag: drift shows in the running median only after a while
        tr.good = max(tr.good, j + 1 - windows(cfg.verify_lag_s))
        self._hear(tr)

    def _fits(self, tr: _Track) -> bool:
        return len(tr.diffs) < 10 or spread(tr.diffs) <= self.cfg.track_max_db

    def _resync(self, tr: _Track, i: int) -> bool:
        """The jitter buffer stretches or squeezes received audio by a few windows: if the
        last 0.3 s fit the sentence slightly earlier or later, follow it there."""
        cfg, env = self.cfg, tr.view.env
        best: tuple[float, int, list[float]] | None = None
        for ds in (-1, 1, -2, 2, -3, 3):
            diffs = []
            for k in range(max(0, i - 30), i + 1):
                j = k - tr.shift - ds
                level = self.levels[k]
                if not 1 <= j < len(env) - 1 or self._since_pause[k] < windows(cfg.agc_settle_s):
                    continue
                if level > cfg.threshold_dbfs and env[j] > cfg.threshold_dbfs:
                    diffs.append(level - tr.slope * float(env[j]))
            if len(diffs) >= 10 and (best is None or spread(diffs) < best[0]):
                best = (spread(diffs), ds, diffs)
        if best is None or best[0] > cfg.track_max_db or abs(tr.drift + best[1]) > 6:
            return False
        tr.shift += best[1]
        tr.drift += best[1]
        tr.diffs = deque(best[2], maxlen=30)
        self._count("resyncs")
        return True

    def _lose(self, tr: _Track, from_window: int) -> None:
        self._count("lost")
        self._hear(tr)
        # the next search starts after this track's start: audio that made a track drift would
        # otherwise be found, replayed and lost again at every window (seen under load)
        from_window = max(from_window, tr.started + 1)
        voiced = [k for k in range(max(from_window, 0), len(self.levels)) if self._voiced(k)]
        self._end_track(tr, resume_at=voiced[0] if voiced else None)

    def _hear(self, tr: _Track, *, flushing: bool = False) -> None:
        """Move words whose audio has been verified into `pending`."""
        cfg, words = self.cfg, tr.entry.words
        good_s = tr.view.t0 + tr.good * WINDOW_S  # sentence time verified
        complete = tr.good >= len(tr.view.env) - 2  # the sentence end (to 20 ms)
        base = _base(tr)
        while tr.next_word < len(words):
            k = tr.next_word
            w = words[k]
            last = k == len(words) - 1
            if last and not complete:
                break
            end = tr.entry.duration if last else w.end
            margin = 0.0 if flushing else cfg.word_margin_s
            if not last and not complete and good_s < w.end + margin:
                break
            self.pending.append(
                Heard(
                    w.text,
                    w.word,
                    round(base + w.start, 3),
                    round(base + end, 3),
                    # a window of slack: the fit places the sentence to +-1 window
                    base + end + cfg.interim_delay_s + WINDOW_S,
                    tr.entry.text,
                    k,
                )
            )
            tr.next_word += 1

    def _end_track(self, tr: _Track, resume_at: int | None) -> None:
        self.track, self._last = None, tr
        self.search_from = resume_at

    # --- identification -------------------------------------------------------------------

    def _identify(self, *, final: bool = False) -> None:
        """Place the audio since `search_from` in the vocabulary, or slide on.

        `final`: no more audio will come (Finalize): decide on what there is.
        """
        cfg = self.cfg
        assert self.search_from is not None
        start = self.search_from
        recv = np.asarray(self.levels[start:])
        m, skip = windows(cfg.align_s), windows(cfg.attack_s)
        if int(np.sum(recv[skip : skip + m] > cfg.threshold_dbfs)) < windows(cfg.min_voiced_s):
            return self._reject(start, final)  # a fragment: silence fits every sentence
        if self._cands is None or self._cands[0] != start:
            self._cands = (
                start,
                candidates(
                    self.vocab.entries, recv[skip : skip + m], skip, self.cfg.threshold_dbfs
                ),
            )
        ok = [c for c in self._cands[1] if c[0] <= cfg.align_max_db]
        if ok and len(recv) > skip + m:  # listening on: judge on all the audio heard so far
            ok = sorted(
                ((score_at(v.env, off + skip, recv[skip:]), e, v, off) for _, e, v, off in ok),
                key=lambda c: c[0],
            )
            ok = [c for c in ok if c[0] <= cfg.align_max_db]
        if not ok:
            return self._reject(start, final)
        score, entry, view, off = ok[0]
        if off < 0:  # the onset came before the sentence (a breath, a click): start there
            start, off = start - off, 0
        if view.t0 + off * WINDOW_S > cfg.onset_slack_s:
            # mid-sentence there are many more places to fit by chance: a short tail fits
            # too much, and the fit must hold longer and be followed by a pause
            rest = len(view.env) - off
            if rest < windows(cfg.align_tail_s):
                return self._reject(start, final)
            pause = 2 * windows(cfg.lost_s)
            if len(recv) < min(windows(cfg.align_mid_s), rest + pause) and not final:
                return None  # the whole rest of a short tail, and the pause after it
            after = recv[rest : rest + 2 * windows(cfg.lost_s)]
            if len(after) and np.mean(after > cfg.threshold_dbfs) > 0.3:
                return self._reject(start, final)
        said = _upcoming(entry, view, off)
        unsure = any(
            c[0] - score < cfg.align_margin_db and _upcoming(c[1], c[2], c[3]) != said
            for c in ok[1:]
        )
        if unsure and len(recv) < windows(cfg.align_max_s) and not final:
            return None  # another sentence fits almost as well and says otherwise: listen on
        self._start_track(entry, view, off, start, score)
        return None

    def _reject(self, start: int, final: bool) -> None:
        """Nothing known at `start`: try again from the next voiced window 0.1 s later."""
        self._count("unknown_slides")
        later = [] if final else [k for k in range(start + 10, len(self.levels)) if self._voiced(k)]
        if not later:
            self._count("unknown")
        self.search_from = later[0] if later else None

    def _start_track(self, entry: Entry, view: View, offset: int, start: int, score: float) -> None:
        s0 = start - offset  # received window of the sentence start
        floor = self._last.started if self._last is not None else -1
        if (
            offset > 0
            and s0 >= self.onset_i - 3
            and s0 > floor  # never back to where a lost track began
            and self._voicing_agrees(view.env, s0, start)
        ):
            # the burst began with this sentence: its opening, distorted while gain control
            # settled, was heard too (zeros or other speech would not voice alike)
            start, offset = s0, 0
        tr = _Track(entry, view, shift=start - offset, started=start)
        recv = np.asarray(self.levels[start:])
        seg = view.env[offset : offset + len(recv)]
        if len(seg) >= 10:
            tr.slope = float(fit(seg[None, :], recv[: len(seg)], self.cfg.threshold_dbfs)[1][0])
        tr.next_word = len(entry.words) - len(_upcoming(entry, view, offset, len(entry.words)))
        last = self._last
        said = 0  # words of this sentence already emitted by the track lost just before
        if last is not None and abs(_base(last) - _base(tr)) <= 0.3:
            # re-found after a glitch, or a sentence that opens like the one lost: go on
            for a, b in zip(last.entry.words[: last.next_word], entry.words, strict=False):
                if a.word != b.word:
                    break
                said += 1
        skipped = max(0, tr.next_word - said) if said else tr.next_word
        tr.next_word = max(tr.next_word, said)
        self._count("words_skipped", skipped)
        self._count("recognised")
        at = round(view.t0 + offset * WINDOW_S, 3)
        self.log.append((round(start * WINDOW_S, 3), entry.text, at, round(score, 2)))
        self._cands = None
        self.track, self.search_from = tr, None
        # replay the windows heard while identifying through the verifier
        tr.good = offset
        for i in range(start, len(self.levels)):
            if self.track is not tr:
                break
            self._follow(tr, i)

    def _voicing_agrees(self, env: np.ndarray, a: int, b: int) -> bool:
        # the jitter buffer may have shifted the opening by a few windows
        return any(self._voicing_agrees_at(env, a, b, d) for d in range(-2, 5))

    def _voicing_agrees_at(self, env: np.ndarray, a: int, b: int, d: int) -> bool:
        if a + d < 0 or b - a < 10:
            return False
        got = np.asarray(self.levels[a + d : b + d]) > self.cfg.threshold_dbfs
        want = env[: len(got)] > self.cfg.threshold_dbfs
        # gain control voices quiet windows at an onset, it never silences voiced ones
        return bool(want.any() and got[want].mean() >= 0.85 and np.mean(got == want) >= 0.7)

    def _voiced(self, i: int) -> bool:
        return self.levels[i] > self.cfg.threshold_dbfs

    def _count(self, key: str, n: int = 1) -> None:
        self.stats[key] += n
