"""Pure interruption policy: when has the user talked for too long in this turn?

Plain Python on purpose (no LiveKit, no NLP library): the agent wiring feeds it the
``user_input_transcribed`` events, and tests and benchmarks drive it alone.

Two ideas make it both accurate and cheap:

* The turn transcript is "all finals + the latest interim". Interims are cumulative within one
  STT segment, so each one *replaces* the previous interim instead of being appended.
* Sentence boundaries are decided from local context only (the token before the terminal
  punctuation and the word after it). A boundary followed by a word inside committed finals can
  never change again, so finals are segmented once and only the unfinished tail (the text after
  the last certain boundary) is re-scanned with the current interim on each event. The work per
  event is bounded by tail + interim length, not by the length of the turn.
"""

from __future__ import annotations

import math
import re
import time
from typing import Literal

__all__ = ["SentenceBudget", "TrippedBy", "count_sentences"]

TrippedBy = Literal["sentences", "words", "seconds"]

# --- sentence boundary rules -------------------------------------------------------------------

# A terminal run ("." "?!" "..." "…"), optional closing quotes/brackets, then a space or the end.
# Requiring the space keeps "3.14", "U.S.A", "jane.doe@x.com" and "a.b/c?d=e" out cheaply.
_CANDIDATE_RE = re.compile(r"([.!?…]+)([\"'”’»)\]]*)(?= |$)")
_OPENERS = "\"'“‘([{«¿¡"
_TRAILING_PUNCT = ",;:.!?…\"'”’»)]}"
# Dotted short groups: "u.s", "a.m", "d.c", "ph.d" (the last dot is the candidate itself).
_DOTTED_RE = re.compile(r"(?:[a-z]{1,2}\.)+[a-z]{1,2}")
# Tokens longer than this are never abbreviations; also keeps tail trimming exact (see below).
_MAX_ABBREV_LEN = 24

# Token kinds, by how a following "." behaves.
_ORDINARY = 0  # plain word/number/URL: "." ends the sentence unless a lowercase word follows
_PREFIX = 1  # titles and Latin prefixes ("Mr.", "e.g."): never end a sentence
_PLACE = 2  # "St.", "Mt.": usually a prefix, a boundary only before a typical sentence opener
_PROPER = 3  # "U.S.", "Jr.": often inside a name, so a boundary only before a sentence opener
_CAPABLE = 4  # "p.m.", "etc.", "Inc.": end a sentence whenever a capitalised word follows
_NUMBERED = 5  # "No." / "Vol.": a prefix before a digit, otherwise an ordinary word ("No. I…")
_INITIAL = 6  # single capital letter ("J. R. Smith"): like _PROPER, but not "I"/"A" after it
_LIST = 7  # "1." opening a sentence: a list marker, not a sentence of its own
_TIME = 8  # "a.m." / "p.m.": like _CAPABLE, except in an opening phrase ("At 5 a.m. Mr. Lee…")

_KINDS: dict[str, int] = {}
for _group_kind, _group in (
    (
        _PREFIX,
        "mr mrs ms mx dr prof rev hon gen col capt lt sgt maj cmdr adm gov sen rep pres fr "
        "e.g i.e vs v cf viz approx ca est",
    ),
    (_PLACE, "st mt ft"),
    (_PROPER, "jr sr ave rd blvd u.s u.k u.n e.u"),
    (
        _CAPABLE,
        "etc inc ltd co corp bros al ph.d jan feb mar apr jun jul aug sep sept oct nov dec",
    ),
    (_TIME, "a.m p.m"),
    (_NUMBERED, "no nos vol fig ch pp"),
):
    _KINDS.update(dict.fromkeys(_group.split(), _group_kind))
del _group_kind, _group

# Words that commonly open a spoken sentence. After an ambiguous abbreviation ("U.S.", "Jr.",
# an initial) a capitalised word alone is weak evidence (names follow them), these are strong.
_STARTER_WORDS = """
    i i'm i've i'll i'd it it's he he's she she's we we're they they're you you're this that
    that's these those there there's here here's then the a an and but so or my our your their
    his her its what what's when where why how who which if in on at after before also anyway
    well now yes yeah no oh okay ok let let's is are was were do does did don't can can't could
    would should will actually because however meanwhile still maybe please thanks thank sorry
    one two three first second next finally last today tomorrow yesterday as for from with not
"""
_STARTERS = frozenset(_STARTER_WORDS.split())
# A time phrase opening a sentence ("At 5 a.m.", "By 9 p.m.") is followed by its clause, often a
# name: the time is then no sentence end.
_TIME_OPENERS = frozenset(
    ["at", "by", "around", "about", "after", "before", "until", "till", "from", "since"])
_MAX_TIME_PHRASE_CHARS = 40
_I_WORDS = frozenset(["i", "i'm", "i've", "i'll", "i'd"])
# ". . ." as STT and typists write it: one ellipsis ("words. . . ." keeps its period: ".…").
_SPACED_ELLIPSIS_RE = re.compile(r"(?: \.){3}")


def _kind(token: str, alone: bool) -> int:
    """Classify the token right before a ".": ``alone`` means it opens its sentence."""
    if not token or len(token) > _MAX_ABBREV_LEN:
        return _ORDINARY
    bare = token.lstrip(_OPENERS)
    key = bare.lower()
    if alone and key.isdigit() and len(key) <= 2:
        return _LIST
    kind = _KINDS.get(key)
    if kind is not None:
        return kind
    if len(bare) == 1 and bare.isupper():
        return _INITIAL
    if _DOTTED_RE.fullmatch(key):
        return _PROPER
    return _ORDINARY


def _next_word(text: str, start: int) -> str:
    """The word starting at ``start`` (text is space-normalised), opening quotes dropped."""
    stop = text.find(" ", start)
    return text[start:] if stop < 0 else text[start:stop]


def _core(word: str) -> str:
    return word.strip(_OPENERS + _TRAILING_PUNCT).replace("’", "'").lower()


def _is_starter(word: str) -> bool:
    return _core(word) in _STARTERS


def _opens_with_time(text: str, sentence_start: int, token_start: int) -> bool:
    """The sentence so far is a short time phrase: "At 5", "By 10:30" (before "a.m."/"p.m.")."""
    # a trimmed start (-1) means a long sentence; the length cap keeps the decision the same
    # whether or not tail trimming (see SentenceBudget) ever cut this sentence
    if sentence_start < 0 or token_start - sentence_start > _MAX_TIME_PHRASE_CHARS:
        return False
    before = text[sentence_start:token_start].split()
    return 0 < len(before) <= 3 and before[0].lstrip(_OPENERS).lower() in _TIME_OPENERS


def _is_boundary(run: str, token: str, alone: bool, word: str,
                 opens_with_time: bool = False, quoted: bool = False) -> bool:
    """Decide a candidate that has a following ``word`` (so the decision is final)."""
    bare = word.lstrip(_OPENERS)
    first = bare[:1]
    if first.islower():
        # lowercase continuation: 'etc. and', 'p.m. on', '"Stop!" he said', 'Well… that'; but
        # an STT puts a plain word's period only at a sentence end, and the next sentence can
        # start uncapitalised when its first word was lost ("...before it. flight got...")
        return run == "." and not quoted and _kind(token, alone) == _ORDINARY

    if "?" in run or "!" in run:
        return True
    if "…" in run or len(run) > 1:
        # an ellipsis is a pause unless a capitalised word follows; "I" after a bare ellipsis
        # goes on trailing the same thought ("the thing is… I didn't mean it"), while a period
        # before the ellipsis ("that.… I", "that.... I") ends the sentence
        if not first.isupper():
            return False
        with_period = run.count(".") + 3 * run.count("…") >= 4
        return with_period or _core(bare) not in _I_WORDS
    kind = _kind(token, alone)
    if kind == _TIME:
        kind = _PROPER if opens_with_time else _CAPABLE
    if kind == _ORDINARY:
        return True
    if kind == _NUMBERED:
        return not first.isdigit()
    if kind in (_PREFIX, _LIST):
        return False
    if not first.isupper():
        return False
    if kind == _CAPABLE:
        return True
    if kind == _INITIAL and len(bare.rstrip(_TRAILING_PUNCT)) == 1:
        return False  # "J. R. Smith": another initial, not "I"/"A" opening a sentence
    return _is_starter(bare)


def _ends_at_text_end(run: str, token: str, alone: bool, complete: bool) -> bool:
    """Decide a candidate at the very end, where the next word is not known yet."""
    if complete:
        return True  # nothing can follow: the terminal run closes the last sentence
    if "?" in run or "!" in run:
        return True
    if "…" in run or len(run) > 1:
        return False  # a trailing "..." is usually a pause in a live stream
    # an abbreviation's dot is not terminal yet ("Mr." / "5 p.m." may go on); a word's dot is
    return _kind(token, alone) in (_ORDINARY, _NUMBERED)


def _scan(text: str, at_sentence_start: bool, complete: bool) -> tuple[int, int, int]:
    """Segment space-normalised ``text``.

    Returns ``(sentences, certain, resume)``: all sentence ends found, how many of them are
    followed by a word (and so can never change), and the index where the text after the last
    certain end begins (0 if none). Module-level so tests can wrap it to measure work per event.
    """
    total = certain = resume = 0
    sentence_start = 0 if at_sentence_start else -1
    size = len(text)
    for match in _CANDIDATE_RE.finditer(text):
        stop = match.start()
        token_start = text.rfind(" ", 0, stop) + 1  # reverse search: cost ~ token length
        token = text[token_start:stop]
        alone = token_start == sentence_start
        after = match.end()
        if after >= size:
            if _ends_at_text_end(match.group(1), token, alone, complete):
                total += 1
            break
        run = match.group(1)
        timed = run == "." and _kind(token, alone) == _TIME and _opens_with_time(
            text, sentence_start, token_start)
        if _is_boundary(run, token, alone, _next_word(text, after + 1), timed,
                        bool(match.group(2))):
            total += 1
            certain += 1
            resume = sentence_start = after + 1
    return total, certain, resume


def _normalise(text: str) -> str:
    text = " ".join(text.split())
    return _SPACED_ELLIPSIS_RE.sub("…", text) if " . ." in text else text


def count_sentences(text: str, *, complete: bool = False) -> int:
    """Count sentences in ``text`` in one go (the reference the incremental count must match).

    ``complete=False`` (a live turn: more words may follow) counts a sentence at the very end
    only on real terminal punctuation: not on a trailing abbreviation ("Mr.", "5 p.m.") or "...".
    ``complete=True`` treats the text as finished, so any final terminal run closes a sentence.
    An unterminated remainder never counts.
    """
    return _scan(_normalise(text), True, complete)[0]


# --- the budget -------------------------------------------------------------------------------

# Tail trimming bounds the per-event work even for a long stretch with no sentence end (an STT
# without punctuation). Only the last tokens matter for future decisions; tokens are kept whole.
_TAIL_MAX_CHARS = 480
_TAIL_KEEP_CHARS = 96
assert _TAIL_KEEP_CHARS > _MAX_ABBREV_LEN  # a cut long token still classifies as ordinary


def _check_count(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int or None, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 (0 disables it), got {value}")
    return value or None


def _check_seconds(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"max_seconds must be a number or None, got {value!r}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"max_seconds must be >= 0 (0 disables it), got {value}")
    return float(value) or None


class SentenceBudget:
    """Counts the current user turn and says, once, when a limit is reached.

    A limit of 0 or None is disabled. Feed every ``user_input_transcribed`` event; call
    :meth:`reset` when a new user turn starts.
    """

    def __init__(
        self,
        max_sentences: int | None = 3,
        max_words: int | None = None,
        max_seconds: float | None = None,
    ) -> None:
        self._max_sentences = _check_count("max_sentences", max_sentences)
        self._max_words = _check_count("max_words", max_words)
        self._max_seconds = _check_seconds(max_seconds)
        self.reset()

    def reset(self) -> None:
        """Start a new user turn."""
        self._finals: list[str] = []
        self._final_words = 0
        self._committed = 0  # sentence ends inside the finals that a later word has confirmed
        self._pending = 0  # 0/1: a sentence end at the very end of the finals, not yet confirmed
        self._tail = ""  # finals text after the last confirmed end: re-scanned on every event
        self._tail_at_start = True  # False once trimming cut the tail mid-sentence
        self._interim = ""
        self._sentences = 0
        self._words = 0
        self._started_at: float | None = None
        self._tripped_by: TrippedBy | None = None

    def feed(self, text: str, is_final: bool, now: float | None = None) -> bool:
        """Take one transcript event; True exactly once, when a limit is first reached."""
        if now is None:
            now = time.monotonic()
        clean = _normalise(text)
        if is_final:
            self._interim = ""  # the final replaces the segment's interim
            if clean:
                self._commit_final(clean)
            self._sentences = self._committed + self._pending
            self._words = self._final_words
        else:
            self._interim = clean  # cumulative: replaces the previous interim, never appended
            if clean:
                window = f"{self._tail} {clean}" if self._tail else clean
                found = _scan(window, self._tail_at_start, False)[0]
                self._sentences = self._committed + found
                self._words = self._final_words + clean.count(" ") + 1
            else:
                self._sentences = self._committed + self._pending
                self._words = self._final_words
        if clean and self._started_at is None:
            self._started_at = now
        return self._check_limits(now)

    def _commit_final(self, clean: str) -> None:
        self._finals.append(clean)
        self._final_words += clean.count(" ") + 1
        window = f"{self._tail} {clean}" if self._tail else clean
        total, certain, resume = _scan(window, self._tail_at_start, False)
        self._committed += certain
        self._pending = total - certain
        if resume:
            window = window[resume:]
            self._tail_at_start = True
        if len(window) > _TAIL_MAX_CHARS:
            cut = window.find(" ", len(window) - _TAIL_KEEP_CHARS)
            # no space at all: one absurdly long token; keep its end (classified ordinary)
            window = window[cut + 1 :] if cut >= 0 else window[-_TAIL_KEEP_CHARS:]
            self._tail_at_start = False
        self._tail = window

    def _check_limits(self, now: float) -> bool:
        if self._tripped_by is not None:
            return False
        if self._max_sentences and self._sentences >= self._max_sentences:
            self._tripped_by = "sentences"
        elif self._max_words and self._words >= self._max_words:
            self._tripped_by = "words"
        elif (
            self._max_seconds
            and self._started_at is not None
            and now - self._started_at >= self._max_seconds
        ):
            self._tripped_by = "seconds"
        return self._tripped_by is not None

    @property
    def sentences(self) -> int:
        """Sentences in the current turn (finals + latest interim)."""
        return self._sentences

    @property
    def words(self) -> int:
        """Words in the current turn (finals + latest interim)."""
        return self._words

    @property
    def text(self) -> str:
        """The turn transcript: finals + latest interim. O(turn): for the cut-in prompt only."""
        parts = [*self._finals, self._interim] if self._interim else self._finals
        return " ".join(parts)

    @property
    def tripped_by(self) -> TrippedBy | None:
        """Which limit fired in this turn ("sentences", "words", "seconds"), or None."""
        return self._tripped_by
