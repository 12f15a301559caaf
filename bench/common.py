"""What every benchmark part shares: result rows, small statistics, and a load-average sampler.

A `Row` is one line of the printed table: our figure, the baseline measured in the same run, their
ratio (ours / baseline), the target and whether it was met. Parts return rows plus their raw
figures; the rows are what `python -m bench` prints and what the smoke test checks.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# The rows of the table, in order; every run reports each one (as "skipped" or "error" when its
# part did not run or failed), so a reader and the smoke test always see the whole list.
ROW_NAMES: tuple[str, ...] = (
    "per event cost min 1",
    "per event cost min 5",
    "per event cost min 10",
    "fidelity",
    "golden rules",
    "overshoot",
    "cut-in latency",
    "overhead",
    "CPU per session",
    "RSS per session",
    "cold start",
    "prewarm",
    "scrape time 1",
    "scrape time 50",
)


@dataclass
class Row:
    name: str
    unit: str = ""
    ours: float | None = None
    baseline: float | None = None
    baseline_label: str = ""  # what the baseline is ("recipe", "framework user_turn_limit", ...)
    target: str = ""
    met: bool | None = None  # None: no target, or not measured
    status: str = "ok"  # ok | skipped | error
    note: str = ""  # one line: spread, per-k figures, why a target was missed
    ours_text: str = ""  # display overrides, when a bare number would mislead
    baseline_text: str = ""
    has_ratio: bool = True  # False where ours / baseline means nothing (fidelity)

    @property
    def ratio(self) -> float | None:
        if not self.has_ratio or self.ours is None or self.baseline is None or not self.baseline:
            return None
        return self.ours / self.baseline

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = None if self.ratio is None else float(f"{self.ratio:.4g}")
        return data


def missing_row(name: str, status: str, why: str) -> Row:
    return Row(name=name, status=status, note=why)


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def spread(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Median and range of a sample, rounded, plus the sample itself (for the JSON)."""
    vals = [float(v) for v in values]
    return {
        "n": len(vals),
        "median": round(median(vals), digits) if vals else None,
        "min": round(min(vals), digits) if vals else None,
        "max": round(max(vals), digits) if vals else None,
        "values": [round(v, digits) for v in vals],
    }


def fmt(value: float | None, unit: str = "") -> str:
    """A number with about three significant figures and its unit."""
    if value is None:
        return "-"
    a = abs(value)
    if a == 0:
        text = "0"
    elif a >= 100:
        text = f"{value:.0f}"
    elif a >= 10:
        text = f"{value:.1f}"
    elif a >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip()


@dataclass
class LoadSampler:
    """Samples the 1-minute load average in the background: the machine is shared, so every
    figure is read next to the load it was measured under."""

    interval_s: float = 2.0
    samples: list[tuple[float, float]] = field(default_factory=list)  # (time, load1)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> LoadSampler:
        self._sample()
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sample()

    def _sample(self) -> None:
        self.samples.append((time.time(), os.getloadavg()[0]))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def between(self, start: float, end: float) -> dict[str, Any]:
        vals = [v for t, v in self.samples if start <= t <= end] or [os.getloadavg()[0]]
        return {"min": round(min(vals), 2), "median": round(median(vals), 2),
                "max": round(max(vals), 2)}

    def summary(self) -> dict[str, Any]:
        vals = [v for _, v in self.samples]
        return {
            "cores": os.cpu_count(),
            "load1_min": round(min(vals), 2),
            "load1_median": round(median(vals), 2),
            "load1_max": round(max(vals), 2),
            "at_start": round(vals[0], 2),
            "at_end": round(vals[-1], 2),
            "samples": len(vals),
        }


def stop(*parts: Any) -> None:
    """Stop what a benchmark started (workers, fakes, livekit-server); None: never started."""
    for part in parts:
        if part is not None:
            part.stop()


def save(res: dict[str, Any], path: Path, summary: str) -> int:
    """Write a benchmark's figures as JSON and print its summary; the exit code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1) + "\n")
    print(summary)
    return 0
