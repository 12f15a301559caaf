"""A Deepgram-style live transcription WebSocket that transcribes the speech it actually hears.

    async with FakeDeepgram() as dg:
        stt = deepgram.STT(base_url=dg.base_url, api_key="fake")
        dg.know([utt1, utt2])          # what may be said (utterance.Utterance or .script() dicts)
        dg.fail("drop", after_words=3) # cut the socket 3 words into an utterance
        ...
        dg.transcripts                 # the final transcripts sent, in order
        dg.words                       # every word heard: times, and when it was emitted

A scenario says what may be spoken, never what the STT returns: each connection recognises the
known sentences in the audio it receives (testkit/fakes/recogniser.py), in any order, repeated,
started mid-way, with any pauses; silence, zeros and unknown speech yield no words; a word is
emitted only `interim_delay_s` after its audio has been received. Messages: deepgram_protocol.py.

The vocabulary is shared by all connections. When a fault drops a connection the plugin
reconnects and goes on sending audio: the new connection recognises it afresh (mid-sentence if
need be), and words heard but not yet final on the dropped socket are lost, as they would be
with the real service (`counts["words_lost"]`).
"""

from __future__ import annotations

import itertools
import json
import os
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from testkit import utterance

from .deepgram_protocol import DeepgramConfig, Listener
from .faults import Fault
from .server import FakeServer
from .vocabulary import Vocabulary

__all__ = ["DeepgramConfig", "FakeDeepgram"]


class FakeDeepgram(FakeServer):
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        know: list[Any] | None = None,
        config: DeepgramConfig | None = None,
    ) -> None:
        super().__init__(host=host, port=port)
        self.config = config or DeepgramConfig()
        self.vocab = Vocabulary()
        self.connections: list[Listener] = []
        self.finals: list[dict[str, Any]] = []  # {"conn", "transcript", "speech_final", ...}
        self.words: list[dict[str, Any]] = []  # {"conn", "word", "start", "end", "emitted_at"...}
        self.sent: deque[dict[str, Any]] = deque(maxlen=5000)  # every message, newest last
        self._open: dict[int, web.WebSocketResponse] = {}
        self._drop_progress: dict[tuple[int, int], float] = {}
        self._ids = itertools.count(1)
        rec = os.environ.get("FAKE_DEEPGRAM_RECORD_DIR")
        self.record_dir = Path(rec) if rec else None
        self.know(know or [])

    @property
    def base_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/listen"

    # --- test API -------------------------------------------------------------------------

    def know(self, utterances: list[Any]) -> None:
        """Add what may be said: every sentence of each utterance can then be recognised.

        A `utterance.Utterance`, its `.script()` dict (JSON from another process), any number of
        times; may be called while connections are open.
        """
        for u in utterances:
            self.vocab.add(u)

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
        self.vocab.clear()
        self.finals.clear()
        self.words.clear()
        self.sent.clear()
        super().reset()

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "finals": self.finals,
            "words": self.words,
            "vocabulary": [e.text for e in self.vocab.entries],
            "connections": [
                {
                    "id": c.id,
                    "params": c.params,
                    "audio_s": round(c.t, 3),
                    "closed_by": c.closed_by,
                    "open": c.id in self._open,
                    "recognised": c.rec.log,
                }
                for c in self.connections
            ],
        }

    def _control(self, op: str, body: dict[str, Any]) -> Any:
        if op == "know":  # {"utterances": [...]}
            self.know(body["utterances"])
        elif op == "fault":
            args = {k: v for k, v in body.items() if k not in ("op", "mode", "endpoint")}
            self.fail(body["mode"], **args)
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
        conn = Listener(
            next(self._ids), params, self.vocab, self.config, self.counts, self.finals, self.words
        )
        if self.record_dir is not None:
            conn.recording = []
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
            self._save(conn)
        return ws

    async def _serve(self, conn: Listener, ws: web.WebSocketResponse, request: web.Request) -> None:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                out = conn.feed(msg.data)
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
                    await self._send(ws, conn, conn.flush(from_finalize=True))
                elif kind == "CloseStream":
                    out = conn.flush(from_finalize=False)
                    out.append(conn.metadata())
                    await self._send(ws, conn, out)
                    conn.closed_by = "client"
                    await ws.close(code=1000)
                    return
        conn.closed_by = conn.closed_by or "client"

    async def _send(self, ws: web.WebSocketResponse, conn: Listener, msgs: list[dict]) -> None:
        for m in msgs:
            self.sent.append({"conn": conn.id, "audio_t": round(conn.t, 3), **m})
            await ws.send_str(json.dumps(m))

    def _save(self, conn: Listener) -> None:
        """Keep a connection's audio as a WAV (FAKE_DEEPGRAM_RECORD_DIR): what it really heard."""
        if self.record_dir is None or not conn.recording:
            return
        self.record_dir.mkdir(parents=True, exist_ok=True)
        pcm = np.concatenate(conn.recording)
        name = f"dg-{os.getpid()}-{conn.id}.wav"
        (self.record_dir / name).write_bytes(utterance.to_wav(pcm, conn.sample_rate))

    # --- faults ---------------------------------------------------------------------------

    def _drop_due(self, conn: Listener, nbytes: int) -> Fault | None:
        """The armed drop fault if this connection has now reached its trigger."""
        fault = self.faults.peek("audio")
        if fault is None:
            return None
        if fault.after_words is not None:
            return fault if conn.heard_in_utterance() >= fault.after_words else None
        # audio counted from when the fault reached this connection, not from its start
        key = (conn.id, id(fault))
        done = self._drop_progress.get(key, 0.0) + nbytes / 2 / conn.channels / conn.sample_rate
        self._drop_progress[key] = done
        return fault if done >= fault.after_audio_s else None

    def _drop(self, conn: Listener) -> None:
        self.counts["drops"] += 1
        conn.closed_by = "fault"
        # heard but not final on the dropped socket: gone, as with the real service
        self.counts["words_lost"] += conn.unfinal_words()


def _json_type(data: str) -> str:
    try:
        return str(json.loads(data).get("type", "unknown"))
    except (ValueError, AttributeError):
        return "invalid"
