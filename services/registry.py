"""Every agent this project deploys, declared once: its name and the module that defines it.

The name is the service (`services/entrypoint.sh <name> <command>`, the image target, the default
`AGENT_NAME`, the scope of its own settings, the `agent` label of its metrics); the module defines
the agent and exports `SPEC` (a `services.common.session.AgentSpec`: how to build the agent and
its session) and `entrypoint` (the job entrypoint). Adding an agent: a new folder with that
module, one line here, and the settings of its own in services/common/config.py.

Nothing here imports LiveKit: the configuration is validated against these names before it is.
"""

from __future__ import annotations

import importlib
from types import ModuleType

AGENTS: dict[str, str] = {
    "interrupter": "services.interrupter.agent",
    "uninterruptable": "services.uninterruptable.agent",
}


def module(name: str) -> ModuleType:
    """The agent's module (imports LiveKit). KeyError for an unknown agent."""
    return importlib.import_module(AGENTS[name])
