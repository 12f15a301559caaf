"""The compose stack of tests/docker as an object: `docker compose` with the fakes override on
our own dockerd, the stack's livekit-server for a host participant, the fakes' control clients."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from livekit import api

from testkit.fakes import Control
from testkit.livekit_server import LiveKitServer
from testkit.participant import Participant

from .conftest import REPO, Docker

OVERRIDE = REPO / "tests" / "docker" / "compose.fakes.yml"
SERVICES = {"fakes", "livekit", "interrupter", "uninterruptable", "web", "prometheus"}
# docker-compose.yml's defaults when .env sets no LiveKit key (set explicitly below, so that a
# developer's .env or shell cannot change them under the test)
API_KEY, API_SECRET = "devkey", "secret"
COMPOSE_ENV = {"LIVEKIT_API_KEY": API_KEY, "LIVEKIT_API_SECRET": API_SECRET,
               "LIVEKIT_NODE_IP": "", "COMPOSE_PROJECT_NAME": "voice-agents"}
PROMETHEUS = "http://127.0.0.1:9090"

GREETING = ("Here is a long and boring story about paper clips. They were invented a long time "
            "ago. Many people improved them over the years. Now they are found in every office.")


class StackLiveKit(LiveKitServer):
    """The stack's livekit-server, through its published port (compose's dev keys)."""

    def __init__(self) -> None:  # noqa: D107 - nothing of the parent's set-up applies
        self.port = 7880
        self.name = "compose livekit"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.http_url = f"http://127.0.0.1:{self.port}"

    def api(self) -> api.LiveKitAPI:
        return api.LiveKitAPI(url=self.http_url, api_key=API_KEY, api_secret=API_SECRET)

    def token(self, room: str, identity: str) -> str:
        return (api.AccessToken(API_KEY, API_SECRET).with_identity(identity).with_name(identity)
                .with_grants(api.VideoGrants(room_join=True, room=room)).to_jwt())


@dataclass
class Stack:
    docker: Docker
    livekit: StackLiveKit
    overrides: tuple[str, ...] = (str(OVERRIDE.relative_to(REPO)),)
    env: dict[str, str] = field(default_factory=dict)  # on top of COMPOSE_ENV
    up_s: float = 0.0
    openai: Control | None = None
    deepgram: Control | None = None

    def compose(self, *args: str, timeout: float = 900, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
        files = [a for o in ("docker-compose.yml", *self.overrides) for a in ("-f", o)]
        return self.docker.run("compose", *files, *args, timeout=timeout, check=check,
                               env={**COMPOSE_ENV, **self.env})

    def ps(self) -> dict[str, dict[str, Any]]:
        out = self.compose("ps", "--all", "--format", "json").stdout.strip()
        # one JSON object per line (Compose >= 2.21)
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return {row["Service"]: row for row in rows}

    def logs(self, service: str, since: float | None = None) -> str:
        args = ["logs", "--no-log-prefix", "--no-color"]
        if since is not None:
            args += ["--since", datetime.fromtimestamp(since, UTC).isoformat()]
        r = self.compose(*args, service, check=False)
        return r.stdout + r.stderr

    def connect_fakes(self) -> None:
        def control(port: str) -> Control:
            addr = self.compose("port", "fakes", port).stdout.strip()  # 127.0.0.1:NNNNN
            return Control(f"http://{addr}/_control")

        self.openai, self.deepgram = control("8000"), control("8001")

    def reset_fakes(self) -> None:
        assert self.openai is not None and self.deepgram is not None
        self.openai("reset")
        self.deepgram("reset")


def compose_up(stack: Stack, *services: str) -> float:
    t0 = time.monotonic()
    r = stack.compose("up", "-d", "--wait", "--wait-timeout", "240", *services, check=False)
    if r.returncode != 0:
        states = {s: (row["State"], row.get("Health")) for s, row in stack.ps().items()}
        logs = "\n".join(f"--- {s}\n{stack.logs(s)[-2500:]}" for s in SERVICES)
        raise AssertionError(f"docker compose up failed: {r.stderr[-2000:]}\n{states}\n{logs}")
    return time.monotonic() - t0


@contextlib.asynccontextmanager
async def joined(stack: Stack, room: str) -> AsyncIterator[Participant]:
    p = Participant(stack.livekit, room, "stack-user")  # type: ignore[arg-type]
    await p.join()
    try:
        yield p
    finally:
        await p.leave()


def room_name(tag: str) -> str:
    return f"stack-{tag}-{int(time.time() * 1000) % 10**8}"
