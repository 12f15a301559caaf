"""The settings both agents read, declared once as a pydantic-settings model.

Each field is one environment variable (its name upper-cased) with its type, default, bounds and
help text; each agent's own settings extend `CommonSettings` in `services/<agent>/settings.py`.
`services/common/config.py` validates the environment against them, and `make generate` writes
`.env.example`, the README table and the Helm chart's settings from them. Nothing here imports
LiveKit: a bad value must stop a worker before that costs seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

# --- what a field may carry beyond its type -------------------------------------------------------


@dataclass(frozen=True)
class Required:
    """A setting without a default. Commands that never connect need none of them; `connecting`
    ones only for commands that reach LiveKit; `needed` narrows it to some configurations,
    described for people by `when`."""

    when: str = ""
    connecting: bool = False
    needed: Callable[[CommonSettings], bool] = lambda _settings: True


class Secret:
    """Marks a credential: never logged, never in the chart's values, empty in `.env.example`."""


SECRET = Secret()


def setting(default: Any, help: str) -> Any:
    return Field(default, description=help)


# --- value checks: each raises ValueError with words a person can act on --------------------------


def _strip_lower(raw: Any) -> Any:
    return raw.strip().lower() if isinstance(raw, str) else raw


def _empty_is_none(raw: Any) -> Any:
    return None if isinstance(raw, str) and raw.strip() == "" else raw


def _nonempty(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("must not be empty")
    return value.strip() if value is not None else None


def _url(*schemes: str) -> Callable[[str | None], str | None]:
    def check(value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlparse(value.strip())
        if parsed.scheme not in schemes or not parsed.netloc:
            raise ValueError(f"must be a {'/'.join(schemes)}:// URL")
        return value.strip()

    return check


def dispatch_name(value: str) -> str:
    """An agent's name for explicit dispatch (AGENT_NAME, and the web page's WEB_AGENTS)."""
    value = value.strip()
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        raise ValueError("must be letters, digits, '-' or '_'")
    return value


NonEmpty = Annotated[str, AfterValidator(_nonempty)]
Key = Annotated[str | None, AfterValidator(_nonempty), SECRET]
Text = str  # free text, taken as written
LiveKitUrl = Annotated[str | None, AfterValidator(_url("ws", "wss", "http", "https"))]
# empty: the provider's own endpoint
HttpUrl = Annotated[
    str | None, BeforeValidator(_empty_is_none), AfterValidator(_url("http", "https"))
]
WsUrl = Annotated[
    str | None, BeforeValidator(_empty_is_none), AfterValidator(_url("ws", "wss", "http", "https"))
]


def choice(*options: str) -> Any:
    """One of `options`, case and surrounding blanks ignored."""
    return Annotated[Literal[options], BeforeValidator(_strip_lower)]  # type: ignore[valid-type]


def seconds(lo: float, hi: float, *, lo_open: bool = False, optional: bool = False) -> Any:
    bounded = Annotated[float, Field(gt=lo, le=hi) if lo_open else Field(ge=lo, le=hi)]
    return _maybe(bounded) if optional else bounded


def count(lo: int, hi: int, *, optional: bool = False) -> Any:
    bounded = Annotated[int, Field(ge=lo, le=hi)]
    return _maybe(bounded) if optional else bounded


def _maybe(kind: Any) -> Any:
    """`kind`, or None for an empty value ("not set")."""
    return Annotated[kind | None, BeforeValidator(_empty_is_none)]


def _uses(provider: str) -> Callable[[CommonSettings], bool]:
    def needed(s: CommonSettings) -> bool:
        if provider == "openai":
            return "openai" in (s.stt_provider, s.llm_provider, s.tts_provider)
        return s.stt_provider == provider

    return needed


# --- the settings ---------------------------------------------------------------------------------


class EnvSettings(BaseSettings):
    """Settings whose fields are environment variables of the same name, upper-cased."""

    model_config = SettingsConfigDict(
        alias_generator=str.upper, populate_by_name=True, extra="ignore", frozen=True,
        allow_inf_nan=False, validate_default=True,
    )

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: Any, *_others: Any, **_named: Any) -> tuple:
        # config.validated() hands the model exactly the variables to validate (the process
        # environment once `.env` is in it, which the LiveKit framework reads as well): no other
        # source, so a test's mapping is all that counts.
        return (init_settings,)


class CommonSettings(EnvSettings):
    """Settings of every agent (scope `common`)."""

    # LiveKit connection
    livekit_url: Annotated[LiveKitUrl, Required(connecting=True)] = setting(
        None, "LiveKit server WebSocket URL.")
    livekit_api_key: Annotated[Key, Required(connecting=True)] = setting(None, "LiveKit API key.")
    livekit_api_secret: Annotated[Key, Required(connecting=True)] = setting(
        None, "LiveKit API secret.")
    agent_name: str = setting("", "Name for explicit dispatch; empty means the service's own name.")
    # Providers
    stt_provider: choice("deepgram", "openai", "inference") = setting(
        "deepgram", "Speech-to-text: `deepgram`, `openai` or `inference` (LiveKit Inference).")
    stt_model: Text = setting("", "STT model; empty picks the provider's default (nova-3, "
                              "gpt-4o-mini-transcribe, deepgram/nova-3-general).")
    stt_language: NonEmpty = setting("en", "Language code passed to the STT.")
    llm_provider: choice("openai", "inference") = setting(
        "openai", "LLM: `openai` (any OpenAI-compatible endpoint) or `inference`.")
    llm_model: Text = setting(
        "", "LLM model; empty picks gpt-4.1-mini (inference: openai/gpt-4.1-mini).")
    tts_provider: choice("openai", "inference") = setting(
        "openai", "Text-to-speech: `openai` or `inference`.")
    tts_model: Text = setting(
        "", "TTS model; empty picks gpt-4o-mini-tts (inference: cartesia/sonic-3).")
    tts_voice: Text = setting("", "TTS voice; empty picks the provider's default voice.")
    openai_api_key: Annotated[
        Key, Required("when any provider is openai", needed=_uses("openai"))
    ] = setting(None, "OpenAI (or compatible) API key.")
    openai_base_url: HttpUrl = setting(
        "", "OpenAI-compatible base URL (e.g. a proxy or local server); empty means OpenAI.")
    deepgram_api_key: Annotated[
        Key, Required("when STT_PROVIDER=deepgram", needed=_uses("deepgram"))
    ] = setting(None, "Deepgram API key.")
    deepgram_base_url: WsUrl = setting(
        "", "Deepgram streaming endpoint (`wss://…/v1/listen`); empty means Deepgram's.")
    provider_timeout_seconds: seconds(0, 300, lo_open=True) = setting(
        10, "Timeout for one provider request (STT, LLM, TTS).")
    provider_max_retries: count(0, 10) = setting(
        2, "Retries of a failed provider request before giving up.")
    # Turn-taking
    turn_detection: choice("vad", "stt") = setting(
        "vad", "End-of-turn detection: `vad` (deterministic, local) or `stt`.")
    min_endpointing_delay: seconds(0, 10) = setting(
        0.5, "Seconds of silence before the user's turn ends.")
    aec_warmup_seconds: seconds(0, 30, optional=True) = setting(
        "", "Seconds after the agent first speaks in a call during which the user's audio cannot "
        "interrupt it and the STT hears silence (the framework's echo-cancellation warm-up); 0 "
        "disables it. Empty: 0 for the interrupter (it must hear a user who talks over its "
        "first reply), 3 (the framework's default) for the uninterruptable agent.")
    agent_instructions: Text = setting(
        "", "System instructions; empty uses the agent's built-in ones.")
    fallback_line: NonEmpty = setting(
        "Sorry, I ran into a problem on my side. Could you say that again?",
        "Spoken when the LLM fails a turn for good, so the caller is not left in silence.")
    # Worker
    http_bind_address: NonEmpty = setting(
        "0.0.0.0", "Address the health and metrics endpoints listen on (\"::\" for IPv6-only "
        "clusters).")
    livekit_max_retry: count(0, 1000) = setting(
        16, "Connection attempts to LiveKit before the worker gives up and exits non-zero.")
    health_port: count(1, 65535) = setting(
        8081, "Port of the worker's HTTP health endpoint (`/`).")
    metrics_port: count(1, 65535) = setting(9100, "Port of the Prometheus `/metrics` endpoint.")
    drain_timeout_seconds: count(0, 86400) = setting(
        600, "On SIGTERM, how long running calls may go on before the worker exits.")
    load_threshold: seconds(0, 1, lo_open=True) = setting(
        0.7, "Worker load (0-1] above which it takes no new job. livekit-server offers jobs only "
        "to workers under its `agents.target_load` (0.7 unless set; deploy/livekit/livekit.yaml): "
        "keep the two equal. With every worker at it, a dispatch is dropped, not queued.")
    # read by livekit-agents itself; declared to be validated and documented
    num_cpus: seconds(0, 1024, lo_open=True, optional=True) = setting(
        "", "CPUs the worker's load is measured against (LOAD_THRESHOLD is a share of them). "
        "Empty: the container's CPU limit, else all the machine's CPUs; the Helm chart sets the "
        "pod's CPU request.")
    num_idle_processes: count(0, 64) = setting(
        1, "Job processes kept ready for a call (VAD loaded, providers built). It also caps the "
        "calls an idle worker accepts at once; livekit-server gives the others to other workers "
        "or drops them.")
    pod_deletion_cost: bool = setting(
        False, "Keep this pod's `controller.kubernetes.io/pod-deletion-cost` annotation at the "
        "worker's active job count, so a scale-down removes idle pods first (Kubernetes only: "
        "needs POD_NAME/POD_NAMESPACE and a service account that may patch pods; the Helm chart "
        "sets all of it with scaleDown.podDeletionCost).")
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"],
        BeforeValidator(lambda raw: raw.strip().upper() if isinstance(raw, str) else raw),
    ] = setting("INFO", "Log level: DEBUG, INFO, WARNING or ERROR. Transcripts are only logged "
                "at DEBUG.")

    _service: str = PrivateAttr("")

    @property
    def service(self) -> str:
        """The agent these settings were loaded for (a name of services/registry.py)."""
        return self._service

    @field_validator("agent_name")
    @classmethod
    def _agent_name(cls, value: str) -> str:
        return dispatch_name(value) if value.strip() else ""

    def for_service(self, service: str) -> CommonSettings:
        """These settings as loaded for `service`: an empty AGENT_NAME becomes its name."""
        out = self.model_copy(update={"agent_name": self.agent_name or service})
        out._service = service
        return out
