"""Prometheus config and rules: promtool checks, promtool unit tests, and the conventions every
alert follows (severity, summary/description, `for:`, a runbook section, a firing and a silent
unit test)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import find_tool

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "deploy" / "prometheus"
CONFIG = PROM_DIR / "prometheus.yml"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM_DIR / "tests").glob("*.yml"))
RUNBOOK = REPO / "deploy" / "monitoring" / "runbook.md"
SEVERITIES = {"warning", "critical"}
# Labels a rule may set: anything deployment-specific (compose project, namespace, cluster, ...)
# belongs to the Prometheus that loads the rules, not to the rules.
RULE_LABELS = {"severity", "quantile"}


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_tool("promtool"), *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} failed:\n{result.stdout}{result.stderr}"
    )


def rules() -> list[dict]:
    out = []
    for file in RULE_FILES:
        for group in yaml.safe_load(file.read_text())["groups"]:
            out.extend(group["rules"])
    return out


def alerts() -> dict[str, dict]:
    return {r["alert"]: r for r in rules() if "alert" in r}


def test_files_exist() -> None:
    assert RULE_FILES, "no rule files in deploy/prometheus/rules/"
    assert TEST_FILES, "no promtool unit tests in deploy/prometheus/tests/"
    assert alerts(), "no alerts defined"


def test_promtool_check_config() -> None:
    # also checks every rule file the config loads
    result = promtool("check", "config", CONFIG)
    assert_ok(result)
    for file in RULE_FILES:
        assert file.name in result.stdout, f"prometheus.yml does not load {file.name}"


def test_promtool_check_rules() -> None:
    assert_ok(promtool("check", "rules", *RULE_FILES))


def test_promtool_unit_tests() -> None:
    assert_ok(promtool("test", "rules", *TEST_FILES))


def test_unit_tests_load_every_rule_file() -> None:
    for test_file in TEST_FILES:
        loaded = {
            (test_file.parent / f).resolve()
            for f in yaml.safe_load(test_file.read_text())["rule_files"]
        }
        assert loaded == {f.resolve() for f in RULE_FILES}, f"{test_file.name} loads {loaded}"


def test_scrape_config() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert {"interrupter:9100", "uninterruptable:9100", "livekit:6789"} <= targets
    assert config["rule_files"] == ["rules/*.yml"]


@pytest.mark.parametrize("name", sorted(alerts()))
def test_alert_conventions(name: str) -> None:
    rule = alerts()[name]
    assert rule.get("for"), f"{name} has no `for:` duration"
    assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity label"
    annotations = rule.get("annotations", {})
    assert annotations.get("summary") and annotations.get("description"), (
        f"{name} needs summary and description annotations"
    )


def test_rules_free_of_deployment_labels() -> None:
    for rule in rules():
        name = rule.get("alert") or rule.get("record")
        assert set(rule.get("labels", {})) <= RULE_LABELS, f"{name} sets {rule['labels']}"
        # job/instance only as join keys: never matched against a value
        matcher = re.search(r"\b(job|instance)\s*(=~|!~|!=|=)", rule["expr"])
        assert matcher is None, f"{name} selects on {matcher.group(0)!r}"


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for test_file in TEST_FILES:
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    defined = set(alerts())
    assert not defined - firing, f"no unit test where these fire: {sorted(defined - firing)}"
    assert not defined - silent, f"no unit test where these stay silent: {sorted(defined - silent)}"
    assert not (firing | silent) - defined, (
        f"tests for unknown alerts: {(firing | silent) - defined}"
    )


def test_every_alert_links_its_runbook_section() -> None:
    # GitHub's anchor of a heading `## VoiceAgentX` is `#voiceagentx`
    sections = {
        line.removeprefix("## ").strip().lower()
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for name, rule in alerts().items():
        url = rule["annotations"].get("runbook_url", "")
        path, _, anchor = url.partition("#")
        assert (REPO / path).resolve() == RUNBOOK.resolve(), f"{name}: runbook_url {url!r}"
        assert anchor in sections, f"{name}: no section #{anchor} in {RUNBOOK.name}"
    assert sections == {name.lower() for name in alerts()}, "a runbook section without its alert"
