"""LIVEKIT_NODE_IP (issue 10, item 4). livekit-server in compose offers WebRTC media on its
container's address, which a caller outside the Docker host (or on Docker Desktop) cannot reach.
The caller here is tests/docker/remote_client.py in a container on Docker's default bridge:
Docker isolates it from the compose network, so like a remote browser it reaches livekit-server
only through ports published on an address of the Docker host (compose.node-ip.yml). Without
LIVEKIT_NODE_IP it gets signalling but no media; with LIVEKIT_NODE_IP set to that address it hears
the agent, whose own media now also goes through the published ports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import IMAGE, Builds, Docker, figure
from .stack import GREETING, OVERRIDE, REPO, Stack, StackLiveKit, compose_up, room_name

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

NODE_IP_OVERRIDE = REPO / "tests" / "docker" / "compose.node-ip.yml"


@pytest.fixture(scope="module")
def host_ip(docker: Docker) -> str:
    gateway = docker.out("network", "inspect", "bridge",
                         "--format", "{{(index .IPAM.Config 0).Gateway}}")
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", gateway), gateway
    return gateway


@pytest.fixture(scope="module")
def node_ip_stack(docker: Docker, images: Builds, host_ip: str) -> Iterator[Stack]:
    s = Stack(docker, StackLiveKit(),
              overrides=tuple(str(p.relative_to(REPO)) for p in (OVERRIDE, NODE_IP_OVERRIDE)),
              env={"STACK_HOST_IP": host_ip, "LIVEKIT_NODE_IP": ""})
    s.compose("down", "--volumes", "--remove-orphans", "-t", "10", check=False)
    try:
        yield s
    finally:
        s.compose("down", "--volumes", "--remove-orphans", "-t", "30", check=False)


def remote_call(stack: Stack, host_ip: str, listen_s: float) -> dict[str, Any]:
    assert stack.openai is not None
    stack.reset_fakes()
    stack.openai("reply", replies=[GREETING])
    # tests/ and testkit/ from the checkout (the client's participant is testkit's), services/
    # from the image built of it
    r = stack.docker.run(
        "run", "--rm", "--network", "bridge", "-v", f"{REPO / 'tests'}:/repo/tests:ro",
        "-v", f"{REPO / 'testkit'}:/repo/testkit:ro",
        "-w", "/repo", "-e", "PYTHONPATH=/repo:/app", "--entrypoint", "python",
        IMAGE.format(agent="interrupter"), "-m", "tests.docker.remote_client", host_ip,
        room_name("remote"), str(listen_s), timeout=120)
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def started_with_node_ip(stack: Stack) -> str:
    started = [ln for ln in stack.logs("livekit").splitlines() if "starting LiveKit server" in ln]
    assert started, stack.logs("livekit")[-2000:]
    return re.search(r'"nodeIP": "([^"]*)"', started[-1]).group(1)  # type: ignore[union-attr]


@pytest.mark.timeout(300)
def test_remote_caller_needs_the_node_ip(node_ip_stack: Stack, host_ip: str) -> None:
    stack = node_ip_stack
    # without LIVEKIT_NODE_IP: media offered on the container's address, out of the caller's reach
    compose_up(stack)
    stack.connect_fakes()
    assert started_with_node_ip(stack) != host_ip
    without = remote_call(stack, host_ip, listen_s=15)
    figure(f"remote caller (default bridge, host ports only), LIVEKIT_NODE_IP unset: {without}")
    assert without["http"] == 200, f"the caller must reach livekit-server's port: {without}"
    assert not without["heard"], f"heard the agent without the node IP: {without}"

    # with it: livekit-server is recreated offering the host's address
    stack.env["LIVEKIT_NODE_IP"] = host_ip
    compose_up(stack)
    assert started_with_node_ip(stack) == host_ip
    with_ip = remote_call(stack, host_ip, listen_s=30)
    figure(f"remote caller, LIVEKIT_NODE_IP={host_ip}: {with_ip}")
    assert with_ip["heard"] and with_ip["audio_s"] > 1.0, with_ip
