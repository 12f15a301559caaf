"""The pod deletion-cost updater (services/common/pod_cost.py) against a local HTTP server standing
in for the Kubernetes API, the one part of it that is cloud: it PATCHes the pod with a JSON
merge-patch, follows job starts and ends, survives API errors, and does nothing when off."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from livekit.rtc import EventEmitter

from services.common import config, pod_cost, worker


class FakeApi:
    """PATCH /api/v1/namespaces/<ns>/pods/<name>; answers `fail` requests with 500 first."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail = 0
        self.event = asyncio.Event()

    async def patch(self, request: web.Request) -> web.Response:
        self.requests.append({"path": request.path, "type": request.content_type,
                              "auth": request.headers.get("Authorization"),
                              "body": json.loads(await request.text())})
        self.event.set()
        if self.fail:
            self.fail -= 1
            return web.Response(status=500, text="etcdserver: request timed out")
        return web.json_response({"kind": "Pod"})

    def costs(self) -> list[str]:
        return [r["body"]["metadata"]["annotations"][pod_cost.ANNOTATION] for r in self.requests]

    async def wait_for(self, n: int, timeout: float = 5.0) -> None:
        async def enough() -> None:
            while len(self.requests) < n:
                self.event.clear()
                await self.event.wait()
        await asyncio.wait_for(enough(), timeout)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[FakeApi, pod_cost.PodRef]]:
    fake = FakeApi()
    app = web.Application()
    app.router.add_route("PATCH", "/api/v1/namespaces/{ns}/pods/{name}", fake.patch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    token = tmp_path / "token"
    token.write_text("token-1\n")
    ref = pod_cost.PodRef(f"http://127.0.0.1:{port}", "voice", "va-interrupter-7d9f", token, None)
    yield fake, ref
    await runner.cleanup()


class Server:
    """What the updater reads of livekit-agents' AgentServer: its process pool's events and
    active_jobs. The pool is a real livekit EventEmitter."""

    def __init__(self) -> None:
        self._proc_pool = EventEmitter[str]()
        self.active_jobs: list[object] = []

    def job(self, start: bool) -> None:
        if start:
            self.active_jobs.append(object())
            self._proc_pool.emit("process_job_launched", None)
        else:
            self.active_jobs.pop()
            self._proc_pool.emit("process_closed", None)


async def test_patches_the_pod_and_follows_jobs(api: tuple[FakeApi, pod_cost.PodRef]) -> None:
    fake, ref = api
    server = Server()
    updater = worker.track_pod_deletion_cost(server, ref)  # type: ignore[arg-type]
    assert updater is not None
    try:
        await fake.wait_for(1)
        server.job(start=True)
        await fake.wait_for(2)
        server.job(start=True)
        await fake.wait_for(3)
        server.job(start=False)
        await fake.wait_for(4)
        assert fake.costs() == ["0", "1", "2", "1"]
        first = fake.requests[0]
        assert first["path"] == "/api/v1/namespaces/voice/pods/va-interrupter-7d9f"
        assert first["type"] == "application/merge-patch+json"
        assert first["auth"] == "Bearer token-1"
        assert first["body"] == {"metadata": {"annotations": {pod_cost.ANNOTATION: "0"}}}
        # the token is read per request: the kubelet rotates it
        ref.token_file.write_text("token-2")
        server.job(start=False)
        await fake.wait_for(5)
        assert fake.requests[-1]["auth"] == "Bearer token-2" and fake.costs()[-1] == "0"
        # an event that does not change the count sends nothing
        server._proc_pool.emit("process_closed", None)
        await asyncio.sleep(0.2)
        assert len(fake.requests) == 5 and updater.patches == 5 and updater.errors == 0
    finally:
        await updater.aclose()


async def test_survives_api_errors_and_warns_once(api: tuple[FakeApi, pod_cost.PodRef],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    fake, ref = api
    fake.fail = 3
    server = Server()
    server.active_jobs.append(object())
    updater = pod_cost.PodDeletionCost(ref, lambda: len(server.active_jobs), resync_seconds=0.05)
    with caplog.at_level(logging.DEBUG, logger="voice_agents.pod_cost"):
        updater.start()
        try:
            await fake.wait_for(4)
            await asyncio.sleep(0.2)
        finally:
            await updater.aclose()
    assert updater.errors == 3 and updater.patches == 1
    assert len(fake.requests) == 4 and fake.costs() == ["1"] * 4  # retried until accepted
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "HTTP 500" in warnings[0].getMessage()


async def test_unreachable_api_is_counted_not_raised(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    ref = pod_cost.PodRef("http://127.0.0.1:9", "ns", "pod", token, None)  # discard port: refused
    updater = pod_cost.PodDeletionCost(ref, lambda: 0, resync_seconds=0.05)
    updater.start()
    await asyncio.sleep(0.5)
    assert updater._task is not None and not updater._task.done()  # still running
    await updater.aclose()
    assert updater.errors >= 2 and updater.patches == 0


def test_outside_a_pod_it_says_what_is_missing() -> None:
    with pytest.raises(RuntimeError, match="KUBERNETES_SERVICE_HOST.*POD_NAME"):
        pod_cost.PodRef.in_cluster({})


async def test_switched_off_by_default(api: tuple[FakeApi, pod_cost.PodRef],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's start hook with the default settings: no listener, no request; switched on
    outside a pod, it warns and the worker runs on."""
    fake, _ = api
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    env = {"LIVEKIT_URL": "ws://x", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s",
           "OPENAI_API_KEY": "o", "DEEPGRAM_API_KEY": "d"}
    off = config.load("interrupter", env)
    assert off.pod_deletion_cost is False
    server = Server()
    worker._on_worker_started(server, off)  # type: ignore[arg-type]
    server.job(start=True)
    await asyncio.sleep(0.2)
    assert fake.requests == []
    assert not server._proc_pool._events.get("process_job_launched")
    on = config.load("interrupter", {**env, "POD_DELETION_COST": "true"})
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    worker._on_worker_started(server, on)  # type: ignore[arg-type]
    assert not server._proc_pool._events.get("process_job_launched")
