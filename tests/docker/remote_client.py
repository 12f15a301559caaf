"""A caller that cannot reach container addresses, like a browser on Docker Desktop or on another
machine: run in a container on Docker's default bridge (which Docker isolates from the compose
network), it reaches livekit-server only through ports published on an address of the Docker
host. It dispatches the uninterruptable agent and listens for its greeting.

    python -m tests.docker.remote_client <host address> <room>   (prints one JSON line)

Run by tests/docker/test_node_ip.py from the interrupter image with tests/ and testkit/ mounted
(the image has the livekit SDK and numpy; this module imports nothing of pytest or services/).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from livekit import api

from testkit.participant import Participant
from testkit.polling import HarnessError
from testkit.processes import http_get

API_KEY, API_SECRET = "devkey", "secret"  # docker-compose.yml's defaults


class HostLiveKit:
    """livekit-server through the Docker host's published port (what Participant needs)."""

    def __init__(self, host: str) -> None:
        self.ws_url = f"ws://{host}:7880"
        self.http_url = f"http://{host}:7880"

    def api(self) -> api.LiveKitAPI:
        return api.LiveKitAPI(url=self.http_url, api_key=API_KEY, api_secret=API_SECRET)

    def token(self, room: str, identity: str) -> str:
        return (api.AccessToken(API_KEY, API_SECRET).with_identity(identity).with_name(identity)
                .with_grants(api.VideoGrants(room_join=True, room=room)).to_jwt())


async def call(host: str, room: str, listen_s: float) -> dict[str, object]:
    server = HostLiveKit(host)
    # livekit-server answers GET / with 200 "OK": its published port is reachable at all
    status, _ = http_get(server.http_url + "/", timeout=5)
    p = Participant(server, room, "remote-user")  # type: ignore[arg-type]
    try:
        await p.join()  # the SDK's connect returns once the peer connection is up (media path)
    except Exception as e:
        await p.room.disconnect()
        return {"heard": False, "http": status, "why": f"join: {type(e).__name__} {e}"}
    try:
        join = await p.dispatch("uninterruptable", wait_audio=False)
        try:
            seg = await p.agent_audio.wait_for_speech(after=join.dispatched_at, timeout=listen_s)
        except HarnessError as e:
            return {"heard": False, "http": status, "frames": p.agent_audio.frames,
                    "why": str(e)}
        await asyncio.sleep(2.0)
        return {"heard": True, "http": status, "frames": p.agent_audio.frames,
                "greeting_after_s": seg.start - join.dispatched_at, "audio_s": seg.audio_s}
    finally:
        await p.leave()


def main() -> int:
    host, room = sys.argv[1], sys.argv[2]
    listen_s = float(sys.argv[3]) if len(sys.argv) > 3 else 25.0
    t0 = time.time()
    try:
        result = asyncio.run(call(host, room, listen_s))
    except Exception as e:  # the test reads the line, whatever went wrong
        result = {"heard": False, "why": f"{type(e).__name__}: {e}"}
    result["took_s"] = time.time() - t0
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # livekit-rtc's native runtime can abort while the interpreter tears down (a Rust panic in a
    # tokio thread, exit 139, seen once in CI after a clean call); the result is already printed.
    os._exit(code)
