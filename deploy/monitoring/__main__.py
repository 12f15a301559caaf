"""Writes the generated monitoring files; `--check` exits 1 naming the stale ones (CI).

    python -m deploy.monitoring            # rewrite what is stale
    python -m deploy.monitoring --check    # exit 1 if a committed file differs
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from deploy.monitoring import dashboards, rules

ROOT = Path(__file__).resolve().parents[2]
# Output directory -> the renderer of its files. Both are read as they are by docker compose
# (deploy/prometheus, deploy/grafana) and by the Helm chart (helm/voice-agents/files/ symlinks).
OUTPUTS: dict[Path, Callable[[], dict[str, str]]] = {
    ROOT / "deploy" / "prometheus" / "rules": rules.render,
    ROOT / "deploy" / "grafana" / "dashboards": dashboards.render,
}


def stale() -> dict[Path, str]:
    """Every generated file whose committed text differs from what it should be, with that text."""
    out = {}
    for directory, render in OUTPUTS.items():
        for name, text in render().items():
            path = directory / name
            if not path.exists() or path.read_text() != text:
                out[path] = text
    return out


def _show(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def main(argv: list[str]) -> int:
    todo = stale()
    if "--check" in argv:
        for path in todo:
            print(f"{_show(path)} is stale: run `make generate`", file=sys.stderr)
        return 1 if todo else 0
    for path, text in todo.items():
        path.write_text(text)
        print(f"wrote {_show(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
