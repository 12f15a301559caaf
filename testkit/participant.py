"""A user in a room over real WebRTC: joins with an always-on microphone, dispatches agents through
the server API, says utterances and listens to the agent's track.

In async code never block the event loop for long (time.sleep, wait_until, wait_ready): the
microphone and the agent-audio monitor run on it, and the monitor dates frames on arrival.

Time base: every timestamp is the participant process's wall clock (time.time()): when a sample
was handed to WebRTC (send side) or when a decoded frame arrived (receive side), so latencies are
end to end, including the SFU, both jitter buffers and Opus.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from livekit import api, rtc

from testkit.polling import wait_for
from testkit.webrtc_audio import AudioMonitor, Microphone


class RoomServer(Protocol):
    """What a participant needs of livekit-server (`LiveKitServer`, or one behind a host port)."""

    @property
    def ws_url(self) -> str: ...

    def api(self) -> api.LiveKitAPI: ...

    def token(self, room: str, identity: str) -> str: ...


@dataclass
class Spoken:
    """An utterance as sent: `t0` is the wall-clock time of its sample 0."""

    utterance: Any
    t0: float

    def sentence_start(self, i: int) -> float:
        return self.t0 + self.utterance.sentences[i].start

    def sentence_end(self, i: int) -> float:
        return self.t0 + self.utterance.sentences[i].end

    @property
    def start(self) -> float:
        return self.t0 + self.utterance.onset

    @property
    def end(self) -> float:
        return self.sentence_end(len(self.utterance.sentences) - 1)


@dataclass
class AgentJoin:
    identity: str
    agent_name: str
    dispatched_at: float  # just before CreateDispatch was sent
    joined_at: float  # participant_connected for the agent
    dispatch_id: str = ""

    @property
    def joined_s(self) -> float:
        return self.joined_at - self.dispatched_at


@dataclass
class Participant:
    """A user in a room over real WebRTC: an always-on mic and an ear on the agent's track."""

    server: RoomServer
    room_name: str
    identity: str = "e2e-user"
    room: rtc.Room = field(default_factory=rtc.Room)
    mic: Microphone | None = None
    agent_audio: AudioMonitor = field(default_factory=AudioMonitor)
    agents: dict[str, AgentJoin] = field(default_factory=dict)  # by identity
    agent_tracks_at: dict[str, float] = field(default_factory=dict)  # identity -> subscribed
    _joined: dict[str, float] = field(default_factory=dict)
    _left: dict[str, float] = field(default_factory=dict)

    async def join(self, timeout: float = 15.0) -> Participant:
        self.room.on("participant_connected", self._on_participant)
        self.room.on("participant_disconnected", self._on_participant_left)
        self.room.on("track_subscribed", self._on_track)
        token = self.server.token(self.room_name, self.identity)
        await asyncio.wait_for(self.room.connect(self.server.ws_url, token), timeout)
        for p in self.room.remote_participants.values():
            self._on_participant(p)
        self.mic = Microphone()
        opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await asyncio.wait_for(self.room.local_participant.publish_track(self.mic.track, opts),
                               timeout)
        self.mic.start()
        return self

    def _on_participant(self, p: rtc.RemoteParticipant) -> None:
        if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            self._joined.setdefault(p.identity, time.time())

    def _on_participant_left(self, p: rtc.RemoteParticipant) -> None:
        self._left.setdefault(p.identity, time.time())

    def _on_track(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
    ) -> None:
        if (track.kind == rtc.TrackKind.KIND_AUDIO
                and p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
                and p.identity not in self.agent_tracks_at):
            self.agent_tracks_at[p.identity] = time.time()
            self.agent_audio.attach(track)

    def agent_participants(self) -> list[rtc.RemoteParticipant]:
        return [p for p in self.room.remote_participants.values()
                if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT]

    def agent_left_at(self, identity: str) -> float | None:
        return self._left.get(identity)

    async def dispatch(
        self, agent_name: str, *, timeout: float = 20.0, wait_audio: bool = True
    ) -> AgentJoin:
        """Explicit dispatch through the server API; waits for an agent to join (and, with
        `wait_audio`, for its audio track to be subscribed). The returned `agent_name` is the
        joined agent's `lk.agent.name` attribute: assert it."""
        known = set(self._joined)
        dispatched_at = time.time()
        async with self.server.api() as lk:
            d = await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name=agent_name, room=self.room_name))

        def joined() -> list[str] | None:
            new = [i for i in self._joined if i not in known]
            return new if new and (not wait_audio or new[0] in self.agent_tracks_at) else None

        new = await wait_for(
            joined, timeout, f"agent {agent_name!r} to join room {self.room_name}",
            interval=0.02, evidence=lambda: f"joined: {sorted(self._joined)}")
        identity = new[0]
        p = self.room.remote_participants[identity]
        join = AgentJoin(identity=identity, agent_name=p.attributes.get("lk.agent.name", ""),
                         dispatched_at=dispatched_at, joined_at=self._joined[identity],
                         dispatch_id=d.id)
        self.agents[identity] = join
        return join

    async def say(self, utterance: Any, *, wait: bool = True) -> Spoken:
        """Send an utterance through the mic; with `wait`, return once its last sample is out."""
        assert self.mic is not None, "join() first"
        if utterance.sample_rate != Microphone.SAMPLE_RATE:
            utterance = utterance.resampled(Microphone.SAMPLE_RATE)
        t0 = await self.mic.enqueue(utterance.pcm)
        spoken = Spoken(utterance, t0)
        if wait:
            await asyncio.sleep(max(0.0, t0 + utterance.duration - time.time()))
        return spoken

    async def leave(self) -> None:
        await self.agent_audio.close()
        if self.mic is not None:
            await self.mic.close()
            self.mic = None
        await self.room.disconnect()
