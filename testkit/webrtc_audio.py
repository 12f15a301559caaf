"""Audio over real WebRTC: the participant's always-on microphone and the monitor that tells when
the agent speaks (levels of the frames that arrive, dated on arrival)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import numpy as np
from livekit import rtc

from testkit.audio import Playlist, Segment, merge_turns, rms_dbfs
from testkit.polling import wait_for


class Microphone:
    """An always-on mic: digital silence unless speaking, paced in real time by AudioSource.

    Continuous frames matter: the agent's VAD only sees the end of speech if silence follows.
    """

    SAMPLE_RATE = 48000
    FRAME_MS = 20

    def __init__(self) -> None:
        # a short queue keeps the send clock honest: a sample leaves within ~queue of capture
        self.source = rtc.AudioSource(self.SAMPLE_RATE, 1, queue_size_ms=200)
        self.track = rtc.LocalAudioTrack.create_audio_track("microphone", self.source)
        self.playlist = Playlist(self.SAMPLE_RATE * self.FRAME_MS // 1000, self.SAMPLE_RATE)
        self._task: asyncio.Task[None] | None = None
        # (wall time, seconds) the source ran dry while speech was under way: the far end hears
        # a gap there, and a gap of 0.55 s + the pause in the speech ends the user's turn
        self.starved: list[tuple[float, float]] = []

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="e2e-microphone")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.playlist.cancel()
        await self.source.aclose()

    def enqueue(self, pcm: np.ndarray) -> asyncio.Future[float]:
        """Queue samples; the future gets the wall-clock time their first sample is sent."""
        return self.playlist.add(pcm).started

    def starved_between(self, t0: float, t1: float) -> float:
        """The longest time the source ran dry between t0 and t1 (0.0 if it never did)."""
        return max((gap for at, gap in self.starved if t0 <= at <= t1), default=0.0)

    async def _run(self) -> None:
        n = self.playlist.samples_per_frame
        drained_at: float | None = None  # when the queued audio runs out (wall clock)
        while True:
            now = time.time()
            if (drained_at is not None and self.playlist.playing
                    and now - drained_at > self.FRAME_MS / 1000):
                self.starved.append((now, now - drained_at))
            # queued audio ahead of this frame plays first
            frame = self.playlist.next_frame(time.time() + self.source.queued_duration)
            await self.source.capture_frame(
                rtc.AudioFrame(frame.tobytes(), self.SAMPLE_RATE, 1, n))
            drained_at = time.time() + self.source.queued_duration


class AudioMonitor:
    """Tells when the agent speaks: RMS over 10 ms frames, hysteresis against flicker.

    A segment opens after `attack` consecutive frames above `on_dbfs` (dated at the first of
    them) and closes after `release_s` below `off_dbfs` (dated at the last voiced frame).
    """

    FRAME_MS = 10

    def __init__(
        self, *, on_dbfs: float = -40.0, off_dbfs: float = -45.0, attack: int = 2,
        release_s: float = 0.3,
    ) -> None:
        self.on_dbfs, self.off_dbfs, self.attack, self.release_s = (
            on_dbfs, off_dbfs, attack, release_s)
        self.segments: list[Segment] = []
        self.frames = 0
        self.first_frame_at: float | None = None
        self._run_on = 0
        self._quiet_since_audio: float | None = None  # audio time of the last voiced frame
        self._last_voiced_wall = 0.0
        self._audio_t = 0.0
        self._seg_audio_start = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def speaking(self) -> bool:
        return bool(self.segments) and self.segments[-1].end is None

    def attach(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=48000, num_channels=1,
                                frame_size_ms=self.FRAME_MS)
        self._task = asyncio.create_task(self._run(stream), name="e2e-agent-audio")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, stream: rtc.AudioStream) -> None:
        try:
            async for ev in stream:
                self.feed(ev.frame, time.time())
        finally:
            await stream.aclose()

    def feed(self, frame: rtc.AudioFrame, now: float) -> None:
        dur = frame.samples_per_channel / frame.sample_rate
        level = float(rms_dbfs(np.frombuffer(frame.data, dtype=np.int16)))
        self.frames += 1
        if self.first_frame_at is None:
            self.first_frame_at = now
        self._audio_t += dur
        seg = self.segments[-1] if self.speaking else None
        if level > self.on_dbfs:
            self._run_on += 1
            self._last_voiced_wall = now
            self._quiet_since_audio = self._audio_t
            if seg is None and self._run_on >= self.attack:
                lead = (self._run_on - 1) * dur
                self.segments.append(Segment(start=now - lead - dur))
                self._seg_audio_start = self._audio_t - self._run_on * dur
            elif seg is not None:
                seg.audio_s = self._audio_t - self._seg_audio_start
        else:
            self._run_on = 0
            if (seg is not None and level < self.off_dbfs
                    and self._quiet_since_audio is not None
                    and self._audio_t - self._quiet_since_audio >= self.release_s):
                seg.end = self._last_voiced_wall
                seg.audio_s = self._quiet_since_audio - self._seg_audio_start

    # -- queries --------------------------------------------------------------------------------

    def segments_after(self, t: float) -> list[Segment]:
        return [s for s in self.segments if s.start >= t]

    def turns(self, gap_s: float = 1.0, after: float = 0.0) -> list[Segment]:
        """Segments merged across pauses shorter than `gap_s` (one spoken reply = one turn)."""
        return merge_turns(self.segments, gap_s, after)

    async def wait_for_speech(self, *, after: float = 0.0, timeout: float = 20.0) -> Segment:
        """The first segment starting at or after `after` (wall clock)."""
        segs = await wait_for(
            lambda: self.segments_after(after), timeout, "agent audio", interval=0.02,
            evidence=lambda: f"frames received: {self.frames}, segments: {self.describe()}")
        return segs[0]

    async def wait_for_quiet(self, quiet_s: float = 1.5, *, timeout: float = 30.0) -> float:
        """Wait until the agent has been silent `quiet_s`; returns when its last segment ended."""

        def quiet_since() -> tuple[float] | None:
            if self.speaking:
                return None
            last_end = self.segments[-1].end if self.segments else 0.0
            assert last_end is not None
            quiet = time.time() - max(last_end, self._last_voiced_wall) >= quiet_s
            return (last_end,) if quiet else None  # a tuple: an end of 0.0 is still an answer

        (last_end,) = await wait_for(quiet_since, timeout, "the agent to stop speaking",
                                     evidence=self.describe)
        return last_end

    def describe(self, since: float | None = None) -> str:
        base = since if since is not None else (self.first_frame_at or 0.0)
        parts = []
        for s in self.segments:
            end = f"{s.end - base:.2f}" if s.end is not None else "..."
            parts.append(f"[{s.start - base:.2f}-{end} audio {s.audio_s:.2f}s]")
        return " ".join(parts) or "none"
