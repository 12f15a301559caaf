"""PromQL helpers for the deploy tests: panel queries of the Grafana dashboards with their
template variables substituted, metric names referenced by an expression, and the livekit-server
metric names the dashboards may use.

    for dashboard, title, expr in dashboard_queries("deploy/grafana/dashboards"):
        ...  # each `expr` is a valid instant query against a plain Prometheus
    panel_data(query, "deploy/grafana/dashboards").empty  # panels a Prometheus has no data for

Panels whose queries can legitimately return no series carry a description line starting with
`May be empty:` and the reason (written by deploy/monitoring/dashboards.py);
`panel_queries()` reports it as `PanelQuery.may_be_empty`, and
`dashboard_queries(..., include_may_be_empty=False)` leaves those panels out.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAY_BE_EMPTY = "May be empty:"
# what deploy/monitoring writes, and Grafana loads in compose and the chart
DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"

DEFAULT_VARIABLES: dict[str, str] = {"agent": ".*", "instance": ".*"}

# Grafana's global variables, as values that make a valid instant query. $__rate_interval is what
# Grafana computes for a 15s scrape interval (4 x 15s); pass e.g. {"__rate_interval": "30s"} for
# a Prometheus that scrapes faster. $__range is the dashboard's default time range (1h).
BUILTIN_VARIABLES: dict[str, str] = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

# livekit-server metric families the dashboards use, verified in the Go source of the pinned
# release (LIVEKIT_SERVER_VERSION in scripts/setup.sh):
#   github.com/livekit/livekit-server@v1.13.5/pkg/telemetry/prometheus/{rooms,packets}.go
#   (Namespace "livekit" + Subsystem + Name; constant labels node_id, node_type)
# and the process collector that client_golang's default registry registers (livekit-server
# serves promhttp.Handler() on prometheus.port, pkg/service/server.go):
#   github.com/prometheus/client_golang@v1.24.1/prometheus/{registry.go,process_collector.go}
LIVEKIT_SERVER_METRICS: dict[str, str] = {
    "livekit_room_total": "rooms.go: gauge, rooms open on the node",
    "livekit_participant_total": "rooms.go: gauge, participants connected",
    "livekit_track_published_total": "rooms.go: gauge vec {kind}, tracks published now",
    "livekit_track_subscribed_total": "rooms.go: gauge vec {kind}, tracks subscribed now",
    "livekit_packet_total": "packets.go: counter vec {direction, transmission, country}",
    "livekit_packet_bytes": "packets.go: counter vec {direction, transmission, country}",
    "livekit_packet_loss_total": "packets.go: counter vec {direction, source, type, country}",
    "process_cpu_seconds_total": "client_golang process collector",
    "process_resident_memory_bytes": "client_golang process collector",
}

# Series Prometheus itself attaches to every scrape target.
PROMETHEUS_SYNTHETIC_METRICS = frozenset({"up"})


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # file name, e.g. voice-agents-overview.json
    row: str  # title of the row the panel sits under ("" before the first row)
    panel_title: str
    ref_id: str
    expr: str  # variables substituted
    raw_expr: str  # as in the dashboard
    may_be_empty: str | None  # the reason, when the panel says its queries may return nothing


def dashboard_files(path_or_dir: str | Path) -> list[Path]:
    path = Path(path_or_dir)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no dashboard JSON in {path}")
    return files


def _panels(dashboard: dict) -> Iterable[tuple[str, dict]]:
    """(row title, panel) for every non-row panel, including panels nested in collapsed rows."""
    row = ""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            row = panel.get("title", "")
            for nested in panel.get("panels", []):
                yield row, nested
        else:
            yield row, panel


def may_be_empty_reason(panel: dict) -> str | None:
    for line in (panel.get("description") or "").splitlines():
        if line.strip().startswith(MAY_BE_EMPTY):
            return line.strip()[len(MAY_BE_EMPTY) :].strip() or "no reason given"
    return None


def _format(value: str | Sequence[str]) -> str:
    if isinstance(value, str):
        return value
    values = list(value)
    return values[0] if len(values) == 1 else "(" + "|".join(values) + ")"


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")


def substitute(expr: str, variables: Mapping[str, str | Sequence[str]]) -> str:
    """Replaces $var, ${var}, ${var:format} and [[var]]. A value that is a list becomes a regex
    alternation, as Grafana formats multi-value variables inside =~ matchers. Raises KeyError
    for a variable without a value, so a new dashboard variable cannot slip through untested."""

    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name not in variables:
            raise KeyError(f"no value for dashboard variable ${name} in {expr!r}")
        return _format(variables[name])

    return _VARIABLE.sub(replace, expr)


def template_defaults(dashboard: dict) -> dict[str, str]:
    """Each template variable's 'All' value (its allValue, else .*)."""
    return {
        var["name"]: var.get("allValue") or ".*"
        for var in dashboard.get("templating", {}).get("list", [])
    }


def panel_queries(
    path_or_dir: str | Path,
    variables: Mapping[str, str | Sequence[str]] | None = None,
) -> list[PanelQuery]:
    queries = []
    for file in dashboard_files(path_or_dir):
        dashboard = json.loads(file.read_text())
        values: dict[str, str | Sequence[str]] = {
            **BUILTIN_VARIABLES,
            **template_defaults(dashboard),
            **DEFAULT_VARIABLES,
            **(variables or {}),
        }
        for row, panel in _panels(dashboard):
            reason = may_be_empty_reason(panel)
            for tgt in panel.get("targets", []):
                if tgt.get("hide") or not tgt.get("expr"):
                    continue
                queries.append(
                    PanelQuery(
                        dashboard=file.name,
                        row=row,
                        panel_title=panel.get("title", ""),
                        ref_id=tgt.get("refId", ""),
                        expr=substitute(tgt["expr"], values),
                        raw_expr=tgt["expr"],
                        may_be_empty=reason,
                    )
                )
    return queries


def dashboard_queries(
    path_or_dir: str | Path,
    variables: Mapping[str, str | Sequence[str]] | None = None,
    *,
    include_may_be_empty: bool = True,
) -> list[tuple[str, str, str]]:
    """(dashboard file name, panel title, expr) for every panel query, variables substituted:
    `variables` (default: every agent and instance) over the dashboard's 'All' values and
    Grafana's global variables (BUILTIN_VARIABLES, which `variables` may override too)."""
    return [
        (q.dashboard, q.panel_title, q.expr)
        for q in panel_queries(path_or_dir, variables)
        if include_may_be_empty or q.may_be_empty is None
    ]


@dataclass(frozen=True)
class PanelData:
    """What a Prometheus answered to every panel query (see `panel_data`)."""

    queries: int  # panel queries that must return series
    empty: list[str]  # of those, "dashboard / panel: expr" that returned none
    nan_only: list[str]  # panel titles whose series are all NaN (nothing in the rate window)
    optional: int  # queries of 'May be empty' panels
    optional_filled: int  # of those, with series

    def summary(self) -> str:
        return (f"{self.queries} panel queries, {len(self.empty)} empty"
                + (f"; NaN only: {sorted(set(self.nan_only))}" if self.nan_only else "")
                + f"; {self.optional_filled} of {self.optional} 'May be empty' queries have "
                "data too")


def panel_data(
    query: Callable[[str], Sequence[Mapping[str, Any]]],
    path_or_dir: str | Path,
    variables: Mapping[str, str | Sequence[str]] | None = None,
) -> PanelData:
    """Runs every panel query through `query` (expr -> the instant vector's results, as in
    Prometheus's /api/v1/query) and sorts out which returned nothing. Panels marked
    'May be empty' only count towards `optional_filled`."""
    required, empty, nan_only, optional, filled = 0, [], [], 0, 0
    for q in panel_queries(path_or_dir, variables):
        result = query(q.expr)
        if q.may_be_empty is not None:
            optional += 1
            filled += bool(result)
            continue
        required += 1
        if not result:
            empty.append(f"{q.dashboard} / {q.panel_title}: {q.expr}")
        elif all(math.isnan(float(r["value"][1])) for r in result):
            nan_only.append(q.panel_title)
    return PanelData(required, empty, nan_only, optional, filled)


def variable_queries(path_or_dir: str | Path) -> list[tuple[str, str, str]]:
    """(dashboard file name, variable name, query) of the query-type template variables."""
    out = []
    for file in dashboard_files(path_or_dir):
        dashboard = json.loads(file.read_text())
        for var in dashboard.get("templating", {}).get("list", []):
            if var.get("type") != "query":
                continue
            query = var.get("query")
            query = query.get("query", "") if isinstance(query, dict) else query or ""
            out.append((file.name, var["name"], query))
    return out


# --- metric names in an expression --------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' r"|'(?:[^'\\]|\\.)*'" r"|`[^`]*`")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(\s*\()?")
_MODIFIERS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_KEYWORDS = frozenset(_MODIFIERS | {"and", "or", "unless", "inf", "nan"})
_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((.*),\s*\w+\s*\)\s*$", re.S)


def label_values_selector(query: str) -> str:
    """The series selector of a Grafana label_values(selector, label) variable query (other
    queries are returned unchanged)."""
    match = _LABEL_VALUES.match(query)
    return match.group(1).strip() if match else query


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (not functions, aggregations, keywords or labels).
    Also accepts Grafana's label_values(selector, label) variable queries."""
    text = _STRING.sub('""', label_values_selector(expr))
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery windows
    text = _LABEL_LIST.sub(" ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    names = set()
    for ident in _IDENT.finditer(text):
        name, call = ident.groups()
        if not call and name.lower() not in _KEYWORDS:
            names.add(name)
    return names
