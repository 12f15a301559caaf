"""docker-compose.yml, .env.example and deploy/livekit/livekit.yaml: valid against the compose
specification, and in agreement with the code (config.VARIABLES, the ports) and with each other.
The livekit.yaml is also started with the real livekit-server."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from services.common import config
from services.web import settings as web_settings
from tests.deploy.conftest import (
    ROOT,
    SERVICES,
    exec_form,
    parse_dockerfile,
    run,
)

COMPOSE_FILE = ROOT / "docker-compose.yml"
LIVEKIT_YAML = ROOT / "deploy" / "livekit" / "livekit.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
BY_NAME = {v.name: v for v in config.VARIABLES}
OTHER_TEAM = "(written with the Prometheus/Grafana issue)"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def livekit_conf() -> dict[str, Any]:
    return yaml.safe_load(LIVEKIT_YAML.read_text())


def default(name: str) -> str:
    value = BY_NAME[name].default
    assert value is not None
    return value


def livekit_prometheus_port(conf: dict[str, Any]) -> int:
    return int((conf.get("prometheus") or {}).get("port") or conf["prometheus_port"])


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR-default}."""
    def sub(m: re.Match[str]) -> str:
        name, op, fallback = m.group(1), m.group(2), m.group(3) or ""
        if op == ":-":
            return env.get(name) or fallback
        if op == "-":
            return env.get(name, fallback)
        return env.get(name, "")

    return re.sub(r"\$\{(\w+)(:-|-)?([^}]*)\}", sub, value)


# --- the compose specification -----------------------------------------------------------------

def test_compose_file_matches_the_compose_spec(check_jsonschema: Path) -> None:
    result = run([check_jsonschema, "--builtin-schema", "vendor.compose-spec", COMPOSE_FILE])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_spec_validation_is_not_vacuous(check_jsonschema: Path, tmp_path: Path) -> None:
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    broken["services"]["interrupter"]["stop_grace_period"] = ["660s"]
    broken["services"]["livekit"]["healthcheck"]["retries"] = "many"
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = run([check_jsonschema, "--builtin-schema", "vendor.compose-spec", path])
    assert result.returncode == 1 and "stop_grace_period" in result.stdout + result.stderr


# --- .env.example (generated from config.VARIABLES: scripts/generate.py) -----------------------

# Read by docker-compose.yml only (interpolation), for livekit-server and the web client: not
# agent settings.
COMPOSE_ONLY = {"LIVEKIT_NODE_IP": "NODE_IP: ${LIVEKIT_NODE_IP:-}",
                "LIVEKIT_PUBLIC_URL": "LIVEKIT_PUBLIC_URL: ${LIVEKIT_PUBLIC_URL:-ws://localhost:7880}"}


def example_dotenv(**changes: str) -> dict[str, str]:
    """`.env` as `cp .env.example .env` writes it, with `changes`."""
    return {**{k: v or "" for k, v in dotenv_values(ENV_EXAMPLE).items()}, **changes}


def resolved_agent_env(compose: dict[str, Any], service: str,
                       dotenv: dict[str, str] | None = None) -> dict[str, str]:
    """What the agent's container gets from `.env` (default: `cp .env.example .env`): env_file,
    then environment (interpolated from the same .env, as compose does)."""
    spec = compose["services"][service]
    dotenv = example_dotenv() if dotenv is None else dotenv
    assert spec["env_file"] == [".env"], f"{service} must read .env"
    env = dict(dotenv)
    for key, value in (spec.get("environment") or {}).items():
        env[key] = interpolate(str(value), dotenv)
    return env


@pytest.mark.parametrize("service", SERVICES)
def test_agent_gets_every_variable_config_requires(compose: dict[str, Any], service: str) -> None:
    env = resolved_agent_env(compose, service)
    unknown = set(compose["services"][service].get("environment") or {}) - set(BY_NAME)
    assert not unknown, f"{service}: environment sets variables config does not know: {unknown}"
    # with the provider keys filled in (the one thing .env must add), the configuration loads
    keys = {"OPENAI_API_KEY": "sk-placeholder", "DEEPGRAM_API_KEY": "dg-placeholder"}
    settings = config.load(service, {**env, **keys}, command="start")
    assert settings.livekit_url == "ws://livekit:7880"
    # ...and without them, it fails on a provider key, never on anything compose should pass
    with pytest.raises(config.ConfigError, match=r"^(OPENAI|DEEPGRAM)_API_KEY: required"):
        config.load(service, env, command="start")


def test_livekit_keys_match_the_agents(compose: dict[str, Any]) -> None:
    dotenv = {k: v or "" for k, v in dotenv_values(ENV_EXAMPLE).items()}
    keys = interpolate(compose["services"]["livekit"]["environment"]["LIVEKIT_KEYS"], dotenv)
    key, secret = keys.split(": ")
    for service in SERVICES:
        env = resolved_agent_env(compose, service)
        assert (env["LIVEKIT_API_KEY"], env["LIVEKIT_API_SECRET"]) == (key, secret)
    # and when .env sets them, both sides follow
    custom = {**dotenv, "LIVEKIT_API_KEY": "k1", "LIVEKIT_API_SECRET": "s" * 32}
    assert interpolate(compose["services"]["livekit"]["environment"]["LIVEKIT_KEYS"],
                       custom) == f"k1: {'s' * 32}"


# --- services, images, ports -------------------------------------------------------------------

def test_agents_built_from_the_one_dockerfile(compose: dict[str, Any]) -> None:
    targets = {s.name for s in parse_dockerfile()}
    for service in SERVICES:
        build = compose["services"][service]["build"]
        assert build == {"context": ".", "dockerfile": "Dockerfile", "target": service}
        assert service in targets


def test_web_client_on_localhost_only_with_the_livekit_keys(compose: dict[str, Any]) -> None:
    web = compose["services"]["web"]
    assert web["build"] == {"context": ".", "dockerfile": "Dockerfile", "target": "web"}
    assert "web" in {s.name for s in parse_dockerfile()}
    # anyone who reaches the token endpoint gets into a room with an agent
    assert web["ports"] == ["127.0.0.1:8080:8080"]
    assert "env_file" not in web, "the web client needs no provider keys"
    dotenv = {k: v or "" for k, v in dotenv_values(ENV_EXAMPLE).items()}
    env = {k: interpolate(str(v), dotenv) for k, v in web["environment"].items()}
    assert f"LIVEKIT_PUBLIC_URL: {web['environment']['LIVEKIT_PUBLIC_URL']}" == \
        COMPOSE_ONLY["LIVEKIT_PUBLIC_URL"]
    settings = web_settings.load(env)
    assert settings.livekit_public_url == "ws://localhost:7880"
    livekit = resolved_agent_env(compose, SERVICES[0])
    assert (settings.livekit_api_key, settings.livekit_api_secret) == (
        livekit["LIVEKIT_API_KEY"], livekit["LIVEKIT_API_SECRET"])
    assert web["read_only"] is True and web["cap_drop"] == ["ALL"]
    assert web["depends_on"] == {"livekit": {"condition": "service_healthy"}}


@pytest.mark.parametrize("agent_name", ["", "front-desk"])
def test_web_client_offers_the_names_the_agents_register_with(compose: dict[str, Any],
                                                               agent_name: str) -> None:
    """AGENT_NAME in .env renames both agents (one name for the two); the page offers what they
    register with, from the same variable."""
    dotenv = example_dotenv(AGENT_NAME=agent_name)
    keys = {"OPENAI_API_KEY": "sk-placeholder", "DEEPGRAM_API_KEY": "dg-placeholder"}
    registered = {config.load(service, {**resolved_agent_env(compose, service, dotenv), **keys})
                  .agent_name for service in SERVICES}
    web = {k: interpolate(str(v), dotenv) for k, v in
           compose["services"]["web"]["environment"].items()}
    assert set(web_settings.load(web).agents) == registered
    assert registered == ({agent_name} if agent_name else set(SERVICES))


def test_livekit_server_pinned_to_the_tested_release(compose: dict[str, Any]) -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    tested = re.search(r"^LIVEKIT_SERVER_VERSION=(v[\d.]+)", setup, re.MULTILINE).group(1)
    assert compose["services"]["livekit"]["image"] == f"livekit/livekit-server:{tested}"
    for service in ("prometheus", "grafana"):
        image = compose["services"][service]["image"]
        assert re.search(r":v?\d+\.\d+\.\d+$", image), f"{service}: pin a release ({image})"


def test_livekit_node_ip_from_env(compose: dict[str, Any]) -> None:
    """LIVEKIT_NODE_IP in .env sets the address WebRTC media is offered on; empty keeps
    livekit-server's own choice (the container's address)."""
    env = compose["services"]["livekit"]["environment"]
    assert f"NODE_IP: {env['NODE_IP']}" == COMPOSE_ONLY["LIVEKIT_NODE_IP"]
    assert interpolate(env["NODE_IP"], {"LIVEKIT_NODE_IP": "198.51.100.10"}) == "198.51.100.10"
    assert interpolate(env["NODE_IP"], {}) == ""


def test_livekit_in_dev_mode_from_deploy_livekit(compose: dict[str, Any], livekit_conf) -> None:
    livekit = compose["services"]["livekit"]
    assert livekit_conf["development"] is True
    assert "keys" not in livekit_conf and "key_file" not in livekit_conf, (
        "keys come from LIVEKIT_KEYS, shared with the agents")
    assert "./deploy/livekit/livekit.yaml:/etc/livekit/livekit.yaml:ro" in livekit["volumes"]
    assert livekit["command"] == ["--config", "/etc/livekit/livekit.yaml"]
    assert "0.0.0.0" in livekit_conf["bind_addresses"]


def test_livekit_target_load_is_the_workers_load_threshold(livekit_conf) -> None:
    """Below target_load the server offers a worker jobs; at LOAD_THRESHOLD the worker refuses
    them. Different figures waste capacity (target lower) or offer jobs to a full worker."""
    assert livekit_conf["agents"]["target_load"] == float(default("LOAD_THRESHOLD"))


def test_ports_agree_with_livekit_yaml_and_config(compose: dict[str, Any], livekit_conf) -> None:
    rtc = livekit_conf["rtc"]
    published = set(compose["services"]["livekit"]["ports"])
    assert published == {
        f"{livekit_conf['port']}:{livekit_conf['port']}",
        f"{rtc['tcp_port']}:{rtc['tcp_port']}",
        f"{rtc['udp_port']}:{rtc['udp_port']}/udp",
        f"{livekit_prometheus_port(livekit_conf)}:{livekit_prometheus_port(livekit_conf)}",
    }
    assert (livekit_conf["port"], rtc["tcp_port"], rtc["udp_port"]) == (7880, 7881, 7882)
    health_url = compose["services"]["livekit"]["healthcheck"]["test"][-1]
    assert health_url == f"http://127.0.0.1:{livekit_conf['port']}/"
    for service in SERVICES:
        spec = compose["services"][service]
        assert spec["environment"]["LIVEKIT_URL"] == f"ws://livekit:{livekit_conf['port']}"
        assert spec["expose"] == [default("HEALTH_PORT"), default("METRICS_PORT")]


def test_agent_healthcheck_is_the_images(compose: dict[str, Any]) -> None:
    base = next(s for s in parse_dockerfile() if s.name == "base")
    (check,) = base.all("HEALTHCHECK")
    image_cmd = exec_form(check.value)
    options = dict(o.lstrip("-").split("=") for o in shlex.split(check.value.split(" CMD ")[0]))
    for service in SERVICES:
        health = compose["services"][service]["healthcheck"]
        assert health["test"] == ["CMD", *image_cmd]
        assert (health["interval"], health["timeout"], health["start_period"],
                str(health["retries"])) == (options["interval"], options["timeout"],
                                            options["start-period"], options["retries"])


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", duration))


def test_shutdown_outlasts_the_drain_and_services_restart(compose: dict[str, Any]) -> None:
    drain = int(default("DRAIN_TIMEOUT_SECONDS"))
    for service in SERVICES:
        spec = compose["services"][service]
        assert _seconds(spec["stop_grace_period"]) > drain
        assert spec.get("stop_signal", "SIGTERM") == "SIGTERM"
    for name, spec in compose["services"].items():
        assert spec.get("restart") in ("unless-stopped", "always", "on-failure"), name


def test_depends_on_waits_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for service in SERVICES:
        assert services[service]["depends_on"] == {"livekit": {"condition": "service_healthy"}}
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name, spec in services.items():
        for dep, cond in (spec.get("depends_on") or {}).items():
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits on {dep}, which has none"


def test_agents_hardened_like_the_chart(compose: dict[str, Any]) -> None:
    base = next(s for s in parse_dockerfile() if s.name == "base")
    env = dict(kv.split("=", 1) for ins in base.all("ENV") for kv in shlex.split(ins.value))
    args = dict(i.value.split("=", 1) for i in base.all("ARG") if "=" in i.value)
    for service in SERVICES:
        spec = compose["services"][service]
        assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in spec["security_opt"]
        assert "/tmp" in spec["tmpfs"]
        mounts = dict((t.split(":", 1) + [""])[:2] for t in spec["tmpfs"])
        metrics_dir = env["PROMETHEUS_MULTIPROC_DIR"]
        (metrics_tmpfs,) = [m for m in mounts if metrics_dir.startswith(m + "/")]
        # a plain tmpfs is root's, mode 0755: the agent (the image's UID) could not write there
        options = dict(o.split("=") for o in mounts[metrics_tmpfs].split(",") if o)
        assert (options.get("uid"), options.get("gid")) == (args["APP_UID"], args["APP_GID"]), (
            f"{service}: {metrics_tmpfs} must belong to the image's user")


def test_named_volumes_and_bind_mounts_exist(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for spec in compose["services"].values():
        for volume in spec.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{source} does not exist {OTHER_TEAM}"
            else:
                used.add(source)
    assert used == declared and {"prometheus-data", "grafana-data"} <= declared


# --- Prometheus and Grafana provisioning (files of deploy/prometheus and deploy/grafana) --------

def _mount(compose: dict[str, Any], service: str, source: str) -> str:
    for volume in compose["services"][service]["volumes"]:
        parts = volume.split(":")
        if parts[0] == source:
            return parts[1]
    raise AssertionError(f"{service} does not mount {source}")


def test_prometheus_scrapes_the_services_and_loads_the_rules(compose, livekit_conf) -> None:
    prom_yml = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    assert prom_yml.is_file(), f"deploy/prometheus/prometheus.yml is missing {OTHER_TEAM}"
    mounted_at = _mount(compose, "prometheus", "./deploy/prometheus")
    command = compose["services"]["prometheus"]["command"]
    assert f"--config.file={mounted_at}/prometheus.yml" in command
    prom = yaml.safe_load(prom_yml.read_text())
    rule_files = [f for pattern in prom["rule_files"]
                  for f in (prom_yml.parent).glob(pattern.removeprefix(mounted_at + "/"))]
    assert rule_files, f"prometheus.yml loads no rule file of deploy/prometheus/rules {OTHER_TEAM}"
    targets = {t for job in prom["scrape_configs"] for sc in job.get("static_configs", [])
               for t in sc["targets"]}
    metrics_port = default("METRICS_PORT")
    for service in SERVICES:
        assert f"{service}:{metrics_port}" in targets
    assert f"livekit:{livekit_prometheus_port(livekit_conf)}" in targets


def test_grafana_is_provisioned_with_datasource_and_dashboards(compose: dict[str, Any]) -> None:
    grafana = ROOT / "deploy" / "grafana"
    provisioning = _mount(compose, "grafana", "./deploy/grafana/provisioning")
    assert provisioning == "/etc/grafana/provisioning"
    dashboards_at = _mount(compose, "grafana", "./deploy/grafana/dashboards")
    datasources = [yaml.safe_load(p.read_text())
                   for p in (grafana / "provisioning" / "datasources").glob("*.yml")]
    urls = {d.get("url") for f in datasources for d in f.get("datasources", [])
            if d.get("type") == "prometheus"}
    assert urls == {"http://prometheus:9090"}, f"Prometheus datasource {OTHER_TEAM}: {urls}"
    providers = [p for f in (grafana / "provisioning" / "dashboards").glob("*.yml")
                 for p in yaml.safe_load(f.read_text()).get("providers", [])]
    assert providers and all(p["options"]["path"] == dashboards_at for p in providers), (
        f"dashboard providers must read {dashboards_at} {OTHER_TEAM}")
    assert list((grafana / "dashboards").glob("*.json")), f"no dashboards {OTHER_TEAM}"


# --- livekit.yaml on the real server -----------------------------------------------------------

def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_livekit_yaml_starts_livekit_server(livekit_server: Path, livekit_conf, tmp_path) -> None:
    """Our livekit.yaml, on free loopback ports (strict parsing rejects unknown keys)."""
    conf = yaml.safe_load(LIVEKIT_YAML.read_text())
    http_port, prom_port = _free_port(), _free_port()
    conf.update(port=http_port, bind_addresses=["127.0.0.1"])
    conf["rtc"].update(tcp_port=_free_port(), udp_port=_free_port(socket.SOCK_DGRAM))
    if "prometheus" in conf:
        conf["prometheus"]["port"] = prom_port
    else:
        conf["prometheus_port"] = prom_port
    path = tmp_path / "livekit.yaml"
    path.write_text(yaml.safe_dump(conf))
    log = (tmp_path / "livekit.log").open("w")
    proc = subprocess.Popen([str(livekit_server), "--config", str(path)], stdout=log, stderr=log,
                            env={"LIVEKIT_KEYS": "devkey: secret", "PATH": "/usr/bin:/bin"})
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=2) as r:
                    assert r.status == 200
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "livekit.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "livekit-server did not answer on /"
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/metrics", timeout=5) as r:
            assert b"livekit_" in r.read()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
