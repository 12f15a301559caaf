"""Configuration: every required variable missing and every invalid value stops start-up with a
non-zero exit and one line naming the variable - checked through the real entry command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services import registry
from services.common import config

ROOT = Path(__file__).resolve().parents[2]
SERVICES = tuple(registry.AGENTS)

VALID = {
    "LIVEKIT_URL": "ws://127.0.0.1:7880",
    "LIVEKIT_API_KEY": "devkey",
    "LIVEKIT_API_SECRET": "devsecret",
    "OPENAI_API_KEY": "sk-test",
    "DEEPGRAM_API_KEY": "dg-test",
}

# One bad value per variable that has a constraint; the test below checks none is forgotten.
INVALID = {
    "LIVEKIT_URL": "localhost:7880",
    "LIVEKIT_API_KEY": "  ",
    "LIVEKIT_API_SECRET": " ",
    "AGENT_NAME": "my agent!",
    "STT_PROVIDER": "whisper",
    "STT_LANGUAGE": " ",
    "LLM_PROVIDER": "anthropic",
    "TTS_PROVIDER": "elevenlabs",
    "OPENAI_API_KEY": " ",
    "OPENAI_BASE_URL": "api.openai.com/v1",
    "DEEPGRAM_API_KEY": " ",
    "DEEPGRAM_BASE_URL": "ftp://deepgram",
    "PROVIDER_TIMEOUT_SECONDS": "0",
    "PROVIDER_MAX_RETRIES": "-1",
    "TURN_DETECTION": "magic",
    "MIN_ENDPOINTING_DELAY": "fast",
    "AEC_WARMUP_SECONDS": "-1",
    "FALLBACK_LINE": " ",
    "HTTP_BIND_ADDRESS": " ",
    "LIVEKIT_MAX_RETRY": "many",
    "HEALTH_PORT": "70000",
    "METRICS_PORT": "0",
    "DRAIN_TIMEOUT_SECONDS": "-5",
    "LOAD_THRESHOLD": "1.5",
    "NUM_CPUS": "0",
    "NUM_IDLE_PROCESSES": "x",
    "POD_DELETION_COST": "perhaps",
    "LOG_LEVEL": "LOUD",
    "INTERRUPT_MAX_SENTENCES": "three",
    "INTERRUPT_MAX_WORDS": "0",
    "INTERRUPT_MAX_SECONDS": "-1",
    "INTERRUPT_FLOOR_SECONDS": "0",
    "INTERRUPT_PREFACE": " ",
    "INTERRUPT_INSTRUCTIONS": "",
    "PROTECTED_SPEECH_USER_AUDIO": "maybe",
    "GREETING_INSTRUCTIONS": " ",
}
FREE_TEXT = {"STT_MODEL", "LLM_MODEL", "TTS_MODEL", "TTS_VOICE", "AGENT_INSTRUCTIONS"}


def _service_of(name: str) -> str:
    scope = next(v.scope for v in config.VARIABLES if v.name == name)
    return "interrupter" if scope == "common" else scope


def run_service(service: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {v.name for v in config.VARIABLES}}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "services", service, *(args or ("start",))],
        cwd=ROOT / "tests",  # no .env there: only what the test passes counts
        env={**clean, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60,
    )


def test_every_constrained_variable_has_an_invalid_case() -> None:
    declared = {v.name for v in config.VARIABLES}
    assert set(INVALID) | FREE_TEXT == declared


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("missing", sorted(VALID))
def test_missing_required_variable_exits_nonzero_naming_it(service: str, missing: str) -> None:
    env = {k: v for k, v in VALID.items() if k != missing}
    started = time.monotonic()
    proc = run_service(service, env)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert missing in lines[0]
    assert elapsed < 5  # a second or so; generous for a loaded CI machine


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_value_exits_nonzero_naming_it(name: str) -> None:
    proc = run_service(_service_of(name), {**VALID, name: INVALID[name]})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].split("configuration error: ")[1].startswith(name), lines


def test_secrets_never_appear_in_the_error_line() -> None:
    proc = run_service("interrupter", {**VALID, "OPENAI_API_KEY": "sk-canary-123",
                                       "LOAD_THRESHOLD": "2"})
    assert proc.returncode == 2
    assert "sk-canary-123" not in proc.stderr + proc.stdout


def test_provider_keys_are_required_only_for_the_providers_in_use() -> None:
    env = {k: v for k, v in VALID.items() if k != "DEEPGRAM_API_KEY"}
    with pytest.raises(config.ConfigError, match="^DEEPGRAM_API_KEY"):
        config.load("interrupter", env)
    settings = config.load("interrupter", {**env, "STT_PROVIDER": "openai"})
    assert settings.stt_provider == "openai"
    no_openai = {k: v for k, v in VALID.items() if k != "OPENAI_API_KEY"}
    with pytest.raises(config.ConfigError, match="^OPENAI_API_KEY"):
        config.load("interrupter", no_openai)
    config.load("interrupter", {**no_openai, "LLM_PROVIDER": "inference",
                                "TTS_PROVIDER": "inference"})


def test_console_needs_no_livekit_credentials_and_download_files_needs_nothing() -> None:
    provider_keys = {"OPENAI_API_KEY": "k", "DEEPGRAM_API_KEY": "k"}
    config.load("uninterruptable", provider_keys, command="console")
    with pytest.raises(config.ConfigError, match="^OPENAI_API_KEY"):
        config.load("uninterruptable", {"DEEPGRAM_API_KEY": "k"}, command="console")
    config.load("uninterruptable", {}, command="download-files")


def test_defaults_and_agent_name() -> None:
    s = config.load("interrupter", VALID)
    assert s.agent_name == "interrupter"
    assert s.interrupt_max_sentences == 3 and s.interrupt_max_words is None
    assert config.load("uninterruptable", {**VALID, "AGENT_NAME": "alt"}).agent_name == "alt"
    assert not hasattr(config.load("uninterruptable", VALID), "interrupt_preface")
    assert config.load("interrupter", {**VALID, "LOG_LEVEL": "warning"}).log_level == "WARNING"


def test_redacted_hides_secrets() -> None:
    shown = config.redacted(config.load("interrupter", VALID))
    for v in config.VARIABLES:
        if v.secret and v.name in shown:
            assert shown[v.name] == "***"


def test_dotenv_does_not_override_the_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LIVEKIT_URL=ws://from-dotenv:7880\nLOG_LEVEL=DEBUG\n")
    clean = {k: v for k, v in os.environ.items() if k not in {v.name for v in config.VARIABLES}}
    code = ("from services.common import config; config.load_dotenv_file(); import os;"
            "print(os.environ['LIVEKIT_URL'], os.environ['LOG_LEVEL'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, text=True,
                         capture_output=True, check=True,
                         env={**clean, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "ERROR"}).stdout
    assert out.split() == ["ws://from-dotenv:7880", "ERROR"]
