"""Benchmark of the interrupter's counting policy against the LiveKit recipe's buffer.

    python -m bench.policy_bench [--quick] [--json PATH]

Measures, on Deepgram-style streams of a ~150 words/minute monologue:
  * per-event cost (median µs) at minutes 1, 5 and 10 of one user turn, ours vs the recipe,
    with limits disabled so both keep counting for the whole turn;
  * count fidelity at the end of the turn (sentences and words counted / spoken);
  * golden-rules accuracy (x/40) of our segmenter, the recipe regex, LiveKit's blingfire
    tokenizer and pySBD, plus each one's cost to segment ~2,300 characters in one go.
``run(quick)`` returns the same figures as a dict for a suite-wide benchmark.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from services.interrupter.policy import SentenceBudget, count_sentences
from testkit.golden_rules import (
    GOLDEN_RULES,
    SENTENCE_POOL,
    SttEvent,
    build_monologue,
    deepgram_stream,
)
from testkit.recipe_buffer import RecipeBuffer, recipe_count

MINUTES = (1, 5, 10)
WINDOW_SECONDS = 30.0  # per-event costs are sampled over [minute, minute + 30 s)
WORDS_PER_MINUTE = 150.0


class _Budget(Protocol):
    def feed(self, text: str, is_final: bool, now: float | None = None) -> bool: ...
    @property
    def sentences(self) -> int: ...
    @property
    def words(self) -> int: ...


def _monologue(seed: int) -> tuple[list[SttEvent], int, int]:
    """A stream long enough to sample minute 10: (events, sentences spoken, words spoken)."""
    rng = random.Random(seed)
    target_words = int(WORDS_PER_MINUTE * (max(MINUTES) + WINDOW_SECONDS / 60 + 0.1))
    text, n_sentences = build_monologue(target_words, rng)
    events = deepgram_stream(text, rng, words_per_minute=WORDS_PER_MINUTE)
    return events, n_sentences, len(text.split())


def _timed_pass(make: Callable[[], _Budget], events: list[SttEvent]) -> tuple[list[int], _Budget]:
    budget = make()
    costs: list[int] = []
    clock = time.perf_counter_ns
    for event in events:
        start = clock()
        budget.feed(event.text, event.is_final, event.t)
        costs.append(clock() - start)
    return costs, budget


def _per_event(quick: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    passes = 2 if quick else 8
    samples: dict[str, dict[int, list[int]]] = {
        name: {m: [] for m in MINUTES} for name in ("ours", "recipe")
    }
    fidelity: dict[str, Any] = {}
    makers: dict[str, Callable[[], _Budget]] = {
        "ours": lambda: SentenceBudget(max_sentences=None),
        "recipe": lambda: RecipeBuffer(max_sentences=None),
    }
    gc_was_enabled = gc.isenabled()
    gc.disable()  # keep collector pauses out of the per-event samples
    try:
        for seed in range(passes):
            events, spoken_sentences, spoken_words = _monologue(seed)
            for name, make in makers.items():
                costs, budget = _timed_pass(make, events)
                for minute in MINUTES:
                    low, high = minute * 60.0, minute * 60.0 + WINDOW_SECONDS
                    samples[name][minute].extend(
                        c for c, e in zip(costs, events, strict=True) if low <= e.t < high
                    )
                if seed == 0:
                    fidelity[name] = {
                        "sentences_counted": budget.sentences,
                        "sentences_spoken": spoken_sentences,
                        "sentence_ratio": round(budget.sentences / spoken_sentences, 3),
                        "words_counted": budget.words,
                        "words_spoken": spoken_words,
                        "word_ratio": round(budget.words / spoken_words, 3),
                    }
            gc.collect()
    finally:
        if gc_was_enabled:
            gc.enable()
    per_event: dict[str, Any] = {}
    for minute in MINUTES:
        ours = statistics.median(samples["ours"][minute]) / 1000
        recipe = statistics.median(samples["recipe"][minute]) / 1000
        per_event[f"minute_{minute}"] = {
            "ours_us": round(ours, 2),
            "recipe_us": round(recipe, 2),
            "recipe_over_ours": round(recipe / ours, 1),
            "events": len(samples["ours"][minute]),
        }
    return per_event, fidelity


def _segmenters() -> dict[str, Callable[[str], int] | str]:
    """Sentence counters for whole texts; a string instead explains why one is unavailable."""
    found: dict[str, Callable[[str], int] | str] = {
        "ours": lambda text: count_sentences(text, complete=True),
        "recipe_regex": recipe_count,
    }
    try:
        from livekit.agents.tokenize import blingfire

        # min_sentence_len=1: pure segmentation (the default 20 merges short sentences forward)
        tokenizer = blingfire.SentenceTokenizer(min_sentence_len=1)
        found["blingfire"] = lambda text: len(tokenizer.tokenize(text))
        default_tokenizer = blingfire.SentenceTokenizer()
        found["blingfire_default"] = lambda text: len(default_tokenizer.tokenize(text))
    except ImportError as exc:  # optional: the benchmark still runs without livekit-agents
        found["blingfire"] = f"unavailable: {exc}"
    try:
        import pysbd

        segmenter = pysbd.Segmenter(language="en", clean=False)
        found["pysbd"] = lambda text: sum(1 for s in segmenter.segment(text) if s.strip())
    except ImportError as exc:
        found["pysbd"] = f"unavailable: {exc}"
    return found


def _golden_and_one_shot(quick: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    text = ""
    rng = random.Random(42)
    while len(text) < 2300:
        text = f"{text} {rng.choice(SENTENCE_POOL)}".strip()
    reps = 3 if quick else 15
    golden: dict[str, Any] = {}
    one_shot: dict[str, Any] = {}
    for name, count in _segmenters().items():
        if isinstance(count, str):
            golden[name] = {"error": count}
            continue
        misses = [c.name for c in GOLDEN_RULES if count(c.text) != c.sentences]
        golden[name] = {
            "correct": len(GOLDEN_RULES) - len(misses),
            "total": len(GOLDEN_RULES),
            "misses": misses,
        }
        count(text)  # warm-up (regex compilation, lazy imports)
        times = []
        for _ in range(reps):
            start = time.perf_counter_ns()
            count(text)
            times.append(time.perf_counter_ns() - start)
        one_shot[name] = {"chars": len(text), "median_us": round(statistics.median(times) / 1000)}
    return golden, one_shot


def run(quick: bool = False) -> dict[str, Any]:
    """Run the whole benchmark and return its figures."""
    started = time.perf_counter()
    per_event, fidelity = _per_event(quick)
    golden, one_shot = _golden_and_one_shot(quick)
    return {
        "benchmark": "interrupter_policy",
        "quick": quick,
        "words_per_minute": WORDS_PER_MINUTE,
        "per_event": per_event,
        "fidelity": fidelity,
        "golden": golden,
        "one_shot_segmentation": one_shot,
        "seconds": round(time.perf_counter() - started, 2),
    }


def format_table(result: dict[str, Any]) -> str:
    lines = [
        "per-event cost (median µs, limits off, ~150 wpm Deepgram-style stream)",
        f"  {'minute':>6}  {'ours':>9}  {'recipe':>9}  {'recipe/ours':>11}  {'events':>6}",
    ]
    for minute in MINUTES:
        row = result["per_event"][f"minute_{minute}"]
        lines.append(
            f"  {minute:>6}  {row['ours_us']:>9.2f}  {row['recipe_us']:>9.2f}"
            f"  {row['recipe_over_ours']:>10.1f}x  {row['events']:>6}"
        )
    lines.append("count fidelity at the end of the turn (counted / spoken)")
    for name, row in result["fidelity"].items():
        lines.append(
            f"  {name:<8} sentences {row['sentences_counted']:>5}/{row['sentences_spoken']:<5}"
            f" = {row['sentence_ratio']:<7}"
            f" words {row['words_counted']:>6}/{row['words_spoken']:<5} = {row['word_ratio']}"
        )
    lines.append("golden rules (x/40) and one-shot segmentation of ~2,300 chars")
    for name, row in result["golden"].items():
        if "error" in row:
            lines.append(f"  {name:<18} {row['error']}")
            continue
        cost = result["one_shot_segmentation"][name]["median_us"]
        misses = ", ".join(row["misses"]) or "-"
        lines.append(
            f"  {name:<18} {row['correct']:>2}/{row['total']}  {cost:>7} µs  misses: {misses}"
        )
    lines.append(f"took {result['seconds']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer passes (under 10 s)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = run(args.quick)
    print(format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
