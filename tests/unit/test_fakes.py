"""The provider fakes, proven against the real livekit plugin clients (and espeak-ng speech)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from livekit.agents import APIConnectionError, APIConnectOptions, APIStatusError, APITimeoutError
from livekit.agents import llm as lk_llm
from livekit.agents import stt as lk_stt
from livekit.plugins import deepgram, openai

from testkit import speech, utterance
from testkit.fakes import Control
from testkit.fakes.deepgram_server import FakeDeepgram
from testkit.fakes.openai_server import FakeOpenAI, default_reply

REPO = Path(__file__).resolve().parents[2]
NO_RETRY = APIConnectOptions(max_retry=0, timeout=2.0)


@pytest.fixture(scope="module")
def utterances() -> tuple[utterance.Utterance, utterance.Utterance]:
    long = speech.synthesize(
        [
            "Hello there, my name is Alice.",
            "I would like to book a table for two people tonight.",
            "Maybe at seven?",
        ]
    )
    short = speech.synthesize(["Thanks a lot, that is all."])
    return long, short


# --- speech -----------------------------------------------------------------------------------


def test_synthesize_timings_match_the_audio(utterances: tuple[utterance.Utterance, ...]) -> None:
    utt = utterances[0]
    assert utt.sample_rate == 48000 and utt.pcm.dtype == np.int16
    assert utt.text.startswith("Hello there, my name is Alice. I would")
    assert [s.text for s in utt.sentences][2] == "Maybe at seven?"
    for s in utt.sentences:
        # each sentence's audio begins/ends at its timing (to a window), silence around it
        a, b = round(s.start * 48000), round(s.end * 48000)
        inner = utterance.voiced_bounds(utt.pcm[a:b], 48000)
        assert inner is not None and inner[0] < 0.03 and (b - a) / 48000 - inner[1] < 0.03
        assert utterance.voiced_bounds(utt.pcm[b : b + 9600], 48000) is None  # 0.2 s of the gap
        starts = [w.start for w in s.words]
        assert starts == sorted(starts) and s.words[0].start == pytest.approx(s.start)
        assert s.words[-1].end == pytest.approx(s.end)
    gaps = [n.start - p.end for p, n in zip(utt.sentences, utt.sentences[1:], strict=False)]
    assert gaps == pytest.approx([0.25, 0.25], abs=0.001)
    script = utt.script()
    first = script["sentences"][0]["words"][0]
    assert first["text"] == "Hello" and first["start"] == 0.0 and 0.2 < first["end"] < 0.6


def test_synthesize_is_cached_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEECH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(speech, "_memo", {})
    first = speech.synthesize(["Cache me once."], sample_rate=16000)
    assert len(list(tmp_path.glob("*.wav"))) == 1 and len(list(tmp_path.glob("*.json"))) == 1
    monkeypatch.setattr(speech, "_memo", {})
    again = speech.synthesize(["Cache me once."], sample_rate=16000)
    assert np.array_equal(first.pcm, again.pcm) and first.sentences == again.sentences


def test_frames_and_resample(utterances: tuple[utterance.Utterance, ...]) -> None:
    utt = utterances[1]
    frames = utt.frames(10, sample_rate=16000)
    assert all(f.samples_per_channel == 160 and f.sample_rate == 16000 for f in frames)
    assert len(frames) == -(-round(utt.duration * 16000) // 160)
    assert len(utterance.chunks(utt.pcm, 48000, 20)[0]) == 960
    padded = utt.padded(0.5, 0.25)
    assert padded.duration == pytest.approx(utt.duration + 0.75, abs=1e-3)
    assert padded.onset == pytest.approx(0.5)


def test_missing_espeak_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speech.shutil, "which", lambda _name: None)
    speech._espeak.cache_clear()
    try:
        with pytest.raises(speech.EspeakMissingError, match="apt-get install espeak-ng"):
            speech._espeak()
    finally:
        monkeypatch.undo()
        speech._espeak.cache_clear()


# --- OpenAI -------------------------------------------------------------------------------------


@pytest.fixture
async def oai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        fake.config.ttft_s = fake.config.token_interval_s = 0.0
        yield fake


def _chat_ctx(text: str) -> lk_llm.ChatContext:
    ctx = lk_llm.ChatContext()
    ctx.add_message(role="system", content="Be brief.")
    ctx.add_message(role="user", content=text)
    return ctx


async def _collect(stream: lk_llm.LLMStream) -> list[lk_llm.ChatChunk]:
    async with stream:
        return [chunk async for chunk in stream]


async def test_llm_streams_reply_and_records_history(oai: FakeOpenAI) -> None:
    llm = openai.LLM(base_url=oai.base_url, api_key="fake", model="gpt-4.1-mini")
    try:
        ctx = _chat_ctx("I want to talk about my garden and its roses")
        chunks = await _collect(llm.chat(chat_ctx=ctx))
        text = "".join(c.delta.content or "" for c in chunks if c.delta)
        body = oai.chat_requests[-1]
        assert (
            text == default_reply(body) == "You said something about I want to talk about. "
            "Tell me more?"
        )
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
        assert any(c.usage and c.usage.completion_tokens > 0 for c in chunks)

        oai.replies.append(
            {"content": "", "tool_calls": [{"name": "lookup", "arguments": {"q": 1}}]}
        )
        oai.replies.append("Scripted.")
        chunks = await _collect(llm.chat(chat_ctx=ctx))
        calls = [t for c in chunks if c.delta for t in c.delta.tool_calls]
        assert [(t.name, json.loads(t.arguments)) for t in calls] == [("lookup", {"q": 1})]
        chunks = await _collect(llm.chat(chat_ctx=ctx))
        assert "".join(c.delta.content or "" for c in chunks if c.delta) == "Scripted."
        assert oai.counts["chat"] == 3
    finally:
        await llm.aclose()


@pytest.mark.parametrize(
    ("mode", "kwargs", "error"),
    [
        ("status", {"status": 500}, APIStatusError),
        ("status", {"status": 429, "retry_after": 2}, APIStatusError),
        ("hang", {"delay_s": 5.0}, APITimeoutError),
        ("drop", {"after_chunks": 2}, APIConnectionError),
    ],
)
async def test_llm_faults_raise_what_the_plugin_raises(
    oai: FakeOpenAI, mode: str, kwargs: dict, error: type[Exception]
) -> None:
    llm = openai.LLM(base_url=oai.base_url, api_key="fake")
    oai.fail("chat", mode, **kwargs)
    try:
        t0 = time.monotonic()
        opts = APIConnectOptions(max_retry=0, timeout=0.5)
        with pytest.raises(error) as info:
            await _collect(llm.chat(chat_ctx=_chat_ctx("hi"), conn_options=opts))
        assert time.monotonic() - t0 < 3
        if mode == "status":
            assert info.value.status_code == kwargs["status"]  # type: ignore[attr-defined]
        assert oai.faults.served[f"chat:{mode}"] == 1
        # the fault was one-shot: the next request is answered
        assert await _collect(llm.chat(chat_ctx=_chat_ctx("hi"), conn_options=opts))
    finally:
        await llm.aclose()


async def test_retry_after_header_and_slow_first_token(oai: FakeOpenAI) -> None:
    oai.fail("chat", "status", status=429, retry_after=3)
    async with aiohttp.ClientSession() as http:
        url = f"{oai.base_url}/chat/completions"
        async with http.post(url, json={"messages": []}) as resp:
            assert resp.status == 429 and resp.headers["Retry-After"] == "3"
            assert (await resp.json())["error"]["code"] == "rate_limit_exceeded"
    oai.fail("chat", "slow_first", delay_s=0.4)
    llm = openai.LLM(base_url=oai.base_url, api_key="fake")
    try:
        t0 = time.monotonic()
        async with llm.chat(chat_ctx=_chat_ctx("hi")) as stream:
            async for chunk in stream:
                if chunk.delta and chunk.delta.content:
                    break
        assert time.monotonic() - t0 >= 0.4
    finally:
        await llm.aclose()


@pytest.mark.parametrize(
    ("model", "fmt"),
    [("tts-1", "pcm"), ("gpt-4o-mini-tts", "pcm"), ("tts-1", "wav"), ("gpt-4o-mini-tts", "mp3")],
)
async def test_tts_audio_lasts_as_long_as_the_text(oai: FakeOpenAI, model: str, fmt: str) -> None:
    text = "Hello world, this is a test of the speech endpoint."
    tts = openai.TTS(base_url=oai.base_url, api_key="fake", model=model, response_format=fmt)
    try:
        async with tts.synthesize(text) as stream:
            frames = [ev.frame async for ev in stream]
        assert {f.sample_rate for f in frames} == {24000}
        pcm = np.concatenate([np.frombuffer(f.data, np.int16) for f in frames])
        assert len(pcm) / 24000 == pytest.approx(len(text) * 0.065, rel=0.05)
        assert np.abs(pcm).max() > 3000  # a real waveform, not silence
        body = oai.bodies("speech")[-1]
        assert body["response_format"] == fmt and body["input"] == text
        assert body["stream_format"] == ("audio" if model == "tts-1" else "sse")
    finally:
        await tts.aclose()


async def test_tts_can_speak_with_espeak(oai: FakeOpenAI) -> None:
    oai.config.tts_audio = "espeak"
    tts = openai.TTS(base_url=oai.base_url, api_key="fake", response_format="pcm")
    try:
        async with tts.synthesize("Real speech, please.") as stream:
            pcm = np.concatenate([np.frombuffer(ev.frame.data, np.int16) async for ev in stream])
        bounds = utterance.voiced_bounds(pcm, 24000)
        assert bounds is not None and 0.8 < bounds[1] - bounds[0] < 2.5
    finally:
        await tts.aclose()


async def test_tts_fault_is_a_status_error(oai: FakeOpenAI) -> None:
    oai.fail("speech", "status", status=500)
    tts = openai.TTS(base_url=oai.base_url, api_key="fake", response_format="pcm")
    try:
        with pytest.raises(APIStatusError) as info:
            async with tts.synthesize("Hi there.", conn_options=NO_RETRY) as stream:
                async for _ in stream:
                    pass
        assert info.value.status_code == 500
    finally:
        await tts.aclose()


async def test_transcriptions_return_the_scripted_text(
    oai: FakeOpenAI, utterances: tuple[utterance.Utterance, ...]
) -> None:
    oai.transcripts.append("Thanks a lot, that is all.")
    stt = openai.STT(base_url=oai.base_url, api_key="fake", use_realtime=False)
    try:
        ev = await stt.recognize(utterances[1].frames(20, sample_rate=24000))
        assert ev.type == lk_stt.SpeechEventType.FINAL_TRANSCRIPT
        assert ev.alternatives[0].text == "Thanks a lot, that is all."
        rec = oai.bodies("transcriptions")[-1]
        assert rec["model"] == "gpt-4o-mini-transcribe"
        assert rec["audio_s"] == pytest.approx(utterances[1].duration, abs=0.03)
    finally:
        await stt.aclose()


def test_thread_mode_control_endpoint_and_prompt_stop() -> None:
    oai = FakeOpenAI().start()
    try:
        ctl = Control(oai.control_url)
        ctl("fault", endpoint="models", mode="status", status=503)
        ctl("reply", replies=["From another process."])
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{oai.base_url}/models", timeout=5)
        assert info.value.code == 503
        with urllib.request.urlopen(f"{oai.base_url}/models", timeout=5) as resp:
            assert json.loads(resp.read())["object"] == "list"
        state = ctl.state()
        assert state["faults_served"] == {"models:status": 1} and state["counts"]["models"] == 2
        assert list(oai.replies) == ["From another process."]
        with pytest.raises(ValueError, match="unknown config field"):
            ctl("config", ttft_seconds=1)

        # a request hanging "forever" does not hold up stop()
        ctl("fault", endpoint="chat", mode="hang")
        req = urllib.request.Request(
            f"{oai.base_url}/chat/completions", data=b'{"messages": []}', method="POST"
        )

        def post() -> None:
            with contextlib.suppress(OSError):  # the connection is cut at stop()
                urllib.request.urlopen(req, timeout=30)

        hung = threading.Thread(target=post)
        hung.start()
        time.sleep(0.3)
    finally:
        t0 = time.monotonic()
        oai.stop()
    assert time.monotonic() - t0 < 3
    hung.join(5)
    assert not hung.is_alive()


# --- Deepgram -----------------------------------------------------------------------------------


@pytest.fixture
async def dg() -> AsyncIterator[FakeDeepgram]:
    async with FakeDeepgram() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _run_stream(
    stream: deepgram.stt.SpeechStream,
    audio: list[utterance.Utterance],
    *,
    turns: int,
    pace: float = 0.002,
) -> list[lk_stt.SpeechEvent]:
    """Push 20 ms frames (faster than real time) and collect events until `turns` ended.

    The stream is closed rather than ended: after CloseStream the plugin's keepalive task
    sleeps out its 5 s interval before the stream finishes, real Deepgram or not.
    """

    async def feed() -> None:
        for utt in audio:
            for frame in utt.frames(20):
                stream.push_frame(frame)
                await asyncio.sleep(pace)

    task = asyncio.create_task(feed())
    events: list[lk_stt.SpeechEvent] = []
    try:
        async with asyncio.timeout(8):
            async for ev in stream:
                events.append(ev)
                if sum(e.type == lk_stt.SpeechEventType.END_OF_SPEECH for e in events) == turns:
                    break
    finally:
        task.cancel()
        await stream.aclose()
    return events


def _finals(events: list[lk_stt.SpeechEvent]) -> list[str]:
    return [
        e.alternatives[0].text for e in events if e.type == lk_stt.SpeechEventType.FINAL_TRANSCRIPT
    ]


async def test_deepgram_streams_interims_and_finals_for_the_speech_heard(
    dg: FakeDeepgram, http: aiohttp.ClientSession, utterances: tuple[utterance.Utterance, ...]
) -> None:
    long, short = utterances
    dg.know([short, long])  # what may be said, in no particular order
    stt = deepgram.STT(base_url=dg.base_url, api_key="fake", http_session=http)
    events = await _run_stream(stt.stream(), [long.padded(0.3, 0.6), short.padded(0, 0.6)], turns=2)
    kinds = [e.type for e in events]
    T = lk_stt.SpeechEventType
    assert kinds.count(T.START_OF_SPEECH) == 2 and kinds.count(T.END_OF_SPEECH) == 2
    finals = _finals(events)
    # every word exactly once across finals; finals cut mid-sentence (every 7 words)
    first_turn = finals[: kinds[: kinds.index(T.END_OF_SPEECH)].count(T.FINAL_TRANSCRIPT)]
    assert " ".join(first_turn) == long.text
    assert " ".join(finals) == f"{long.text} {short.text}"
    assert first_turn[0] == "Hello there, my name is Alice. I"
    assert all(len(f.split()) <= 7 for f in finals)
    # interims are cumulative within a segment and restart after each final
    segment: list[str] = []
    for e in events:
        if e.type == T.INTERIM_TRANSCRIPT:
            text = e.alternatives[0].text
            assert not segment or text.startswith(segment[-1])
            segment.append(text)
        elif e.type == T.FINAL_TRANSCRIPT:
            assert not segment or e.alternatives[0].text.startswith(segment[-1])
            segment = []
    assert kinds.count(T.INTERIM_TRANSCRIPT) >= 15
    # word timings come back on the connection's timeline (the speech began at 0.3 s)
    words = next(e for e in events if e.type == T.FINAL_TRANSCRIPT).alternatives[0].words
    assert words is not None and words[0].start_time == pytest.approx(0.3, abs=0.03)
    params = dg.connections[0].params
    assert params["encoding"] == "linear16" and params["sample_rate"] == "16000"
    assert dg.counts["unrecognised_utterances"] == 0 and dg.counts["msg_KeepAlive"] >= 1
    # no word before its audio was received, +0.25 s (the sentence end is exact; inner word
    # ends are espeak estimates); one connection, 0.3 s lead-in
    ends = {(w.text, round(0.3 + w.end, 2)) for w in long.words}
    for w in dg.words:
        assert w["emitted_at"] >= w["end"] + 0.25 - 1e-6
    assert {(w["word"], round(w["end"], 2)) for w in dg.words[:3]} <= ends
    await stt.aclose()


async def test_deepgram_every_connection_transcribes_what_it_hears(
    dg: FakeDeepgram, http: aiohttp.ClientSession, utterances: tuple[utterance.Utterance, ...]
) -> None:
    long, short = utterances
    dg.know([long, short])
    stt = deepgram.STT(
        base_url=dg.base_url, api_key="fake", http_session=http, utterance_end_ms=1000
    )
    results = await asyncio.gather(
        _run_stream(stt.stream(), [long.padded(0.1, 0.5)], turns=1),
        _run_stream(stt.stream(), [short.padded(0.5, 0.5)], turns=1),
        _run_stream(stt.stream(), [short.padded(0.5, 0.5)], turns=1),
    )
    assert [" ".join(_finals(r)) for r in results] == [long.text, short.text, short.text]
    assert dg.counts["connections"] == 3
    # asked for utterance_end_ms: UtteranceEnd follows each speech_final
    assert sum(m["type"] == "UtteranceEnd" for m in dg.sent) == 3
    await stt.aclose()


async def test_deepgram_transcribes_only_what_was_heard(
    dg: FakeDeepgram, http: aiohttp.ClientSession, utterances: tuple[utterance.Utterance, ...]
) -> None:
    long, short = utterances
    dg.know([long, short])
    # the first sentence never reaches the STT (as when the agent discards audio), the middle
    # of the third is replaced by zeros, and an unknown sentence follows
    rate = long.sample_rate
    a, b = round(long.sentences[1].start * rate), round(long.sentences[2].start * rate)
    tail = utterance.Utterance(long.pcm[a:b], rate, ())
    third = utterance.Utterance(long.pcm[b:].copy(), rate, ())
    third.pcm.flags.writeable = True
    third.pcm[round(0.6 * rate) :] = 0
    other = speech.synthesize(["Completely unrelated words are spoken here."])
    stt = deepgram.STT(base_url=dg.base_url, api_key="fake", http_session=http)
    events = await _run_stream(
        stt.stream(),
        [tail.padded(0.2, 0.6), third.padded(0, 0.6), short.padded(0, 0.6), other.padded(0, 0.6)],
        turns=4,
    )
    heard = " ".join(_finals(events))
    # "Maybe at seven?": "Maybe" ended before the zeros, "at seven?" were never sent
    assert heard == f"{long.sentences[1].text} Maybe {short.text}"
    assert dg.counts["unrecognised_utterances"] == 1  # the unrelated sentence: no transcript
    assert dg.counts["lost"] == 1
    await stt.aclose()


async def test_deepgram_drop_mid_utterance_reconnects_and_continues(
    dg: FakeDeepgram, http: aiohttp.ClientSession, utterances: tuple[utterance.Utterance, ...]
) -> None:
    long, short = utterances
    dg.know([long, short])
    dg.fail("drop", after_words=9)
    stt = deepgram.STT(base_url=dg.base_url, api_key="fake", http_session=http)
    events = await _run_stream(
        stt.stream(), [long.padded(0.2, 0.6), short.padded(0, 0.6)], turns=2, pace=0.003
    )
    finals = " ".join(_finals(events)).split()
    assert dg.counts["drops"] == 1 and dg.counts["connections"] == 2
    assert dg.connections[0].closed_by == "fault"
    # the first final (7 words) was sent before the drop; words heard after it were lost; the
    # new connection recognises the rest of the same sentence, then the next utterance, and
    # nothing is said twice
    spoken = long.text.split() + short.text.split()
    assert finals[:7] == spoken[:7] and finals[-9:] == spoken[-9:]
    lost = [w for w in spoken if w not in finals]
    assert 1 <= len(lost) <= 5 and len(finals) == len(spoken) - len(lost)
    assert " ".join(lost) in long.text  # one stretch, around the drop
    assert dg.counts["words_lost"] >= 1
    await stt.aclose()


async def test_deepgram_refused_connection_is_a_status_error(
    dg: FakeDeepgram, http: aiohttp.ClientSession
) -> None:
    dg.fail("refuse", status=503)
    stt = deepgram.STT(base_url=dg.base_url, api_key="fake", http_session=http)
    stream = stt.stream(conn_options=NO_RETRY)
    with pytest.raises(APIStatusError) as info:
        async for _ in stream:
            pass
    assert info.value.status_code == 503 and dg.counts["refused"] == 1
    await stream.aclose()
    await stt.aclose()


async def test_deepgram_raw_protocol_auth_finalize_and_close(
    dg: FakeDeepgram, http: aiohttp.ClientSession, utterances: tuple[utterance.Utterance, ...]
) -> None:
    short = utterances[1]
    dg.know([short])
    url = f"{dg.base_url}?encoding=linear16&sample_rate=16000&channels=1&punctuate=false"
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await http.ws_connect(url)
    assert info.value.status == 401
    async with http.ws_connect(url, headers={"Authorization": "Token fake"}) as ws:
        # the whole utterance, no trailing silence: words are heard but not yet final
        await ws.send_bytes(short.resampled(16000).pcm.tobytes())
        await ws.send_str(json.dumps({"type": "Finalize"}))
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        msgs = [json.loads(m.data) async for m in ws if m.type == aiohttp.WSMsgType.TEXT]
    finals = [m for m in msgs if m["type"] == "Results" and m["is_final"]]
    assert finals[0]["from_finalize"] and not finals[0]["speech_final"]
    # punctuate=false: Deepgram's bare lowercase words, no punctuated_word
    assert finals[0]["channel"]["alternatives"][0]["transcript"] == "thanks a lot that is all"
    assert "punctuated_word" not in finals[0]["channel"]["alternatives"][0]["words"][0]
    assert msgs[-1]["type"] == "Metadata"
    assert msgs[-1]["duration"] == pytest.approx(short.duration, abs=0.02)
    assert ws.close_code == 1000


# --- separate process ---------------------------------------------------------------------------


def test_main_runs_both_fakes_until_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"openai": {"replies": ["Hi from the file."]}}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "testkit.fakes", "--script-file", str(script)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        urls = json.loads(proc.stdout.readline())
        assert urls["deepgram_base_url"].startswith("ws://127.0.0.1:")
        assert urls["deepgram_base_url"].endswith("/v1/listen")
        with urllib.request.urlopen(f"{urls['openai_base_url']}/models", timeout=5) as resp:
            assert resp.status == 200
        assert Control(urls["openai_control"]).state()["counts"] == {"models": 1}
        dg = Control(urls["deepgram_control"])
        dg("fault", mode="refuse", status=500)
        assert dg.state()["faults_pending"]["connect"]
        # what may be said, from another process: the sentences become its vocabulary
        utt = speech.synthesize(["Thanks a lot, that is all."])
        dg("know", utterances=[utt.script()])
        dg("know", utterances=[utt.script()])  # twice: known once
        assert dg.state()["vocabulary"] == [utt.text]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
