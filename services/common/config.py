"""Typed configuration from the environment (and a `.env` file), validated before anything connects.

Every variable is declared once in `VARIABLES`; `.env.example`, the README's table and the Helm
chart's values, schema and README rows are generated from it (`make generate`, checked current in
CI). A missing or bad value raises
`ConfigError` whose message is one line that starts with the variable's name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from services import registry

# "common", or the name of the one agent (services/registry.py) a variable belongs to
Scope = str


class ConfigError(ValueError):
    """A missing or invalid configuration value; str() is one line naming the variable."""


# --- parsers: each takes the raw string and returns the typed value or raises ValueError ----------


def _str(raw: str) -> str:
    return raw


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)} (got {raw!r})")
        return value

    parse.choices = options  # type: ignore[attr-defined]  # the chart schema's enum
    return parse


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"must be an integer (got {raw!r})") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi} (got {value})")
        return value

    return parse


def _float_range(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"must be a number (got {raw!r})") from None
        if value != value or (value <= lo if lo_open else value < lo) or value > hi:
            bound = f"above {lo}" if lo_open else f"at least {lo}"
            raise ValueError(f"must be {bound} and at most {hi} (got {raw.strip()})")
        return value

    return parse


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Empty string means 'not set' (None)."""
    return lambda raw: None if raw.strip() == "" else parse(raw)


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        parsed = urlparse(value)
        if parsed.scheme not in schemes or not parsed.netloc:
            raise ValueError(f"must be a {'/'.join(schemes)}:// URL (got {value!r})")
        return value

    return parse


def _nonempty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _agent_name(raw: str) -> str:
    value = raw.strip()
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        raise ValueError(f"must be letters, digits, '-' or '_' (got {raw!r})")
    return value


# --- declarations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    name: str
    default: str | None  # None: required (when `required_if` holds, or always if it is None)
    help: str
    parse: Callable[[str], Any] = _str
    scope: Scope = "common"
    secret: bool = False
    # For conditionally required variables: a predicate over the already-parsed values.
    required_if: Callable[[Mapping[str, Any]], bool] | None = None
    required_when: str = ""  # human words for `required_if`, shown in errors and docs

    @property
    def choices(self) -> tuple[str, ...] | None:
        """The allowed values of an enumerated setting (the chart schema's enum), else None."""
        return getattr(self.parse, "choices", None)


def _uses(kind: str) -> Callable[[Mapping[str, Any]], bool]:
    def pred(v: Mapping[str, Any]) -> bool:
        if kind == "openai":
            return "openai" in (v["STT_PROVIDER"], v["LLM_PROVIDER"], v["TTS_PROVIDER"])
        return v["STT_PROVIDER"] == kind

    return pred


VARIABLES: tuple[Var, ...] = (
    # LiveKit connection
    Var("LIVEKIT_URL", None, "LiveKit server WebSocket URL.", _url("ws", "wss", "http", "https")),
    Var("LIVEKIT_API_KEY", None, "LiveKit API key.", _nonempty, secret=True),
    Var("LIVEKIT_API_SECRET", None, "LiveKit API secret.", _nonempty, secret=True),
    Var("AGENT_NAME", "", "Name for explicit dispatch; empty means the service's own name.",
        _optional(_agent_name)),
    # Providers
    Var("STT_PROVIDER", "deepgram", "Speech-to-text: `deepgram`, `openai` or `inference` "
        "(LiveKit Inference).", _choice("deepgram", "openai", "inference")),
    Var("STT_MODEL", "", "STT model; empty picks the provider's default (nova-3, "
        "gpt-4o-mini-transcribe, deepgram/nova-3-general).", _str),
    Var("STT_LANGUAGE", "en", "Language code passed to the STT.", _nonempty),
    Var("LLM_PROVIDER", "openai", "LLM: `openai` (any OpenAI-compatible endpoint) or `inference`.",
        _choice("openai", "inference")),
    Var("LLM_MODEL", "", "LLM model; empty picks gpt-4.1-mini (inference: openai/gpt-4.1-mini).",
        _str),
    Var("TTS_PROVIDER", "openai", "Text-to-speech: `openai` or `inference`.",
        _choice("openai", "inference")),
    Var("TTS_MODEL", "", "TTS model; empty picks gpt-4o-mini-tts (inference: cartesia/sonic-3).",
        _str),
    Var("TTS_VOICE", "", "TTS voice; empty picks the provider's default voice.", _str),
    Var("OPENAI_API_KEY", None, "OpenAI (or compatible) API key.", _nonempty, secret=True,
        required_if=_uses("openai"), required_when="when any provider is openai"),
    Var("OPENAI_BASE_URL", "", "OpenAI-compatible base URL (e.g. a proxy or local server); "
        "empty means OpenAI.", _optional(_url("http", "https"))),
    Var("DEEPGRAM_API_KEY", None, "Deepgram API key.", _nonempty, secret=True,
        required_if=_uses("deepgram"), required_when="when STT_PROVIDER=deepgram"),
    Var("DEEPGRAM_BASE_URL", "", "Deepgram streaming endpoint (`wss://…/v1/listen`); empty "
        "means Deepgram's.", _optional(_url("ws", "wss", "http", "https"))),
    Var("PROVIDER_TIMEOUT_SECONDS", "10", "Timeout for one provider request (STT, LLM, TTS).",
        _float_range(0.0, 300.0, lo_open=True)),
    Var("PROVIDER_MAX_RETRIES", "2", "Retries of a failed provider request before giving up.",
        _int_range(0, 10)),
    # Turn-taking
    Var("TURN_DETECTION", "vad", "End-of-turn detection: `vad` (deterministic, local) or `stt`.",
        _choice("vad", "stt")),
    Var("MIN_ENDPOINTING_DELAY", "0.5", "Seconds of silence before the user's turn ends.",
        _float_range(0.0, 10.0)),
    Var("AEC_WARMUP_SECONDS", "",
        "Seconds after the agent first speaks in a call during which the user's audio cannot "
        "interrupt it and the STT hears silence (the framework's echo-cancellation warm-up); 0 "
        "disables it. Empty: 0 for the interrupter (it must hear a user who talks over its "
        "first reply), 3 (the framework's default) for the uninterruptable agent.",
        _optional(_float_range(0.0, 30.0))),
    Var("AGENT_INSTRUCTIONS", "", "System instructions; empty uses the agent's built-in ones.",
        _str),
    Var("FALLBACK_LINE", "Sorry, I ran into a problem on my side. Could you say that again?",
        "Spoken when the LLM fails a turn for good, so the caller is not left in silence.",
        _nonempty),
    # Worker
    Var("HTTP_BIND_ADDRESS", "0.0.0.0", "Address the health and metrics endpoints listen on "
        "(\"::\" for IPv6-only clusters).",
        _nonempty),
    Var("LIVEKIT_MAX_RETRY", "16", "Connection attempts to LiveKit before the worker gives up "
        "and exits non-zero.", _int_range(0, 1000)),
    Var("HEALTH_PORT", "8081", "Port of the worker's HTTP health endpoint (`/`).",
        _int_range(1, 65535)),
    Var("METRICS_PORT", "9100", "Port of the Prometheus `/metrics` endpoint.",
        _int_range(1, 65535)),
    Var("DRAIN_TIMEOUT_SECONDS", "600", "On SIGTERM, how long running calls may go on before "
        "the worker exits.", _int_range(0, 86400)),
    Var("LOAD_THRESHOLD", "0.7", "Worker load (0-1] above which it takes no new job.",
        _float_range(0.0, 1.0, lo_open=True)),
    # read by livekit-agents itself; declared to be validated and documented
    Var("NUM_CPUS", "", "CPUs the worker's load is measured against (LOAD_THRESHOLD is a share of "
        "them). Empty: the container's CPU limit, else all the machine's CPUs; the Helm chart "
        "sets the pod's CPU request.", _optional(_float_range(0.0, 1024.0, lo_open=True))),
    Var("NUM_IDLE_PROCESSES", "1", "Job processes kept ready for a call (VAD loaded, "
        "providers built). It also caps the calls an idle worker accepts at once; livekit-server "
        "gives the others to other workers or drops them.", _int_range(0, 64)),
    Var("LOG_LEVEL", "INFO", "Log level: DEBUG, INFO, WARNING or ERROR. Transcripts are only "
        "logged at DEBUG.", lambda raw: _choice("debug", "info", "warning", "error")(raw).upper()),
    # interrupter
    Var("INTERRUPT_MAX_SENTENCES", "3", "Cut in once the user's monologue reaches this many "
        "sentences (0 disables this limit).", _int_range(0, 1000), scope="interrupter"),
    Var("INTERRUPT_MAX_WORDS", "", "Cut in at this many words in one monologue (empty "
        "disables).", _optional(_int_range(1, 100000)), scope="interrupter"),
    Var("INTERRUPT_MAX_SECONDS", "", "Cut in after this many seconds of monologue (empty "
        "disables).", _optional(_float_range(0.0, 3600.0, lo_open=True)),
        scope="interrupter"),
    Var("INTERRUPT_FLOOR_SECONDS", "3", "A monologue is the user's speech since the agent last "
        "had the floor: pauses and replies the user talks over do not end it; the agent speaking "
        "this many seconds, or to the end of a reply, without being talked over does.",
        _float_range(0.0, 60.0, lo_open=True), scope="interrupter"),
    Var("INTERRUPT_PREFACE", "Sorry, can I pause you there?", "Line spoken at once when "
        "cutting in.", _nonempty, scope="interrupter"),
    Var("INTERRUPT_INSTRUCTIONS", "The user has been talking for a while. In one or two short "
        "sentences, acknowledge what they said so far, then ask one focused question to narrow "
        "it down.", "Instructions for the reply that follows the preface.", _nonempty,
        scope="interrupter"),
    # uninterruptable
    Var("PROTECTED_SPEECH_USER_AUDIO", "discard", "What happens to user speech while the agent "
        "speaks uninterruptibly: `discard` (dropped, counted as suppressed) or `keep` "
        "(transcribed and answered next).", _choice("discard", "keep"),
        scope="uninterruptable"),
    Var("GREETING_INSTRUCTIONS", "Say something somewhat long and boring so I can test if "
        "you're interruptable.", "User input seeded on entering, so the agent speaks first.",
        _nonempty, scope="uninterruptable"),
)

if _unknown := {v.scope for v in VARIABLES} - {"common", *registry.AGENTS}:
    raise ValueError(f"config.VARIABLES: scopes that are no agent: {_unknown}")

# Commands that talk to LiveKit need its credentials; `console` runs a session locally (provider
# keys needed, LiveKit's not); `download-files` and help need nothing.
CONNECTING_COMMANDS = frozenset({"start", "dev", "connect"})
SESSION_COMMANDS = CONNECTING_COMMANDS | {"console"}
_LIVEKIT_VARS = frozenset({"LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"})


def variables_for(service: str) -> tuple[Var, ...]:
    return tuple(v for v in VARIABLES if v.scope in ("common", service))


@dataclass(frozen=True)
class Settings:
    """Parsed values by variable name, plus the service they were loaded for."""

    service: str
    values: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def agent_name(self) -> str:
        return self.values["AGENT_NAME"] or self.service

    def redacted(self) -> dict[str, Any]:
        """Values safe to log: secrets replaced by '***'."""
        secret = {v.name for v in VARIABLES if v.secret}
        return {k: ("***" if k in secret and val else val) for k, val in self.values.items()}


def load(
    service: str,
    environ: Mapping[str, str] | None = None,
    *,
    command: str = "start",
) -> Settings:
    """Parse and validate the service's variables. Raises ConfigError on the first problem."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    deferred: list[Var] = []
    for var in variables_for(service):
        raw = env.get(var.name)
        if raw is None or (var.default is None and raw.strip() == ""):
            if var.default is None:
                deferred.append(var)  # decide once every value it may depend on is parsed
                values[var.name] = None
                continue
            raw = var.default
        try:
            values[var.name] = var.parse(raw)
        except ValueError as e:
            raise ConfigError(f"{var.name}: {e}") from None

    for var in deferred:
        if command not in SESSION_COMMANDS:
            needed = False
        elif var.required_if is not None:
            needed = var.required_if(values)
        elif var.name in _LIVEKIT_VARS:
            needed = command in CONNECTING_COMMANDS
        else:
            needed = True
        if needed:
            when = f" ({var.required_when})" if var.required_when else ""
            raise ConfigError(f"{var.name}: required but not set{when} - {var.help}")
    return Settings(service=service, values=values)


def load_dotenv_file(path: str = ".env") -> None:
    """Load a .env file into os.environ without overriding what the environment already has."""
    from dotenv import load_dotenv

    load_dotenv(path, override=False)
