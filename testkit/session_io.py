"""Real-time audio I/O for an in-process AgentSession: a microphone that plays scripted speech and
a speaker that plays (and records) the agent's audio at wall-clock pace.

Both keep real time so the VAD, endpointing and uninterruptible-speech logic see what they would
see in a room; nothing here shortcuts the framework's timing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from livekit import rtc
from livekit.agents.voice import io

from testkit.audio import Playlist, Segment

SAMPLE_RATE = 48000
FRAME_MS = 10


class SpeechInput(io.AudioInput):
    """A microphone: silence, except while an utterance queued with `say` is playing."""

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__(label="speech-input")
        self._rate = sample_rate
        self.playlist = Playlist(sample_rate * FRAME_MS // 1000, sample_rate)
        self._next_at: float | None = None
        self._closed = False

    @property
    def speech_started_at(self) -> list[float]:
        """Wall-clock start of each utterance."""
        return self.playlist.started_at

    def say(self, pcm: np.ndarray) -> asyncio.Future[float]:
        """Queue int16 mono PCM at this input's rate; the future resolves (with the wall-clock end
        time) once the last sample has been delivered."""
        return self.playlist.add(pcm).ended

    def close(self) -> None:
        self._closed = True

    async def __anext__(self) -> rtc.AudioFrame:
        if self._closed:
            raise StopAsyncIteration
        now = time.monotonic()
        if self._next_at is None:
            self._next_at = now
        delay = self._next_at - now
        if delay > 0:
            await asyncio.sleep(delay)
        self._next_at += FRAME_MS / 1000
        out = self.playlist.next_frame(time.time())
        return rtc.AudioFrame(out.tobytes(), self._rate, 1, len(out))


@dataclass
class _Buffered:
    frames: deque[rtc.AudioFrame] = field(default_factory=deque)
    flushed: bool = False


class PlayoutRecorder(io.AudioOutput):
    """A speaker that plays frames at real-time pace and records what was heard, and when."""

    def __init__(self, sample_rate: int = 24000) -> None:
        super().__init__(label="playout-recorder",
                         capabilities=io.AudioOutputCapabilities(pause=True),
                         sample_rate=sample_rate)
        self._buf = _Buffered()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._segment: Segment | None = None
        self.segments: list[Segment] = []

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        self._buf.frames.append(frame)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._play())

    def flush(self) -> None:
        super().flush()
        self._buf.flushed = True
        self._wake.set()

    def clear_buffer(self) -> None:
        self._buf.frames.clear()
        self._buf.flushed = False
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._finish(interrupted=True)

    def pause(self) -> None:
        if self._segment is not None and self._resumed.is_set():
            self._segment.pauses += 1  # the framework may call pause() again while paused
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    async def _play(self) -> None:
        while True:
            while not self._buf.frames:
                if self._buf.flushed:
                    self._buf.flushed = False
                    self._finish(interrupted=False)
                    return
                self._wake.clear()
                await self._wake.wait()
            await self._resumed.wait()
            frame = self._buf.frames.popleft()
            if self._segment is None:
                self._segment = Segment(start=time.time())
                self.segments.append(self._segment)
                self.on_playback_started(created_at=self._segment.start)
            await asyncio.sleep(frame.duration)
            self._segment.audio_s += frame.duration

    def _finish(self, *, interrupted: bool) -> None:
        seg = self._segment
        if seg is None:
            if self._pending_playback_count > 0:  # a segment that never produced audio
                self.on_playback_finished(playback_position=0.0, interrupted=interrupted)
            return
        seg.end = time.time()
        seg.interrupted = interrupted
        self._segment = None
        self.on_playback_finished(playback_position=seg.audio_s, interrupted=interrupted)

    @property
    def speaking(self) -> bool:
        return self._segment is not None

    def audio_after(self, t: float) -> list[Segment]:
        return [s for s in self.segments if s.start >= t]
