"""SentenceBudget on Deepgram-style streams: cumulative interims, the recipe baseline, properties
and a deterministic check that per-event work does not grow with the turn."""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import testkit.recipe_buffer as recipe_module
from services.interrupter import policy
from services.interrupter.policy import SentenceBudget, count_sentences
from testkit.golden_rules import SENTENCE_POOL, SttEvent, build_monologue, deepgram_stream
from testkit.recipe_buffer import RecipeBuffer


class Budget(Protocol):
    def feed(self, text: str, is_final: bool, now: float | None = None) -> bool: ...
    def reset(self) -> None: ...
    @property
    def sentences(self) -> int: ...
    @property
    def words(self) -> int: ...


# 31 words, 3 sentences, abbreviations mid-sentence; segments of 7/8/9/7 words end at words
# 7 ("a.m."), 15, 24 and 31, while sentences end at words 10, 20 and 31.
MONOLOGUE = (
    "I met Dr. Patel at 9 a.m. on Monday morning. She said the U.S. lab had lost my samples "
    "again. So now we have to repeat the whole test next week."
)
SEGMENTS = (7, 8, 9, 7)


def monologue_events() -> list[SttEvent]:
    return deepgram_stream(MONOLOGUE, random.Random(0), segment_sizes=SEGMENTS)


def scenario_failures(make: Callable[..., Budget]) -> list[str]:
    """Run the cumulative-interim scenarios; describe everything that went wrong."""
    events = monologue_events()
    failures: list[str] = []

    counter = make(max_sentences=None)
    for event in events:
        counter.feed(event.text, event.is_final, event.t)
    if counter.words != 31:
        failures.append(f"words {counter.words} != 31")
    if counter.sentences != 3:
        failures.append(f"sentences {counter.sentences} != 3")

    # the trip must come on the interim that carries the third sentence's final period
    expected = next(i for i, e in enumerate(events) if e.text.endswith("next week."))
    budget = make(max_sentences=3)
    trips = [i for i, e in enumerate(events) if budget.feed(e.text, e.is_final, e.t)]
    if trips != [expected]:
        failures.append(f"trips at events {trips}, expected [{expected}]")

    # a word limit must not be reached early by re-counting the growing interims
    budget = make(max_sentences=None, max_words=31)
    trips = [i for i, e in enumerate(events) if budget.feed(e.text, e.is_final, e.t)]
    if trips != [expected]:
        failures.append(f"word limit trips at {trips}, expected [{expected}]")
    return failures


def test_cumulative_interims_scenario() -> None:
    assert scenario_failures(SentenceBudget) == []


def test_the_same_scenarios_fail_for_the_recipe_buffer() -> None:
    # proof that the scenarios can fail: the recipe appends every cumulative interim
    failures = scenario_failures(RecipeBuffer)
    assert len(failures) == 4, failures
    recipe = RecipeBuffer(max_sentences=None)
    for event in monologue_events():
        recipe.feed(event.text, event.is_final, event.t)
    assert recipe.words > 4 * 31  # 137 on this stream
    assert recipe.sentences > 3


def test_trip_event_details() -> None:
    events = monologue_events()
    budget = SentenceBudget()
    for index, event in enumerate(events):
        tripped = budget.feed(event.text, event.is_final, event.t)
        if event.text.endswith("next"):  # 30 words: third sentence not terminated yet
            assert (budget.sentences, tripped) == (2, False)
        if tripped:
            assert not event.is_final
            assert budget.words == 31
            assert budget.text == MONOLOGUE
            assert index == len(events) - 2  # the last interim, before the final
    assert budget.tripped_by == "sentences"


def test_abbreviation_ending_a_final_does_not_count_as_a_sentence() -> None:
    events = monologue_events()
    budget = SentenceBudget(max_sentences=None)
    for event in events[:8]:  # first segment, its final ends with "9 a.m."
        budget.feed(event.text, event.is_final, event.t)
    assert events[7].is_final and events[7].text.endswith("a.m.")
    assert budget.sentences == 0


# --- properties ---------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def pool_streams(draw: st.DrawFn) -> tuple[list[SttEvent], int]:
    picks = draw(st.lists(st.integers(0, len(SENTENCE_POOL) - 1), min_size=1, max_size=14))
    seed = draw(st.integers(0, 2**32 - 1))
    low = draw(st.integers(1, 6))
    high = draw(st.integers(low, 16))
    step = draw(st.integers(1, 3))
    raw_rate = draw(st.sampled_from([0.0, 0.0, 0.3]))
    text = " ".join(SENTENCE_POOL[i] for i in picks)
    events = deepgram_stream(
        text,
        random.Random(seed),
        segment_words=(low, high),
        interim_step=(1, step),
        raw_interim_rate=raw_rate,
    )
    return events, len(picks)


@PROPERTY_SETTINGS
@given(stream=pool_streams(), limit=st.integers(1, 10))
def test_incremental_count_matches_one_go_and_trips_once(
    stream: tuple[list[SttEvent], int], limit: int
) -> None:
    events, spoken = stream
    budget = SentenceBudget(max_sentences=limit)
    trips: list[int] = []
    first_reach: int | None = None
    for index, event in enumerate(events):
        if budget.feed(event.text, event.is_final, event.t):
            trips.append(index)
        transcript = budget.text
        assert budget.sentences == count_sentences(transcript)
        assert budget.words == len(transcript.split())
        if first_reach is None and budget.sentences >= limit:
            first_reach = index
    assert budget.sentences == spoken
    assert budget.text == " ".join(e.text for e in events if e.is_final)
    assert trips == ([] if first_reach is None else [first_reach])
    # pool sentences never look finished before their end, so the count only reaches the
    # limit when the spoken sentences do
    assert bool(trips) == (spoken >= limit)


# Tokens that stress the rules: abbreviations, initials, list markers, quotes, ellipses, case.
TRICKY_TOKENS = (
    "Mr.", "Dr.", "U.S.", "p.m.", "etc.", "e.g.", "1.", "2.", "J.", "R.", "I", "A", "hello",
    "world.", "Yes!", "why?", "really?!", '"Stop."', '"Go?"', "(see", "appendix.)", "Then",
    "the", "and", "wait...", "so…", "No.", "5", "3.14.", "a@b.com.", "St.", "Louis", "Most",
    "it", "He", "Navy", "on", "Jan.", "$9.99", "x" * 30 + ".", "Inc.", "Ph.D.", "'quoted.'",
)  # fmt: skip


@st.composite
def token_streams(draw: st.DrawFn) -> list[tuple[str, bool]]:
    tokens = draw(st.lists(st.sampled_from(TRICKY_TOKENS), min_size=1, max_size=60))
    events: list[tuple[str, bool]] = []
    pos = 0
    while pos < len(tokens):
        size = draw(st.integers(1, 12))
        segment = tokens[pos : pos + size]
        # interims need not be prefixes of the final: STT revises its hypotheses
        for _ in range(draw(st.integers(0, 3))):
            cut = draw(st.integers(1, len(segment)))
            events.append((" ".join(segment[:cut]), False))
        events.append((" ".join(segment), True))
        pos += size
    return events


@PROPERTY_SETTINGS
@given(events=token_streams(), small_tail=st.booleans())
def test_incremental_equals_one_go_on_tricky_tokens(
    events: list[tuple[str, bool]], small_tail: bool
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        if small_tail:  # exercise tail trimming on short texts
            patch.setattr(policy, "_TAIL_MAX_CHARS", 40)
            patch.setattr(policy, "_TAIL_KEEP_CHARS", 30)
        budget = SentenceBudget(max_sentences=None)
        for text, is_final in events:
            budget.feed(text, is_final, now=0.0)
            assert budget.sentences == count_sentences(budget.text)
            assert budget.words == len(budget.text.split())


# --- work per event (deterministic, not timing) ---------------------------------------------------


@contextmanager
def scanned_chars(module: object, name: str) -> Iterator[list[int]]:
    """Record the length of the text handed to ``module.name`` (the real counting routine)."""
    sizes: list[int] = []
    original = getattr(module, name)

    def recording(text: str, *args: object) -> object:
        sizes.append(len(text))
        return original(text, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, name, recording)
        yield sizes


def long_stream(minutes: float, seed: int = 7) -> list[SttEvent]:
    rng = random.Random(seed)
    text, _ = build_monologue(int(150 * minutes), rng)
    return deepgram_stream(text, rng)


def feed_and_measure(make: Callable[[], Budget], module: object, name: str) -> list[int]:
    budget = make()
    per_event: list[int] = []
    with scanned_chars(module, name) as sizes:
        for event in long_stream(10):
            before = len(sizes)
            budget.feed(event.text, event.is_final, event.t)
            per_event.append(sum(sizes[before:]))
    return per_event


def test_scanned_chars_per_event_do_not_grow_with_the_turn() -> None:
    per_event = feed_and_measure(lambda: SentenceBudget(max_sentences=None), policy, "_scan")
    assert len(per_event) > 1500  # ten minutes of speech
    longest_sentence = max(len(s) for s in SENTENCE_POOL)
    longest_segment = 12 * max(len(w) for s in SENTENCE_POOL for w in s.split()) + 11
    # the scan covers at most one unfinished sentence plus the current segment, at any minute
    assert max(per_event) <= longest_sentence + 1 + longest_segment
    early, late = per_event[:300], per_event[-300:]
    assert statistics.mean(late) <= 1.5 * statistics.mean(early)


def test_the_same_check_catches_the_recipe_growing() -> None:
    per_event = feed_and_measure(
        lambda: RecipeBuffer(max_sentences=None), recipe_module, "recipe_count"
    )
    early, late = per_event[:300], per_event[-300:]
    assert statistics.mean(late) > 10 * statistics.mean(early)


def test_scanned_chars_stay_bounded_without_any_punctuation() -> None:
    # an STT without punctuation never yields a sentence end: the tail is trimmed instead
    rng = random.Random(3)
    words = " ".join(rng.choice(["so", "and", "then", "we", "went", "there"]) for _ in range(3000))
    budget = SentenceBudget(max_sentences=None)
    with scanned_chars(policy, "_scan") as sizes:
        for event in deepgram_stream(words, rng):
            budget.feed(event.text, event.is_final, event.t)
    assert budget.words == 3000 and budget.sentences == 0
    assert max(sizes) <= policy._TAIL_MAX_CHARS + 1 + 12 * 6 + 11


@pytest.mark.parametrize("segment", [1, 2, 3, 5])
def test_tail_trimming_keeps_the_count_exact(segment: int) -> None:
    # sweep where the trim cut falls relative to tokens whose class depends on their position
    tricky = ["Mr.", "Smith"] + ["w"] * 12 + ["J.", "R.", "Lee", "1.", "Then", "left.", "2.", "A"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(policy, "_TAIL_MAX_CHARS", 40)
        patch.setattr(policy, "_TAIL_KEEP_CHARS", 30)
        for filler in range(60):
            tokens = ["w"] * filler + tricky + ["w"] * 3
            budget = SentenceBudget(max_sentences=None)
            for start in range(0, len(tokens), segment):
                chunk = tokens[start : start + segment]
                for cut in range(1, len(chunk) + 1):
                    budget.feed(" ".join(chunk[:cut]), False, now=0.0)
                    assert budget.sentences == count_sentences(budget.text), (filler, start)
                budget.feed(" ".join(chunk), True, now=0.0)
                assert budget.sentences == count_sentences(budget.text), (filler, start)
