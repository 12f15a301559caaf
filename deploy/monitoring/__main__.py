"""Writes the generated monitoring files; `--check` exits 1 naming the stale ones (CI).

    python -m deploy.monitoring            # rewrite what is stale
    python -m deploy.monitoring --check    # exit 1 if a committed file differs
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from deploy.monitoring import dashboards, rules
from scripts import generate

ROOT = generate.ROOT
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


def main(argv: list[str]) -> int:
    return generate.write_or_check(stale(), argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
