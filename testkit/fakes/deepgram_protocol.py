"""One live-transcription connection: the words the recogniser hears, as Deepgram's messages.

Results follow the live API as the livekit plugin parses it: cumulative interim `Results` for
the current segment as words are heard (`interim_interval_s` apart at most once per window);
`is_final` every `words_per_final` words or at a pause >= `pause_final_s` (so finals split
sentences, as Deepgram's do); `speech_final` after `endpoint_s` of silence once nothing more is
expected for the audio heard (a sentence being followed waits, up to `abandon_s`);
`UtteranceEnd` after it when the client asked for `utterance_end_ms` (or always with
`utterance_end=True`); `SpeechStarted` at onsets with `vad_events=true`; `Finalize` flushes the
words heard so far as a final with `from_finalize`. Every heard word is sent in exactly one final.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .recogniser import Recogniser
from .recognition import Heard, RecogniserConfig
from .vocabulary import Vocabulary


@dataclass
class DeepgramConfig(RecogniserConfig):
    """Behaviour; settable at runtime (`dg.config.x = ...` or control op "config")."""

    words_per_final: int = 7  # K: a final every K heard words, whatever the sentences
    pause_final_s: float = 0.3  # a silence this long closes the segment with a final
    endpoint_s: float = 0.3  # silence after the last voiced audio before speech_final
    abandon_s: float = 1.2  # silence that ends an utterance whose sentence was not all heard
    interim_interval_s: float = 0.0  # least time between interims (0: one per heard word)
    utterance_end: bool | None = None  # None: only if the client sent utterance_end_ms
    require_auth: bool = True  # 401 without "Authorization: Token ..."
    confidence: float = 0.98


@dataclass
class _Utterance:
    seg_start: float  # start of the current (not yet final) segment
    words: list[Heard] = field(default_factory=list)  # heard, not yet sent in a final
    heard: int = 0  # words heard in this utterance
    interim_n: int = 0  # segment words in the last interim
    interim_at: float = -1.0
    last_end: float = 0.0  # end of the last heard word


class Listener:
    """Transcribes one connection's audio; `feed`/`flush` return the messages to send."""

    def __init__(
        self,
        conn_id: int,
        params: dict[str, str],
        vocab: Vocabulary,
        config: DeepgramConfig,
        counts: Counter[str],
        finals: list[dict[str, Any]],
        words: list[dict[str, Any]],
    ) -> None:
        self.id = conn_id
        self.params = params
        self.sample_rate = int(params.get("sample_rate", 16000))
        self.channels = int(params.get("channels", 1))
        self.cfg = config
        self.counts = counts
        self.rec = Recogniser(vocab, self.sample_rate, config, counts)
        self.request_id = str(uuid.uuid4())
        self.started = time.time()
        self.utt: _Utterance | None = None
        self.closed_by = ""  # "client", "fault" or "network" once closed
        self.recording: list[np.ndarray] | None = None  # the audio received, if kept
        self.finals = finals  # shared by the server's connections, appended in order
        self.words = words
        self._leftover = b""

    @property
    def t(self) -> float:
        return self.rec.t

    def flag(self, name: str, default: bool) -> bool:
        v = self.params.get(name)
        return default if v is None else v.lower() == "true"

    # --- audio in, messages out -----------------------------------------------------------

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        frame = 2 * self.channels
        data = self._leftover + data
        usable = len(data) // frame * frame
        self._leftover = data[usable:]
        pcm = np.frombuffer(data[:usable], dtype=np.int16)
        if self.channels > 1:
            pcm = pcm.reshape(-1, self.channels).mean(axis=1).astype(np.int16)
        self.counts["audio_ms"] += round(len(pcm) / self.sample_rate * 1000)
        if self.recording is not None:
            self.recording.append(pcm.copy())
        out: list[dict[str, Any]] = []
        for tick in self.rec.push(pcm):
            if tick.onset and self.utt is None:
                out += self._start(tick.onset_t)
            if tick.words:
                out += self._heard(tick.words, tick.t)
            out += self._advance(tick.t)
        return out

    def flush(self, *, from_finalize: bool) -> list[dict[str, Any]]:
        """Finalize/CloseStream: everything heard so far, in a final."""
        words = self.rec.flush()
        if words:
            self._heard(words, self.t)
        u = self.utt
        if u is None or not u.words:
            if not from_finalize:
                return []
            start = self.t if u is None else u.seg_start
            msg = self._results([], start=start, end=self.t, is_final=True, from_finalize=True)
            return [msg]
        return self._final(len(u.words), from_finalize=from_finalize)

    def unfinal_words(self) -> int:
        return len(self.utt.words) if self.utt is not None else 0

    def heard_in_utterance(self) -> int:
        return self.utt.heard if self.utt is not None else 0

    # --- utterances and segments ----------------------------------------------------------

    def _start(self, at: float) -> list[dict[str, Any]]:
        self.counts["bursts"] += 1
        self.utt = _Utterance(seg_start=at)
        if self.flag("vad_events", False):
            return [{"type": "SpeechStarted", "channel": [0, 1], "timestamp": round(at, 3)}]
        return []

    def _heard(self, words: list[Heard], now: float) -> list[dict[str, Any]]:
        out = self._start(words[0].start) if self.utt is None else []
        u = self.utt
        assert u is not None
        u.words += words
        u.heard += len(words)
        u.last_end = words[-1].end
        for w in words:
            self.words.append(
                {
                    "conn": self.id,
                    "word": w.text,
                    "start": w.start,
                    "end": w.end,
                    "emitted_at": round(now, 3),
                    "sentence": w.sentence,
                    "index": w.index,
                }
            )
        return out

    def _advance(self, now: float) -> list[dict[str, Any]]:
        u, cfg = self.utt, self.cfg
        if u is None:
            return []
        silence = now - self.rec.last_voiced
        out: list[dict[str, Any]] = []
        # (an utterance's last words wait for the endpoint: one final with speech_final)
        while len(u.words) > cfg.words_per_final or (
            len(u.words) == cfg.words_per_final and self.rec.busy
        ):
            out += self._final(cfg.words_per_final)
        if (silence >= cfg.endpoint_s - 1e-9 and not self.rec.busy) or (
            silence >= cfg.abandon_s - 1e-9
        ):
            return out + self._end(now)
        if silence >= cfg.pause_final_s - 1e-9 and u.words:
            return out + self._final(len(u.words), end=now)
        if len(u.words) > u.interim_n and now - u.interim_at >= cfg.interim_interval_s - 1e-9:
            u.interim_at, u.interim_n = now, len(u.words)
            self.counts["interims"] += 1
            out.append(self._results(u.words, start=u.seg_start, end=now, is_final=False))
        return out

    def _final(
        self,
        n: int,
        *,
        end: float | None = None,
        speech_final: bool = False,
        from_finalize: bool = False,
    ) -> list[dict[str, Any]]:
        """A final with the first `n` heard words not sent in one yet."""
        u = self.utt
        assert u is not None
        ws, u.words = u.words[:n], u.words[n:]
        if end is None:
            end = ws[-1].end if ws else self.t
        msg = self._results(
            ws,
            start=u.seg_start,
            end=end,
            is_final=True,
            speech_final=speech_final,
            from_finalize=from_finalize,
        )
        u.interim_n = 0
        u.seg_start = end
        self.counts["finals"] += 1
        self.finals.append(
            {
                "conn": self.id,
                "transcript": msg["channel"]["alternatives"][0]["transcript"],
                "speech_final": speech_final,
                "from_finalize": from_finalize,
            }
        )
        return [msg]

    def _end(self, now: float) -> list[dict[str, Any]]:
        """speech_final for the utterance (with whatever is left), then UtteranceEnd."""
        u = self.utt
        assert u is not None
        out = self._final(len(u.words), end=now, speech_final=True)
        self.counts["speech_finals"] += 1
        self.counts["utterances"] += 1
        if not u.heard:
            self.counts["unrecognised_utterances"] += 1
        want = self.cfg.utterance_end
        if want is None:
            want = "utterance_end_ms" in self.params
        if want:
            last = u.last_end if u.heard else now
            out.append({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(last, 3)})
        self.utt = None
        return out

    def _results(
        self,
        words: list[Heard],
        *,
        start: float,
        end: float,
        is_final: bool,
        speech_final: bool = False,
        from_finalize: bool = False,
    ) -> dict[str, Any]:
        formatted = self.flag("punctuate", False) or self.flag("smart_format", False)
        conf = self.cfg.confidence
        dg_words = []
        for w in words:
            item: dict[str, Any] = {
                "word": w.word,
                "start": w.start,
                "end": w.end,
                "confidence": conf,
            }
            if formatted:
                item["punctuated_word"] = w.text
            dg_words.append(item)
        transcript = " ".join(w.text if formatted else w.word for w in words)
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(max(0.0, end - start), 3),
            "start": round(start, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {
                        "transcript": transcript,
                        "confidence": conf if words else 0.0,
                        "words": dg_words,
                    }
                ]
            },
            "metadata": {
                "request_id": self.request_id,
                "model_info": {
                    "name": self.params.get("model", "nova-3"),
                    "version": "fake",
                    "arch": "fake",
                },
                "model_uuid": "00000000-0000-0000-0000-000000000000",
            },
        }

    def metadata(self) -> dict[str, Any]:
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": "",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(self.started)),
            "duration": round(self.t, 3),
            "channels": self.channels,
            "models": ["00000000-0000-0000-0000-000000000000"],
            "model_info": {},
        }
