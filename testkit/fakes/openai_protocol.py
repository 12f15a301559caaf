"""The OpenAI wire formats the fake speaks (what livekit-plugins-openai 1.8.9 parses): chat
replies and tool calls, error bodies, and speech audio in every `response_format` (pcm = s16le
24 kHz mono, wav, and mp3/opus/aac/flac encoded with PyAV)."""

from __future__ import annotations

import io
import json
import math
import re
import struct
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

TTS_SAMPLE_RATE = 24000  # what the plugin decodes pcm at (openai.tts.SAMPLE_RATE)

Reply = str | dict[str, Any]  # dict: {"content": str, "tool_calls": [{"name", "arguments"}]}
ReplyFn = Callable[[dict[str, Any]], Reply]
TranscribeFn = Callable[[bytes, dict[str, str]], str]

CONTENT_TYPES = {
    "pcm": "audio/pcm",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
}
# response_format -> (PyAV container, codec)
ENCODERS = {
    "mp3": ("mp3", "libmp3lame"),
    "opus": ("ogg", "libopus"),
    "aac": ("adts", "aac"),
    "flac": ("flac", "flac"),
}


def default_reply(body: dict[str, Any]) -> str:
    """Deterministic two-sentence answer echoing the first words of the last user message."""
    text = ""
    for msg in reversed(body.get("messages", [])):
        if msg.get("role") == "user":
            text = content_text(msg.get("content"))
            break
    words = re.findall(r"[\w'$%.-]+", text)[:5]
    if not words:
        return "Hello! How can I help you today?"
    return f"You said something about {' '.join(words).rstrip('.')}. Tell me more?"


@dataclass
class ChatReply:
    """One chat completion as the API sends it: whole (`completion()`) or as the SSE chunks of a
    stream (`chunks()`), tool calls included, with a usage count in words."""

    id: str
    request: dict[str, Any]
    content: str
    tool_calls: list[dict[str, Any]]

    @property
    def model(self) -> str:
        return str(self.request.get("model", "gpt-fake"))

    @property
    def tokens(self) -> list[str]:
        return re.findall(r"\s*\S+", self.content)

    def usage(self) -> dict[str, Any]:
        prompt_tokens = sum(
            len(content_text(m.get("content")).split()) + 3
            for m in self.request.get("messages", [])
        )
        n = len(self.tokens)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": n,
            "total_tokens": prompt_tokens + n,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    def completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": self.content or None,
            "refusal": None,
        }
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c["id"], "type": "function", "function": c["function"]}
                for c in self.tool_calls
            ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if self.tool_calls else "stop",
                }
            ],
            "usage": self.usage(),
            "system_fingerprint": "fp_fake",
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def chunks(self) -> list[dict[str, Any]]:
        """The role chunk, a chunk per token, each tool call (name, then arguments), the finish
        chunk and, if the request asked for it (`stream_options.include_usage`), the usage."""
        chunk = self._chunk
        events: list[dict[str, Any]] = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": t}) for t in self.tokens]
        for i, call in enumerate(self.tool_calls):
            name = call["function"]["name"]
            events.append(chunk({"tool_calls": [
                {"index": i, "id": call["id"], "type": "function",
                 "function": {"name": name, "arguments": ""}}]}))
            events.append(chunk({"tool_calls": [
                {"index": i, "function": {"arguments": call["function"]["arguments"]}}]}))
        events.append(chunk({}, "tool_calls" if self.tool_calls else "stop"))
        if (self.request.get("stream_options") or {}).get("include_usage"):
            events.append({**chunk({}), "choices": [], "usage": self.usage()})
        return events


def tone(seconds: float, rate: int = TTS_SAMPLE_RATE) -> np.ndarray:
    """A soft 220 Hz tone with a 4 Hz syllable-like envelope: audible, cheap, deterministic."""
    t = np.arange(round(seconds * rate)) / rate
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t - np.pi / 2) ** 2
    ramp = np.minimum(1.0, np.minimum(t, t[::-1] if len(t) else t) / 0.02)  # 20 ms fades
    return (0.2 * 32767 * env * ramp * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def encode(pcm: np.ndarray, fmt: str, chunk_ms: int) -> list[bytes]:
    """The audio in `fmt`, cut into body chunks of about `chunk_ms` of audio each."""
    step = TTS_SAMPLE_RATE * chunk_ms // 1000
    raw = [pcm[i : i + step].tobytes() for i in range(0, len(pcm), step)]
    if fmt == "pcm":
        return raw
    if fmt == "wav":
        return [wav_header(len(pcm) * 2, TTS_SAMPLE_RATE), *raw]
    import av  # PyAV ships with livekit-agents (its decoder uses it)

    container, codec = ENCODERS[fmt]
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=TTS_SAMPLE_RATE)
        stream.layout = "mono"  # type: ignore[union-attr]
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = TTS_SAMPLE_RATE
        for packet in stream.encode(frame):  # type: ignore[union-attr]
            out.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            out.mux(packet)
    data = buf.getvalue()
    n = max(1, len(raw))
    size = math.ceil(len(data) / n)
    return [data[i : i + size] for i in range(0, len(data), size)]


def wav_header(data_bytes: int, rate: int) -> bytes:
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def wav_seconds(data: bytes) -> float:
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            return w.getnframes() / w.getframerate()
    except (wave.Error, EOFError):
        return 0.0


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def split_reply(reply: Reply) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(reply, str):
        return reply, []
    calls = []
    for i, c in enumerate(reply.get("tool_calls", [])):
        args = c.get("arguments", {})
        calls.append(
            {
                "id": c.get("id", f"call_fake_{i}"),
                "function": {
                    "name": c["name"],
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
        )
    return str(reply.get("content") or ""), calls


def api_error(
    status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    return web.json_response(body, status=status, headers=headers)
