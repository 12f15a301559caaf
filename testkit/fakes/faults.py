"""Fault plans of the provider fakes: what misbehaviour to serve to which requests, and how
often (armed by tests, served by the server thread)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Any

FAULT_MODES = ("status", "hang", "drop", "slow_first", "refuse")


@dataclass
class Fault:
    """One planned misbehaviour, served to the next `count` matching requests (-1: forever).

    mode:
      status      answer `status` (500, 429 with Retry-After `retry_after`, 503...) with an
                  OpenAI-style error body; on Deepgram, refuse the WebSocket handshake so.
      refuse      Deepgram alias of `status` (handshake refused).
      hang        say nothing for `delay_s` (0: until the client gives up), then cut the
                  connection; set it past the client's timeout to see a timeout.
      drop        HTTP: send `after_chunks` body chunks, then cut the TCP connection.
                  Deepgram: cut the socket after `after_audio_s` seconds of audio received
                  (counted from when the fault reaches the connection), or, if `after_words`
                  is set, once that many words of an utterance have been heard.
      slow_first  headers at once, first token/audio byte only after `delay_s` (endpoints
                  that do not stream: the whole answer waits `delay_s`).
    """

    mode: str
    count: int = 1
    status: int = 500
    retry_after: float | None = None
    delay_s: float = 0.0
    after_chunks: int = 1
    after_audio_s: float = 0.0
    after_words: int | None = None
    close_code: int | None = None  # Deepgram drop: None cuts TCP, a code sends a close frame

    def __post_init__(self) -> None:
        if self.mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {self.mode!r}; one of {FAULT_MODES}")


class FaultPlan:
    """Faults per endpoint, thread-safe: tests arm them while the server thread serves them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plans: dict[str, list[Fault]] = {}
        self.served: Counter[str] = Counter()  # "<endpoint>:<mode>" -> faults actually served

    def add(self, endpoint: str, fault: Fault) -> None:
        with self._lock:
            self._plans.setdefault(endpoint, []).append(fault)

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()

    def peek(self, endpoint: str) -> Fault | None:
        with self._lock:
            plan = self._plans.get(endpoint) or self._plans.get("*")
            return plan[0] if plan else None

    def take(self, endpoint: str, fault: Fault | None = None) -> Fault | None:
        """Consume one charge of the first fault for `endpoint` (or of `fault` itself)."""
        with self._lock:
            key = endpoint if self._plans.get(endpoint) else "*"
            plan = self._plans.get(key)
            if not plan:
                return None
            f = fault if fault is not None and fault in plan else plan[0]
            if f.count > 0:
                f.count -= 1
                if f.count == 0:
                    plan.remove(f)
            self.served[f"{endpoint}:{f.mode}"] += 1
            return f

    def pending(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {k: [asdict(f) for f in v] for k, v in self._plans.items() if v}


def apply_config(config: Any, updates: dict[str, Any]) -> None:
    """Set dataclass fields from a JSON dict, refusing unknown names (typos fail loudly)."""
    names = {f.name for f in fields(config)}
    unknown = set(updates) - names
    if unknown:
        raise ValueError(f"unknown config field(s) {sorted(unknown)}; known: {sorted(names)}")
    for k, v in updates.items():
        setattr(config, k, v)
