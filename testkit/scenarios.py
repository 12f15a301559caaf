"""Natural speech scenarios: what a person says, drawn from realistic ranges with a seed.

A monologue is 7-12 sentences of 4-25 words, separated by pauses of 0.2-1.5 s (people pause half
a second to over a second between sentences). A scenario states what was spoken and when its
voice started and ended; it never says what the STT should return: the fake STT is told which
sentences exist (`vocabulary`) and transcribes what it hears.

    mono = monologue(random.Random(7))
    mono.speech                      # one Utterance: the sentences with their pauses
    mono.vocabulary                  # each sentence as its own Utterance, for the STT fake
    mono.voice_end(2)                # end of the voice of sentence 3 (seconds from sample 0)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from testkit.speech import synthesize
from testkit.utterance import Sentence, Utterance, shift_sentence, silence

# Everyday spoken sentences, 4 to 25 words each, one sentence each by any rule (abbreviations
# and numbers inside them keep the counting honest).
SENTENCES: tuple[str, ...] = (
    "I need some help.",
    "My flight got cancelled.",
    "The weather was awful all week.",
    "So I called the airline on Monday.",
    "They put me on hold for almost an hour.",
    "Then a man named Mr. Ortiz finally picked up the phone.",
    "He said the next free seat was on Thursday at 6 p.m.",
    "That would mean missing my sister's wedding, which I really cannot do.",
    "I asked whether there was any other airline they could book me on.",
    "He told me that was not possible with my kind of ticket.",
    "My ticket cost almost $400.00, and I bought it three months ago.",
    "Honestly, I think that is a terrible way to treat a customer who has flown with them for "
    "years.",
    "I also tried the website, but it kept showing an error page.",
    "The app was no better.",
    "My friend Dana said I should ask for a refund instead.",
    "But a refund does not get me to the wedding on Saturday.",
    "The wedding is in a small town about two hours from the airport.",
    "I already paid for the hotel and the rental car.",
    "The hotel will not refund anything after Wednesday.",
    "And the rental car company charges a fee if I change the dates.",
    "I could take the train, but it takes eleven hours and leaves at 5 a.m.",
    "My back would not survive eleven hours on a train.",
    "I have been planning this trip since January, and now everything is falling apart in the "
    "last week before it.",
    "My mother keeps calling to ask whether I have sorted it out yet.",
    "I told her I am working on it.",
    "She thinks I should just drive the whole way.",
    "Driving would take two full days, and I would have to take extra time off work, which my "
    "manager will not like.",
    "Work is already busy because two people on my team are on leave.",
    "I do not even know who to complain to at this point.",
    "Is there anything you can do?",
    "Maybe there is a partner airline with a seat on Friday.",
    "I would even take a flight with a connection if it gets me there by Saturday morning.",
    "I really appreciate you listening to all of this.",
    "It has been a long and frustrating week, and I just want to get to the wedding without "
    "losing the money I already spent.",
)
# A fixed six-sentence story, spoken by the component cut-in tests, the recogniser's unit tests
# and (its first four sentences) the cut-in benchmark.
WEEKEND = (
    "I want to tell you about my weekend in the mountains.",
    "We drove up on Friday night and the roads were icy.",
    "On Saturday we hiked to the lake near the old cabin.",
    "My brother forgot the tent poles, so we slept in the car.",
    "Then on Sunday morning it started to snow again.",
    "Anyway, we got home late and everyone was exhausted.",
)
# The e2e cut-in caller's story (the browser and the compose stack tell it too).
MOUNTAIN_TRIP = (
    "I want to tell you about my weekend trip to the mountains.",
    "We left early on Saturday morning and drove for three hours.",
    "The weather was cold but the sky was perfectly clear.",
    "We hiked up to a small lake and had our lunch by the water.",
    "In the afternoon it started to snow a little bit.",
    "We drove back home in the evening, tired but very happy.",
)
WORDS_PER_SENTENCE = (4, 25)
SENTENCES_PER_MONOLOGUE = (7, 12)
PAUSE_S = (0.2, 1.5)
# a caller speaks again 0.5-1.5 s after the agent has stopped
REPLY_WAIT_S = (0.5, 1.5)


@dataclass(frozen=True)
class Monologue:
    speech: Utterance  # the whole monologue, pauses included, no lead-in or trailing silence
    vocabulary: tuple[Utterance, ...]  # each sentence alone: what the STT fake may recognise
    pauses: tuple[float, ...]  # silence after sentence i (len = sentences - 1)

    @property
    def sentences(self) -> tuple[Sentence, ...]:
        return self.speech.sentences

    def voice_end(self, i: int) -> float:
        """End of the voice of sentence i (0-based), seconds from the start of `speech`."""
        return self.speech.sentences[i].end

    def voice_start(self, i: int) -> float:
        return self.speech.sentences[i].start

    def sentence_ending_after(self, t: float) -> int:
        """Index of the first sentence whose voice ends at or after `t` (len if none)."""
        return next((i for i, s in enumerate(self.sentences) if s.end >= t), len(self.sentences))

    def describe(self) -> str:
        lens = [len(s.words) for s in self.sentences]
        return (f"{len(lens)} sentences of {lens} words, pauses "
                f"{[round(p, 2) for p in self.pauses]} s")


def monologue(rng: random.Random, *, sentences: int | None = None,
              pause_s: float | Sequence[float] | None = None) -> Monologue:
    """A monologue drawn from the ranges above; `pause_s` fixes every pause (for sweeps)."""
    n = sentences or rng.randint(*SENTENCES_PER_MONOLOGUE)
    texts = rng.sample(SENTENCES, n)
    if pause_s is None:
        return said(rng, texts)
    if isinstance(pause_s, int | float):
        pauses = [float(pause_s)] * (n - 1)
    else:
        pauses = [float(p) for p in pause_s]
    return join([synthesize([t]) for t in texts], pauses)


def said(rng: random.Random, texts: Sequence[str]) -> Monologue:
    """Given sentences, in this order, with pauses drawn from PAUSE_S between them."""
    return join([synthesize([t]) for t in texts], [rng.uniform(*PAUSE_S) for _ in texts[1:]])


def reply_wait(rng: random.Random) -> float:
    """How long a caller waits after the agent stops before speaking again."""
    return rng.uniform(*REPLY_WAIT_S)


def join(parts: Sequence[Utterance], pauses: Sequence[float]) -> Monologue:
    """Sentences spoken one after another with the given silences between them."""
    if len(pauses) != len(parts) - 1:
        raise ValueError("one pause between each two sentences")
    rate = parts[0].sample_rate
    pcm: list[np.ndarray] = []
    sentences: list[Sentence] = []
    t = 0.0
    for i, part in enumerate(parts):
        # each part is trimmed speech (see speech.synthesize): its voice is all of it
        a, b = round(part.onset * rate), round(part.sentences[-1].end * rate)
        voice = part.pcm[a:b]
        shift = t - part.onset
        sentences.extend(shift_sentence(s, shift) for s in part.sentences)
        pcm.append(voice)
        t += len(voice) / rate
        if i < len(pauses):
            pcm.append(silence(pauses[i], rate))
            t += len(pcm[-1]) / rate
    speech = Utterance(pcm=np.concatenate(pcm), sample_rate=rate, sentences=tuple(sentences))
    return Monologue(speech, tuple(parts), tuple(pauses))


def check_pool() -> None:
    """The pool honours its ranges (run by the unit tests)."""
    for text in SENTENCES:
        n = len(text.split())
        if not WORDS_PER_SENTENCE[0] <= n <= WORDS_PER_SENTENCE[1]:
            raise AssertionError(f"{n} words: {text}")
