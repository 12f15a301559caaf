"""The room input rate (services/common/session.py) is the rate the VAD and the streaming STT
take, so neither resamples each frame: checked against the plugins themselves."""

from __future__ import annotations

from livekit.plugins import deepgram, silero

from services.common import session


def test_room_input_rate_is_what_silero_and_deepgram_take() -> None:
    assert session.ROOM_OPTIONS.get_audio_input_options().sample_rate == session.INPUT_SAMPLE_RATE
    assert silero.VAD.load()._opts.sample_rate == session.INPUT_SAMPLE_RATE
    assert deepgram.STT(api_key="dg-test")._opts.sample_rate == session.INPUT_SAMPLE_RATE
