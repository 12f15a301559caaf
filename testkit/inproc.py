"""In-process sessions: a real AgentSession with the real Silero VAD, the real deepgram and openai
plugins pointed at local fakes, speech from espeak-ng played in real time, and a speaker that
records when the agent was heard. Used by the component tests and the benchmarks.

    async with SessionFactory(vad) as start:
        h = await start("interrupter", script=[utt], replies=["..."], **env)
        start_t, end_t = await h.speak(utt)
        await h.wait_quiet(2.0)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import Agent, AgentSession, llm, utils, vad
from prometheus_client import REGISTRY

from services import registry
from services.common import config
from services.common.session import build_session, say_fallback_on_llm_failure
from services.common.session_metrics import SessionMetrics
from services.common.settings import CommonSettings
from testkit.fakes.deepgram_server import FakeDeepgram
from testkit.fakes.openai_server import FakeOpenAI
from testkit.polling import wait_for
from testkit.session_io import PlayoutRecorder, SpeechInput
from testkit.utterance import Utterance

MakeAgent = Callable[[CommonSettings, SessionMetrics], Agent]


@dataclass
class Harness:
    session: AgentSession
    agent: Agent
    mic: SpeechInput
    speaker: PlayoutRecorder
    oai: FakeOpenAI
    dg: FakeDeepgram
    settings: CommonSettings
    events: list[tuple[float, str, Any]] = field(default_factory=list)

    async def speak(self, utt: Utterance) -> tuple[float, float]:
        """Play an utterance into the microphone; returns its wall-clock (start, end)."""
        end = await self.mic.say(utt.pcm)
        return self.mic.speech_started_at[-1], end

    async def wait_quiet(self, seconds: float, timeout: float = 30.0) -> None:
        """Wait until the agent has been silent, and not about to speak, for `seconds`."""
        quiet_since = time.monotonic()

        def quiet() -> bool:
            nonlocal quiet_since
            if self.speaker.speaking or self.session.agent_state in ("thinking", "speaking"):
                quiet_since = time.monotonic()
            return time.monotonic() - quiet_since >= seconds

        await wait_for(quiet, timeout, "the agent to go quiet",
                       evidence=lambda: f"agent state {self.session.agent_state}")

    async def wait_for(self, pred: Callable[[], bool], timeout: float = 20.0) -> None:
        await wait_for(pred, timeout, "a condition on the session")

    def chat_messages(self, role: str) -> list[str]:
        return [m.text_content or "" for m in self.agent.chat_ctx.items
                if isinstance(m, llm.ChatMessage) and m.role == role]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0



# build_session's options a bare framework session (bench/baseline.py) takes too
TURN_TAKING_OPTIONS = ("discard_audio_if_uninterruptible", "preemptive_generation")


class SessionFactory:
    """Starts sessions against fresh fakes; closes everything on exit."""

    def __init__(self, vad_model: vad.VAD, *, metrics: bool = True) -> None:
        self._vad = vad_model
        self._metrics = metrics
        self._started: list[Harness] = []
        self._servers: list[Any] = []
        # the plugins share one aiohttp session per job; outside a worker we provide it
        self._http = utils.http_context.open()

    async def __aenter__(self) -> Callable[..., Any]:
        await self._http.__aenter__()
        return self.start

    async def __aexit__(self, *exc: object) -> None:
        for h in self._started:
            h.mic.close()
            await h.session.aclose()
        for server in self._servers:
            await server.__aexit__(None, None, None)
        await self._http.__aexit__(None, None, None)

    async def start(self, service: str, make_agent: MakeAgent | None = None, *,
                    script: list[Utterance],
                    replies: list[str] | None = None,
                    session_factory: Callable[..., AgentSession] | None = None,
                    **env: str) -> Harness:
        """`script`: what the user may say (the fake Deepgram recognises it in the audio it
        receives, in any order, and transcribes only what it hears); `replies`: the
        fake LLM's first answers, in order (later ones echo the user). `session_factory` replaces
        build_session (benchmarks compare against a bare AgentSession)."""
        oai = FakeOpenAI()
        dg = FakeDeepgram()
        for server in (oai, dg):
            await server.__aenter__()
            self._servers.append(server)
        dg.know(script)
        oai.replies.extend(replies or [])
        settings = config.load(service, {
            "LIVEKIT_URL": "ws://127.0.0.1:1", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s",
            "OPENAI_API_KEY": "sk-fake", "OPENAI_BASE_URL": oai.base_url,
            "DEEPGRAM_API_KEY": "dg-fake", "DEEPGRAM_BASE_URL": dg.base_url, **env,
        })
        # as the agent's job builds it (services.common.session.run_job)
        spec = registry.module(service).SPEC
        options = spec.session_options(settings)
        if session_factory is None:
            session = build_session(settings, self._vad, **options)
        else:  # a bare framework session: the same turn-taking options, nothing else of ours
            session = session_factory(settings, self._vad, **{
                k: v for k, v in options.items() if k in TURN_TAKING_OPTIONS})
        session_metrics = SessionMetrics(session, service) if self._metrics else None
        if session_factory is None:  # as run_in_room wires a job's session
            say_fallback_on_llm_failure(session, settings.fallback_line)
        mic, speaker = SpeechInput(), PlayoutRecorder()
        session.input.audio = mic
        session.output.audio = speaker
        agent = (make_agent or spec.make_agent)(settings, session_metrics)
        h = Harness(session, agent, mic, speaker, oai, dg, settings)
        for name in ("user_state_changed", "agent_state_changed", "user_input_transcribed"):
            session.on(name, lambda ev, n=name: h.events.append((time.time(), n, ev)))
        await session.start(agent)
        self._started.append(h)
        return h
