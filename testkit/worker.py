"""The agent workers as the images run them (`entrypoint.sh <agent> start`), pointed at a local
livekit-server and the provider fakes: environment, readiness, health, metrics, JSON logs,
signals."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from services import registry
from testkit.fakes_runner import Fakes
from testkit.livekit_server import API_KEY, API_SECRET, LiveKitServer
from testkit.polling import HarnessError, wait_for, wait_until
from testkit.processes import PYTHON, REPO, free_port, http_get, spawn, tail, terminate
from testkit.reporting import report

ENTRYPOINT = REPO / "services/entrypoint.sh"
AGENTS = tuple(registry.AGENTS)


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of sample `name` whose labels include `labels`; None if absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def worker_env(
    agent: str, server: LiveKitServer, fakes: Fakes, workdir: Path, **overrides: str
) -> dict[str, str]:
    """The environment a deployed worker gets, pointed at the local server and fakes.

    Every declared variable is set explicitly (defaults included), so a developer's `.env` in
    the repo (which the CLI loads) cannot leak into the test.
    """
    from services.common import config

    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER")}
    for var in config.variables_for(agent):
        if var.default is not None:
            env[var.name] = var.default
    env.update(
        PYTHON=PYTHON,
        PYTHONUNBUFFERED="1",
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "prometheus"),
        LIVEKIT_URL=server.ws_url,
        LIVEKIT_API_KEY=API_KEY,
        LIVEKIT_API_SECRET=API_SECRET,
        OPENAI_API_KEY="fake-openai-key",
        OPENAI_BASE_URL=fakes.openai_base_url,
        DEEPGRAM_API_KEY="fake-deepgram-key",
        DEEPGRAM_BASE_URL=fakes.deepgram_base_url,
        HTTP_BIND_ADDRESS="127.0.0.1",
        HEALTH_PORT=str(free_port()),
        METRICS_PORT=str(free_port()),
        NUM_IDLE_PROCESSES="1",
        DRAIN_TIMEOUT_SECONDS="20",
        # The worker's load is the machine's CPU use (psutil, not its own): on a shared 2-core
        # runner the default 0.7 is often exceeded by other jobs and dispatches go unserved.
        LOAD_THRESHOLD="1",
    )
    env.update(overrides)
    return env


class Worker:
    """One agent worker started exactly as the images run it: `entrypoint.sh <agent> start`."""

    def __init__(self, agent: str, env: Mapping[str, str], workdir: Path, name: str = "") -> None:
        self.agent = agent
        self.env = dict(env)
        self.name = name or agent
        self.workdir = workdir
        self.log_path = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.ready_s: float | None = None  # process start -> "registered worker" logged
        self.agent_name = self.env.get("AGENT_NAME") or agent
        self.health_url = f"http://127.0.0.1:{self.env['HEALTH_PORT']}"
        self.metrics_url = f"http://127.0.0.1:{self.env['METRICS_PORT']}/metrics"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def argv(self) -> list[str]:
        """The command the worker runs: the images' entry command."""
        return [str(ENTRYPOINT), self.agent, "start"]

    def start(self) -> Worker:
        self.started_at = time.time()
        self.proc = spawn(self.argv(), log=self.log_path, env=self.env)
        return self

    def _registered_at(self, since: float) -> float | None:
        """When "registered worker" was logged after `since`, once health also answers 200."""
        self._check_alive()
        reg = [r for r in self.find("registered worker", agent_name=self.agent_name)
               if r["_t"] >= since - 0.5]
        if reg and self.health()[0] == 200:
            return float(reg[-1]["_t"])
        return None

    def _ready_evidence(self) -> str:
        return f"health={self.health()} log {self.log_path}:\n{tail(self.log_path)}"

    def wait_ready(self, timeout: float = 60.0, *, after: float | None = None) -> float:
        """Wait for health 200 and a "registered worker" line logged after `after` (default:
        the process start); returns the seconds from `after` to registration. Blocking: in an
        async test use `await ready()`."""
        since = self.started_at if after is None else after
        at = wait_until(lambda: self._registered_at(since), timeout,
                        f"worker {self.name} to register", evidence=self._ready_evidence)
        return self._note_ready(at, after)

    async def ready(self, timeout: float = 60.0, *, after: float | None = None) -> float:
        """`wait_ready` without blocking the event loop (the participant's audio runs on it)."""
        since = self.started_at if after is None else after
        at = await wait_for(lambda: self._registered_at(since), timeout,
                            f"worker {self.name} to register", evidence=self._ready_evidence)
        return self._note_ready(at, after)

    def _note_ready(self, registered_at: float, after: float | None) -> float:
        if after is None:
            self.ready_s = registered_at - self.started_at
            return self.ready_s
        return registered_at - after

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise HarnessError(f"worker {self.name} exited {self.proc.returncode}:\n"
                               f"{tail(self.log_path)}")

    # -- endpoints ------------------------------------------------------------------------------

    def health(self) -> tuple[int, str]:
        return http_get(self.health_url + "/")

    def info(self) -> dict[str, Any]:
        status, body = http_get(self.health_url + "/worker")
        return dict(json.loads(body)) if status == 200 else {}

    def metrics_text(self) -> str:
        status, body = http_get(self.metrics_url, timeout=5)
        if status != 200:
            raise HarnessError(f"{self.metrics_url} answered {status}")
        return body

    def metric(self, name: str, **labels: str) -> float | None:
        return metric_value(self.metrics_text(), name, **labels)

    # -- logs -----------------------------------------------------------------------------------

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def records(self) -> list[dict[str, Any]]:
        """The JSON log records (the `start` command logs JSON), each with `_t` (epoch secs)."""
        out = []
        for line in self.log_text().splitlines():
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            ts = rec.get("timestamp")
            rec["_t"] = datetime.fromisoformat(ts).timestamp() if ts else 0.0
            out.append(rec)
        return out

    def find(self, message: str, **fields: Any) -> list[dict[str, Any]]:
        """Records whose message starts with `message` and whose fields match."""
        return [r for r in self.records()
                if str(r.get("message", "")).startswith(message)
                and all(r.get(k) == v for k, v in fields.items())]

    def errors(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("level") in ("ERROR", "CRITICAL")]

    # -- lifecycle ------------------------------------------------------------------------------

    def sigterm(self) -> float:
        """SIGTERM to the worker process only (what Kubernetes sends to PID 1); returns when."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return time.time()

    def wait_exit(self, timeout: float) -> int | None:
        """Exit code, or None if still running after `timeout`."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace_s: float = 1.5) -> int | None:
        """SIGTERM; a second one after `grace_s` (the CLI then exits at once, skipping the
        drain); SIGKILL to the process group after another `grace_s`."""
        if self.proc is None:
            return None
        return terminate(self.proc, timeout=grace_s, signals=2)


@contextlib.contextmanager
def running_worker(
    agent: str, server: LiveKitServer, fakes: Fakes, workdir: Path, *, name: str = "",
    **env: str,
) -> Iterator[Worker]:
    """A started and registered worker, stopped at exit: for module-scoped fixtures (call from
    the main thread); `env` overrides `worker_env`."""
    w = Worker(agent, worker_env(agent, server, fakes, workdir, **env), workdir, name=name)
    try:
        w.start().wait_ready()
        report(f"worker {w.name} ready in {w.ready_s:.2f}s")
        yield w
    finally:
        w.stop()
