"""Hermetic stand-ins for the cloud providers, reached by the real plugins through `base_url`.

- `FakeOpenAI` (openai_server.py): `/v1/models`, `/v1/chat/completions`, `/v1/audio/speech`,
  `/v1/audio/transcriptions`.
- `FakeDeepgram` (deepgram_server.py): the `/v1/listen` WebSocket with interim/final `Results`
  for the speech it actually receives: recogniser.py recognises known sentences in the audio,
  deepgram_protocol.py turns the words into Deepgram's messages.
- `python -m tests.fakes` runs both in their own process for end-to-end tests.

This module holds what both share: the server lifecycle (an async context manager in the
caller's loop, or `start()`/`stop()` on a private thread), fault plans, and the `/_control`
endpoint through which another process steers a fake (`Control` is a small sync client for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .deepgram_server import FakeDeepgram
    from .openai_server import FakeOpenAI

__all__ = ["Control", "FakeDeepgram", "FakeOpenAI", "FakeServer", "Fault", "FaultPlan"]

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


@dataclass
class _Loop:
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event


class FakeServer:
    """An aiohttp app on 127.0.0.1 (port 0: the OS picks), stoppable from either side.

    Subclasses add routes in `_routes()` and answer control ops in `_control(op, body)`.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._thread: _Loop | None = None
        self._closing: asyncio.Event | None = None
        self.faults = FaultPlan()

    # --- lifecycle: in the caller's loop --------------------------------------------------

    async def __aenter__(self) -> FakeServer:
        await self.start_async()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start_async(self) -> None:
        if self._runner is not None:
            raise RuntimeError("already started")
        self._closing = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/_control", self._handle_control)
        app.router.add_get("/_control", self._handle_state)
        self._routes(app)
        app.on_shutdown.append(self._on_shutdown)
        # handler_cancellation: a hang stops when its client gives up; short shutdown_timeout:
        # close() never waits on a stuck connection
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def aclose(self) -> None:
        if self._runner is None:
            return
        assert self._closing is not None
        self._closing.set()  # wakes hangs and paced streams so they end now
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def _on_shutdown(self, app: web.Application) -> None:
        """Subclasses close their WebSockets here."""

    # --- lifecycle: on a private thread (sync tests, other processes) -----------------------

    def start(self) -> FakeServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            stop = asyncio.Event()
            self._thread = _Loop(threading.current_thread(), loop, stop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as e:  # surfaced to the caller of start()
                errors.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_until_complete(stop.wait())
                loop.run_until_complete(self.aclose())
            finally:
                loop.close()

        t = threading.Thread(target=run, name=f"{type(self).__name__}-loop", daemon=True)
        t.start()
        ready.wait()
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        th = self._thread
        if th is None:
            return
        th.loop.call_soon_threadsafe(th.stop.set)
        th.thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- shared helpers -------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"{self.http_url}/_control"

    async def sleep_or_close(self, seconds: float) -> bool:
        """Sleep, but return True at once if the server is closing."""
        if seconds <= 0:
            return False
        assert self._closing is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
            return True
        return False

    def state(self) -> dict[str, Any]:
        return {"faults_served": dict(self.faults.served), "faults_pending": self.faults.pending()}

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _control(self, op: str, body: dict[str, Any]) -> Any:
        if op == "clear_faults":
            self.faults.clear()
            return None
        raise ValueError(f"unknown control op {op!r}")

    async def _handle_control(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            result = self._control(str(body.get("op")), body)
        except (ValueError, TypeError, KeyError) as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response({"ok": True, "result": result, "state": self.state()})

    async def _handle_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())


class Control:
    """Sync client for a fake's `/_control` endpoint (e.g. one run by `python -m tests.fakes`).

    `Control(url)("fault", endpoint="chat", mode="status", status=429, retry_after=1)`;
    `Control(url).state()` returns the fake's counters and recorded requests.
    """

    def __init__(self, control_url: str, timeout: float = 5.0) -> None:
        self.url = control_url
        self.timeout = timeout

    def __call__(self, op: str, **body: Any) -> dict[str, Any]:
        req = urllib.request.Request(
            self.url,
            data=json.dumps({"op": op, **body}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise ValueError(f"control op {op!r} refused: {e.read().decode()}") from None

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url, timeout=self.timeout) as resp:
            return json.loads(resp.read())


def __getattr__(name: str) -> Any:
    # lazy: importing the package for Fault/Control does not pull in both servers
    if name == "FakeOpenAI":
        from .openai_server import FakeOpenAI

        return FakeOpenAI
    if name == "FakeDeepgram":
        from .deepgram_server import FakeDeepgram

        return FakeDeepgram
    raise AttributeError(name)
