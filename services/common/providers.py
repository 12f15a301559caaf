"""STT, LLM and TTS instances chosen by configuration.

Secrets are passed explicitly from the validated settings, so the plugins never fall back to
reading some other variable from the environment.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from livekit.agents import inference, llm, stt, tts
from livekit.plugins import deepgram, openai

from .settings import CommonSettings

DEFAULT_MODELS = {
    ("stt", "deepgram"): "nova-3",
    ("stt", "openai"): "gpt-4o-mini-transcribe",
    ("stt", "inference"): "deepgram/nova-3-general",
    ("llm", "openai"): "gpt-4.1-mini",
    ("llm", "inference"): "openai/gpt-4.1-mini",
    ("tts", "openai"): "gpt-4o-mini-tts",
    ("tts", "inference"): "cartesia/sonic-3",
}
DEFAULT_VOICES = {"openai": "ash", "inference": "9626c31c-bec5-4cca-baa8-f8ba9e84c8bc"}

# What the SDKs import on their first request rather than at import time (found by running a
# first call: tests/component/test_warm_start.py lists any new one). Imported on the job's event
# loop, they stalled it 0.1-0.4 s each at the start of every call.
FIRST_USE_MODULES = (
    "anyio._backends._asyncio",
    "jiter",
    "openai.lib.streaming.chat",
    "openai.pagination",
    "openai.resources.audio.audio",
    "openai.resources.chat.chat",
    "openai.resources.models",
    "livekit.agents.llm.async_toolset",
)


@dataclass(frozen=True)
class Providers:
    stt: stt.STT
    llm: llm.LLM
    tts: tts.TTS


def build(settings: CommonSettings) -> Providers:
    return Providers(stt=build_stt(settings), llm=build_llm(settings), tts=build_tts(settings))


def warm_up() -> None:
    """Import what the providers would otherwise import during the call."""
    for name in FIRST_USE_MODULES:
        importlib.import_module(name)


def _model(component: str, provider: str, model: str) -> str:
    return model or DEFAULT_MODELS[(component, provider)]


def _openai_kwargs(settings: CommonSettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"api_key": settings.openai_api_key}
    if settings.openai_base_url:
        kwargs["base_url"] = settings.openai_base_url
    return kwargs


def build_stt(settings: CommonSettings) -> stt.STT:
    provider = settings.stt_provider
    model = _model("stt", provider, settings.stt_model)
    language = settings.stt_language
    if provider == "deepgram":
        kwargs: dict[str, Any] = {"api_key": settings.deepgram_api_key}
        if settings.deepgram_base_url:
            kwargs["base_url"] = settings.deepgram_base_url
        # interim results are what lets the interrupter react mid-sentence
        return deepgram.STT(model=model, language=language, interim_results=True,
                            smart_format=True, punctuate=True, **kwargs)
    if provider == "openai":
        # the HTTP transcription endpoint works with any OpenAI-compatible server; the
        # realtime websocket does not
        return openai.STT(model=model, language=language, use_realtime=False,
                          **_openai_kwargs(settings))
    return inference.STT(model=model, language=language)


def build_llm(settings: CommonSettings) -> llm.LLM:
    model = _model("llm", settings.llm_provider, settings.llm_model)
    if settings.llm_provider == "openai":
        return openai.LLM(model=model, timeout=_httpx_timeout(settings),
                          **_openai_kwargs(settings))
    return inference.LLM(model=model)


def build_tts(settings: CommonSettings) -> tts.TTS:
    provider = settings.tts_provider
    model = _model("tts", provider, settings.tts_model)
    voice = settings.tts_voice or DEFAULT_VOICES[provider]
    if provider == "openai":
        # pcm streams with the smallest time to first byte
        return openai.TTS(model=model, voice=voice, response_format="pcm",
                          **_openai_kwargs(settings))
    return inference.TTS(model=model, voice=voice)


def _httpx_timeout(settings: CommonSettings) -> Any:
    import httpx2 as httpx  # the openai plugin (and its SDK) use httpx2, not httpx

    seconds = settings.provider_timeout_seconds
    return httpx.Timeout(connect=min(seconds, 15.0), read=seconds, write=seconds, pool=seconds)
