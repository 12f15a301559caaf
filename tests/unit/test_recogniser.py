"""The test STT's recogniser: a word only after its audio (+ delay), only what was sent, in any
order; and the check that proves it fails a clock-driven fake."""

from __future__ import annotations

import random
from collections.abc import Iterator

import av
import numpy as np
import pytest

from testkit import speech, utterance
from testkit.audio import rms_dbfs, window_rms_dbfs
from testkit.fakes.heard_check import Report, Scenario, check_heard
from testkit.fakes.recogniser import Recogniser
from testkit.fakes.recognition import Heard, RecogniserConfig, Tick
from testkit.fakes.vocabulary import WINDOW_S, Vocabulary
from testkit.scenarios import WEEKEND
from testkit.utterance import Utterance

RATE = 16000
DELAY = 0.25
SENTENCES = [
    *WEEKEND,
    "Can you help me plan a trip?",
    "When does the resurfacing start?",
    "What should I pack for my next trip?",
    "Yes.",
    "Sure, the lake was the best part.",
    "The weather was cold but the sky was perfectly clear.",
]
UNKNOWN = [
    "Completely unrelated words are spoken here.",
    "The purple elephant danced at noon, laughing loudly.",
]


@pytest.fixture(scope="module")
def said() -> list[Utterance]:
    return [speech.synthesize([s]) for s in SENTENCES]


@pytest.fixture(scope="module")
def unknown() -> list[Utterance]:
    return [speech.synthesize([s]) for s in UNKNOWN]


@pytest.fixture(scope="module")
def vocab(said: list[Utterance]) -> Vocabulary:
    v = Vocabulary()
    for u in said:
        v.add(u)
    return v


def listen(
    stt: Recogniser | ClockDriven, audio: np.ndarray, chunk_s: float = 0.05
) -> list[tuple[float, Heard]]:
    """Feed audio as the plugin sends it (50 ms messages); (emitted_at, word) in order."""
    n = round(chunk_s * RATE)
    return [
        (tick.t, w)
        for i in range(0, len(audio), n)
        for tick in stt.push(audio[i : i + n])
        for w in tick.words
    ]


def judge(heard: list[tuple[float, Heard]], sc: Scenario, delay: float = DELAY) -> Report:
    return check_heard([(t, w.text, w.start) for t, w in heard], sc.words, delay=delay)


def natural(said: list[Utterance], unknown: list[Utterance], seed: int) -> Scenario:
    """Sentences in random order, some repeated, an unknown one among them, pauses 0.2-1.5 s."""
    rng = random.Random(seed)
    sc = Scenario(RATE).pause(rng.uniform(0.1, 0.6))
    order = rng.sample(range(len(said)), len(said)) + rng.sample(range(len(said)), 3)
    order.insert(rng.randrange(len(order)), -1)
    for k in order:
        sc.say(unknown[seed % len(unknown)], known=False) if k < 0 else sc.say(said[k])
        sc.pause(rng.uniform(0.2, 1.5))
    return sc


class ClockDriven:
    """The old fake's behaviour: from the first onset, play the script on its own clock (with
    the same delay), whatever the audio does after that."""

    def __init__(self, script: Utterance, delay: float = DELAY) -> None:
        self.words = [
            (w, s.end if w is s.words[-1] else w.end) for s in script.sentences for w in s.words
        ]
        self.t0 = script.onset
        self.delay = delay
        self.n = 0
        self.run = 0
        self.onset: float | None = None

    def push(self, pcm: np.ndarray) -> Iterator[Tick]:
        levels = window_rms_dbfs(pcm, RATE)
        for level in levels:
            self.n += 1
            t = self.n * WINDOW_S
            self.run = self.run + 1 if level > -40 else 0
            if self.onset is None and self.run == 3:
                self.onset = t - 3 * WINDOW_S
            tick = Tick(t, level > -40)
            while self.onset is not None and self.words:
                w, end = self.words[0]
                due = self.onset + end - self.t0 + self.delay
                if due > t:
                    break
                self.words.pop(0)
                start = self.onset + w.start - self.t0
                tick.words.append(Heard(w.text, w.text, start, due - self.delay, due, "", 0))
            yield tick


# --- the invariant, on natural speech ----------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_words_come_only_after_their_audio_in_any_order(
    said: list[Utterance], unknown: list[Utterance], vocab: Vocabulary, seed: int
) -> None:
    sc = natural(said, unknown, seed)
    rec = Recogniser(vocab, RATE)
    rep = judge(listen(rec, sc.audio), sc)
    assert not rep.violations, rep.violations
    assert rep.recall >= 0.9, f"recall {rep.recall:.2f}: {rec.log}"
    # a last word comes interim_delay_s after the exact sentence end (to a window or two)
    last = rep.delays(last_only=True)
    assert min(last) >= DELAY - 0.015 and float(np.median(last)) < DELAY + 0.02
    assert rec.stats["unknown"] >= 1  # the unknown sentence was heard, and left alone


def _gain_control(pcm: np.ndarray) -> np.ndarray:
    """A crude AGC per 10 ms window: +6 dB, 0.7:1 compression, a decaying boost after pauses."""
    n = round(WINDOW_S * RATE)
    x = pcm[: len(pcm) // n * n].astype(np.float64).reshape(-1, n)
    level = rms_dbfs(x)
    gain_db = np.zeros(len(level))
    silent_run, since = 100, 100  # windows of silence so far, windows since voice resumed
    for i, db in enumerate(level):
        if db <= -40:
            silent_run += 1
            continue
        since = 0 if silent_run >= 10 else since + 1
        silent_run = 0
        gain_db[i] = 6 - 0.3 * (db + 20) + 20 * np.exp(-since / 5)
    y = x * 10 ** (gain_db[:, None] / 20)
    return np.clip(y.reshape(-1), -32768, 32767).astype(np.int16)


def _opus(pcm: np.ndarray, rate: int = 48000) -> np.ndarray:
    """Encode and decode with libopus at 32 kb/s, as WebRTC would; the codec delay removed."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = rate, "mono", "s16", 32000
    enc.open()
    dec = av.CodecContext.create("opus", "r")
    dec.sample_rate, dec.layout = rate, "mono"
    dec.open()
    n, out = 960, []
    pcm = np.concatenate([pcm, np.zeros((-len(pcm)) % n + n, np.int16)])
    for i in range(0, len(pcm) + 1, n):
        frame = None
        if i < len(pcm):
            frame = av.AudioFrame.from_ndarray(
                pcm[i : i + n].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, i
        for packet in enc.encode(frame):
            for f in dec.decode(packet):
                a = f.to_ndarray().reshape(-1)
                if a.dtype != np.int16:  # the native decoder gives floats
                    a = (np.clip(a, -1, 1) * 32767).astype(np.int16)
                out.append(a)
    y = np.concatenate(out)
    skip = int(getattr(enc, "delay", 0) or 312)  # the encoder's pre-skip
    return y[skip : skip + len(pcm)]


def _opus_round_trip(audio: np.ndarray) -> np.ndarray:
    return utterance.resample(_opus(utterance.resample(audio, RATE, 48000)), 48000, RATE)


def _noisy_lowpassed(audio: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(5)
    x = np.convolve(audio.astype(np.float64), [0.25, 0.5, 0.25], mode="same") * 10 ** (0.5 / 20)
    x += rng.normal(0.0, 32768 * 10 ** (-65 / 20), len(x))
    return np.clip(x, -32768, 32767).astype(np.int16)


# (what the channel does to the voice, the scenario's seed, the recall it must keep);
# _gain_control is what the e2e path does (measured on audio the fake received through
# livekit-server): louder, compressed, and boosted by up to 20 dB for ~50 ms after a pause
CHANNELS = {
    "opus round trip": (_opus_round_trip, 4, 0.9),
    "noisy, low-passed": (_noisy_lowpassed, 5, 0.85),
    "gain-controlled": (_gain_control, 6, 0.85),
}


@pytest.mark.parametrize("channel", CHANNELS)
def test_audio_through_a_channel_still_recognised(
    said: list[Utterance], unknown: list[Utterance], vocab: Vocabulary, channel: str
) -> None:
    transform, seed, recall = CHANNELS[channel]
    sc = natural(said, unknown, seed)
    rep = judge(listen(Recogniser(vocab, RATE), transform(sc.audio)), sc)
    assert not rep.violations, rep.violations
    assert rep.recall >= recall


# --- what must yield nothing -------------------------------------------------------------------


def test_silence_zeros_noise_and_unknown_speech_yield_nothing(
    unknown: list[Utterance], vocab: Vocabulary
) -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 32768 * 10 ** (-55 / 20), 3 * RATE).astype(np.int16)
    sc = Scenario(RATE).pause(3.0)._add(noise)
    for u in unknown:
        sc.say(u, known=False).pause(0.5)
    rec = Recogniser(vocab, RATE)
    assert listen(rec, sc.audio) == [] and rec.flush() == []
    assert rec.stats["unknown"] >= 2 and not rec.busy


def test_a_sentence_cut_by_zeros_stops_at_the_cut_and_the_next_is_heard(
    said: list[Utterance], vocab: Vocabulary
) -> None:
    long, nxt = said[3], said[6]  # "My brother forgot the tent poles, so we ..."
    cut = long.sentences[0].words[4].end + 0.05  # zeros from just after "tent"
    sc = Scenario(RATE).pause(0.3).say(long, cut_at=cut).pause(0.6).say(nxt).pause(0.8)
    rec = Recogniser(vocab, RATE)
    heard = listen(rec, sc.audio)
    rep = judge(heard, sc)
    assert not rep.violations, rep.violations
    assert [w.text for _, w in heard] == ["My", "brother", "forgot", "the", *SENTENCES[6].split()]
    assert rec.stats["lost"] == 1


def test_a_burst_that_starts_mid_sentence_gets_the_words_from_there(
    said: list[Utterance], vocab: Vocabulary
) -> None:
    utt = said[1]  # "We drove up on Friday night and the roads were icy."
    words = utt.sentences[0].words
    from_s = (words[3].start + words[3].end) / 2 + 0.02  # mid-"on"
    sc = Scenario(RATE).pause(0.4).say(utt, from_s=from_s).pause(0.8)
    heard = listen(Recogniser(vocab, RATE), sc.audio)
    rep = judge(heard, sc)
    assert not rep.violations, rep.violations
    assert " ".join(w.text for _, w in heard) == "Friday night and the roads were icy."


def test_a_repeated_sentence_is_heard_each_time_and_gaps_in_the_stream_end_it(
    said: list[Utterance], vocab: Vocabulary
) -> None:
    utt = said[7]  # "When does the resurfacing start?"
    sc = Scenario(RATE).pause(0.2).say(utt).pause(0.2).say(utt).pause(0.5)
    # the framework sends nothing while it discards: the stream jumps from a quarter of the
    # sentence straight into another one
    sc.say(utt, cut_at=utt.duration / 4, dropped=True).say(said[8]).pause(1.0)
    rec = Recogniser(vocab, RATE)
    heard = listen(rec, sc.audio)
    rep = judge(heard, sc)
    assert not rep.violations, rep.violations
    texts = [w.text for _, w in heard]
    assert texts[:10] == SENTENCES[7].split() * 2 and texts[-8:] == SENTENCES[8].split()


# --- configurable, and the check itself --------------------------------------------------------


def test_delay_is_configurable_and_flush_returns_what_was_heard(
    said: list[Utterance], vocab: Vocabulary
) -> None:
    utt = said[10]  # "Sure, the lake was the best part."
    sc = Scenario(RATE).pause(0.3).say(utt).pause(1.0)
    rec = Recogniser(vocab, RATE, RecogniserConfig(interim_delay_s=0.6))
    rep = judge(listen(rec, sc.audio), sc, delay=0.6)
    assert not rep.violations and rep.recall == 1.0
    # Finalize right at the end of the audio: the words heard, whether due or not
    rec = Recogniser(vocab, RATE)
    audio = Scenario(RATE).pause(0.3).say(utt).audio
    early = [w.text for _, w in listen(rec, audio)]
    assert " ".join(early + [w.text for w in rec.flush()]) == utt.text


def test_the_check_fails_a_clock_driven_stt(
    said: list[Utterance], unknown: list[Utterance], vocab: Vocabulary
) -> None:
    """The old fake played its script from the first onset: with natural pauses its words run
    ahead of the audio, and after a cut it says what never arrived. Same scenarios, same check:
    the recogniser passes, the clock-driven STT fails."""
    sc = natural(said, unknown, 1)
    spoken = [s for s in _sentences(sc, said, unknown)]
    # the script such a fake was given: the sentences, joined with the synthesiser's gap
    script = utterance.concat(spoken, gap_s=0.25)
    rep = judge(listen(ClockDriven(script), sc.audio), sc)
    assert any("before its audio ended" in v for v in rep.violations), rep.violations
    assert not judge(listen(Recogniser(vocab, RATE), sc.audio), sc).violations

    long = said[3]
    cut = long.sentences[0].words[4].end + 0.05
    sc = Scenario(RATE).pause(0.3).say(long, cut_at=cut).pause(1.0)
    rep = judge(listen(ClockDriven(long), sc.audio), sc)
    assert any("never sent" in v for v in rep.violations), rep.violations
    assert not judge(listen(Recogniser(vocab, RATE), sc.audio), sc).violations


def test_vocabulary_takes_utterances_and_script_dicts_once(said: list[Utterance]) -> None:
    v = Vocabulary()
    both = speech.synthesize(SENTENCES[:2])
    assert [e.text for e in v.add(both)] == SENTENCES[:2]
    assert v.add(said[0]) == [] and v.add(both.script()) == []  # the same audio: known already
    assert len(v.entries[0].views) == 4  # 10 ms windows at four 2.5 ms phases
    legacy = both.script()
    for s in legacy["sentences"]:
        del s["levels"]  # an older script: cut from the whole envelope, one phase
    other = Vocabulary()
    assert len(other.add(legacy)) == 2 and len(other.entries[1].views) == 1
    assert abs(len(other.entries[1].views[0].env) - len(v.entries[1].views[0].env)) <= 1
    with pytest.raises(ValueError, match="no envelope"):
        Vocabulary().add({"sentences": [{"text": "x", "start": 0, "end": 1, "words": []}]})


# --- helpers -----------------------------------------------------------------------------------


def _sentences(
    sc: Scenario, said: list[Utterance], unknown: list[Utterance]
) -> list[Utterance]:
    by_text = {u.text: u for u in said + unknown}
    out, current = [], -1
    for w in sc.words:
        if w.sentence != current:
            current = w.sentence
            text = " ".join(x.text for x in sc.words if x.sentence == current)
            out.append(by_text[text])
    return out
