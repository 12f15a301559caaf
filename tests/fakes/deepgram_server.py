"""A Deepgram-style live transcription WebSocket that transcribes the speech it actually hears.

    async with FakeDeepgram() as dg:
        stt = deepgram.STT(base_url=dg.base_url, api_key="fake")
        dg.script([utt1, utt2])        # what the n-th speech burst of every connection says
        dg.queue_script([utt3])        # or: the next connection (at its first onset) says this
        dg.fail("drop", after_words=3) # cut the socket 3 words into an utterance

It does not recognise anything. Each connection keeps the timeline of the PCM it received
(linear16 at the `sample_rate`/`channels` of the query, as the plugin sends it in 50 ms
messages), finds speech onsets by energy (10 ms windows above -40 dBFS for 30 ms, the same
detector `tests.support.speech` trims with) and maps its n-th speech burst to the n-th utterance
of its script. A connection's script is the head of the queue, claimed at its first scripted
onset, else the default script (read live at each onset, so it may be set after the plugin
connected). With `config.match = "align"` a burst is instead placed by its level envelope: the
utterance, and the point in it, that was actually heard (see `DeepgramConfig.match`).

Script word times are relative to the onset, so words come out as their audio arrives: a word
is "heard" once its scripted end has been received and there was voiced audio at or after its
start (a speaker who stops early is not transcribed further). An utterance ends after
`endpoint_s` of silence, so leave more than that between utterances, and keep pauses inside
one shorter than `abandon_s`.

Results follow the live API as the plugin parses it: cumulative interim `Results` for the
current segment every `interim_interval_s` of audio when new words were heard; `is_final` every
`words_per_final` words or at a pause >= `pause_final_s` (so finals split sentences, as
Deepgram's do); `speech_final` once the utterance is fully heard and `endpoint_s` of silence
followed (or `abandon_s` of silence cut it short); `UtteranceEnd` after it when the client asked
for `utterance_end_ms` (or always with `utterance_end=True`); `SpeechStarted` at onsets when
`vad_events=true`; `Finalize` flushes heard words as a final with `from_finalize`; `CloseStream`
flushes, sends `Metadata` and closes. Every scripted word is sent in exactly one final.

When a fault drops a connection, the script position (and an utterance in progress) carries over
to the next connection, as the plugin reconnects and keeps sending the same audio: words heard
but not yet final on the dropped socket are lost, as they would be with the real service.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from . import FakeServer, Fault, apply_config

WINDOW_S = 0.01


@dataclass
class DeepgramConfig:
    """Recogniser behaviour; settable at runtime (`dg.config.x = ...` or op "config")."""

    words_per_final: int = 7  # K: a final every K heard words, whatever the sentences
    pause_final_s: float = 0.3  # a silence this long closes the segment with a final
    endpoint_s: float = 0.3  # silence after the last scripted word before speech_final
    abandon_s: float = 1.2  # silence that ends an utterance whose script was not all heard
    interim_interval_s: float = 0.15  # audio between interim results
    threshold_dbfs: float = -40.0  # 10 ms window RMS above this is voiced
    min_onset_s: float = 0.03  # voiced run that starts a burst
    utterance_end: bool | None = None  # None: only if the client sent utterance_end_ms
    # "order": burst n of a connection says script[n]. "align": the script utterance, and the
    # point in it, whose level envelope best matches the burst's first `align_s` (needs
    # envelopes, as Utterance.script() gives): right even when the agent discarded or the
    # test skipped speech, e.g. a burst that starts mid-utterance gets only the words after.
    match: str = "order"
    align_s: float = 0.4
    # median |level difference| (dB) above which a burst is unscripted: the right utterance
    # scores 0.2-0.5 (also after an Opus round trip; 1.2 for audio cut mid-word), wrong ones
    # 2 and up. Bursts shorter than align_s (a lone "Yes.") are less certain.
    align_max_db: float = 1.5
    require_auth: bool = True  # 401 without "Authorization: Token ..."
    confidence: float = 0.98


@dataclass
class _Word:
    text: str  # punctuated, as scripted ("Hello,")
    word: str  # normalised, as Deepgram's "word" ("hello")
    start: float  # relative to the utterance onset
    end: float


@dataclass
class _Script:
    text: str
    words: list[_Word]
    envelope: np.ndarray | None = None  # dBFS per 10 ms window from the onset


def to_script(utterance: Any) -> _Script:
    """Accept a `speech.Utterance`, its `.script()` dict, or {"sentences": [...]} JSON."""
    data = utterance.script() if hasattr(utterance, "script") else utterance
    words = [
        _Word(w["text"], _normalise(w["text"]), float(w["start"]), float(w["end"]))
        for s in data["sentences"]
        for w in s["words"]
    ]
    if not words:
        raise ValueError("an utterance needs at least one word")
    env = data.get("envelope")
    envelope = np.clip(np.asarray(env, dtype=np.float64), -60.0, 0.0) if env else None
    return _Script(" ".join(w.text for w in words), words, envelope)


def _normalise(text: str) -> str:
    return re.sub(r"[^\w'$%.-]|(?<!\d)\.|\.(?!\d)", "", text.lower()) or text.lower()


@dataclass
class _Active:
    """An utterance being heard on a connection."""

    script: _Script | None  # None: an unscripted burst (no transcript)
    onset: float  # connection time of script time 0
    seg_start: float  # start of the current (not yet final) segment
    next_final: int = 0  # first word not yet sent in a final
    heard: int = 0  # words heard so far (prefix of the script)
    interim_at: float = -1.0  # connection time of the last interim
    interim_n: int = 0  # `heard` at the last interim
    aligning: list[float] | None = None  # match="align": burst levels until it is placed


@dataclass
class _Resume:
    script: list[_Script] | None
    cursor: int
    base: int
    scripted: int
    active: _Active | None
    at: float  # connection time of the drop


@dataclass
class _Conn:
    id: int
    sample_rate: int
    channels: int
    params: dict[str, str]
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    samples: int = 0  # mono samples received
    leftover: bytes = b""  # a partial sample frame from the last message
    window: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    voiced_run: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=64))  # window levels
    run_start: float = 0.0
    last_voiced: float = 0.0
    script: list[_Script] | None = None  # claimed from the queue; None follows the default
    cursor: int = 0  # bursts started so far
    base: int = 0  # `cursor` when the script was claimed: its utterance 0 is that burst
    scripted: int = 0  # bursts that got an utterance
    active: _Active | None = None
    drop_progress: dict[int, float] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    closed_by: str = ""

    @property
    def t(self) -> float:
        return self.samples / self.sample_rate

    def flag(self, name: str, default: bool) -> bool:
        v = self.params.get(name)
        return default if v is None else v.lower() == "true"


class FakeDeepgram(FakeServer):
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        script: list[Any] | None = None,
        config: DeepgramConfig | None = None,
    ) -> None:
        super().__init__(host=host, port=port)
        self.config = config or DeepgramConfig()
        self.default_script: list[_Script] = [to_script(u) for u in script or []]
        self.script_queue: deque[list[_Script]] = deque()
        self.counts: Counter[str] = Counter()
        self.connections: list[_Conn] = []
        self.finals: list[dict[str, Any]] = []  # {"conn", "transcript", "speech_final"}
        self.sent: deque[dict[str, Any]] = deque(maxlen=5000)  # every message, newest last
        self._resume: deque[_Resume] = deque()
        self._open: dict[int, web.WebSocketResponse] = {}
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/listen"

    # --- test API -------------------------------------------------------------------------

    def script(self, utterances: list[Any]) -> None:
        """Default script: burst n of every connection (without a queued one) says utterances[n].

        Read at each onset, so it may be set after the plugin connected.
        """
        self.default_script = [to_script(u) for u in utterances]

    def queue_script(self, utterances: list[Any]) -> None:
        """A script for one connection: the next one to start speaking takes it."""
        self.script_queue.append([to_script(u) for u in utterances])

    def fail(self, mode: str, *, count: int = 1, **kw: Any) -> Fault:
        """Arm a fault: "refuse"/"status" (handshake answered with `status`), "hang"
        (handshake stalls `delay_s`), "drop" (after `after_audio_s` of audio, or `after_words`
        heard words of an utterance; TCP cut, or a close frame with `close_code`)."""
        fault = Fault(mode=mode, count=count, **kw)
        if mode in ("refuse", "status", "hang"):
            self.faults.add("connect", fault)
        elif mode == "drop":
            self.faults.add("audio", fault)
        else:
            raise ValueError(f"Deepgram fake has no {mode!r} fault")
        return fault

    @property
    def transcripts(self) -> list[str]:
        """Final transcripts sent, in order (non-empty ones)."""
        return [f["transcript"] for f in self.finals if f["transcript"]]

    def reset(self) -> None:
        self.default_script = []
        self.script_queue.clear()
        self.counts.clear()
        self.finals.clear()
        self.sent.clear()
        self._resume.clear()
        self.faults.clear()
        self.faults.served.clear()

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "counts": dict(self.counts),
            "finals": self.finals,
            "connections": [
                {
                    "id": c.id,
                    "params": c.params,
                    "audio_s": round(c.t, 3),
                    "closed_by": c.closed_by,
                    "open": c.id in self._open,
                }
                for c in self.connections
            ],
            "config": asdict(self.config),
        }

    def _control(self, op: str, body: dict[str, Any]) -> Any:
        if op == "script":  # {"utterances": [...], "mode": "default" | "queue"}
            if body.get("mode", "default") == "queue":
                self.queue_script(body["utterances"])
            else:
                self.script(body["utterances"])
        elif op == "fault":
            args = {k: v for k, v in body.items() if k not in ("op", "mode", "endpoint")}
            self.fail(body["mode"], **args)
        elif op == "config":
            apply_config(self.config, {k: v for k, v in body.items() if k != "op"})
        elif op == "reset":
            self.reset()
        else:
            return super()._control(op, body)
        return None

    # --- WebSocket ------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/listen", self._listen)

    async def _on_shutdown(self, app: web.Application) -> None:
        for ws in list(self._open.values()):
            await ws.close(code=1001, message=b"server shutdown")

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        self.counts["connect_attempts"] += 1
        if self.config.require_auth and not request.headers.get("Authorization", "").startswith(
            "Token "
        ):
            self.counts["unauthorized"] += 1
            return web.json_response(
                {"err_code": "INVALID_AUTH", "err_msg": "no token"}, status=401
            )
        fault = self.faults.take("connect")
        if fault is not None:
            self.counts["refused"] += 1
            if fault.mode == "hang":
                await self.sleep_or_close(fault.delay_s or 3600.0)  # 0: until the client quits
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=499)
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after else None
            return web.json_response(
                {"err_code": "FAKE", "err_msg": "injected"}, status=fault.status, headers=headers
            )
        params = dict(request.query)
        if params.get("encoding", "linear16") != "linear16":
            return web.json_response({"err_msg": "fake supports linear16 only"}, status=400)
        conn = _Conn(
            id=next(self._ids),
            sample_rate=int(params.get("sample_rate", 16000)),
            channels=int(params.get("channels", 1)),
            params=params,
        )
        if self._resume:
            r = self._resume.popleft()
            self._resume_on(conn, r)

        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        self.connections.append(conn)
        self._open[conn.id] = ws
        self.counts["connections"] += 1
        try:
            await self._serve(conn, ws, request)
        except ConnectionError:
            pass  # the client vanished mid-send
        finally:
            conn.closed_by = conn.closed_by or "network"
            self._open.pop(conn.id, None)
        return ws

    async def _serve(self, conn: _Conn, ws: web.WebSocketResponse, request: web.Request) -> None:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                out = self._feed(conn, msg.data)
                await self._send(ws, conn, out)
                fault = self._drop_due(conn, len(msg.data))
                if fault is not None:
                    self.faults.take("audio", fault)
                    self._drop(conn)
                    if fault.close_code is not None:
                        await ws.close(code=fault.close_code, message=b"fake drop")
                    elif request.transport is not None:
                        request.transport.abort()
                    return
            elif msg.type == WSMsgType.TEXT:
                kind = _json_type(msg.data)
                self.counts[f"msg_{kind}"] += 1
                if kind == "Finalize":
                    await self._send(ws, conn, self._flush(conn, from_finalize=True))
                elif kind == "CloseStream":
                    out = self._flush(conn, from_finalize=False)
                    out.append(self._metadata(conn))
                    await self._send(ws, conn, out)
                    conn.closed_by = "client"
                    await ws.close(code=1000)
                    return
        conn.closed_by = conn.closed_by or "client"

    async def _send(self, ws: web.WebSocketResponse, conn: _Conn, msgs: list[dict]) -> None:
        for m in msgs:
            self.sent.append({"conn": conn.id, **m})
            await ws.send_str(json.dumps(m))

    # --- faults ---------------------------------------------------------------------------

    def _drop_due(self, conn: _Conn, nbytes: int) -> Fault | None:
        """The armed drop fault if this connection has now reached its trigger."""
        fault = self.faults.peek("audio")
        if fault is None:
            return None
        if fault.after_words is not None:
            a = conn.active
            due = a is not None and a.script is not None and a.heard >= fault.after_words
            return fault if due else None
        # audio counted from when the fault reached this connection, not from its start
        done = (
            conn.drop_progress.get(id(fault), 0.0) + nbytes / 2 / conn.channels / conn.sample_rate
        )
        conn.drop_progress[id(fault)] = done
        return fault if done >= fault.after_audio_s else None

    def _drop(self, conn: _Conn) -> None:
        self.counts["drops"] += 1
        conn.closed_by = "fault"
        self._resume.append(
            _Resume(conn.script, conn.cursor, conn.base, conn.scripted, conn.active, conn.t)
        )

    def _resume_on(self, conn: _Conn, r: _Resume) -> None:
        """Continue a dropped connection's script; its audio picks up where the drop was."""
        conn.script, conn.cursor, conn.base, conn.scripted = r.script, r.cursor, r.base, r.scripted
        a = r.active
        if a is None:
            return
        onset = a.onset - r.at  # the new timeline starts at the drop
        nxt = len(a.script.words) if a.script else 0
        if a.script is not None:
            rel = r.at - a.onset
            nxt = next(
                (i for i, w in enumerate(a.script.words) if (w.start + w.end) / 2 >= rel),
                len(a.script.words),
            )
            nxt = max(nxt, a.next_final)
            # heard but not final on the dropped socket (and a word cut in half): gone
            self.counts["words_lost"] += nxt - a.next_final
        conn.active = _Active(
            a.script,
            onset=onset,
            seg_start=0.0 if a.aligning is None else a.seg_start - r.at,
            next_final=nxt,
            heard=nxt,
            interim_n=nxt,
            aligning=None if a.aligning is None else list(a.aligning),  # still being placed
        )
        conn.last_voiced = 0.0

    # --- the recogniser -------------------------------------------------------------------

    def _feed(self, conn: _Conn, data: bytes) -> list[dict[str, Any]]:
        frame = 2 * conn.channels
        data = conn.leftover + data
        usable = len(data) // frame * frame
        conn.leftover = data[usable:]
        pcm = np.frombuffer(data[:usable], dtype=np.int16)
        if conn.channels > 1:
            pcm = pcm.reshape(-1, conn.channels).mean(axis=1).astype(np.int16)
        self.counts["audio_ms"] += round(len(pcm) / conn.sample_rate * 1000)
        buf = np.concatenate([conn.window, pcm])
        n = round(conn.sample_rate * WINDOW_S)
        k = len(buf) // n
        conn.window = buf[k * n :]
        if k == 0:
            return []
        x = buf[: k * n].astype(np.float64).reshape(k, n)
        levels = 20 * np.log10(np.maximum(np.sqrt((x * x).mean(axis=1)) / 32768.0, 1e-6))
        out: list[dict[str, Any]] = []
        for level in levels:
            conn.samples += n
            now = conn.t
            if level > self.config.threshold_dbfs:
                if conn.voiced_run == 0:
                    conn.run_start = now - WINDOW_S
                conn.voiced_run += 1
                conn.last_voiced = now
            else:
                conn.voiced_run = 0
            conn.recent.append(float(level))
            onset_due = conn.voiced_run * WINDOW_S >= self.config.min_onset_s - 1e-9
            if conn.active is None and onset_due:
                out += self._onset(conn)
            elif conn.active is not None and conn.active.aligning is not None:
                conn.active.aligning.append(float(level))
            if conn.active is not None:
                out += self._advance(conn, now)
        return out

    def _onset(self, conn: _Conn) -> list[dict[str, Any]]:
        # a queued script goes to a connection that has not said anything scripted yet
        if conn.script is None and conn.scripted == 0 and self.script_queue:
            conn.script, conn.base = self.script_queue.popleft(), conn.cursor
        self.counts["bursts"] += 1
        conn.active = _Active(None, onset=conn.run_start, seg_start=conn.run_start)
        if self.config.match == "align":
            # placed once align_s of the burst has been heard (see _place)
            conn.active.aligning = list(conn.recent)[-conn.voiced_run :]
        else:
            script = conn.script if conn.script is not None else self.default_script
            n = conn.cursor - conn.base
            conn.active.script = script[n] if n < len(script) else None
            if conn.active.script is None:
                self.counts["unscripted_bursts"] += 1
            else:
                conn.scripted += 1
        conn.cursor += 1
        if conn.flag("vad_events", False):
            return [
                {"type": "SpeechStarted", "channel": [0, 1], "timestamp": round(conn.run_start, 3)}
            ]
        return []

    def _advance(self, conn: _Conn, now: float) -> list[dict[str, Any]]:
        a = conn.active
        assert a is not None
        cfg = self.config
        silence = now - conn.last_voiced
        if a.aligning is not None:
            heard_s = len(a.aligning) * WINDOW_S
            if heard_s < cfg.align_s - 1e-9 and silence < cfg.endpoint_s - 1e-9:
                return []
            self._place(conn, a)
        if a.script is None:
            return self._end(conn, now) if silence >= cfg.endpoint_s - 1e-9 else []
        words = a.script.words
        self._hear(conn, now)
        out: list[dict[str, Any]] = []
        # (the utterance's last words wait for the endpoint: one final with speech_final)
        while a.heard - a.next_final >= cfg.words_per_final and a.heard < len(words):
            out += self._final(conn, upto=a.next_final + cfg.words_per_final)
        if a.heard == len(words) and silence >= cfg.endpoint_s - 1e-9:
            return out + self._end(conn, now)
        if silence >= cfg.abandon_s - 1e-9:
            self.counts["words_unheard"] += len(words) - a.heard
            return out + self._end(conn, now)
        if silence >= cfg.pause_final_s - 1e-9 and a.heard > a.next_final:
            return out + self._final(conn, upto=a.heard, end=now)
        if a.heard > a.interim_n and now - a.interim_at >= cfg.interim_interval_s - 1e-9:
            a.interim_at, a.interim_n = now, a.heard
            self.counts["interims"] += 1
            out.append(
                self._results(
                    conn, words[a.next_final : a.heard], start=a.seg_start, end=now, is_final=False
                )
            )
        return out

    def _place(self, conn: _Conn, a: _Active) -> None:
        """match="align": find the utterance and offset whose envelope fits the burst."""
        assert a.aligning is not None
        recv = np.clip(np.asarray(a.aligning), -60.0, 0.0)
        a.aligning = None
        m = len(recv)
        best: tuple[float, _Script, int] | None = None
        script = conn.script if conn.script is not None else self.default_script
        for s in script:
            if s.envelope is None:
                continue
            env = s.envelope
            if len(env) < m:
                env = np.concatenate([env, np.full(m - len(env), -60.0)])
            windows = np.lib.stride_tricks.sliding_window_view(env, m)
            # median: a hard cut or a click at the burst's edge does not spoil the match
            dist = np.median(np.abs(windows - recv), axis=1)
            i = int(np.argmin(dist))
            if best is None or dist[i] < best[0]:
                best = (float(dist[i]), s, i)
        if best is None or best[0] > self.config.align_max_db:
            self.counts["unscripted_bursts"] += 1
            return
        _, a.script, i = best
        conn.scripted += 1
        offset = i * WINDOW_S
        a.onset = a.seg_start - offset
        # a burst that starts mid-utterance: the words before it were never heard
        first = next(
            (k for k, w in enumerate(a.script.words) if (w.start + w.end) / 2 >= offset),
            len(a.script.words),
        )
        a.next_final = a.heard = a.interim_n = first
        self.counts["words_skipped"] += first

    def _hear(self, conn: _Conn, now: float, *, flushing: bool = False) -> None:
        """Advance `heard` over words whose audio has arrived (and was spoken).

        A word needs its end received; when flushing (Finalize, CloseStream) its middle is
        enough, since Deepgram then transcribes all audio it has, however it ends.
        """
        a = conn.active
        if a is None or a.script is None:
            return
        words = a.script.words
        while a.heard < len(words):
            w = words[a.heard]
            due = (w.start + w.end) / 2 if flushing else w.end
            if a.onset + due > now + 1e-9 or conn.last_voiced < a.onset + w.start:
                break
            a.heard += 1

    def _flush(self, conn: _Conn, *, from_finalize: bool) -> list[dict[str, Any]]:
        if conn.active is not None and conn.active.aligning is not None:
            self._place(conn, conn.active)
        self._hear(conn, conn.t + len(conn.window) / conn.sample_rate, flushing=True)
        return self._final(conn, from_finalize=from_finalize)

    def _final(
        self,
        conn: _Conn,
        *,
        upto: int | None = None,
        end: float | None = None,
        speech_final: bool = False,
        from_finalize: bool = False,
    ) -> list[dict[str, Any]]:
        """A final with the heard words not sent in one yet (up to `upto`)."""
        a = conn.active
        if a is None or a.script is None:
            if not from_finalize:
                return []
            start = conn.t if a is None else a.seg_start
            return [
                self._results(conn, [], start=start, end=conn.t, is_final=True, from_finalize=True)
            ]
        upto = a.heard if upto is None else upto
        ws = a.script.words[a.next_final : upto]
        if end is None:
            end = a.onset + ws[-1].end if ws else conn.t
        msg = self._results(
            conn,
            ws,
            start=a.seg_start,
            end=end,
            is_final=True,
            speech_final=speech_final,
            from_finalize=from_finalize,
        )
        a.next_final = upto
        a.interim_n = max(a.interim_n, upto)
        a.seg_start = end
        self.counts["finals"] += 1
        self.finals.append(
            {
                "conn": conn.id,
                "transcript": msg["channel"]["alternatives"][0]["transcript"],
                "speech_final": speech_final,
                "from_finalize": from_finalize,
            }
        )
        return [msg]

    def _end(self, conn: _Conn, now: float) -> list[dict[str, Any]]:
        """speech_final for the utterance (with whatever is left), then UtteranceEnd."""
        a = conn.active
        assert a is not None
        if a.script is None:
            msg = self._results(
                conn, [], start=a.seg_start, end=now, is_final=True, speech_final=True
            )
            out = [msg]
            self.finals.append(
                {"conn": conn.id, "transcript": "", "speech_final": True, "from_finalize": False}
            )
        else:
            out = self._final(conn, upto=a.heard, end=now, speech_final=True)
        self.counts["speech_finals"] += 1
        self.counts["utterances"] += 1
        want = self.config.utterance_end
        if want is None:
            want = "utterance_end_ms" in conn.params
        if want:
            last = a.onset + a.script.words[a.heard - 1].end if a.script and a.heard else now
            out.append({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(last, 3)})
        conn.active = None
        return out

    def _results(
        self,
        conn: _Conn,
        words: list[_Word],
        *,
        start: float,
        end: float,
        is_final: bool,
        speech_final: bool = False,
        from_finalize: bool = False,
    ) -> dict[str, Any]:
        a = conn.active
        onset = a.onset if a is not None else 0.0
        formatted = conn.flag("punctuate", False) or conn.flag("smart_format", False)
        conf = self.config.confidence
        dg_words = []
        for w in words:
            item = {
                "word": w.word,
                "start": round(onset + w.start, 3),
                "end": round(onset + w.end, 3),
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
                "request_id": conn.request_id,
                "model_info": {
                    "name": conn.params.get("model", "nova-3"),
                    "version": "fake",
                    "arch": "fake",
                },
                "model_uuid": "00000000-0000-0000-0000-000000000000",
            },
        }

    def _metadata(self, conn: _Conn) -> dict[str, Any]:
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": conn.request_id,
            "sha256": "",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(conn.started)),
            "duration": round(conn.t, 3),
            "channels": conn.channels,
            "models": ["00000000-0000-0000-0000-000000000000"],
            "model_info": {},
        }


def _json_type(data: str) -> str:
    try:
        return str(json.loads(data).get("type", "unknown"))
    except (ValueError, AttributeError):
        return "invalid"
