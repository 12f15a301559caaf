"""Baselines measured in a fresh interpreter: `python -m bench.probe` prints one JSON line.

* `imported_at`: wall clock once livekit.agents and the three plugins the workers load are
  imported; the caller subtracts its spawn time, giving the floor of any worker's cold start.
* `vad_load_s`: one `silero.VAD.load()` in a fresh process, what the prewarm hook does.
* `vad_cpu_per_audio_s`: CPU seconds the Silero VAD alone spends per second of 48 kHz audio
  (resampling included): the floor of a session's CPU.

Nothing is imported at module level: the import timing must start from a bare interpreter.
"""

from __future__ import annotations


def main() -> None:
    import time

    import livekit.agents  # noqa: F401
    from livekit.plugins import deepgram, openai, silero  # noqa: F401

    imported_at = time.time()
    started = time.perf_counter()
    vad = silero.VAD.load()
    load_s = time.perf_counter() - started

    import asyncio
    import json
    import logging

    from testkit.speech import synthesize
    from testkit.utterance import concat

    logging.disable(logging.WARNING)  # fed faster than real time, the VAD warns it is "late"
    utt = concat([synthesize(["Hello there.", "Can you help me plan a trip?"])] * 3, gap_s=1.0)
    frames = utt.frames(frame_ms=10)

    async def feed() -> None:
        stream = vad.stream()
        for frame in frames:
            stream.push_frame(frame)
        stream.end_input()
        async for _ in stream:
            pass

    asyncio.run(feed())  # warm-up: first inference allocates
    cpu = time.process_time()
    asyncio.run(feed())
    cpu_s = time.process_time() - cpu
    print(json.dumps({
        "imported_at": imported_at,
        "vad_load_s": round(load_s, 4),
        "vad_cpu_per_audio_s": round(cpu_s / utt.duration, 5),
        "audio_s": round(utt.duration, 2),
    }), flush=True)


if __name__ == "__main__":
    main()
