"""The web service's token endpoint and settings, in process (the page itself is tested in a real
browser: tests/e2e/test_browser.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from livekit import api

from services import registry
from services.common.config import ConfigError
from services.web import settings as web_settings
from services.web.server import make_app

ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "web-test-key", "web-test-secret-0123456789abcdef01234567"


def settings(tmp_path: Path, **extra: str) -> web_settings.Settings:
    (tmp_path / "index.html").write_text("<!doctype html><title>page</title>")
    return web_settings.load({"LIVEKIT_PUBLIC_URL": "ws://localhost:7880",
                              "LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET,
                              "WEB_STATIC_DIR": str(tmp_path), **extra})


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app(settings(tmp_path)))) as c:
        yield c


async def test_connection_details_dispatch_the_agent_into_a_fresh_room(client: TestClient) -> None:
    seen = []
    for agent in registry.AGENTS:
        resp = await client.get("/api/connection-details", params={"agent": agent})
        assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
        body = await resp.json()
        assert set(body) == {"serverUrl", "roomName", "participantName", "participantToken"}
        assert body["serverUrl"] == "ws://localhost:7880"
        assert SECRET not in await resp.text()
        claims = api.TokenVerifier(KEY, SECRET).verify(body["participantToken"])
        assert claims.identity == body["participantName"]
        assert claims.video.room == body["roomName"] and claims.video.room_join
        assert claims.video.can_publish and claims.video.can_subscribe
        assert [a.agent_name for a in claims.room_config.agents] == [agent]
        seen.append((body["roomName"], body["participantName"]))
    again = await (await client.get("/api/connection-details?agent=interrupter")).json()
    rooms, identities = zip(*seen, strict=True)
    assert again["roomName"] not in rooms and again["participantName"] not in identities


@pytest.mark.parametrize("query", ["", "?agent=", "?agent=nobody", "?agent=Interrupter"])
async def test_connection_details_refuse_what_is_not_an_agent(client: TestClient,
                                                              query: str) -> None:
    resp = await client.get(f"/api/connection-details{query}")
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert all(agent in error for agent in registry.AGENTS)


async def test_page_agents_and_health(client: TestClient, tmp_path: Path) -> None:
    assert "page" in await (await client.get("/")).text()
    assert (await (await client.get("/api/agents")).json()) == {"agents": list(registry.AGENTS)}
    assert (await client.get("/healthz")).status == 200
    (tmp_path / "index.html").unlink()  # a page that was never built is not healthy
    assert (await client.get("/healthz")).status == 503


async def test_renamed_and_missing_agents_offered_by_their_dispatch_names(
        tmp_path: Path) -> None:
    # the uninterruptable agent renamed, the interrupter not deployed
    app = make_app(settings(tmp_path, WEB_AGENTS=" front-desk "))
    async with TestClient(TestServer(app)) as c:
        assert (await (await c.get("/api/agents")).json()) == {"agents": ["front-desk"]}
        resp = await c.get("/api/connection-details", params={"agent": "front-desk"})
        assert resp.status == 200
        claims = api.TokenVerifier(KEY, SECRET).verify((await resp.json())["participantToken"])
        assert [a.agent_name for a in claims.room_config.agents] == ["front-desk"]
        for gone in registry.AGENTS:  # no worker registers under these: refused, not dispatched
            resp = await c.get("/api/connection-details", params={"agent": gone})
            assert resp.status == 400
            assert (await resp.json())["error"] == "unknown agent: one of front-desk"


@pytest.mark.parametrize(("raw", "agents"), [
    ("", tuple(registry.AGENTS)),
    ("interrupter", ("interrupter",)),
    ("support_bot , interrupter-eu", ("support_bot", "interrupter-eu")),
])
def test_web_agents_setting(tmp_path: Path, raw: str, agents: tuple[str, ...]) -> None:
    assert settings(tmp_path, WEB_AGENTS=raw).agents == agents


@pytest.mark.parametrize(("env", "error"), [
    ({"LIVEKIT_PUBLIC_URL": ""}, "LIVEKIT_PUBLIC_URL: required but not set"),
    ({"WEB_AGENTS": "interrupter,,uninterruptable"}, "WEB_AGENTS: an entry is empty"),
    ({"WEB_AGENTS": ","}, "WEB_AGENTS: an entry is empty"),
    ({"WEB_AGENTS": "interrupter, interrupter"}, "WEB_AGENTS: 'interrupter' is listed twice"),
    ({"WEB_AGENTS": "interrupter,front desk"},
     "WEB_AGENTS: 'front desk': must be letters, digits, '-' or '_'"),
    ({"WEB_AGENTS": "interrupter=front-desk"},
     "WEB_AGENTS: 'interrupter=front-desk': must be letters, digits, '-' or '_'"),
    ({"LIVEKIT_PUBLIC_URL": "localhost:7880"}, "LIVEKIT_PUBLIC_URL: must be a ws/wss/http/https"),
    ({"LIVEKIT_API_SECRET": ""}, "LIVEKIT_API_SECRET: required but not set"),
    ({"WEB_PORT": "70000"}, "WEB_PORT: Input should be less than or equal to 65535"),
])
def test_settings_refused_in_one_line(tmp_path: Path, env: dict[str, str], error: str) -> None:
    with pytest.raises(ConfigError) as e:
        settings(tmp_path, **env)
    assert str(e.value).startswith(error) and "\n" not in str(e.value)


@pytest.mark.parametrize(("bad", "line"), [
    ({"WEB_PORT": "port"}, "WEB_PORT: Input should be a valid integer, unable to parse string "
                           "as an integer (got 'port')"),
    ({"WEB_AGENTS": "interrupter,"}, "WEB_AGENTS: an entry is empty (names separated by single "
                                     "commas) (got 'interrupter,')"),
])
def test_bad_setting_exits_2_and_the_secret_is_never_shown(tmp_path: Path, bad: dict[str, str],
                                                           line: str) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT),
           "LIVEKIT_PUBLIC_URL": "ws://localhost:7880", "LIVEKIT_API_KEY": KEY,
           "LIVEKIT_API_SECRET": SECRET, **bad}
    result = subprocess.run([sys.executable, "-m", "services.web"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"web: configuration error: {line}"
    assert SECRET not in result.stdout + result.stderr
