"""The web service's settings: where browsers reach LiveKit, the key pair tokens are signed with,
and which agents the page offers.

Validated like the agents' (services/common/settings.py): one line naming the variable, exit 2.
The secret signs tokens here and never leaves this process.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from services import registry
from services.common.config import validated
from services.common.settings import (
    EnvSettings,
    Key,
    LiveKitUrl,
    NonEmpty,
    count,
    dispatch_name,
    seconds,
    setting,
)

# the page built by `npm run build` in web/ (the image copies it to the same place under /app)
BUILT_PAGE = Path(__file__).resolve().parents[2] / "web" / "dist"


def _dispatch_names(value: str) -> str:
    """A comma-separated list of dispatch names, blanks around entries ignored; "" stays ""."""
    if not value.strip():
        return ""
    names = [n.strip() for n in value.split(",")]
    if "" in names:
        raise ValueError("an entry is empty (names separated by single commas)")
    for name in names:
        try:
            dispatch_name(name)
        except ValueError as e:
            raise ValueError(f"{name!r}: {e}") from None
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"{twice!r} is listed twice")
    return ",".join(names)


DispatchNames = Annotated[str, AfterValidator(_dispatch_names)]


class Settings(EnvSettings):
    livekit_public_url: LiveKitUrl = setting(
        ..., "LiveKit URL as the user's browser reaches it (e.g. ws://localhost:7880).")
    livekit_api_key: Key = setting(..., "LiveKit API key the tokens are issued under.")
    livekit_api_secret: Key = setting(..., "LiveKit API secret that signs the tokens.")
    web_bind_address: NonEmpty = setting("0.0.0.0", "Address the web server listens on.")
    web_port: count(1, 65535) = setting(8080, "Port of the page and its API.")
    web_token_ttl_seconds: seconds(10, 86400) = setting(
        900, "Lifetime of a token: how long after it is issued a browser may join with it.")
    web_agents: DispatchNames = setting(
        "", "The agents the page offers, by the names their workers register for dispatch "
        "(AGENT_NAME), comma-separated; empty: every agent of the project under its own name. "
        "docker compose and the Helm chart set it from the agents' names.")
    web_static_dir: str = setting(
        "", "Directory of the built page; empty: web/dist beside services/ (where the image has "
        "it).")

    @property
    def agents(self) -> tuple[str, ...]:
        """The dispatch names the page offers, in order."""
        return tuple(self.web_agents.split(",")) if self.web_agents else tuple(registry.AGENTS)

    @property
    def page_dir(self) -> Path:
        return Path(self.web_static_dir) if self.web_static_dir.strip() else BUILT_PAGE


def load(environ: Mapping[str, str]) -> Settings:
    """Validate; ConfigError (one line naming the variable) on the first problem."""
    names = {(info.alias or name.upper()) for name, info in Settings.model_fields.items()}
    # an empty value is as good as none (a compose `${VAR:-}` passes an empty string)
    return validated(Settings, {k: v for k, v in environ.items() if k in names and v.strip()})
