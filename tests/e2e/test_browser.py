"""The web service and its page in a real browser: Debian's Chromium, driven by playwright-core
(web/test/browser.mjs), with a fake microphone playing espeak-ng speech from a WAV, against the
real livekit-server, the real workers and the provider fakes.

The node script drives the page and prints what the page recorded; the assertions are here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.fakes_runner import Fakes
from testkit.livekit_server import API_KEY, API_SECRET, LiveKitServer
from testkit.polling import wait_until
from testkit.processes import (
    PYTHON,
    REPO,
    SETUP_HINT,
    free_port,
    http_get,
    spawn,
    tail,
    terminate,
)
from testkit.reporting import report, speech
from testkit.scenarios import MOUNTAIN_TRIP
from testkit.worker import Worker

WEB = REPO / "web"
CHROMIUM = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or "/usr/bin/chromium"
# Chromium plays the file from when the page opens the microphone, before the agent has joined
# and listens: the monologue starts after this lead-in.
LEAD_S = 3.0
# The README's screenshot: every run takes one (in the work dir); UPDATE_SCREENSHOT=1 puts it
# in docs/ as well (a test run leaves the checkout as it was otherwise).
SCREENSHOT = REPO / "docs" / "web-cut-in.png"
MONOLOGUE = list(MOUNTAIN_TRIP[:5])


@pytest.fixture(scope="module")
def page_built() -> None:
    """The bundle as the image builds it: `npm ci` from the lock, then esbuild."""
    if not shutil.which("npm"):
        pytest.fail(f"npm not found: {SETUP_HINT}", pytrace=False)
    if not (WEB / "node_modules" / ".package-lock.json").is_file():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True)
    subprocess.run(["npm", "run", "--silent", "build"], cwd=WEB, check=True)
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"chromium not found at {CHROMIUM}: {SETUP_HINT}", pytrace=False)


@contextlib.contextmanager
def web_service(livekit_url: str, log: Path, **settings: str) -> Iterator[str]:
    """`python -m services.web` on a free port, as the image runs it, with `settings` added to
    its environment; its base URL."""
    port = free_port()
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "LIVEKIT_PUBLIC_URL":
           livekit_url, "LIVEKIT_API_KEY": API_KEY, "LIVEKIT_API_SECRET": API_SECRET,
           "WEB_BIND_ADDRESS": "127.0.0.1", "WEB_PORT": str(port), **settings}
    proc = spawn([PYTHON, "-m", "services.web"], log=log, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_get(url + "/healthz")[0] == 200, 20, "the web service",
                   evidence=lambda: tail(log))
        yield url
    finally:
        terminate(proc)


@pytest.fixture(scope="module")
def web_url(page_built: None, lk_server: LiveKitServer, e2e_dir: Path) -> Iterator[str]:
    with web_service(lk_server.ws_url, e2e_dir / "web.log") as url:
        yield url


def monologue_wav(path: Path) -> tuple[Path, Any]:
    """The fake microphone: silence, the monologue, then silence (Chromium loops the file; the
    silence keeps the monologue from coming round again during a test). The utterance is what
    the STT fake must know."""
    utt = speech(MONOLOGUE, lead_s=LEAD_S, tail_s=60.0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(utt.sample_rate)
        w.writeframes(utt.pcm.astype("<i2").tobytes())
    return path, utt


@pytest.fixture(scope="module")
def microphone(e2e_dir: Path) -> tuple[Path, Any]:
    return monologue_wav(e2e_dir / "monologue.wav")


def browse(url: str, agent: str, until: str, *, wav: Path | None = None,
           timeout_s: float = 60, log: Path | None = None, **extra: Any) -> dict[str, Any]:
    """Run the page in Chromium until it shows `until`; what the page recorded."""
    opts = {"url": url, "agent": agent, "until": until, "chromium": CHROMIUM,
            "wav": str(wav) if wav else None, "timeoutMs": int(timeout_s * 1000), **extra}
    proc = subprocess.run(["node", "test/browser.mjs", json.dumps(opts)], cwd=WEB,
                          capture_output=True, text=True, timeout=timeout_s + 60)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        pytest.fail(f"the browser driver printed nothing (exit {proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}", pytrace=False)
    seen = dict(json.loads(lines[-1]))
    if log is not None:  # the evidence, whatever the outcome
        log.write_text(json.dumps(seen, indent=1))
    if proc.returncode != 0:
        pytest.fail(f"the page never showed {until!r}: {seen.get('error')}\n"
                    f"{json.dumps(seen, indent=1)[-6000:]}", pytrace=False)
    return seen


def test_endpoint_refuses_bad_input(web_url: str) -> None:
    for query, why in (("", "missing"), ("?agent=", "missing"), ("?agent=nobody", "unknown")):
        status, body = http_get(f"{web_url}/api/connection-details{query}")
        assert status == 400, (query, status, body)
        assert why in json.loads(body)["error"]
    status, body = http_get(f"{web_url}/api/connection-details?agent=interrupter")
    details = json.loads(body)
    assert status == 200 and set(details) == {"serverUrl", "roomName", "participantName",
                                              "participantToken"}
    assert API_SECRET not in body
    again = json.loads(http_get(f"{web_url}/api/connection-details?agent=interrupter")[1])
    assert again["roomName"] != details["roomName"]
    assert again["participantName"] != details["participantName"]


def check_cut_in(seen: dict[str, Any]) -> str:
    """The page showed the user's transcript, the count reaching the limit, the cut-in marker
    and agent audio with it; returns the figures as a line."""
    events = seen["events"]
    kinds = [e["kind"] for e in events]
    assert "connected" in kinds and "agent_joined" in kinds, kinds
    # the user's transcript as the page shows it: words of the monologue, enough of them to
    # count to the limit. (Not all of them: the fake STT, which matches audio levels, may miss
    # the first sentence while Chromium's gain control settles, or a stretch on a busy machine.)
    heard = [w.strip(".,").lower() for li in seen["transcript"] if li["cls"].startswith("user")
             for w in li["text"].removeprefix("You").split()]
    spoken = {w.strip(".,").lower() for w in " ".join(MONOLOGUE).split()}
    assert len(heard) >= 10 and set(heard) <= spoken, seen["transcript"]
    cut = next(e for e in events if e["kind"] == "cut_in")
    assert cut["by"] == "sentences"
    limit = int(seen["maxSentences"])
    # the count shown reached the limit before the marker
    assert any(e["kind"] == "budget" and e["sentences"] >= limit and e["t"] <= cut["t"]
               for e in events), [e for e in events if e["kind"] == "budget"]
    audio = [e["t"] for e in events if e["kind"] == "agent_audio_start"]
    assert any(t >= cut["t"] - 2000 for t in audio), (cut, audio)
    joined = next(e["t"] for e in events if e["kind"] == "agent_joined")
    return (f"page load -> agent joined {joined / 1000:.2f}s, -> cut-in marker "
            f"{cut['t'] / 1000:.2f}s, -> first agent audio {seen['firstAgentAudioMs'] / 1000:.2f}s")


def check_greeting(seen: dict[str, Any]) -> str:
    """The agent joined and its greeting played in the page; returns the figures as a line."""
    kinds = [e["kind"] for e in seen["events"]]
    assert "agent_joined" in kinds and "agent_audio_start" in kinds, kinds
    assert any(e["kind"] == "agent_state" and e["state"] == "speaking" for e in seen["events"])
    return (f"page load -> first agent audio (greeting) {seen['firstAgentAudioMs'] / 1000:.2f}s"
            f"; speech over protected speech counted: {seen['suppressed']}")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_interrupter_cut_in_in_the_browser(
    web_url: str, fakes: Fakes, interrupter: Worker, microphone: tuple[Path, Any],
    e2e_dir: Path,
) -> None:
    wav, utt = microphone
    fakes.deepgram("know", utterances=[utt.script()])
    shot = e2e_dir / SCREENSHOT.name
    seen = browse(web_url, "interrupter", "cut_in", wav=wav, timeout_s=90, settleMs=2500,
                  screenshot=str(shot), log=e2e_dir / "browser-interrupter.json")
    report(f"browser/interrupter: {check_cut_in(seen)}; screenshot {shot}")
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, SCREENSHOT)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_uninterruptable_greeting_plays_in_the_browser(
    web_url: str, fakes: Fakes, uninterruptable: Worker, microphone: tuple[Path, Any]
) -> None:
    wav, utt = microphone
    fakes.deepgram("know", utterances=[utt.script()])
    seen = browse(web_url, "uninterruptable", "agent_audio", wav=wav, timeout_s=45,
                  settleMs=3000)
    report(f"browser/uninterruptable: {check_greeting(seen)}")


@pytest.mark.timeout(120)
def test_page_explains_what_went_wrong(web_url: str, lk_server: LiveKitServer,
                                       e2e_dir: Path) -> None:
    # a microphone the user refused
    seen = browse(web_url, "uninterruptable", "error", denyMic=True, timeout_s=30)
    assert "No microphone" in seen["message"] and "denied" in seen["message"], seen["message"]
    # a LiveKit server nobody answers on
    with web_service(f"ws://127.0.0.1:{free_port()}", e2e_dir / "web-dead-lk.log") as dead:
        seen = browse(dead, "interrupter", "error", timeout_s=40)
    assert "Cannot reach the LiveKit server" in seen["message"], seen["message"]


@pytest.mark.timeout(120)
def test_page_says_when_no_agent_joins(start_lk_server: Any, e2e_dir: Path,
                                       microphone: tuple[Path, Any], page_built: None) -> None:
    # a livekit-server of its own, where no worker is registered: the dispatch goes nowhere
    server = start_lk_server()
    with web_service(server.ws_url, e2e_dir / "web-no-worker.log") as url:
        seen = browse(url, "interrupter", "error", wav=microphone[0], timeout_s=45)
    assert "connected" in [e["kind"] for e in seen["events"]]
    assert "interrupter did not join within 20 s" in seen["message"], seen["message"]


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_page_offers_a_renamed_agent_and_it_comes(
    start_worker: Any, lk_server: LiveKitServer, fakes: Fakes, e2e_dir: Path,
    microphone: tuple[Path, Any], page_built: None,
) -> None:
    # a deployment that renamed the uninterruptable agent and runs no interrupter: the web
    # service is told the name (compose and the chart derive it from the agents' own setting)
    renamed = "web-front-desk"
    wav, utt = microphone
    fakes.deepgram("know", utterances=[utt.script()])
    worker = start_worker("uninterruptable", env={"AGENT_NAME": renamed})
    with web_service(lk_server.ws_url, e2e_dir / "web-renamed.log", WEB_AGENTS=renamed) as url:
        assert json.loads(http_get(f"{url}/api/agents")[1]) == {"agents": [renamed]}
        status, body = http_get(f"{url}/api/connection-details?agent=uninterruptable")
        assert status == 400 and renamed in json.loads(body)["error"], body
        # the page selects it by that name (browser.mjs waits for it in the list) and the
        # renamed worker takes the job and greets
        seen = browse(url, renamed, "agent_audio", wav=wav, timeout_s=45)
    report(f"browser/renamed agent: {check_greeting(seen)}")
    room = next(e["room"] for e in seen["events"] if e["kind"] == "connected")
    assert room.startswith(f"web-{renamed}-")
    assert worker.find("received job request", room=room), f"{worker.log_path}"
