"""A running livekit-server for the suites and the benchmarks: dev mode on 127.0.0.1, free ports,
a config file we write, restartable on the same ports and keys."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from livekit import api

from testkit.polling import HarnessError, wait_until
from testkit.processes import REPO, free_port, http_get, require_tool, spawn, tail, terminate

LIVEKIT_SERVER_BIN = Path(os.environ.get("LIVEKIT_SERVER_BIN", REPO / ".cache/bin/livekit-server"))

# A fixed dev key pair, written into the server's config (not livekit's built-in devkey/secret,
# which would also change how --dev binds).
API_KEY = "e2e-devkey"
API_SECRET = "e2e-dev-secret-0123456789abcdef0123456789"


class LiveKitServer:
    """livekit-server --dev on 127.0.0.1 with a config file we write; restartable on the same ports.

    ICE/TCP is off: v1.13.5 binds `rtc.tcp_port` on every interface with no option to narrow it,
    and media over loopback UDP needs no fallback. UDP is one port, loopback interface only.
    Its Prometheus endpoint (`metrics_url`) listens on 127.0.0.1 too. Its dispatch cut-off
    (`agents.target_load`, on the load workers report) is 1.0, as the workers' LOAD_THRESHOLD.
    """

    def __init__(self, workdir: Path, name: str = "livekit") -> None:
        self.workdir = workdir
        self.name = name
        self.port = free_port()
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.prometheus_port = free_port()
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        # the ports never change, so neither do the URLs (restart() reuses them)
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.http_url = f"http://127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{self.prometheus_port}/metrics"

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            f"""\
port: {self.port}
bind_addresses: ["127.0.0.1"]
rtc:
  udp_port: {self.udp_port}
  tcp_port: 0
  use_external_ip: false
  node_ip: 127.0.0.1
  enable_loopback_candidate: true
  interfaces:
    includes: ["lo"]
keys:
  {API_KEY}: {API_SECRET}
prometheus:
  port: {self.prometheus_port}
agents:
  # The server only dispatches to a worker whose reported load (the machine's CPU) is below
  # target_load (default 0.7), whatever the worker's own threshold: it must agree with the
  # LOAD_THRESHOLD=1 of worker_env, or a busy shared runner leaves dispatches unserved.
  target_load: 1.0
logging:
  level: info
"""
        )

    def start(self, timeout: float = 20.0) -> LiveKitServer:
        require_tool(LIVEKIT_SERVER_BIN, "livekit-server")
        self.write_config()
        with open(self.log_path, "a") as f:
            f.write(f"\n=== start #{self.starts + 1} at {time.time():.3f} ===\n")
        self.proc = spawn(
            [str(LIVEKIT_SERVER_BIN), "--dev", "--config", str(self.config_path)],
            log=self.log_path,
        )
        self.starts += 1

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise HarnessError(f"livekit-server exited {self.proc.returncode}:\n"
                                   f"{tail(self.log_path)}")
            return http_get(self.http_url + "/")[0] == 200

        wait_until(ready, timeout, f"livekit-server on {self.http_url}",
                   evidence=lambda: tail(self.log_path))
        return self

    def stop(self) -> None:
        """SIGTERM; a second one 2 s later forces it (alone, the server waits for every
        participant to leave, agents included)."""
        if self.proc is not None:
            terminate(self.proc, timeout=2.0, signals=2)
            self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down `down_s`, start again on the same ports and keys."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def api(self) -> api.LiveKitAPI:
        """A server API client; use `async with` (it owns an aiohttp session)."""
        return api.LiveKitAPI(url=self.http_url, api_key=API_KEY, api_secret=API_SECRET)

    def token(self, room: str, identity: str) -> str:
        return (
            api.AccessToken(API_KEY, API_SECRET)
            .with_identity(identity)
            .with_name(identity)
            .with_grants(api.VideoGrants(room_join=True, room=room))
            .to_jwt()
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
