"""Fixtures of the end-to-end suite, on testkit (a real livekit-server, the real worker processes,
a real WebRTC participant; only the cloud providers are fake). Everything binds to 127.0.0.1 and
picks free ports (a developer's own livekit-server on 7880 keeps running); fixtures stop what
they start.

  e2e_dir             session work dir: server configs, logs, metrics dirs (printed on failure)
  fakes               `testkit.fakes_runner.Fakes`, a process per provider; `.openai` and
                      `.deepgram` are `Control` clients (scripts, replies, faults, state);
                      openai_requests(endpoint, since) filters the fake's request log;
                      reset() before every test that uses it (autouse `_fresh_fakes`; the
                      fakes' config knobs are not reset: restore what you change)
  lk_server           `LiveKitServer` shared by the session (dev mode, free TCP + UDP port)
  interrupter         long-lived `Worker` for agent "interrupter" on lk_server (session scope)
  uninterruptable     the same for "uninterruptable"
  start_worker        factory: `start_worker(agent, server=..., env={...}, wait=True) -> Worker`;
                      for tests that kill or drain workers; stopped at test teardown
  start_lk_server     factory for an isolated `LiveKitServer` (restart tests); stopped at teardown
  participant         factory: `async with participant(server, room) as p:` a joined
                      `Participant`, disconnected at exit
  room_name           a room name unique to the test and run

In async tests never block the event loop for long (time.sleep, wait_until, wait_ready): the
microphone and the agent-audio monitor run on it. Start processes from the main thread (fixtures,
or start_worker(..., wait=False) then `await w.ready()`).
"""

from __future__ import annotations

import contextlib
import re
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.fakes_runner import Fakes
from testkit.livekit_server import LiveKitServer
from testkit.participant import Participant
from testkit.reporting import report
from testkit.worker import AGENTS, Worker, worker_env


def pytest_terminal_summary(terminalreporter: Any) -> None:
    report.summarise(terminalreporter, "e2e figures")


_ISOLATED = {"start_worker", "start_lk_server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the shared server and workers first, then those that start, kill, drain or
    restart their own: a failure there (or -x) leaves the shared scenarios reported."""
    items.sort(key=lambda item: bool(_ISOLATED & set(getattr(item, "fixturenames", ()))))


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # pytest keeps the last few runs' dirs: the worker and server logs are the evidence
    path = tmp_path_factory.mktemp("e2e")
    report(f"work dir (logs, configs): {path}")
    return path


@pytest.fixture(scope="session")
def fakes(e2e_dir: Path) -> Iterator[Fakes]:
    f = Fakes(e2e_dir).start()
    yield f
    f.stop()


@pytest.fixture(autouse=True)
def _fresh_fakes(request: pytest.FixtureRequest) -> None:
    """Scripts, replies and faults left by an earlier (failed) test must not leak into this one."""
    if "fakes" in request.fixturenames:
        request.getfixturevalue("fakes").reset()


@pytest.fixture(scope="session")
def lk_server(e2e_dir: Path) -> Iterator[LiveKitServer]:
    server = LiveKitServer(e2e_dir / "server", "livekit").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def session_workers(
    e2e_dir: Path, lk_server: LiveKitServer, fakes: Fakes
) -> Iterator[dict[str, Worker]]:
    """Both agents, started together (their start-up overlaps), shared by the session."""
    workers = {}
    try:
        for agent in AGENTS:
            wdir = e2e_dir / "workers" / agent
            workers[agent] = Worker(agent, worker_env(agent, lk_server, fakes, wdir), wdir).start()
        for w in workers.values():
            w.wait_ready()
            report(f"worker {w.name} ready in {w.ready_s:.2f}s (process start -> registered)")
        yield workers
    finally:
        for w in workers.values():  # both drain at once, then each is stopped
            if w.proc is not None and w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        for w in workers.values():
            w.stop()


@pytest.fixture(scope="session")
def interrupter(session_workers: dict[str, Worker]) -> Worker:
    return session_workers["interrupter"]


@pytest.fixture(scope="session")
def uninterruptable(session_workers: dict[str, Worker]) -> Worker:
    return session_workers["uninterruptable"]


@pytest.fixture
def start_worker(
    e2e_dir: Path, lk_server: LiveKitServer, fakes: Fakes, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Worker]]:
    """`start_worker(agent, server=lk_server, name=..., env={...}, wait=True)`: a worker of
    the test's own, stopped (process group killed) at teardown."""
    started: list[Worker] = []
    # no glob characters ("[0.7]" of a parametrised test) in the metrics directory's path:
    # prometheus-client finds the processes' files with glob
    test = re.sub(r"[^\w.-]", "_", request.node.name)

    def start(agent: str, *, server: LiveKitServer | None = None, name: str = "",
              env: dict[str, str] | None = None, wait: bool = True) -> Worker:
        name = name or f"{agent}-{len(started) + 1}"
        wdir = e2e_dir / test / name
        w = Worker(agent, worker_env(agent, server or lk_server, fakes, wdir, **(env or {})),
                   wdir, name=name)
        started.append(w.start())
        if wait:
            w.wait_ready()
            report(f"worker {name} ready in {w.ready_s:.2f}s")
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def start_lk_server(e2e_dir: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[], Any]]:
    """An isolated livekit-server (own ports) for tests that stop or restart it."""
    servers: list[LiveKitServer] = []

    def start() -> LiveKitServer:
        s = LiveKitServer(e2e_dir / request.node.name, f"livekit-{len(servers) + 1}")
        servers.append(s)
        return s.start()

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
async def participant() -> AsyncIterator[Callable[..., Any]]:
    """`async with participant(server, room, identity=...) as p:` a joined Participant; all
    still connected are disconnected at teardown too."""
    joined: list[Participant] = []

    @contextlib.asynccontextmanager
    async def make(server: LiveKitServer, room: str, identity: str = "e2e-user"
                   ) -> AsyncIterator[Participant]:
        p = Participant(server, room, identity)
        joined.append(p)
        await p.join()
        try:
            yield p
        finally:
            await p.leave()
            joined.remove(p)

    yield make
    for p in joined:
        with contextlib.suppress(Exception):
            await p.leave()


@pytest.fixture
def room_name(request: pytest.FixtureRequest) -> str:
    # unique per test and run: a room left over from an earlier test never interferes
    return f"{request.node.name[:40]}-{int(time.time() * 1000) % 10**8}"
