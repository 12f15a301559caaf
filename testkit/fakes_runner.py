"""The provider fakes as child processes: `python -m testkit.fakes`, one process per provider,
steered through their `/_control` endpoints."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from testkit.fakes.control import Control
from testkit.polling import HarnessError, wait_until
from testkit.processes import PYTHON, REPO, spawn, tail, terminate


class Fakes:
    """`python -m testkit.fakes` in two processes, one per provider (the STT fake's recogniser is
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
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
        for kind in self.KINDS:
            self.procs[kind] = spawn([PYTHON, "-m", "testkit.fakes", "--only", kind],
                                     log=self.log_path(kind), env=env)
        for kind, proc in self.procs.items():
            log = self.log_path(kind)

            def first_json(proc: subprocess.Popen[bytes] = proc,
                           log: Path = log) -> dict[str, Any] | None:
                if proc.poll() is not None:
                    raise HarnessError(f"`python -m testkit.fakes` exited {proc.returncode}:\n"
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
            raise HarnessError(f"`python -m testkit.fakes` printed no {key!r}: {self.info}")
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


def heard(question: str, transcript: str) -> bool:
    """The question reached the LLM: all of it, or all but its last word. The STT fake can lose a
    sentence's last word when a busy machine's jitter buffer squeezes it (CI: "And what should I
    wear" for "And what should I wear tomorrow?"; "Which soil is best for a young lemon" with the
    full e2e suite beside other work); a real STT would not, the agent is not at fault, and the
    answer's timing is still checked."""
    return question in transcript or question.rsplit(" ", 1)[0] in transcript
