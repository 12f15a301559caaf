"""Child processes for the suites and the benchmarks: spawn in a process group that dies with us,
terminate (SIGTERM, then SIGKILL to the group), log tails, free ports, a tolerant HTTP GET.

Every child gets its own process group, killed at interpreter exit (`atexit`), and dies with the
parent even if that is SIGKILLed (PR_SET_PDEATHSIG via setpriv). Start processes from the main
thread: PR_SET_PDEATHSIG fires when the forking *thread* ends.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETUP_HINT = "run `bash scripts/setup.sh`"
PYTHON = os.environ.get("E2E_PYTHON", sys.executable)

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


def require_tool(path: Path, what: str) -> None:
    """Fail (never skip) when a tool the suite needs is missing, naming the install command."""
    import pytest

    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{what} not found at {path}: {SETUP_HINT}", pytrace=False)
