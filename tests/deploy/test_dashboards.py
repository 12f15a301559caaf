"""Grafana dashboards (and the metric names of the alert rules): generated JSON is valid and laid
out (tests/unit/test_generated.py checks it is current), takes its datasource from the
`datasource` variable whose default is the provisioned one, and every metric name a query or rule
uses exists - declared in services/common/metrics.py, in livekit-agents' telemetry module, or in
livekit-server's source (tests/support/promql.py LIVEKIT_SERVER_METRICS)."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from livekit.agents.telemetry import metrics as lk_metrics
from prometheus_client.metrics import MetricWrapperBase

from services.common import metrics as voice_metrics
from tests.deploy.conftest import find_tool
from tests.support import promql

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
OVERVIEW = DASHBOARD_DIR / "voice-agents-overview.json"
RULE_FILES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))
DATASOURCE_VARIABLE = "datasource"
DASHBOARD_FILES = sorted(DASHBOARD_DIR.glob("*.json"))

# Sample names a metric family exposes, by type (prometheus-client's conventions).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def declared_samples(module: ModuleType) -> dict[str, str]:
    """Sample name -> family name for every prometheus-client metric object in `module`."""
    samples = {}
    for obj in vars(module).values():
        if isinstance(obj, MetricWrapperBase):
            for family in obj.describe():
                for suffix in SUFFIXES[family.type]:
                    samples[family.name + suffix] = family.name
    return samples


VOICE = declared_samples(voice_metrics)
LK_AGENTS = declared_samples(lk_metrics)


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows
    return out


def rule_exprs() -> list[tuple[str, str]]:
    out = []
    for file in RULE_FILES:
        for group in yaml.safe_load(file.read_text())["groups"]:
            for rule in group["rules"]:
                out.append((f"{file.name}:{rule.get('alert') or rule.get('record')}", rule["expr"]))
    return out


def recorded_names() -> set[str]:
    names = set()
    for file in RULE_FILES:
        for group in yaml.safe_load(file.read_text())["groups"]:
            names |= {r["record"] for r in group["rules"] if "record" in r}
    return names


def dashboard_exprs() -> list[tuple[str, str]]:
    where_exprs = [
        (f"{q.dashboard}: {q.panel_title} [{q.ref_id}]", q.raw_expr)
        for q in promql.panel_queries(DASHBOARD_DIR)
    ]
    where_exprs += [
        (f"{d}: variable ${name}", query)
        for d, name, query in promql.variable_queries(DASHBOARD_DIR)
    ]
    return where_exprs


# --- generated, valid, laid out ----------------------------------------------------------------


def test_dashboards_exist() -> None:
    assert OVERVIEW in DASHBOARD_FILES


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_is_valid(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["uid"] and dashboard["title"]
    assert dashboard.get("id") is None, "provisioned dashboards must not carry a database id"
    for panel in panels(dashboard):
        assert panel.get("title"), f"panel {panel.get('id')} has no title"
        if panel["type"] != "row":
            assert panel.get("targets"), f"{panel['title']} has no query"


def test_dashboard_uids_unique() -> None:
    uids = [load(p)["uid"] for p in DASHBOARD_FILES]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_panel_ids_and_grid(path: Path) -> None:
    all_panels = panels(load(path))
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    boxes = []
    for panel in all_panels:
        grid = panel["gridPos"]
        x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
        assert all(isinstance(v, int) for v in (x, y, w, h)), panel["title"]
        assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 24, (panel["title"], grid)
        boxes.append((panel["title"], x, y, w, h))
    for a, b in itertools.combinations(boxes, 2):
        overlap = (
            a[1] < b[1] + b[3] and b[1] < a[1] + a[3] and a[2] < b[2] + b[4] and b[2] < a[2] + a[4]
        )
        assert not overlap, f"panels {a[0]!r} and {b[0]!r} overlap"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_datasource_from_the_variable(path: Path) -> None:
    dashboard = load(path)
    variables = dashboard["templating"]["list"]
    (chooser,) = [v for v in variables if v["type"] == "datasource"]
    assert chooser["name"] == DATASOURCE_VARIABLE and chooser["query"] == "prometheus"
    users = [(v["name"], v.get("datasource")) for v in variables if v["type"] == "query"]
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        users.append((panel["title"], panel.get("datasource")))
        users += [
            (f"{panel['title']} [{t['refId']}]", t.get("datasource")) for t in panel["targets"]
        ]
    uid = f"${{{DATASOURCE_VARIABLE}}}"
    wrong = [(who, ds) for who, ds in users if not ds or ds.get("uid") != uid]
    assert not wrong, f"not using the datasource variable {uid}: {wrong}"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_datasource_variable_defaults_to_the_provisioned_one(path: Path) -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (prometheus,) = datasources["datasources"]
    assert prometheus["type"] == "prometheus" and prometheus["isDefault"]
    (chooser,) = [v for v in load(path)["templating"]["list"] if v["type"] == "datasource"]
    assert chooser["current"]["value"] == prometheus["uid"]
    assert chooser["current"]["text"] == prometheus["name"]


def test_provisioning_matches() -> None:
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yml").read_text())
    paths = [p["options"]["path"] for p in providers["providers"]]
    assert paths == ["/var/lib/grafana/dashboards"]


def test_job_and_instance_only_through_variables() -> None:
    for where, expr in dashboard_exprs():
        for label, value in re.findall(r'\b(job|instance)\s*(?:=~|!~|!=|=)\s*"([^"]*)"', expr):
            assert label == "instance" and value == "$instance", f"{where}: {label}={value!r}"


# --- metric names -------------------------------------------------------------------------------


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (agent, le) (rate(a_bucket{x="y", le!="1e3"}[5m]))) '
        '/ on (agent) group_left (kind) b * 1e3 or label_replace(c_total offset 5m, "d", "e", '
        '"", "") and sum(rate(f[1m:10s])) without (g) unless bool inf'
    )
    assert promql.metric_names(expr) == {"a_bucket", "b", "c_total", "f"}
    assert promql.metric_names('label_values(voice_agent_x{agent=~"$agent"}, instance)') == {
        "voice_agent_x"
    }


def test_declared_metrics_read_from_code() -> None:
    assert "voice_agent_interruptions_total" in VOICE
    assert "voice_agent_response_latency_seconds_bucket" in VOICE
    assert "lk_agents_worker_load" in LK_AGENTS


def test_every_metric_name_exists() -> None:
    known = (
        set(VOICE)
        | set(LK_AGENTS)
        | set(promql.LIVEKIT_SERVER_METRICS)
        | promql.PROMETHEUS_SYNTHETIC_METRICS
        | recorded_names()
    )
    unknown = [
        (where, name)
        for where, expr in dashboard_exprs() + rule_exprs()
        for name in sorted(promql.metric_names(expr))
        if name not in known
    ]
    assert not unknown, (
        "metric names that neither services/common/metrics.py, livekit-agents' telemetry module "
        f"nor LIVEKIT_SERVER_METRICS define: {unknown}"
    )


def test_every_voice_agent_metric_on_overview() -> None:
    shown = set()
    for q in promql.panel_queries(OVERVIEW):
        shown |= promql.metric_names(q.raw_expr)
    families = set(VOICE.values())
    missing = sorted(f for f in families if not any(VOICE[s] == f for s in shown if s in VOICE))
    assert families and not missing, f"not on the overview dashboard: {missing}"


# --- queries -------------------------------------------------------------------------------------


def test_substituted_queries_are_valid_promql(tmp_path: Path) -> None:
    exe = find_tool("promtool")
    queries = promql.dashboard_queries(DASHBOARD_DIR)
    assert queries and all(len(q) == 3 for q in queries)
    leftovers = [q for q in queries if "$" in q[2] or "[[" in q[2]]
    assert not leftovers, f"unsubstituted variables: {leftovers}"
    exprs = [expr for _, _, expr in queries]
    exprs += [
        promql.substitute(promql.label_values_selector(query), promql.DEFAULT_VARIABLES)
        for _, _, query in promql.variable_queries(DASHBOARD_DIR)
    ]
    records = [{"record": f"dashboard:query_{i}:check", "expr": e} for i, e in enumerate(exprs)]
    rules = {"groups": [{"name": "dashboard-queries", "rules": records}]}
    rule_file = tmp_path / "dashboard_queries.yml"
    rule_file.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [str(exe), "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"invalid dashboard PromQL:\n{result.stdout}{result.stderr}"


def test_substitution() -> None:
    expr = 'rate(x{a=~"$agent", i=~"${instance}", n=~"[[node]]"}[$__rate_interval])'
    values = {"agent": ["a", "b"], "instance": ".*", "node": "n1", "__rate_interval": "30s"}
    assert promql.substitute(expr, values) == 'rate(x{a=~"(a|b)", i=~".*", n=~"n1"}[30s])'
    with pytest.raises(KeyError):
        promql.substitute('x{a=~"$unknown"}', values)
    narrowed = promql.dashboard_queries(OVERVIEW, {"agent": "interrupter"})
    assert any('agent=~"interrupter"' in expr for _, _, expr in narrowed)


def test_may_be_empty_convention() -> None:
    queries = promql.panel_queries(DASHBOARD_DIR)
    marked = {q.panel_title for q in queries if q.may_be_empty}
    assert marked, "expected the media-dependent livekit-server panels to be marked"
    every = promql.dashboard_queries(DASHBOARD_DIR)
    dense = promql.dashboard_queries(DASHBOARD_DIR, include_may_be_empty=False)
    assert len(dense) == len(every) - sum(1 for q in queries if q.may_be_empty)
    assert not {title for _, title, _ in dense} & marked


# --- livekit-server names against its source -----------------------------------------------------


def go_mod_cache() -> Path | None:
    candidates = [os.environ.get("GOMODCACHE"), str(Path.home() / "go/pkg/mod")]
    if os.environ.get("GOPATH"):
        candidates.append(f"{os.environ['GOPATH']}/pkg/mod")
    if shutil.which("go"):
        go_env = ["go", "env", "GOMODCACHE"]
        candidates.append(subprocess.run(go_env, capture_output=True, text=True).stdout.strip())
    return next((Path(c) for c in candidates if c and Path(c).is_dir()), None)


def test_livekit_server_names_in_its_source() -> None:
    version = re.search(
        r"^LIVEKIT_SERVER_VERSION=(\S+)", (REPO / "scripts/setup.sh").read_text(), re.M
    ).group(1)
    # the module proxy brings the source back if the cache was cleaned (setup.sh used it)
    assert shutil.which("go"), "go is required (it builds livekit-server in scripts/setup.sh)"
    got = subprocess.run(["go", "mod", "download", "-json",
                          f"github.com/livekit/livekit-server@{version}"],
                         capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, f"cannot download livekit-server {version}: {got.stderr[-500:]}"
    src = Path(json.loads(got.stdout)["Dir"])
    cache = go_mod_cache()
    assert cache is not None
    defined = set()
    for go in (src / "pkg/telemetry/prometheus").glob("*.go"):
        for subsystem, name in re.findall(
            r'Namespace:\s*livekitNamespace,\s*Subsystem:\s*"(\w+)",\s*Name:\s*"(\w+)"',
            go.read_text(),
        ):
            defined.add(f"livekit_{subsystem}_{name}")
    client = re.search(r"github.com/prometheus/client_golang (v\S+)", (src / "go.mod").read_text())
    collector = cache / f"github.com/prometheus/client_golang@{client.group(1)}/prometheus"
    process_source = (collector / "process_collector.go").read_text()
    for name in promql.LIVEKIT_SERVER_METRICS:
        if name.startswith("livekit_"):
            assert name in defined, f"{name} is not defined in livekit-server {version}"
        else:
            assert f'"{name}"' in process_source, f"{name} not in client_golang's collector"
