"""The two agent images, built from the unmodified Dockerfile on a real Docker engine (our own
dockerd, stand-in base images) and run the way compose and the Helm chart run them."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import pytest

from .conftest import AGENTS, IMAGE, REPO, Builds, Docker, figure

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

APP_ID = "10001"
# the hardening of docker-compose.yml's agents (and the chart's securityContext)
HARDENED = ("--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
            "--init", "--tmpfs", "/tmp",
            "--tmpfs", f"/run/voice-agent:uid={APP_ID},gid={APP_ID},mode=0755")
FAKE_KEYS = ("-e", "OPENAI_API_KEY=fake-openai-key", "-e", "DEEPGRAM_API_KEY=fake-deepgram-key",
             # never contacted: no call is made in these tests
             "-e", "OPENAI_BASE_URL=http://127.0.0.1:9/v1",
             "-e", "DEEPGRAM_BASE_URL=ws://127.0.0.1:9/v1/listen")


def test_both_targets_build(docker: Docker, images: Builds) -> None:
    for agent in AGENTS:
        info = docker.inspect(IMAGE.format(agent=agent))
        assert info["Config"]["Entrypoint"] == ["/app/services/entrypoint.sh", agent]
        assert info["Config"]["Cmd"] == ["start"]
        labels = info["Config"]["Labels"]
        assert labels["org.opencontainers.image.title"] == f"voice-agents-{agent}"
        history = docker.out("history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}",
                             IMAGE.format(agent=agent))
        figure(f"image {IMAGE.format(agent=agent)}: {info['Size'] / 1e6:.0f} MB; layers:")
        for line in history.splitlines():
            size, _, created = line.partition("\t")
            if size not in ("0B", "0"):
                step = re.sub(r"\s+", " ", created or "(imported root file system)")[:110]
                figure(f"    {size:>8}  {step}")
    # the two differ only in their last (metadata) instructions: they share every layer
    layers = [docker.inspect(IMAGE.format(agent=a))["RootFS"]["Layers"] for a in AGENTS]
    assert layers[0] == layers[1]


@pytest.mark.parametrize("agent", AGENTS)
def test_runs_as_the_app_user_read_only_without_capabilities(
    docker: Docker, images: Builds, agent: str
) -> None:
    image = IMAGE.format(agent=agent)
    assert docker.inspect(image)["Config"]["User"] == f"{APP_ID}:{APP_ID}"
    probe = ("import os, pathlib; print(os.getuid(), os.getgid());"
             "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0]);"
             "pathlib.Path('/run/voice-agent/metrics').mkdir(parents=True, exist_ok=True);"
             "pathlib.Path('/tmp/x').write_text('ok');"
             "import sys\n"
             "try:\n open('/app/x', 'w')\nexcept OSError as e:\n print('ro', e.errno)")
    out = docker.out("run", "--rm", *HARDENED, "--network", "none", "--entrypoint", "python",
                     image, "-c", probe).splitlines()
    assert out[0] == f"{APP_ID} {APP_ID}"
    assert int(out[1], 16) == 0, f"effective capabilities {out[1]}"
    assert out[2] == "ro 30", "the root file system must be read-only (EROFS)"


def test_no_pip_in_the_final_image(docker: Docker, images: Builds) -> None:
    image = IMAGE.format(agent=AGENTS[0])
    r = docker.run("run", "--rm", "--network", "none", "--entrypoint", "python", image,
                   "-m", "pip", "--version", check=False)
    assert r.returncode != 0 and "No module named pip" in r.stderr, r.stdout + r.stderr
    r = docker.run("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c",
                   "command -v pip pip3 pip3.11 || true")
    assert r.stdout.strip() == "", f"pip on PATH: {r.stdout}"


@pytest.mark.parametrize("agent", AGENTS)
def test_no_network_config_error_at_once(docker: Docker, images: Builds, agent: str) -> None:
    """No network and no settings: the worker fetches nothing first, it says what is missing
    and exits 2 (an orchestrator must not read it as success)."""
    t0 = time.monotonic()
    r = docker.run("run", "--rm", "--network", "none", *HARDENED, IMAGE.format(agent=agent),
                   check=False, timeout=120)
    took = time.monotonic() - t0
    figure(f"{agent}: no network, no settings -> exit {r.returncode} in {took:.1f}s")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "LIVEKIT_URL" in r.stderr and "required" in r.stderr, r.stderr
    assert took < 30


def test_missing_key_exits_2_naming_it(docker: Docker, images: Builds) -> None:
    r = docker.run("run", "--rm", "--network", "none", *HARDENED,
                   "-e", "LIVEKIT_URL=ws://livekit:7880", "-e", "LIVEKIT_API_KEY=devkey",
                   "-e", "LIVEKIT_API_SECRET=secret", "-e", "OPENAI_API_KEY=fake",
                   IMAGE.format(agent="interrupter"), check=False, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "configuration error" in ln]
    assert len(lines) == 1 and "DEEPGRAM_API_KEY" in lines[0], r.stderr


@pytest.fixture()
def livekit(docker: Docker) -> Iterator[tuple[str, str]]:
    """The stand-in livekit-server image with deploy/livekit/livekit.yaml (as compose runs it) on
    an internal network: nothing there reaches beyond it. Yields (network, container name)."""
    net = f"va-test-{uuid.uuid4().hex[:8]}"
    docker.out("network", "create", "--internal", net)
    name = f"{net}-livekit"
    image = next(line.split("image:", 1)[1].strip()
                 for line in (REPO / "docker-compose.yml").read_text().splitlines()
                 if "image: livekit/livekit-server" in line)
    docker.start("--name", name, "--network", net, "--network-alias", "livekit",
                 "-e", "LIVEKIT_KEYS=devkey: secret",
                 "-v", f"{REPO}/deploy/livekit/livekit.yaml:/etc/livekit/livekit.yaml:ro",
                 image, "--config", "/etc/livekit/livekit.yaml")
    try:
        yield net, name
    finally:
        docker.run("rm", "-f", name, check=False)
        docker.run("network", "rm", net, check=False)


def _each_health(docker: Docker, cids: dict[str, str], want: str, timeout: float,
                 t0: float) -> dict[str, float]:
    """Seconds from `t0` (monotonic) until each container's health is `want` (an exited
    container's last health status counts): the containers are watched side by side."""
    left, took = dict(cids), {}
    while left:
        for agent, cid in list(left.items()):
            status = docker.health(cid)
            if status == "exited":
                status = str(docker.inspect(cid)["State"].get("Health", {}).get("Status"))
            if status == want:
                took[agent] = time.monotonic() - t0
                del left[agent]
            elif time.monotonic() - t0 > timeout or (want == "healthy"
                                                      and docker.health(cid) == "exited"):
                docker.wait_health(cid, want, timeout=0)  # fails with its log
        time.sleep(0.2)
    return took


def test_healthcheck_follows_livekit(
    docker: Docker, images: Builds, livekit: tuple[str, str]
) -> None:
    """The image's own HEALTHCHECK command (its timing shortened with --health-*): healthy once
    the worker registered with livekit-server. When the server goes away the worker retries
    LIVEKIT_MAX_RETRY times (its health endpoint stays 200 meanwhile: livekit-agents reports 503
    only once it gave up), then exits 1; the container is then unhealthy and compose's restart
    policy (or Kubernetes) starts it again. Both agents at once: each waits out the retries."""
    net, lk = livekit
    t0 = time.monotonic()
    cids = {agent: docker.start(
        "--network", net, *HARDENED, "-e", "LIVEKIT_URL=ws://livekit:7880",
        "-e", "LIVEKIT_API_KEY=devkey", "-e", "LIVEKIT_API_SECRET=secret",
        "-e", "LIVEKIT_MAX_RETRY=2", *FAKE_KEYS,
        "--health-interval", "1s", "--health-retries", "3",
        "--health-timeout", "5s", "--health-start-period", "60s",
        IMAGE.format(agent=agent)) for agent in AGENTS}
    for agent, took in _each_health(docker, cids, "healthy", 90, t0).items():
        figure(f"{agent}: docker run -> healthy {took:.1f}s (1 s health interval, internal "
               f"network: nothing fetched at start; {len(cids)} agents starting at once)")
    for cid in cids.values():
        deadline = time.monotonic() + 20
        while "registered worker" not in (logs := docker.out("logs", cid)):
            assert time.monotonic() < deadline, f"healthy but never registered:\n{logs[-3000:]}"
            time.sleep(0.2)
        health_cmd = docker.inspect(cid)["Config"]["Healthcheck"]["Test"]
        assert health_cmd[0] == "CMD" and "HEALTH_PORT" in health_cmd[-1], "the image's own check"
        assert docker.inspect(cid)["State"]["Health"]["Log"][-1]["ExitCode"] == 0

    t1 = time.monotonic()
    docker.out("rm", "-f", lk)  # gone: its name no longer resolves
    for agent, took in _each_health(docker, cids, "unhealthy", 120, t1).items():
        state = docker.inspect(cids[agent])["State"]
        figure(f"{agent}: livekit-server removed -> unhealthy after {took:.1f}s "
               f"(LIVEKIT_MAX_RETRY=2; container {state['Status']}, exit code "
               f"{state['ExitCode']})")
        assert "failed to connect to livekit" in docker.out("logs", cids[agent])
        assert state["Status"] == "exited" and state["ExitCode"] == 1, (
            f"giving up on LiveKit must be a failure for the orchestrator: {state}")


# --- the web client's image ----------------------------------------------------------------------

WEB_IMAGE = "voice-agents-web:local"  # docker-compose.yml's name


@pytest.fixture(scope="module")
def web_image(docker: Docker, images: Builds) -> str:
    """The `web` target: the shared base plus the page from the web-build stage (npm ci)."""
    t0 = time.monotonic()
    docker.run("build", "--target", "web", "-t", WEB_IMAGE, ".", timeout=1800)
    info = docker.inspect(WEB_IMAGE)
    figure(f"build web (base cached, page bundled in the node stage): "
           f"{time.monotonic() - t0:.1f}s; {info['Size'] / 1e6:.0f} MB")
    return WEB_IMAGE


def test_web_image_refuses_bad_settings_and_serves_as_the_app_user(
    docker: Docker, web_image: str
) -> None:
    hardened = ("--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
                "--init")
    assert docker.inspect(web_image)["Config"]["User"] == f"{APP_ID}:{APP_ID}"
    r = docker.run("run", "--rm", "--network", "none", *hardened, web_image, check=False,
                   timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().startswith("web: configuration error: LIVEKIT_PUBLIC_URL: required")
    cid = docker.start("--network", "none", *hardened,
                       "-e", "LIVEKIT_PUBLIC_URL=ws://localhost:7880",
                       "-e", "LIVEKIT_API_KEY=devkey", "-e", "LIVEKIT_API_SECRET=secret",
                       web_image)
    healthy_s = docker.wait_health(cid, "healthy", 60)
    figure(f"web: container healthy {healthy_s:.1f}s after start")
    ask = ("import urllib.request as u, urllib.error as e, os\n"
           "print(os.getuid())\n"
           "print(len(u.urlopen('http://127.0.0.1:8080/main.js').read()))\n"
           "try:\n u.urlopen('http://127.0.0.1:8080/api/connection-details?agent=nobody')\n"
           "except e.HTTPError as x:\n print(x.code)")
    out = docker.out("exec", cid, "python", "-c", ask).splitlines()
    assert out[0] == APP_ID and int(out[1]) > 100_000 and out[2] == "400", out
