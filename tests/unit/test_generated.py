"""The copies of the settings (`.env.example`, the README tables, the chart's values and schema)
are what `make generate` writes from services/common/config.py, and the Prometheus rule files
and Grafana dashboards what it writes from deploy/monitoring/."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.monitoring import __main__ as monitoring
from scripts import generate


def test_generated_files_are_current() -> None:
    stale = [str(p.relative_to(generate.ROOT)) for p in generate.stale()]
    assert not stale, f"stale, run `make generate`: {stale}"


def test_a_hand_edited_copy_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / ".env.example"
    text = (generate.ROOT / ".env.example").read_text()
    copy.write_text(text.replace("INTERRUPT_MAX_SENTENCES=3", "INTERRUPT_MAX_SENTENCES=4"))
    monkeypatch.setattr(generate, "TARGETS", {copy: generate.env_example})
    assert generate.stale() == {copy: text}
    assert generate.main(["--check"]) == 1
    assert generate.main([]) == 0 and copy.read_text() == text


# --- monitoring: rule files and dashboards from deploy/monitoring/ -------------------------------


def test_monitoring_files_are_current() -> None:
    stale = [str(p.relative_to(monitoring.ROOT)) for p in monitoring.stale()]
    assert not stale, f"stale, run `make generate`: {stale}"


def test_a_hand_edited_rule_file_is_reported(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    rules_dir = monitoring.ROOT / "deploy" / "prometheus" / "rules"
    text = (rules_dir / "voice_agent_alerts.yml").read_text()
    (tmp_path / "voice_agent_alerts.yml").write_text(text.replace("> 1.5", "> 2"))
    (tmp_path / "voice_agent_recording.yml").write_text(
        (rules_dir / "voice_agent_recording.yml").read_text())
    monkeypatch.setattr(monitoring, "OUTPUTS", {tmp_path: monitoring.rules.render})
    assert monitoring.stale() == {tmp_path / "voice_agent_alerts.yml": text}
    assert monitoring.main(["--check"]) == 1
    assert monitoring.main([]) == 0 and (tmp_path / "voice_agent_alerts.yml").read_text() == text
    assert monitoring.main(["--check"]) == 0


def test_every_rule_file_and_dashboard_is_generated() -> None:
    for directory, render in monitoring.OUTPUTS.items():
        present = {p.name for p in directory.iterdir() if p.is_file()}
        assert present == set(render()), f"{directory} holds files not generated: {present}"
