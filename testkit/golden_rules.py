"""Our English sentence-boundary cases and a Deepgram-style transcript stream generator.

The cases are our own, written in the spirit of the well-known "Golden Rules" for sentence
boundary detection but shaped like smart-formatted STT output (punctuated, capitalised). Each
is a complete text; the expected count treats a final terminal run as closing the last sentence.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GoldenCase:
    name: str
    text: str
    sentences: int


GOLDEN_RULES: tuple[GoldenCase, ...] = (
    # easy ones
    GoldenCase("simple_period_question", "Hello there. How are you today?", 2),
    GoldenCase("simple_exclamation", "I love this place! We should come back next summer.", 2),
    GoldenCase("single_sentence", "This is just one sentence about the weather.", 1),
    GoldenCase("three_plain", "I woke up late. The bus was gone. So I walked to work.", 3),
    # titles and initials
    GoldenCase("title_mr", "Mr. Okafor called the office. He wants a refund.", 2),
    GoldenCase("titles_dr_mrs", "Dr. Lindqvist and Mrs. Patel met for lunch at noon.", 1),
    GoldenCase("initials", "The form was signed by Mr. J. K. Harlow. Nobody had met him.", 2),
    GoldenCase("initial_middle_name", "I voted for George W. Miller in the last election.", 1),
    # U.S. and other dotted acronyms
    GoldenCase("us_lowercase_next", "She moved to the U.S. last spring with her kids.", 1),
    GoldenCase("us_then_question", "He grew up in the U.S. How about you?", 2),
    GoldenCase("us_proper_noun_next", "My uncle served in the U.S. Navy for twenty years.", 1),
    GoldenCase("us_then_plain_word", "We stayed in the U.S. Most of our family lives there.", 2),
    # a.m. / p.m.
    GoldenCase("am_continuation", "The meeting starts at 9 a.m. and ends before lunch.", 1),
    GoldenCase("pm_then_capital", "The shop closes at 6 p.m. Please come earlier.", 2),
    GoldenCase("pm_at_end", "Our flight lands at 11 p.m.", 1),
    GoldenCase(
        "am_pm_then_title",
        "At 5 a.m. Mr. Reyes went to the bank. He left the bank at 6 P.M. Mr. Reyes then went "
        "to the store.",
        3,
    ),
    GoldenCase("pm_upper_then_capital", "The store opens at 9 A.M. Please be on time.", 2),
    GoldenCase("pm_then_title", "The train left at 7 p.m. Dr. Singh was on it.", 2),
    # e.g. / i.e. / etc.
    GoldenCase("eg_ie", "Bring something small, e.g. a book. Use cash, i.e. no cards.", 2),
    GoldenCase("etc_continuation", "We bought apples, pears, etc. and went home.", 1),
    GoldenCase("etc_then_sentence", "We bought apples, pears, etc. Then we cooked dinner.", 2),
    # money, decimals, numbers
    GoldenCase("money", "The ticket costs $100.00 per person. That includes lunch.", 2),
    GoldenCase("decimals", "Pi is about 3.14 and the rate went up by 2.5 percent.", 1),
    GoldenCase("number_at_end", "My order number ends in 42. Can you check it?", 2),
    # e-mail and URLs
    GoldenCase("email", "Write to jane.doe@example.com for details. She answers fast.", 2),
    GoldenCase(
        "url",
        "The guide is at https://docs.example.org/v2/start.html?lang=en now. Read it first.",
        2,
    ),
    # ellipses
    GoldenCase("ellipsis_then_capital", "I wasn't sure... Maybe we should wait.", 2),
    GoldenCase("ellipsis_lowercase", "Well… that depends on the weather.", 1),
    GoldenCase("ellipsis_at_end", "And then it just stopped…", 1),
    GoldenCase(
        "ellipsis_spaced",
        "One habit was somewhat weakened . . . was that of combining words into compounds. . . . "
        "The practice was not abandoned. . . .",
        2,
    ),
    GoldenCase(
        "ellipsis_spaced_then_i",
        "I wasn't really . . . well, what I mean...see . . . the thing is . . . I didn't mean it.",
        1,
    ),
    GoldenCase("ellipsis_four_dots", "I never meant that.... She left the store.", 2),
    # ?! and !!
    GoldenCase("interrobang_double_bang", "Are you serious?! That's amazing!!", 2),
    # quotations and parentheses after terminal punctuation
    GoldenCase("quote_then_sentence", 'He said "Stop." Then he walked away.', 2),
    GoldenCase("quote_lowercase", '"Is anyone home?" she asked quietly.', 1),
    GoldenCase("quote_question_then_i", 'She asked, "Where are you going?" I did not answer.', 2),
    GoldenCase(
        "paren_after_period", "The numbers were clear. (See the appendix.) Everyone agreed.", 3
    ),
    # numbered lists
    GoldenCase("numbered_list", "Here is the plan. 1. Pack the car. 2. Drive to the lake.", 3),
    # lowercase continuation after abbreviations, mixed
    GoldenCase("inc_lowercase", "He works for Acme Inc. and lives near the station.", 1),
    GoldenCase(
        "mixed_hard", "Call me at 10 a.m. tomorrow… no, make it 11 a.m. on Friday. Thanks!", 2
    ),
)

assert len({case.name for case in GOLDEN_RULES}) == len(GOLDEN_RULES) == 40

# --- monologues ---------------------------------------------------------------------------------

# Single spoken sentences, smart-formatted the way STT returns them. Each counts as exactly one
# sentence in any order; mid-sentence abbreviations, numbers and addresses keep counting honest.
SENTENCE_POOL: tuple[str, ...] = (
    "I called the bank on Monday morning.",
    "They told me my card was blocked for no reason.",
    "Now I need a new one before my trip next week.",
    "Dr. Patel said the results would take about three days.",
    "My landlord, Mr. Okafor, still hasn't fixed the heating.",
    "The train leaves at 7:45 a.m. from platform two.",
    "We paid $12.50 for a sandwich, which is ridiculous.",
    "The rent went up by 3.5 percent this year.",
    "You can reach me at sam.lee@example.com any time.",
    "The form is on example.org under the support page.",
    "Honestly, I don't know what else to do.",
    "Can you help me with that?",
    "That was the worst customer service I have ever had!",
    "My sister moved to the U.S. last year for work.",
    "She works for Acme Inc. and travels a lot.",
    "We brought snacks, drinks, etc. and still ran out.",
    "The package weighs 2.4 kg and it still hasn't arrived.",
    "I waited on hold for 45 minutes yesterday.",
    "Then the call dropped and I had to start again.",
    "Is that normal for your company?",
    "I've been a customer for over ten years.",
    "My account number is 48213, if that helps.",
    "The app keeps crashing when I open the settings.",
    "I tried reinstalling it twice already.",
    "Prof. Nguyen recommended your service to me.",
    "It was fine until the update in March.",
    "Now nothing loads and the screen just stays white.",
    "Why would anyone ship it like that?",
    "I even sent screenshots to your support team.",
    "Nobody has answered me so far.",
    "My neighbour has the same problem, by the way.",
    "We both use the same router from St. Louis Telecom.",
    "The technician, J. R. Alvarez, came by on Friday.",
    "He said the cable was fine.",
    "So the problem must be on your side.",
    "I really need this fixed before the weekend.",
    "Otherwise I'll have to cancel my subscription.",
    "I'm not trying to be difficult here.",
    "I just want it to work like it used to.",
    "Let me know what you need from me.",
)


def build_monologue(n_words: int, rng: random.Random) -> tuple[str, int]:
    """Random pool sentences until at least ``n_words`` words: (text, number of sentences)."""
    sentences: list[str] = []
    words = 0
    while words < n_words:
        sentence = rng.choice(SENTENCE_POOL)
        sentences.append(sentence)
        words += len(sentence.split())
    return " ".join(sentences), len(sentences)


# --- Deepgram-style event streams ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SttEvent:
    text: str
    is_final: bool
    t: float  # seconds since the user started speaking


_RAW_STRIP_RE = re.compile(r"[.,!?…;:\"“”]+")


def _raw(words: list[str]) -> str:
    # an early, unformatted hypothesis: lowercase, no punctuation ("i called the bank on")
    return " ".join(w for w in (_RAW_STRIP_RE.sub("", w).lower() for w in words) if w)


def deepgram_stream(
    monologue: str,
    rng: random.Random,
    *,
    words_per_minute: float = 150.0,
    segment_words: tuple[int, int] = (3, 12),
    interim_step: tuple[int, int] = (1, 1),
    raw_interim_rate: float = 0.0,
    segment_sizes: Sequence[int] | None = None,
) -> list[SttEvent]:
    """Turn a monologue into ``user_input_transcribed``-like events.

    Words are cut into segments of random length (so finals do not line up with sentence ends).
    Each segment is emitted as growing cumulative interims (``interim_step`` words at a time, the
    last interim holding the whole segment) and then a final with the segment's text. With
    ``raw_interim_rate`` > 0 that share of interims comes lowercase and unpunctuated, as early
    hypotheses sometimes do; finals are always formatted. ``segment_sizes`` fixes the
    segmentation (cycled) instead of drawing it at random.
    """
    words = monologue.split()
    seconds_per_word = 60.0 / words_per_minute
    events: list[SttEvent] = []
    pos = 0
    fixed = itertools.cycle(segment_sizes) if segment_sizes else None
    while pos < len(words):
        wanted = next(fixed) if fixed else rng.randint(*segment_words)
        size = min(wanted, len(words) - pos)
        segment = words[pos : pos + size]
        shown = 0
        while shown < size:
            shown = min(size, shown + rng.randint(*interim_step))
            prefix = segment[:shown]
            raw = raw_interim_rate and rng.random() < raw_interim_rate
            text = _raw(prefix) if raw else " ".join(prefix)
            events.append(SttEvent(text, False, (pos + shown) * seconds_per_word))
        pos += size
        events.append(SttEvent(" ".join(segment), True, pos * seconds_per_word + 0.05))
    return events
