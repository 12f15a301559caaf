"""Real test speech from espeak-ng, with sentence and word timings.

`synthesize()` renders each sentence with its own `espeak-ng --stdout` call, trims the silence
espeak leaves around it (so a sentence's start/end are where its audio is, to one 10 ms window)
and joins the sentences with `gap_s` of digital silence. Sentence timings are therefore exact to
~10 ms. Word timings are approximate: the CLI reports no word events, so a sentence is first cut
into phrases at commas/semicolons/colons/dashes, each matched to the nearest silence espeak put
there, and a phrase's duration is spread over its words in proportion to their phoneme count
(from `espeak-ng -x`, one word per paragraph; letter count if that does not line up), the word
before a pause weighted 1.3x because espeak draws it out. Measured
against espeak's own word events (libespeak-ng callbacks) word starts are off by ~0.05 s on
average, ~0.15 s at worst; spreading by letters without the phrase step is off by up to 0.35 s
("Dr." is spoken "doctor", a comma adds a 0.3 s pause).

Results are cached under `.cache/speech/` (override with `SPEECH_CACHE_DIR`), keyed by a hash of
every input and the espeak-ng version, so a test suite pays for synthesis once per machine.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from testkit.audio import window_rms_dbfs
from testkit.utterance import (
    DEFAULT_THRESHOLD_DBFS,
    WINDOW_S,
    Sentence,
    Utterance,
    Word,
    frozen,
    resample,
    silence,
    voiced_bounds,
)

CACHE_VERSION = 3
ESPEAK_RATE = 22050  # espeak-ng's native output rate
_PHRASE_END = re.compile(r"[,;:\u2013\u2014]$|^[-\u2013\u2014]+$")
_MIN_PAUSE_S = 0.1  # an espeak comma pause is 0.2-0.35 s; stop closures stay under 0.1 s
_FINAL_LENGTHENING = 1.3  # fitted against libespeak-ng word events on four sentences
_FADE_S = 0.005  # avoids clicks where trimming cut a non-zero sample

_REPO_ROOT = Path(__file__).resolve().parents[1]


class EspeakMissingError(RuntimeError):
    """espeak-ng is not installed; the message says how to install it."""

def synthesize(
    sentences: Sequence[str],
    *,
    rate_wpm: int = 160,
    voice: str = "en-us",
    sample_rate: int = 48000,
    gap_s: float = 0.25,
    lead_s: float = 0.0,
    tail_s: float = 0.0,
) -> Utterance:
    """Speak `sentences` one after another; cached on disk by a hash of all inputs."""
    sentences = [s.strip() for s in sentences]
    if not sentences or any(not s for s in sentences):
        raise ValueError("synthesize() needs at least one non-empty sentence")
    key_src = json.dumps(
        {
            "v": CACHE_VERSION,
            "espeak": _espeak_version(),
            "sentences": sentences,
            "rate": rate_wpm,
            "voice": voice,
            "sr": sample_rate,
            "gap": gap_s,
            "lead": lead_s,
            "tail": tail_s,
        },
        sort_keys=True,
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:24]
    return _cached(
        key, lambda: _render(sentences, rate_wpm, voice, sample_rate, gap_s, lead_s, tail_s)
    )

# --- synthesis --------------------------------------------------------------------------------


@functools.cache
def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EspeakMissingError(
            "espeak-ng is required for test speech but was not found on PATH; "
            "install it with `apt-get install espeak-ng`"
        )
    return exe


@functools.cache
def _espeak_version() -> str:
    out = subprocess.run([_espeak(), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _espeak_pcm(text: str, rate_wpm: int, voice: str) -> np.ndarray:
    # text goes through stdin: a sentence starting with "-" must not be read as an option
    proc = subprocess.run(
        [_espeak(), "--stdout", "-v", voice, "-s", str(rate_wpm)],
        input=text.encode(),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.startswith(b"RIFF"):
        raise RuntimeError(f"espeak-ng failed for voice {voice!r}: {proc.stderr.decode()[:200]}")
    # --stdout writes a streaming header whose sizes are placeholders: find "data" ourselves
    data = proc.stdout
    pos = data.find(b"data", 12)
    body = data[pos + 8 :]
    return np.frombuffer(body[: len(body) // 2 * 2], dtype=np.int16)


def _render(
    sentences: list[str],
    rate_wpm: int,
    voice: str,
    sample_rate: int,
    gap_s: float,
    lead_s: float,
    tail_s: float,
) -> Utterance:
    parts: list[np.ndarray] = [silence(lead_s, sample_rate)]
    out: list[Sentence] = []
    t = len(parts[0]) / sample_rate
    for i, text in enumerate(sentences):
        raw = _espeak_pcm(text, rate_wpm, voice)
        bounds = voiced_bounds(raw, ESPEAK_RATE)
        if bounds is None:
            raise RuntimeError(f"espeak-ng produced no audible speech for {text!r}")
        a, b = (round(x * ESPEAK_RATE) for x in bounds)
        trimmed = raw[a:b]
        words = _word_timings(text, trimmed, ESPEAK_RATE, _phoneme_weights(text, voice))
        pcm = _fade(resample(trimmed, ESPEAK_RATE, sample_rate), sample_rate)
        dur = len(pcm) / sample_rate
        out.append(
            Sentence(
                text=text,
                start=t,
                end=t + dur,
                words=tuple(Word(w, t + ws * dur, t + we * dur) for w, ws, we in words),
            )
        )
        parts.append(pcm)
        t += dur
        if i < len(sentences) - 1:
            parts.append(silence(gap_s, sample_rate))
            t = out[-1].end + len(parts[-1]) / sample_rate
    parts.append(silence(tail_s, sample_rate))
    return Utterance(
        pcm=frozen(np.concatenate(parts)), sample_rate=sample_rate, sentences=tuple(out)
    )


def _word_timings(
    text: str, pcm: np.ndarray, rate: int, weights: list[int] | None = None
) -> list[tuple[str, float, float]]:
    """(word, start, end) as fractions of the trimmed sentence audio."""
    words = text.split()
    if weights is None or len(weights) != len(words):
        weights = [_weight(w) for w in words]
    dur = len(pcm) / rate
    # phrases: split after words that end a clause; espeak pauses there
    phrases: list[list[str]] = [[]]
    for w in words:
        phrases[-1].append(w)
        if _PHRASE_END.search(w) and len(phrases[-1]) > 0:
            phrases.append([])
    phrases = [p for p in phrases if p]
    pauses = _pauses(pcm, rate)

    # expected boundary times by weight; pick the nearest unused pause for each
    total = sum(weights)
    spans: list[tuple[float, float]] = []
    cursor, done, start = 0.0, 0, 0.0
    for p in phrases[:-1]:
        done += len(p)
        expected = dur * sum(weights[:done]) / total
        candidates = [q for q in pauses if q[0] >= cursor]
        if candidates:
            q = min(candidates, key=lambda q: abs((q[0] + q[1]) / 2 - expected))
            spans.append((start, q[0]))
            start = cursor = q[1]
            pauses.remove(q)
        else:
            spans.append((start, expected))
            start = cursor = expected
    spans.append((start, dur))

    result: list[tuple[str, float, float]] = []
    k = 0
    for p, (a, b) in zip(phrases, spans, strict=True):
        ws: list[float] = list(weights[k : k + len(p)])
        ws[-1] *= _FINAL_LENGTHENING  # espeak draws out the word before a pause
        k += len(p)
        acc = a
        for w, wt in zip(p, ws, strict=True):
            end = acc + (b - a) * wt / sum(ws)
            result.append((w, acc / dur, end / dur))
            acc = end
    return result


def _phoneme_weights(text: str, voice: str) -> list[int] | None:
    """Phoneme count of each word, or None when espeak's output does not map 1:1 onto words."""
    words = text.split()
    spoken = [w for w in words if any(ch.isalnum() for ch in w)]
    # a blank line between words makes espeak print one paragraph of phonemes per word
    proc = subprocess.run(
        [_espeak(), "-q", "-x", "-v", voice],
        input="\n\n".join(spoken).encode(),
        capture_output=True,
        check=False,
    )
    blocks = [b for b in re.split(r"\n\s*\n", proc.stdout.decode()) if b.strip()]
    if proc.returncode != 0 or len(blocks) != len(spoken):
        return None
    counts = iter(max(1, len(re.sub(r"[\s',;#%=_:!|-]", "", b))) for b in blocks)
    return [next(counts) if any(ch.isalnum() for ch in w) else 1 for w in words]


def _weight(word: str) -> int:
    return max(1, sum(ch.isalnum() for ch in word))


def _pauses(pcm: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """Silent stretches >= _MIN_PAUSE_S inside the (already trimmed) sentence."""
    voiced = window_rms_dbfs(pcm, rate) > DEFAULT_THRESHOLD_DBFS
    pauses, run_start = [], None
    for i, v in enumerate(voiced):
        if not v and run_start is None:
            run_start = i
        elif v and run_start is not None:
            if (i - run_start) * WINDOW_S >= _MIN_PAUSE_S:
                pauses.append((run_start * WINDOW_S, i * WINDOW_S))
            run_start = None
    return pauses


def _fade(pcm: np.ndarray, rate: int) -> np.ndarray:
    n = min(len(pcm) // 2, round(_FADE_S * rate))
    if n == 0:
        return pcm
    ramp = np.linspace(0.0, 1.0, n)
    out = pcm.astype(np.float64)
    out[:n] *= ramp
    out[-n:] *= ramp[::-1]
    return out.astype(np.int16)

# --- cache --------------------------------------------------------------------------------------

_memo: dict[str, Utterance] = {}


def cache_dir() -> Path:
    return Path(os.environ.get("SPEECH_CACHE_DIR", _REPO_ROOT / ".cache" / "speech"))


def _cached(key: str, render: Any) -> Utterance:
    if key in _memo:
        return _memo[key]
    d = cache_dir()
    wav_path, meta_path = d / f"{key}.wav", d / f"{key}.json"
    utt: Utterance | None = None
    if wav_path.exists() and meta_path.exists():
        try:
            utt = _load(wav_path, meta_path)
        except (OSError, ValueError, KeyError, wave.Error):
            utt = None  # a torn or stale entry: render again
    if utt is None:
        utt = render()
        d.mkdir(parents=True, exist_ok=True)
        # write-then-rename: parallel test processes never read half a file
        _atomic_write(wav_path, utt.wav_bytes())
        _atomic_write(meta_path, json.dumps(_meta(utt)).encode())
    _memo[key] = utt
    return utt


def _meta(utt: Utterance) -> dict[str, Any]:
    return {
        "sample_rate": utt.sample_rate,
        "sentences": [
            {
                "text": s.text,
                "start": s.start,
                "end": s.end,
                "words": [[w.text, w.start, w.end] for w in s.words],
            }
            for s in utt.sentences
        ],
    }


def _load(wav_path: Path, meta_path: Path) -> Utterance:
    meta = json.loads(meta_path.read_text())
    with wave.open(str(wav_path), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        rate = w.getframerate()
    if rate != meta["sample_rate"]:
        raise ValueError("cache entry rate mismatch")
    sentences = tuple(
        Sentence(s["text"], s["start"], s["end"], tuple(Word(*w) for w in s["words"]))
        for s in meta["sentences"]
    )
    return Utterance(pcm=frozen(pcm), sample_rate=rate, sentences=sentences)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
