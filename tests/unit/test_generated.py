"""The copies of the settings (`.env.example`, the README tables, the chart's values and schema)
are what `make generate` writes from services/common/config.py."""

from __future__ import annotations

from pathlib import Path

import pytest

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
