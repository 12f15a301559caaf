"""The Dockerfile, checked without a Docker engine: linters, its structure, and the commands the
images run, executed here outside a container (entry command, build-time model fetch, health
check)."""

from __future__ import annotations

import http.server
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services import registry
from services.common import config
from services.web import settings as web_settings
from tests.deploy.conftest import (
    ROOT,
    SERVICES,
    Stage,
    exec_form,
    healthcheck_options,
    parse_dockerfile,
    run,
    run_checkov,
)

DOCKERFILE = ROOT / "Dockerfile"
APP_UID = "10001"
METRICS_DIR = "/run/voice-agent/metrics"
VENV_PYTHON = Path(sys.executable)


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return {s.name: s for s in parse_dockerfile()}


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        for item in shlex.split(instruction.value):
            key, _, value = item.partition("=")
            env[key] = value
    return env


# --- linters -----------------------------------------------------------------------------------

def test_hadolint_clean(hadolint: Path) -> None:
    result = run([hadolint, "--no-color", "--failure-threshold", "info", DOCKERFILE])
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_every_hadolint_ignore_has_a_reason() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#") and "hadolint" not in above and len(above) > 10, (
                f"Dockerfile:{i + 1}: `{line.strip()}` needs a comment line above saying why")


def test_checkov_dockerfile(checkov: Path) -> None:
    (report,) = run_checkov(checkov, "dockerfile", [DOCKERFILE])
    failed = report["results"]["failed_checks"]
    assert not failed, "checkov: " + "; ".join(f"{c['check_id']} {c['check_name']}" for c in failed)
    assert report["summary"]["passed"] > 0
    for skipped in report["results"]["skipped_checks"]:
        assert skipped.get("check_result", {}).get("suppress_comment"), (
            f"{skipped['check_id']} is skipped without a reason")


# --- structure ---------------------------------------------------------------------------------

def test_stages_one_base_and_a_target_per_agent(stages: dict[str, Stage]) -> None:
    assert list(stages) == ["deps", "base", *SERVICES, "web-build", "web"]
    for service in SERVICES:
        assert stages[service].base == "base", f"{service} must build on the shared base stage"


def test_web_is_the_base_runtime_serving_the_bundle_built_from_the_lock(
    stages: dict[str, Stage]
) -> None:
    build, web = stages["web-build"], stages["web"]
    assert re.fullmatch(r"node:\d+\.\d+\.\d+-\w+-slim", build.base), f"pin a release: {build.base}"
    runs = [i.value for i in build.all("RUN")]
    assert runs[0].startswith("npm ci ") and runs[-1] == "npm run build"
    assert [i.value for i in build.all("COPY")][0] == "web/package.json web/package-lock.json ./"
    assert web.base == "base" and not web.all("USER") and not web.all("RUN")
    (copy,) = web.all("COPY")
    assert "--from=web-build" in copy.value and copy.value.endswith("/web/dist/ /app/web/dist/")
    # where the image puts the bundle is where the service looks by default (/app = the repo)
    assert ROOT / "web" / "dist" == web_settings.BUILT_PAGE
    (entrypoint,) = web.all("ENTRYPOINT")
    assert exec_form(entrypoint.value) == ["python", "-m", "services.web"]
    (check,) = web.all("HEALTHCHECK")
    port = str(web_settings.Settings.model_fields["web_port"].default)
    assert "/healthz" in check.value and f"'WEB_PORT', '{port}'" in check.value
    assert [i.value for i in web.all("EXPOSE")] == [port]


def test_base_image_pinned_and_the_same_in_every_stage(stages: dict[str, Stage]) -> None:
    images = {stages["deps"].base, stages["base"].base}
    assert len(images) == 1, f"deps and base use different images: {images}"
    (image,) = images
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", image), (
        f"{image}: pin a full Python 3.11 patch release of a slim image (pyproject: 3.11)")


def test_entrypoint_is_the_entry_command_with_the_service(stages: dict[str, Stage]) -> None:
    for service in SERVICES:
        (entrypoint,) = stages[service].all("ENTRYPOINT")
        (cmd,) = stages[service].all("CMD")
        assert exec_form(entrypoint.value) == ["/app/services/entrypoint.sh", service]
        assert exec_form(cmd.value) == ["start"]
        assert service in registry.AGENTS
    copies = [i.value for i in stages["base"].all("COPY")]
    assert any(c.endswith("services/ /app/services/") for c in copies)
    assert any("--chmod=0755" in c and "services/entrypoint.sh" in c for c in copies)
    assert os.access(ROOT / "services" / "entrypoint.sh", os.X_OK)


def test_dependencies_from_the_hashed_lock_binary_only(stages: dict[str, Stage]) -> None:
    (install,) = [i.value for i in stages["deps"].all("RUN") if "pip" in i.value]
    for flag in ("--require-hashes", "--no-deps", "--only-binary=:all:",
                 "-r /tmp/requirements.lock"):
        assert flag in install
    copies = [i.value for i in stages["deps"].all("COPY")]
    assert "requirements.lock /tmp/requirements.lock" in copies
    # every pinned requirement carries a hash (pip refuses the whole lock otherwise)
    blocks = re.split(r"\n(?=[a-z0-9])", (ROOT / "requirements.lock").read_text())
    pins = [b for b in blocks if re.match(r"[a-z0-9][a-z0-9._-]*==", b)]
    assert pins and all("--hash=sha256:" in b for b in pins)


def test_no_syntax_directive() -> None:
    """`# syntax=` makes BuildKit pull a frontend image from a registry before anything else:
    the build then fails wherever there is none (air-gapped builders, this CI)."""
    head = [ln for ln in DOCKERFILE.read_text().splitlines() if ln.startswith("#")]
    assert not any(re.match(r"#\s*syntax\s*=", ln, re.I) for ln in head)


def test_final_stages_are_slim_and_non_root(stages: dict[str, Stage]) -> None:
    base = stages["base"]
    (user,) = base.all("USER")
    assert user.value == "${APP_UID}:${APP_GID}"
    args = dict(i.value.split("=", 1) for i in base.all("ARG") if "=" in i.value)
    assert args["APP_UID"] == APP_UID and args["APP_GID"] == APP_UID
    for service in SERVICES:
        stage = stages[service]
        assert not stage.all("USER") and not stage.all("RUN"), (
            f"{service}: the final stage only adds its entry command and labels")
    # nothing is compiled or fetched with a package manager at runtime
    text = DOCKERFILE.read_text()
    assert "apt-get" not in text and "build-essential" not in text
    assert [c for c in base.all("COPY") if "--from=deps" in c.value] == [
        next(c for c in base.all("COPY") if "--from=deps" in c.value)]


def test_models_are_fetched_at_build_time_as_the_runtime_user(stages: dict[str, Stage]) -> None:
    base = stages["base"].instructions
    user_at = next(i for i, ins in enumerate(base) if ins.keyword == "USER")
    fetch = [(i, ins) for i, ins in enumerate(base) if "download-files" in ins.value]
    assert fetch, "the base stage must fetch the plugins' files with download-files"
    ((index, run_),) = fetch
    assert index > user_at, "download-files must run after USER (as the runtime user)"
    # the framework's own command covers every installed plugin; through an agent's CLI it is
    # deprecated since livekit-agents 1.5.10 (and warns in the build log)
    assert "python -m livekit.agents download-files" in run_.value
    assert "entrypoint.sh" not in run_.value
    assert "silero.VAD.load()" in run_.value
    env = env_of(stages["base"])
    assert env["HF_HUB_OFFLINE"] == "1" and env["ORT_DISABLE_TELEMETRY"] == "1"


def test_metrics_dir_prepared(stages: dict[str, Stage]) -> None:
    env = env_of(stages["base"])
    assert env["PROMETHEUS_MULTIPROC_DIR"] == METRICS_DIR
    prepare = next(i.value for i in stages["base"].all("RUN") if "install -d" in i.value)
    assert re.search(r'install -d -o "\$\{APP_UID\}" -g "\$\{APP_GID\}" -m 0755 /run/voice-agent '
                     + re.escape(METRICS_DIR), prepare)


def test_no_secret_in_the_image() -> None:
    text = DOCKERFILE.read_text()
    for var in config.VARIABLES:
        if var.secret:
            assert var.name not in text, f"{var.name} must not be set in the Dockerfile"


def test_oci_labels(stages: dict[str, Stage]) -> None:
    def labels(stage: Stage) -> set[str]:
        return {m for i in stage.all("LABEL")
                for m in re.findall(r"(org\.opencontainers\.image\.[a-z.]+)=", i.value)}

    base = labels(stages["base"])
    assert {"org.opencontainers.image.version", "org.opencontainers.image.revision",
            "org.opencontainers.image.created", "org.opencontainers.image.source"} <= base
    for service in SERVICES:
        assert {"org.opencontainers.image.title",
                "org.opencontainers.image.description"} <= labels(stages[service])


def test_healthcheck_options(stages: dict[str, Stage]) -> None:
    (check,) = stages["base"].all("HEALTHCHECK")
    options = healthcheck_options(check.value)
    assert set(options) == {"interval", "timeout", "start-period", "retries"}
    command = exec_form(check.value)
    assert command[:2] == ["python", "-c"]
    # the socket timeout in the command is shorter than Docker's, so Docker sees exit 1, not a kill
    socket_timeout = float(re.search(r"timeout=(\d+)", command[2]).group(1))
    assert socket_timeout < float(options["timeout"].rstrip("s"))
    assert "HEALTH_PORT" in command[2] and config_default("HEALTH_PORT") in command[2]
    exposed = " ".join(i.value for i in stages["base"].all("EXPOSE")).split()
    assert exposed == [config_default("HEALTH_PORT"), config_default("METRICS_PORT")]


def config_default(name: str) -> str:
    (var,) = [v for v in config.VARIABLES if v.name == name]
    assert var.default is not None
    return var.default


# --- .dockerignore -----------------------------------------------------------------------------

def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches a path's parents."""
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]

    def matches(pattern: str, candidate: str) -> bool:
        regex = re.escape(pattern.rstrip("/")).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        return re.fullmatch(regex, candidate) is not None

    ignored = False
    for raw in patterns:
        exclude = not raw.startswith("!")
        pattern = raw.lstrip("!")
        if any(matches(pattern, c) for c in candidates):
            ignored = exclude
    return ignored


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    tracked = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"]).stdout.split()
    sent = {p for p in tracked if not _ignored(p, patterns)}
    assert "requirements.lock" in sent
    assert {p for p in tracked if p.startswith("services/") and p.endswith((".py", ".sh"))} <= sent
    web = {"web/package.json", "web/package-lock.json"} | {
        p for p in tracked if p.startswith("web/src/")}
    assert web <= sent
    assert all(p == "requirements.lock" or p.startswith("services/") or p in web
               for p in sent), sent
    for secretish in (".env", "services/.env", ".venv/bin/python", ".cache/bin/helm",
                      ".git/config", "services/common/__pycache__/config.cpython-311.pyc",
                      "web/node_modules/livekit-client/package.json", "web/dist/main.js"):
        assert _ignored(secretish, patterns), f"{secretish} would reach the build context"


# --- the images' commands, outside a container -------------------------------------------------

@pytest.fixture()
def image_like_env(tmp_path: Path, stages: dict[str, Stage]) -> dict[str, str]:
    """The base stage's environment with its paths moved under tmp_path, and no credentials."""
    env = env_of(stages["base"])
    metrics = tmp_path / "run" / "metrics"
    metrics.mkdir(parents=True)
    (tmp_path / "home").mkdir()
    return {
        **{k: v for k, v in env.items() if k not in ("PATH", "VIRTUAL_ENV")},
        "PATH": f"{VENV_PYTHON.parent}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        "PYTHON": str(VENV_PYTHON),
    }


def test_build_time_fetch_runs_without_credentials(
    stages: dict[str, Stage], image_like_env: dict[str, str]
) -> None:
    """The base stage's download-files + Silero RUN line, as written, with this repo as /app."""
    (line,) = [i.value for i in stages["base"].all("RUN") if "download-files" in i.value]
    command = (line.replace("/app/services/entrypoint.sh", str(ROOT / "services" / "entrypoint.sh"))
               .replace(METRICS_DIR, image_like_env["PROMETHEUS_MULTIPROC_DIR"]))
    result = subprocess.run(["sh", "-c", command], env=image_like_env, cwd=image_like_env["HOME"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, (
        f"build step failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
    assert "deprecated" not in (result.stdout + result.stderr).lower(), result.stderr[-2000:]
    assert not any(Path(image_like_env["PROMETHEUS_MULTIPROC_DIR"]).iterdir())
    # ORT_DISABLE_TELEMETRY: onnxruntime wrote no device id into HOME
    assert not (Path(image_like_env["HOME"]) / ".cache" / "Microsoft").exists()


def test_entry_command_rejects_unknown_service(image_like_env: dict[str, str]) -> None:
    result = subprocess.run([str(ROOT / "services" / "entrypoint.sh"), "interrupted", "start"],
                            env=image_like_env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "unknown agent 'interrupted': one of interrupter, uninterruptable" in result.stderr
    # a name that is no directory name is refused before Python starts
    result = subprocess.run([str(ROOT / "services" / "entrypoint.sh"), "../x", "start"],
                            env=image_like_env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "bad agent name '../x'" in result.stderr


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = b"OK" if self.status == 200 else b"unhealthy"
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthcheck_command_exit_codes(
    stages: dict[str, Stage], health_server: tuple[int, type[_Health]]
) -> None:
    (check,) = stages["base"].all("HEALTHCHECK")
    argv = exec_form(check.value)
    argv[0] = str(VENV_PYTHON)
    port, handler = health_server

    def probe(health_port: int) -> int:
        env = {"PATH": "/usr/bin:/bin", "HEALTH_PORT": str(health_port)}
        return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode

    handler.status = 200
    assert probe(port) == 0, "200 OK must be healthy"
    handler.status = 503
    assert probe(port) == 1, "503 (lost LiveKit) must be unhealthy"
    handler.status = 500
    assert probe(port) == 1
    assert probe(_free_port()) == 1, "nothing listening must be unhealthy"
