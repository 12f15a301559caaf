"""Every agent this project deploys, declared once: its name and its package.

The name is the service (`services/entrypoint.sh <name> <command>`, the image target, the default
`AGENT_NAME`, the scope of its own settings, the `agent` label of its metrics). The package holds
`settings.py` (`Settings`, the agent's settings model: services/common/settings.py plus its own)
and `agent.py`, which defines the agent and exports `SPEC` (a `services.common.session.AgentSpec`:
how to build the agent and its session) and `entrypoint` (the job entrypoint). Adding an agent: a
new folder with those two modules, and one line here.

Nothing here imports LiveKit: the configuration is validated against these names before it is.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.common.settings import CommonSettings

AGENTS: dict[str, str] = {
    "interrupter": "services.interrupter",
    "uninterruptable": "services.uninterruptable",
}


def module(name: str) -> ModuleType:
    """The agent's module (imports LiveKit). KeyError for an unknown agent."""
    return importlib.import_module(f"{AGENTS[name]}.agent")


def settings_model(name: str) -> type[CommonSettings]:
    """The agent's settings model (no LiveKit import). KeyError for an unknown agent."""
    return importlib.import_module(f"{AGENTS[name]}.settings").Settings
