"""The web service's settings: where browsers reach LiveKit and the key pair tokens are signed with.

Validated like the agents' (services/common/settings.py): one line naming the variable, exit 2.
The secret signs tokens here and never leaves this process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.config import ConfigError
from services.common.settings import Key, LiveKitUrl, NonEmpty, count, seconds, setting

# the page built by `npm run build` in web/ (the image copies it to the same place under /app)
DEFAULT_STATIC_DIR = str(Path(__file__).resolve().parents[2] / "web" / "dist")
SECRETS = {"LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(alias_generator=str.upper, populate_by_name=True,
                                      extra="ignore", frozen=True, validate_default=True)

    livekit_public_url: LiveKitUrl = setting(
        ..., "LiveKit URL as the user's browser reaches it (e.g. ws://localhost:7880).")
    livekit_api_key: Key = setting(..., "LiveKit API key the tokens are issued under.")
    livekit_api_secret: Key = setting(..., "LiveKit API secret that signs the tokens.")
    web_bind_address: NonEmpty = setting("0.0.0.0", "Address the web server listens on.")
    web_port: count(1, 65535) = setting(8080, "Port of the page and its API.")
    web_token_ttl_seconds: seconds(10, 86400) = setting(
        900, "Lifetime of a token: how long after it is issued a browser may join with it.")
    web_static_dir: NonEmpty = setting(DEFAULT_STATIC_DIR, "Directory of the built page.")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: Any, *_others: Any, **_named: Any) -> tuple:
        return (init_settings,)  # load() hands over exactly the variables to validate


def load(environ: dict[str, str]) -> Settings:
    """Validate; ConfigError (one line naming the variable) on the first problem."""
    names = {(info.alias or name.upper()) for name, info in Settings.model_fields.items()}
    # an empty value is as good as none (a compose `${VAR:-}` passes an empty string)
    values = {k: v for k, v in environ.items() if k in names and v.strip()}
    try:
        return Settings(**values)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        name = str(err["loc"][0]) if err["loc"] else "?"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = f"required but not set - {Settings.model_fields[name.lower()].description}"
        shown = "" if name in SECRETS or not isinstance(err.get("input"), str) else \
            f" (got {err['input']!r})"
        raise ConfigError(f"{name}: {msg}{shown}") from None
