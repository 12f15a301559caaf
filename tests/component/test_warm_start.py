"""The prewarm leaves nothing for the call to import.

An import on the job's event loop blocks it (0.1-0.4 s each for the openai SDK's streaming types,
measured by the framework's loop monitor on a loaded worker): audio piles up, the VAD falls
behind the STT and the user's turn can end early. Each run is a fresh interpreter started like a
job process (testkit/first_call.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from services import registry
from services.common import providers


def first_call_imports(service: str, *flags: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "testkit.first_call", service, *flags],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("service", list(registry.AGENTS))
def test_first_call_imports_nothing_after_prewarm(service: str) -> None:
    imported = first_call_imports(service)
    assert imported == [], (
        f"the first {service} call imported {imported}: add them to "
        f"providers.FIRST_USE_MODULES")


def test_without_prewarm_the_first_call_imports_the_sdks() -> None:
    # the control: the measurement sees what the prewarm is there to take away
    imported = first_call_imports("interrupter", "--no-prewarm")
    missed = [m for m in providers.FIRST_USE_MODULES if m not in imported]
    assert not missed, f"imported without the prewarm anyway, drop them from the list: {missed}"
