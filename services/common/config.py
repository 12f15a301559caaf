"""Configuration from the environment (and a `.env` file), validated before anything connects.

The settings are declared once, as pydantic-settings models: services/common/settings.py and
each agent's `settings.py`. `load()` validates the environment against the agent's model and
raises `ConfigError`, one line that starts with the variable's name, on the first problem.
`VARIABLES` lists every variable for the generated copies (`make generate`: `.env.example`, the
README's table, the Helm chart's values and schema), which CI checks are current.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from services import registry

from .settings import CommonSettings, EnvSettings, Required, Secret

# "common", or the name of the one agent (services/registry.py) a variable belongs to
Scope = str

# Commands that talk to LiveKit need its credentials; `console` runs a session locally (provider
# keys needed, LiveKit's not); `download-files` and help need nothing.
CONNECTING_COMMANDS = frozenset({"start", "dev", "connect"})
SESSION_COMMANDS = CONNECTING_COMMANDS | {"console"}


class ConfigError(ValueError):
    """A missing or invalid configuration value; str() is one line naming the variable."""


@dataclass(frozen=True)
class Var:
    """One environment variable, as the generated documents and the tests see it."""

    name: str
    default: str | None  # as written in `.env.example`; None: no default (see required_when)
    help: str
    scope: Scope
    secret: bool
    required_when: str  # for variables without a default: in which configurations
    choices: tuple[str, ...] | None  # the allowed values of an enumerated setting
    field: str  # the attribute of the settings model


def _meta(info: FieldInfo, kind: type) -> Any:
    return next((m for m in info.metadata if isinstance(m, kind)), None)


def _choices(annotation: Any) -> tuple[str, ...] | None:
    while get_origin(annotation) is not None and get_origin(annotation) is not Literal:
        annotation = get_args(annotation)[0]  # Annotated[Literal[...], ...]
    return tuple(get_args(annotation)) if get_origin(annotation) is Literal else None


def _default_text(info: FieldInfo) -> str | None:
    if _meta(info, Required) is not None or info.is_required():
        return None
    value = info.default
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe(model: type[EnvSettings], scope: Scope, skip: set[str]) -> list[Var]:
    """The variables of `model`'s fields (but those named in `skip`), as belonging to `scope`."""
    return [
        Var(name=info.alias or name.upper(), default=_default_text(info),
            help=info.description or "", scope=scope, secret=_meta(info, Secret) is not None,
            required_when=getattr(_meta(info, Required), "when", ""),
            choices=_choices(info.annotation), field=name)
        for name, info in model.model_fields.items() if name not in skip
    ]


def _declare() -> tuple[Var, ...]:
    common = set(CommonSettings.model_fields)
    out = describe(CommonSettings, "common", set())
    for agent in registry.AGENTS:
        out += describe(registry.settings_model(agent), agent, common)
    return tuple(out)


VARIABLES: tuple[Var, ...] = _declare()


def variables_for(service: str) -> tuple[Var, ...]:
    return tuple(v for v in VARIABLES if v.scope in ("common", service))


M = TypeVar("M", bound=EnvSettings)


def validated(model: type[M], values: Mapping[str, str]) -> M:
    """`model` from `values` (variable -> raw text); ConfigError naming the first bad variable,
    never showing a secret's value."""
    try:
        return model(**values)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        name = str(err["loc"][0]) if err["loc"] else "?"
        info = model.model_fields.get(name.lower())
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing" and info is not None:
            msg = f"required but not set - {info.description}"
        secret = info is None or _meta(info, Secret) is not None
        shown = "" if secret or not isinstance(err.get("input"), str) else \
            f" (got {err['input']!r})"
        raise ConfigError(f"{name}: {msg}{shown}") from None


def load(
    service: str,
    environ: Mapping[str, str] | None = None,
    *,
    command: str = "start",
) -> CommonSettings:
    """Validate the service's variables from `environ` (default: the process environment).
    Raises ConfigError on the first problem."""
    env = os.environ if environ is None else environ
    model = registry.settings_model(service)
    own = variables_for(service)
    # an empty value of a variable without a default is as good as none
    values = {v.name: env[v.name] for v in own
              if v.name in env and not (v.default is None and not env[v.name].strip())}
    settings = validated(model, values).for_service(service)
    if command in SESSION_COMMANDS:
        for v in own:
            need = _meta(model.model_fields[v.field], Required)
            if (need is not None and getattr(settings, v.field) is None
                    and (command in CONNECTING_COMMANDS or not need.connecting)
                    and need.needed(settings)):
                when = f" ({need.when})" if need.when else ""
                raise ConfigError(f"{v.name}: required but not set{when} - {v.help}")
    return settings


def redacted(settings: CommonSettings) -> dict[str, Any]:
    """Values safe to log, by variable name: secrets replaced by '***'."""
    secret = {v.field for v in VARIABLES if v.secret}
    return {k.upper(): ("***" if k in secret and val else val)
            for k, val in settings.model_dump().items()}


def load_dotenv_file(path: str = ".env") -> None:
    """Load a .env file into os.environ without overriding what the environment already has."""
    from dotenv import load_dotenv

    load_dotenv(path, override=False)
