"""Fixtures of the image and stack tests: a dockerd of our own, the stand-in registry images and
the two agent images built from the unmodified Dockerfile.

scripts/docker-stack.sh does the heavy lifting (installs docker.io, debootstrap and Compose,
starts the daemon, builds the stand-ins); it is the same script `make stack` runs. The daemon is
stopped after the last test of this folder when these tests started it (the end-to-end tests
that follow run on a quiet machine). Nothing is skipped: a missing
tool fails with the script's own message.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from services import registry
from testkit.reporting import Figures

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "docker-stack.sh"
DOCKER_CLI = "/usr/bin/docker"  # Debian's docker.io CLI (see scripts/docker-stack.sh)
AGENTS = tuple(registry.AGENTS)
IMAGE = "voice-agents-{agent}:local"  # the names docker-compose.yml gives the agent images

figure = Figures("docker")  # a measured figure: printed now, repeated in the terminal summary


def pytest_terminal_summary(terminalreporter: Any) -> None:
    figure.summarise(terminalreporter, "docker figures")


def script(*args: str, timeout: float = 1800) -> str:
    """Run scripts/docker-stack.sh; its last stdout line is the answer. Fails the test with the
    script's own message (what is missing) when it fails."""
    result = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                            timeout=timeout, cwd=REPO)
    if result.returncode != 0:
        pytest.fail(f"scripts/docker-stack.sh {' '.join(args)} failed:\n{result.stderr[-3000:]}",
                    pytrace=False)
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def _docker_env() -> dict[str, str]:
    out = subprocess.run(["bash", str(SCRIPT), "env"], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout
    env = dict(os.environ)
    for word in out.replace("export ", "").split():
        key, _, value = word.partition("=")
        env[key] = value
    return env


@dataclass
class Docker:
    """The docker CLI pointed at our own dockerd."""

    env: dict[str, str]
    started_here: bool = False
    containers: list[str] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 600, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([DOCKER_CLI, *args], capture_output=True, text=True,
                                timeout=timeout, cwd=REPO, env={**self.env, **(env or {})})
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout[-2000:]}{result.stderr[-3000:]}")
        return result

    def out(self, *args: str, **kw: Any) -> str:
        return self.run(*args, **kw).stdout.strip()

    def inspect(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.out("inspect", name))[0])

    def start(self, *args: str) -> str:
        """`docker run -d ...`; the container is removed at the end of the session."""
        cid = self.out("run", "-d", *args)
        self.containers.append(cid)
        return cid

    def health(self, cid: str) -> str:
        state = self.inspect(cid)["State"]
        if not state.get("Running"):
            return "exited"
        return str(state.get("Health", {}).get("Status", "none"))

    def wait_health(self, cid: str, want: str, timeout: float, *, exited_ok: bool = False
                    ) -> float:
        """Seconds until the container's health is `want` (`exited_ok`: an exited container's
        last health status counts too); fails with its log otherwise."""
        t0 = time.monotonic()
        status = ""
        while time.monotonic() - t0 < timeout:
            status = self.health(cid)
            if exited_ok and status == "exited":
                status = str(self.inspect(cid)["State"].get("Health", {}).get("Status"))
            if status == want:
                return time.monotonic() - t0
            if status == "exited":
                break
            time.sleep(0.2)
        logs = self.run("logs", "--tail", "40", cid, check=False)
        raise AssertionError(f"container {cid[:12]} is {status!r}, not {want!r} after "
                             f"{time.monotonic() - t0:.1f}s:\n{logs.stdout}{logs.stderr}")


@pytest.fixture(scope="package")
def docker() -> Iterator[Docker]:
    """Our dockerd (started if not running, stopped at the end if started here) with the
    stand-in images built."""
    t0 = time.monotonic()
    started = script("start") == "started"
    d = Docker(_docker_env(), started_here=started)
    figure(f"dockerd {'started' if started else 'reused'} "
           f"(+ docker.io, Compose checked) in {time.monotonic() - t0:.1f}s")
    t0 = time.monotonic()
    script("standins")
    figure(f"stand-in images ready in {time.monotonic() - t0:.1f}s")
    try:
        yield d
    finally:
        for cid in d.containers:
            d.run("rm", "-f", "-v", cid, check=False, timeout=60)
        if started:
            script("stop", timeout=180)


@dataclass
class Builds:
    cold_s: float  # interrupter with --no-cache: every step runs, wheels downloaded
    seconds: dict[str, float]  # right after: uninterruptable reuses the base stage
    cached_s: dict[str, float]  # both again, nothing changed


def build(d: Docker, agent: str, *extra: str) -> float:
    t0 = time.monotonic()
    d.run("build", *extra, "--target", agent, "-t", IMAGE.format(agent=agent), ".", timeout=1800)
    return time.monotonic() - t0


@pytest.fixture(scope="package")
def images(docker: Docker) -> Builds:
    """Both targets built from the unmodified Dockerfile (what compose's `build:` does): the
    first without the layer cache (a cold build, on the cached stand-in base), then the second,
    then both again to measure a cached rebuild."""
    # each run's --no-cache build leaves the previous layers behind as build cache and dangling
    # images (about 1.3 GB a run): drop them first, so the data root holds one set
    docker.run("image", "prune", "--force")
    docker.run("builder", "prune", "--all", "--force")
    cold = build(docker, AGENTS[0], "--no-cache")
    seconds = {AGENTS[0]: cold, AGENTS[1]: build(docker, AGENTS[1])}
    cached = {agent: build(docker, agent) for agent in AGENTS}
    data_root = subprocess.run(["du", "-sh", str(REPO / ".cache" / "docker" / "data")],
                               capture_output=True, text=True).stdout.split("\t")[0]
    figure(f"dockerd data root after the builds: {data_root}")
    figure(f"build {AGENTS[0]} --no-cache (cold): {cold:.1f}s; then {AGENTS[1]}: "
           f"{seconds[AGENTS[1]]:.1f}s (shares the base stage); rebuilds, cached: "
           + ", ".join(f"{a} {s:.1f}s" for a, s in cached.items()))
    return Builds(cold, seconds, cached)
