"""End-to-end harness: a real livekit-server, the real worker processes, a real WebRTC participant.

Only the cloud providers are fake (tests/fakes, a process per provider). Everything here binds to
127.0.0.1, picks free ports (a developer's own livekit-server on 7880 keeps running), and cleans
up after itself: fixtures stop what they start, every child gets its own process group that is
killed at interpreter exit (`atexit`) and dies with the pytest process (PR_SET_PDEATHSIG via
setpriv).

Fixtures (tests/e2e/conftest.py)
  e2e_dir             session work dir: server configs, logs, metrics dirs (printed on failure)
  fakes               `Fakes`: `python -m tests.fakes`, a process per provider; `.openai` and
                      `.deepgram` are `tests.fakes.Control` clients (scripts, replies, faults,
                      state); openai_requests(endpoint, since) filters the fake's request log;
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

Helpers
  LiveKitServer       start()/stop()/restart(), ws_url, http_url, metrics_url (its Prometheus
                      endpoint), api() (a LiveKitAPI), log_text()
  Worker              start(), wait_ready() / await ready() (async tests), ready_s (process
                      start -> "registered worker"), health(), info() (/worker JSON),
                      metrics_text(), metric(name, **labels),
                      records()/find(message, **fields) over its JSON log, sigterm(),
                      wait_exit(timeout) -> exit code, stop()
  running_worker()    `with running_worker(agent, lk_server, fakes, dir, name=..., **env) as w:`
                      a registered worker for a module-scoped fixture (fault, load, Prometheus
                      tests: their own agent name, keys or limits), stopped at exit
  Participant         dispatch(agent) -> AgentJoin (dispatch -> agent joined seconds),
                      say(utterance) -> Spoken (wall-clock times of sentences as sent),
                      agent_audio: AudioMonitor of the agent's track, leave()
  AudioMonitor        energy detector over 10 ms frames with hysteresis: segments (wall clock),
                      turns(gap_s), wait_for_speech(after=...), wait_for_quiet(quiet_s)
  speech(sentences)   espeak-ng Utterance (tests.support.speech), failing with the install hint
  metric_value()      one sample from a Prometheus text exposition
  wait_until() / await wait_for()   poll a condition (sync / without blocking the loop)

In async tests never block the event loop for long (time.sleep, wait_until, wait_ready): the
microphone and the agent-audio monitor run on it, and the monitor dates frames on arrival.
Start processes from the main thread (fixtures, or start_worker(..., wait=False) then
`await w.ready()`): PR_SET_PDEATHSIG fires when the forking *thread* ends.

Time base: every timestamp is the participant process's wall clock (time.time()): when a sample
was handed to WebRTC (send side) or when a decoded frame arrived (receive side), so latencies are
end to end, including the SFU, both jitter buffers and Opus.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from livekit import api, rtc

from services import registry

REPO = Path(__file__).resolve().parents[2]
SETUP_HINT = "run `bash scripts/setup.sh`"
LIVEKIT_SERVER_BIN = Path(os.environ.get("LIVEKIT_SERVER_BIN", REPO / ".cache/bin/livekit-server"))
ENTRYPOINT = REPO / "services/entrypoint.sh"
PYTHON = os.environ.get("E2E_PYTHON", sys.executable)

# A fixed dev key pair, written into the server's config (not livekit's built-in devkey/secret,
# which would also change how --dev binds).
API_KEY = "e2e-devkey"
API_SECRET = "e2e-dev-secret-0123456789abcdef0123456789"

AGENTS = tuple(registry.AGENTS)


class HarnessError(RuntimeError):
    """Something the harness needs did not happen in time; the message carries the evidence."""


# --- processes ----------------------------------------------------------------------------------

_children: set[subprocess.Popen[bytes]] = set()


def _kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


@atexit.register
def _kill_all_children() -> None:
    for proc in list(_children):
        _kill_group(proc)


# Dies with the pytest process even if it is SIGKILLed and atexit never runs. setpriv (util-linux)
# sets PR_SET_PDEATHSIG and execs, so no preexec_fn runs in a forked copy of this multi-threaded
# process (the WebRTC SDK has native threads).
_SETPRIV = shutil.which("setpriv")
_DEATHSIG = [_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else []


def spawn(
    argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None, cwd: Path = REPO
) -> subprocess.Popen[bytes]:
    """Start a child in its own process group (so a worker's job processes go with it) with
    stdout+stderr in `log`. Call from the main thread: PDEATHSIG fires when the *thread* that
    forked exits."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - argv is ours
            [*_DEATHSIG, *argv], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
        )
    _children.add(proc)
    return proc


def terminate(
    proc: subprocess.Popen[bytes], timeout: float = 5.0, *, signals: int = 1
) -> int | None:
    """SIGTERM the process (`signals` times, `timeout` apart), then SIGKILL its whole group;
    returns its exit code."""
    for _ in range(signals):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    _kill_group(proc)  # job processes and anything else left in the group
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    _children.discard(proc)
    return proc.returncode


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "<no log>"


# --- ports and HTTP -----------------------------------------------------------------------------


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 right now (TCP by default, SOCK_DGRAM for UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - local URL
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


def wait_until(
    cond: Callable[[], Any], timeout: float, what: str, *, interval: float = 0.1,
    evidence: Callable[[], str] = lambda: "",
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}\n{evidence()}")
        time.sleep(interval)


async def wait_for(
    cond: Callable[[], Any], timeout: float, what: str, *, interval: float = 0.05,
    evidence: Callable[[], str] = lambda: "",
) -> Any:
    """`wait_until` for async tests: polls without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}\n{evidence()}")
        await asyncio.sleep(interval)


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of sample `name` whose labels include `labels`; None if absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def require_tool(path: Path, what: str) -> None:
    """Fail (never skip) when a tool the suite needs is missing, naming the install command."""
    import pytest

    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{what} not found at {path}: {SETUP_HINT}", pytrace=False)


# --- livekit-server -----------------------------------------------------------------------------


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

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}/metrics"

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


# --- fake providers -----------------------------------------------------------------------------


class Fakes:
    """`python -m tests.fakes` in two processes, one per provider (the STT fake's recogniser is
    CPU work that must not delay an LLM request); `.openai` / `.deepgram` steer them."""

    KINDS = ("openai", "deepgram")

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.info: dict[str, Any] = {}

    def log_path(self, kind: str) -> Path:
        return self.workdir / f"fakes-{kind}.log"

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values()]

    def start(self, timeout: float = 20.0) -> Fakes:
        from tests.fakes import Control

        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
        for kind in self.KINDS:
            self.procs[kind] = spawn([PYTHON, "-m", "tests.fakes", "--only", kind],
                                     log=self.log_path(kind), env=env)
        for kind, proc in self.procs.items():
            log = self.log_path(kind)

            def first_json(proc: subprocess.Popen[bytes] = proc,
                           log: Path = log) -> dict[str, Any] | None:
                if proc.poll() is not None:
                    raise HarnessError(f"`python -m tests.fakes` exited {proc.returncode}:\n"
                                       f"{tail(log)}")
                for line in log.read_text(errors="replace").splitlines():
                    if line.startswith("{"):
                        with contextlib.suppress(ValueError):
                            return dict(json.loads(line))
                return None

            self.info.update(wait_until(first_json, timeout, f"the {kind} fake's JSON line",
                                        evidence=lambda log=log: tail(log)))
        self.openai = Control(self._url("openai_control"))
        self.deepgram = Control(self._url("deepgram_control"))
        return self

    def _url(self, key: str) -> str:
        if key not in self.info:
            raise HarnessError(f"`python -m tests.fakes` printed no {key!r}: {self.info}")
        return str(self.info[key])

    @property
    def openai_base_url(self) -> str:
        return self._url("openai_base_url")

    @property
    def deepgram_base_url(self) -> str:
        return self._url("deepgram_base_url")

    def openai_requests(self, endpoint: str, since: float = 0.0) -> list[dict[str, Any]]:
        """Recorded request bodies of one endpoint ("chat", "speech", ...) made after `since`."""
        reqs = self.openai.state().get("requests", [])
        return [r["body"] for r in reqs if r["endpoint"] == endpoint and r["time"] >= since]

    def reset(self) -> None:
        """Forget scripts, queued replies, faults and recorded requests of both fakes."""
        self.openai("reset")
        self.deepgram("reset")

    def stop(self) -> None:
        for proc in self.procs.values():
            terminate(proc, timeout=5)
        self.procs.clear()


# --- workers ------------------------------------------------------------------------------------


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

    @property
    def agent_name(self) -> str:
        return self.env.get("AGENT_NAME") or self.agent

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.env['HEALTH_PORT']}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.env['METRICS_PORT']}/metrics"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Worker:
        self.started_at = time.time()
        self.proc = spawn([str(ENTRYPOINT), self.agent, "start"], log=self.log_path, env=self.env)
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


# --- speech -------------------------------------------------------------------------------------


def speech(sentences: Sequence[str], **kw: Any) -> Any:
    """espeak-ng speech (cached) as a `tests.support.speech.Utterance` at 48 kHz."""
    import pytest

    from tests.support import speech as sp

    try:
        return sp.synthesize(list(sentences), **kw)
    except sp.EspeakMissingError as e:
        pytest.fail(f"{e} (or {SETUP_HINT})", pytrace=False)


# --- audio out: the participant's microphone ----------------------------------------------------


@dataclass
class Spoken:
    """An utterance as sent: `t0` is the wall-clock time of its sample 0."""

    utterance: Any
    t0: float

    def sentence_start(self, i: int) -> float:
        return self.t0 + self.utterance.sentences[i].start

    def sentence_end(self, i: int) -> float:
        return self.t0 + self.utterance.sentences[i].end

    @property
    def start(self) -> float:
        return self.t0 + self.utterance.onset

    @property
    def end(self) -> float:
        return self.sentence_end(len(self.utterance.sentences) - 1)


class Microphone:
    """An always-on mic: digital silence unless speaking, paced in real time by AudioSource.

    Continuous frames matter: the agent's VAD only sees the end of speech if silence follows.
    """

    SAMPLE_RATE = 48000
    FRAME_MS = 20

    def __init__(self) -> None:
        # a short queue keeps the send clock honest: a sample leaves within ~queue of capture
        self.source = rtc.AudioSource(self.SAMPLE_RATE, 1, queue_size_ms=200)
        self.track = rtc.LocalAudioTrack.create_audio_track("microphone", self.source)
        self._pending: deque[tuple[np.ndarray, asyncio.Future[float]]] = deque()
        self._task: asyncio.Task[None] | None = None
        # (wall time, seconds) the source ran dry while speech was under way: the far end hears
        # a gap there, and a gap of 0.55 s + the pause in the speech ends the user's turn
        self.starved: list[tuple[float, float]] = []

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="e2e-microphone")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, fut in self._pending:
            fut.cancel()
        await self.source.aclose()

    def enqueue(self, pcm: np.ndarray) -> asyncio.Future[float]:
        """Queue samples; the future gets the wall-clock time their first sample is sent."""
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pending.append((np.asarray(pcm, dtype=np.int16), fut))
        return fut

    def starved_between(self, t0: float, t1: float) -> float:
        """The longest time the source ran dry between t0 and t1 (0.0 if it never did)."""
        return max((gap for at, gap in self.starved if t0 <= at <= t1), default=0.0)

    async def _run(self) -> None:
        n = self.SAMPLE_RATE * self.FRAME_MS // 1000
        current: np.ndarray | None = None
        pos = 0
        drained_at: float | None = None  # when the queued audio runs out (wall clock)
        while True:
            now = time.time()
            if (drained_at is not None and current is not None
                    and now - drained_at > self.FRAME_MS / 1000):
                self.starved.append((now, now - drained_at))
            frame = np.zeros(n, np.int16)
            filled = 0
            while filled < n:
                if current is None:
                    if not self._pending:
                        break
                    current, fut = self._pending.popleft()
                    pos = 0
                    if not fut.done():
                        # queued audio ahead of it plays first
                        fut.set_result(time.time() + self.source.queued_duration
                                       + filled / self.SAMPLE_RATE)
                take = min(n - filled, len(current) - pos)
                frame[filled:filled + take] = current[pos:pos + take]
                filled += take
                pos += take
                if pos >= len(current):
                    current = None
            await self.source.capture_frame(
                rtc.AudioFrame(frame.tobytes(), self.SAMPLE_RATE, 1, n))
            drained_at = time.time() + self.source.queued_duration


# --- audio in: what the agent says ---------------------------------------------------------------


@dataclass
class Segment:
    """Agent audio above the threshold; times are wall clock at frame arrival."""

    start: float
    end: float | None = None  # None while still speaking
    audio_s: float = 0.0  # audio time from first to last voiced frame (counted in samples)

    @property
    def duration(self) -> float:
        return (self.end if self.end is not None else time.time()) - self.start


class AudioMonitor:
    """Tells when the agent speaks: RMS over 10 ms frames, hysteresis against flicker.

    A segment opens after `attack` consecutive frames above `on_dbfs` (dated at the first of
    them) and closes after `release_s` below `off_dbfs` (dated at the last voiced frame).
    """

    FRAME_MS = 10

    def __init__(
        self, *, on_dbfs: float = -40.0, off_dbfs: float = -45.0, attack: int = 2,
        release_s: float = 0.3,
    ) -> None:
        self.on_dbfs, self.off_dbfs, self.attack, self.release_s = (
            on_dbfs, off_dbfs, attack, release_s)
        self.segments: list[Segment] = []
        self.frames = 0
        self.first_frame_at: float | None = None
        self._run_on = 0
        self._quiet_since_audio: float | None = None  # audio time of the last voiced frame
        self._last_voiced_wall = 0.0
        self._audio_t = 0.0
        self._seg_audio_start = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def speaking(self) -> bool:
        return bool(self.segments) and self.segments[-1].end is None

    def attach(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=48000, num_channels=1,
                                frame_size_ms=self.FRAME_MS)
        self._task = asyncio.create_task(self._run(stream), name="e2e-agent-audio")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, stream: rtc.AudioStream) -> None:
        try:
            async for ev in stream:
                self.feed(ev.frame, time.time())
        finally:
            await stream.aclose()

    def feed(self, frame: rtc.AudioFrame, now: float) -> None:
        pcm = np.frombuffer(frame.data, dtype=np.int16).astype(np.float64)
        dur = frame.samples_per_channel / frame.sample_rate
        level = 20 * np.log10(max(float(np.sqrt((pcm * pcm).mean())) / 32768.0, 1e-6)) \
            if len(pcm) else -120.0
        self.frames += 1
        if self.first_frame_at is None:
            self.first_frame_at = now
        self._audio_t += dur
        seg = self.segments[-1] if self.speaking else None
        if level > self.on_dbfs:
            self._run_on += 1
            self._last_voiced_wall = now
            self._quiet_since_audio = self._audio_t
            if seg is None and self._run_on >= self.attack:
                lead = (self._run_on - 1) * dur
                self.segments.append(Segment(start=now - lead - dur))
                self._seg_audio_start = self._audio_t - self._run_on * dur
            elif seg is not None:
                seg.audio_s = self._audio_t - self._seg_audio_start
        else:
            self._run_on = 0
            if (seg is not None and level < self.off_dbfs
                    and self._quiet_since_audio is not None
                    and self._audio_t - self._quiet_since_audio >= self.release_s):
                seg.end = self._last_voiced_wall
                seg.audio_s = self._quiet_since_audio - self._seg_audio_start

    # -- queries --------------------------------------------------------------------------------

    def segments_after(self, t: float) -> list[Segment]:
        return [s for s in self.segments if s.start >= t]

    def turns(self, gap_s: float = 1.0, after: float = 0.0) -> list[Segment]:
        """Segments merged across pauses shorter than `gap_s` (one spoken reply = one turn)."""
        merged: list[Segment] = []
        for s in self.segments_after(after):
            last = merged[-1] if merged else None
            if last is not None and last.end is not None and s.start - last.end < gap_s:
                last.end = s.end
                last.audio_s += s.audio_s
            else:
                merged.append(Segment(s.start, s.end, s.audio_s))
        return merged

    async def wait_for_speech(self, *, after: float = 0.0, timeout: float = 20.0) -> Segment:
        """The first segment starting at or after `after` (wall clock)."""
        deadline = time.monotonic() + timeout
        while True:
            segs = self.segments_after(after)
            if segs:
                return segs[0]
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"no agent audio within {timeout:.0f}s (frames received: {self.frames}, "
                    f"segments: {self.describe()})")
            await asyncio.sleep(0.02)

    async def wait_for_quiet(self, quiet_s: float = 1.5, *, timeout: float = 30.0) -> float:
        """Wait until the agent has been silent `quiet_s`; returns when its last segment ended."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.speaking:
                last_end = self.segments[-1].end if self.segments else 0.0
                assert last_end is not None
                if time.time() - max(last_end, self._last_voiced_wall) >= quiet_s:
                    return last_end
            if time.monotonic() > deadline:
                raise HarnessError(f"agent still speaking after {timeout:.0f}s: {self.describe()}")
            await asyncio.sleep(0.05)

    def describe(self, since: float | None = None) -> str:
        base = since if since is not None else (self.first_frame_at or 0.0)
        parts = []
        for s in self.segments:
            end = f"{s.end - base:.2f}" if s.end is not None else "..."
            parts.append(f"[{s.start - base:.2f}-{end} audio {s.audio_s:.2f}s]")
        return " ".join(parts) or "none"


# --- the participant ----------------------------------------------------------------------------


@dataclass
class AgentJoin:
    identity: str
    agent_name: str
    dispatched_at: float  # just before CreateDispatch was sent
    joined_at: float  # participant_connected for the agent
    dispatch_id: str = ""

    @property
    def joined_s(self) -> float:
        return self.joined_at - self.dispatched_at


@dataclass
class Participant:
    """A user in a room over real WebRTC: an always-on mic and an ear on the agent's track."""

    server: LiveKitServer
    room_name: str
    identity: str = "e2e-user"
    room: rtc.Room = field(default_factory=rtc.Room)
    mic: Microphone | None = None
    agent_audio: AudioMonitor = field(default_factory=AudioMonitor)
    agents: dict[str, AgentJoin] = field(default_factory=dict)  # by identity
    agent_tracks_at: dict[str, float] = field(default_factory=dict)  # identity -> subscribed
    _joined: dict[str, float] = field(default_factory=dict)
    _left: dict[str, float] = field(default_factory=dict)

    async def join(self, timeout: float = 15.0) -> Participant:
        self.room.on("participant_connected", self._on_participant)
        self.room.on("participant_disconnected", self._on_participant_left)
        self.room.on("track_subscribed", self._on_track)
        token = self.server.token(self.room_name, self.identity)
        await asyncio.wait_for(self.room.connect(self.server.ws_url, token), timeout)
        for p in self.room.remote_participants.values():
            self._on_participant(p)
        self.mic = Microphone()
        opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await asyncio.wait_for(self.room.local_participant.publish_track(self.mic.track, opts),
                               timeout)
        self.mic.start()
        return self

    def _on_participant(self, p: rtc.RemoteParticipant) -> None:
        if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            self._joined.setdefault(p.identity, time.time())

    def _on_participant_left(self, p: rtc.RemoteParticipant) -> None:
        self._left.setdefault(p.identity, time.time())

    def _on_track(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        if (track.kind == rtc.TrackKind.KIND_AUDIO
                and p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
                and p.identity not in self.agent_tracks_at):
            self.agent_tracks_at[p.identity] = time.time()
            self.agent_audio.attach(track)

    def agent_participants(self) -> list[rtc.RemoteParticipant]:
        return [p for p in self.room.remote_participants.values()
                if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT]

    def agent_left_at(self, identity: str) -> float | None:
        return self._left.get(identity)

    async def dispatch(
        self, agent_name: str, *, timeout: float = 20.0, wait_audio: bool = True
    ) -> AgentJoin:
        """Explicit dispatch through the server API; waits for an agent to join (and, with
        `wait_audio`, for its audio track to be subscribed). The returned `agent_name` is the
        joined agent's `lk.agent.name` attribute: assert it."""
        known = set(self._joined)
        dispatched_at = time.time()
        async with self.server.api() as lk:
            d = await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name=agent_name, room=self.room_name))
        deadline = time.monotonic() + timeout
        while True:
            new = [i for i in self._joined if i not in known]
            if new and (not wait_audio or new[0] in self.agent_tracks_at):
                break
            if time.monotonic() > deadline:
                raise HarnessError(f"agent {agent_name!r} did not join room {self.room_name} "
                                   f"within {timeout:.0f}s (joined: {sorted(self._joined)})")
            await asyncio.sleep(0.02)
        identity = new[0]
        p = self.room.remote_participants[identity]
        join = AgentJoin(identity=identity, agent_name=p.attributes.get("lk.agent.name", ""),
                         dispatched_at=dispatched_at, joined_at=self._joined[identity],
                         dispatch_id=d.id)
        self.agents[identity] = join
        return join

    async def say(self, utterance: Any, *, wait: bool = True) -> Spoken:
        """Send an utterance through the mic; with `wait`, return once its last sample is out."""
        assert self.mic is not None, "join() first"
        if utterance.sample_rate != Microphone.SAMPLE_RATE:
            utterance = utterance.resampled(Microphone.SAMPLE_RATE)
        t0 = await self.mic.enqueue(utterance.pcm)
        spoken = Spoken(utterance, t0)
        if wait:
            await asyncio.sleep(max(0.0, t0 + utterance.duration - time.time()))
        return spoken

    async def leave(self) -> None:
        await self.agent_audio.close()
        if self.mic is not None:
            await self.mic.close()
            self.mic = None
        await self.room.disconnect()


# --- small utilities for tests ------------------------------------------------------------------


@contextlib.contextmanager
def timed(label: str, sink: dict[str, float]) -> Iterator[None]:
    t = time.monotonic()
    try:
        yield
    finally:
        sink[label] = round(time.monotonic() - t, 3)


REPORTED: list[str] = []


def report(line: str) -> None:
    """A figure or fact for the run log: printed (seen with -s and in a failure's captured
    output) and repeated in the terminal summary."""
    REPORTED.append(line)
    print(f"[e2e] {line}", flush=True)
