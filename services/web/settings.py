"""The web service's settings: where browsers reach LiveKit and the key pair tokens are signed with.

Validated like the agents' (services/common/settings.py): one line naming the variable, exit 2.
The secret signs tokens here and never leaves this process.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from services.common.config import validated
from services.common.settings import EnvSettings, Key, LiveKitUrl, NonEmpty, count, seconds, setting

# the page built by `npm run build` in web/ (the image copies it to the same place under /app)
BUILT_PAGE = Path(__file__).resolve().parents[2] / "web" / "dist"


class Settings(EnvSettings):
    livekit_public_url: LiveKitUrl = setting(
        ..., "LiveKit URL as the user's browser reaches it (e.g. ws://localhost:7880).")
    livekit_api_key: Key = setting(..., "LiveKit API key the tokens are issued under.")
    livekit_api_secret: Key = setting(..., "LiveKit API secret that signs the tokens.")
    web_bind_address: NonEmpty = setting("0.0.0.0", "Address the web server listens on.")
    web_port: count(1, 65535) = setting(8080, "Port of the page and its API.")
    web_token_ttl_seconds: seconds(10, 86400) = setting(
        900, "Lifetime of a token: how long after it is issued a browser may join with it.")
    web_static_dir: str = setting(
        "", "Directory of the built page; empty: web/dist beside services/ (where the image has "
        "it).")

    @property
    def page_dir(self) -> Path:
        return Path(self.web_static_dir) if self.web_static_dir.strip() else BUILT_PAGE


def load(environ: Mapping[str, str]) -> Settings:
    """Validate; ConfigError (one line naming the variable) on the first problem."""
    names = {(info.alias or name.upper()) for name, info in Settings.model_fields.items()}
    # an empty value is as good as none (a compose `${VAR:-}` passes an empty string)
    return validated(Settings, {k: v for k, v in environ.items() if k in names and v.strip()})
