"""The server side both provider fakes share: an aiohttp app on 127.0.0.1 run in the caller's loop
or on a private thread, with the `/_control` endpoint (control ops, state) and fault plans."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from .faults import FaultPlan, apply_config


@dataclass
class _Loop:
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event


class FakeServer:
    """An aiohttp app on 127.0.0.1 (port 0: the OS picks), stoppable from either side.

    Subclasses add routes in `_routes()`, answer their own control ops in `_control(op, body)`,
    extend `reset()` and `state()`, and set `config` (a dataclass of knobs, op "config").
    """

    config: Any

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.counts: Counter[str] = Counter()
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

    def reset(self) -> None:
        """Forget counts, faults (armed and served) and whatever a subclass records."""
        self.counts.clear()
        self.faults.clear()
        self.faults.served.clear()

    def state(self) -> dict[str, Any]:
        return {
            "faults_served": dict(self.faults.served),
            "faults_pending": self.faults.pending(),
            "counts": dict(self.counts),
            "config": asdict(self.config),
        }

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _control(self, op: str, body: dict[str, Any]) -> Any:
        if op == "clear_faults":
            self.faults.clear()
        elif op == "config":
            apply_config(self.config, {k: v for k, v in body.items() if k != "op"})
        elif op == "reset":
            self.reset()
        else:
            raise ValueError(f"unknown control op {op!r}")
        return None

    async def _handle_control(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            result = self._control(str(body.get("op")), body)
        except (ValueError, TypeError, KeyError) as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response({"ok": True, "result": result, "state": self.state()})

    async def _handle_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())
