"""An OpenAI-compatible HTTP server for the livekit openai plugin (LLM, TTS, non-realtime STT).

    async with FakeOpenAI() as oai:
        llm = openai.LLM(base_url=oai.base_url, api_key="fake")
        oai.replies.append("Scripted answer.")          # next chat reply (FIFO), then
        oai.reply_fn = lambda body: "..."                # the fallback for every other request
        oai.fail("chat", "status", status=429, retry_after=1)   # next chat request gets a 429
        ...
        oai.chat_requests[-1]["messages"]                # the history the agent sent

Wire formats follow what the plugin parses (livekit-plugins-openai 1.8.9): chat completions
stream as `data: {chat.completion.chunk}` SSE lines ending in `data: [DONE]`, with a final
choices-less usage chunk because the plugin always sends `stream_options.include_usage`. Speech
comes back in the `response_format` asked for (pcm = s16le 24 kHz mono, wav, and mp3/opus/aac/
flac encoded with PyAV); when the request says `stream_format: "sse"` (the plugin does for every
model but tts-1/tts-1-hd) it is wrapped in `speech.audio.delta` events as api.openai.com does.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

from .faults import Fault
from .openai_protocol import (
    CONTENT_TYPES,
    TTS_SAMPLE_RATE,
    ChatReply,
    Reply,
    ReplyFn,
    TranscribeFn,
    api_error,
    default_reply,
    encode,
    split_reply,
    tone,
    wav_seconds,
)
from .server import FakeServer

HANG_FOREVER_S = 3600.0

@dataclass
class OpenAIConfig:
    """Timing and audio knobs; settable at runtime (`oai.config.x = ...` or op "config")."""

    ttft_s: float = 0.05  # chat: delay before the first content token
    token_interval_s: float = 0.01  # chat: delay between content tokens
    tts_ttfb_s: float = 0.02  # speech: delay before the first audio bytes
    tts_ms_per_char: float = 65.0  # speech duration per input character (at speed 1.0)
    tts_audio: str = "tone"  # "tone" (cheap) or "espeak" (real speech, cached)
    tts_chunk_ms: int = 100  # audio per body chunk / SSE event
    tts_pace: float = 0.0  # >0: send audio at this multiple of real time; 0: as fast as possible
    tts_honor_sse: bool = True  # answer stream_format="sse" with SSE (False: raw bytes anyway)
    models: tuple[str, ...] = (
        "gpt-4.1-mini",
        "gpt-4.1",
        "gpt-4o-mini-tts",
        "tts-1",
        "gpt-4o-mini-transcribe",
        "whisper-1",
    )


class FakeOpenAI(FakeServer):
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        reply_fn: ReplyFn = default_reply,
        config: OpenAIConfig | None = None,
    ) -> None:
        super().__init__(host=host, port=port)
        self.config = config or OpenAIConfig()
        self.reply_fn: ReplyFn = reply_fn
        self.replies: deque[Reply] = deque()  # consumed first, one per chat request
        self.transcripts: deque[str] = deque()  # consumed first, one per transcription
        self.transcribe_fn: TranscribeFn = lambda audio, fields: ""
        self.requests: list[dict[str, Any]] = []  # {"endpoint", "body", "time"}; no headers
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"{self.http_url}/v1"

    # --- recorded traffic -----------------------------------------------------------------

    def bodies(self, endpoint: str) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if r["endpoint"] == endpoint]

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return self.bodies("chat")

    @property
    def speech_inputs(self) -> list[str]:
        return [b.get("input", "") for b in self.bodies("speech")]

    def reset(self) -> None:
        self.requests.clear()
        self.replies.clear()
        self.transcripts.clear()
        super().reset()

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "requests": self.requests,
        }

    def _record(self, endpoint: str, body: dict[str, Any]) -> None:
        self.counts[endpoint] += 1
        self.requests.append({"endpoint": endpoint, "body": body, "time": time.time()})

    # --- routes ---------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        app.router.add_route("*", "/{tail:.*}", self._not_found)

    ENDPOINTS = ("models", "chat", "speech", "transcriptions", "*")

    def fail(self, endpoint: str, mode: str, *, count: int = 1, **kw: Any) -> Fault:
        """Arm a fault for the next `count` requests to `endpoint` ("*": any); see `Fault`."""
        if endpoint not in self.ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {self.ENDPOINTS}")
        fault = Fault(mode=mode, count=count, **kw)
        self.faults.add(endpoint, fault)
        return fault

    def _control(self, op: str, body: dict[str, Any]) -> Any:
        if op == "fault":  # {"endpoint", "mode", "count", "status", "retry_after", ...}
            args = {k: v for k, v in body.items() if k not in ("op", "endpoint", "mode")}
            self.fail(body["endpoint"], body["mode"], **args)
        elif op == "reply":  # {"replies": [str | {"content", "tool_calls"}]}
            self.replies.extend(body["replies"])
        elif op == "transcript":  # {"transcripts": [str]}
            self.transcripts.extend(body["transcripts"])
        else:
            return super()._control(op, body)
        return None

    async def _models(self, request: web.Request) -> web.Response:
        self._record("models", {})
        if (resp := await self._pre_fault("models", request)) is not None:
            return resp
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
            for m in self.config.models
        ]
        return web.json_response({"object": "list", "data": data}, headers=self._headers())

    async def _not_found(self, request: web.Request) -> web.Response:
        self._record("unknown", {"method": request.method, "path": request.path})
        message = f"fake has no route {request.method} {request.path}"
        return api_error(404, message, "invalid_request")

    # --- chat -----------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, fault, resp = await self._streaming_request("chat", request)
        if resp is not None:
            return resp
        content, tool_calls = split_reply(
            self.replies.popleft() if self.replies else self.reply_fn(body))
        reply = ChatReply(f"chatcmpl-fake-{next(self._ids)}", body, content, tool_calls)
        if not body.get("stream"):
            if _is(fault, "drop"):
                return _cut(request, None)
            first_delay = self.config.ttft_s + (fault.delay_s if _is(fault, "slow_first") else 0)
            await self.sleep_or_close(first_delay)
            return web.json_response(reply.completion(), headers=self._headers())
        events = reply.chunks()

        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                **self._headers(),
            }
        )
        await resp.prepare(request)
        first_delay = self.config.ttft_s + (fault.delay_s if _is(fault, "slow_first") else 0)
        for i, ev in enumerate(events):
            if _is(fault, "drop") and i >= fault.after_chunks:  # type: ignore[union-attr]
                return _cut(request, resp)
            # the role chunk goes out at once; the first token waits for "time to first token"
            delay = first_delay if i == 1 else (self.config.token_interval_s if i > 1 else 0)
            if await self.sleep_or_close(delay):
                return _cut(request, resp)
            await resp.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    # --- speech (TTS) ---------------------------------------------------------------------

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body, fault, resp = await self._streaming_request("speech", request)
        if resp is not None:
            return resp
        text = str(body.get("input", ""))
        fmt = str(body.get("response_format") or "mp3")
        speed = float(body.get("speed") or 1.0)
        if fmt not in CONTENT_TYPES:
            return api_error(400, f"unsupported response_format {fmt!r}", "invalid_request")
        pcm = await self._speech_pcm(text, speed)
        sse = body.get("stream_format") == "sse" and self.config.tts_honor_sse
        pieces = await asyncio.to_thread(encode, pcm, fmt, self.config.tts_chunk_ms)
        chunk_s = self.config.tts_chunk_ms / 1000

        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream" if sse else CONTENT_TYPES[fmt],
                **self._headers(),
            }
        )
        await resp.prepare(request)
        first_delay = self.config.tts_ttfb_s + (fault.delay_s if _is(fault, "slow_first") else 0)
        if await self.sleep_or_close(first_delay):
            return _cut(request, resp)
        for i, piece in enumerate(pieces):
            if _is(fault, "drop") and i >= fault.after_chunks:  # type: ignore[union-attr]
                return _cut(request, resp)
            if sse:
                ev = {"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode()}
                await resp.write(b"data: " + json.dumps(ev).encode() + b"\n\n")
            else:
                await resp.write(piece)
            pace = chunk_s / self.config.tts_pace if self.config.tts_pace > 0 else 0.0
            if await self.sleep_or_close(pace):
                return _cut(request, resp)
        if sse:
            n_in = max(1, len(text) // 4)
            done = {
                "type": "speech.audio.done",
                "usage": {
                    "input_tokens": n_in,
                    "output_tokens": len(pieces),
                    "total_tokens": n_in + len(pieces),
                },
            }
            await resp.write(b"data: " + json.dumps(done).encode() + b"\n\n")
        await resp.write_eof()
        return resp

    async def _speech_pcm(self, text: str, speed: float) -> np.ndarray:
        if self.config.tts_audio == "espeak" and text.strip():
            from testkit import speech  # lazy: only this mode needs espeak-ng

            utt = await asyncio.to_thread(
                speech.synthesize,
                [text.strip()],
                rate_wpm=round(160 * speed),
                sample_rate=TTS_SAMPLE_RATE,
            )
            return np.asarray(utt.pcm)
        seconds = max(0.1, len(text) * self.config.tts_ms_per_char / 1000 / max(speed, 0.25))
        return tone(seconds, TTS_SAMPLE_RATE)

    # --- transcriptions (STT, non-realtime) -------------------------------------------------

    async def _transcriptions(self, request: web.Request) -> web.Response:
        form = await request.post()
        fields = {k: str(v) for k, v in form.items() if k != "file"}
        upload = form.get("file")
        audio = upload.file.read() if isinstance(upload, web.FileField) else b""
        self._record("transcriptions", {**fields, "audio_s": wav_seconds(audio)})
        if (resp := await self._pre_fault("transcriptions", request)) is not None:
            return resp
        text = self.transcripts.popleft() if self.transcripts else self.transcribe_fn(audio, fields)
        fmt = fields.get("response_format", "json")
        if fmt == "text":
            return web.Response(text=text, headers=self._headers())
        if fmt == "verbose_json":
            return web.json_response(
                {
                    "task": "transcribe",
                    "language": "english",
                    "duration": wav_seconds(audio),
                    "text": text,
                    "segments": [],
                    "words": [],
                },
                headers=self._headers(),
            )
        return web.json_response(
            {
                "text": text,
                "usage": {"type": "duration", "seconds": math.ceil(wav_seconds(audio))},
            },
            headers=self._headers(),
        )

    # --- faults ---------------------------------------------------------------------------

    async def _streaming_request(
        self, endpoint: str, request: web.Request
    ) -> tuple[dict[str, Any], Fault | None, web.StreamResponse | None]:
        """The body of a chat or speech request, recorded; the fault it drew (its mid-body modes
        are the caller's to serve); a response if the fault answers before any body byte."""
        body = await request.json()
        self._record(endpoint, body)
        fault = self.faults.take(endpoint)
        return body, fault, await self._pre_fault(endpoint, request, fault)

    async def _pre_fault(
        self, endpoint: str, request: web.Request, fault: Fault | None = None
    ) -> web.StreamResponse | None:
        """Serve the faults that happen before any response byte; None means carry on."""
        if fault is None and endpoint not in ("chat", "speech"):
            fault = self.faults.take(endpoint)
        if fault is None:
            return None
        if fault.mode in ("status", "refuse"):
            headers = self._headers()
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            kind = "rate_limit_exceeded" if fault.status == 429 else "server_error"
            return api_error(fault.status, f"fake {fault.status} injected", kind, headers)
        if fault.mode == "hang":
            # headers withheld for delay_s (0: until the client gives up or the server closes)
            await self.sleep_or_close(fault.delay_s or HANG_FOREVER_S)
            return _cut(request, None)
        if endpoint in ("chat", "speech"):
            return None  # drop/slow_first on streaming endpoints happen mid-body
        if fault.mode == "drop":
            return _cut(request, None)
        if fault.mode == "slow_first":
            await self.sleep_or_close(fault.delay_s)
        return None

    def _headers(self) -> dict[str, str]:
        return {"x-request-id": f"req_fake_{next(self._ids)}"}


# --- helpers --------------------------------------------------------------------------------


def _is(fault: Fault | None, mode: str) -> bool:
    return fault is not None and fault.mode == mode


def _cut(request: web.Request, resp: web.StreamResponse | None) -> web.StreamResponse:
    """Drop the TCP connection without finishing the response (a network failure)."""
    if request.transport is not None:
        request.transport.abort()
    return resp if resp is not None else web.Response(status=499)
