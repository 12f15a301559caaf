"""The Helm chart, where a check spans tools or files: lint, the helm-unittest suites, every
rendering validated offline with kubeconform against the oldest and newest supported Kubernetes
and the Prometheus Operator's CRDs, checkov, bad values rejected by the schema naming the field,
and agreement with the code (config variables, ports, entry command, user) and with deploy/
(dashboards, rules). What one template renders is checked by helm/voice-agents/tests/*_test.yaml
(helm-unittest), run here by test_helm_unittest_suites."""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common import config
from tests.deploy.conftest import (
    ALL_ON,
    ALL_ON_VALUES,
    CHART,
    K8S_VERSIONS,
    PROMETHEUS_OPERATOR_API,
    ROOT,
    SERVICES,
    HelmError,
    exec_form,
    parse_dockerfile,
    run,
    run_checkov,
)

DEFAULTS: tuple[str, ...] = ()
RENDERINGS = {"defaults": DEFAULTS, "all-on": ALL_ON}
BY_NAME = {v.name: v for v in config.VARIABLES}
SECRETS = {v.name for v in config.VARIABLES if v.secret}
# Checkov checks the chart does not follow, each with its reason in a checkov.io/skip annotation
# of templates/deployment.yaml.
CHECKOV_SKIPS = {"CKV_K8S_11", "CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_38", "CKV_K8S_43"}


def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def default(name: str) -> str:
    value = BY_NAME[name].default
    assert value is not None
    return value


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def plain_env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c["env"] if "value" in e}


def secret_refs(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]
            if "secretKeyRef" in e.get("valueFrom", {})}


def fails_with(render, *args: str) -> str:
    with pytest.raises(HelmError) as error:
        render(*args)
    return str(error.value)


# --- lint, helm-unittest, schema, kubeconform --------------------------------------------------

@pytest.mark.parametrize("values_args", [(), ALL_ON_VALUES], ids=["defaults", "all-on"])
def test_helm_lint_strict(helm: Path, values_args: tuple[str, ...]) -> None:
    result = run([helm, "lint", "--strict", CHART, *values_args])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_helm_unittest_suites(helm_unittest: Path) -> None:
    """helm/voice-agents/tests/*_test.yaml: what each template renders, with the defaults and with
    ci/*-values.yaml."""
    result = run([helm_unittest, "--color=false", CHART])
    assert result.returncode == 0, result.stdout + result.stderr
    totals = re.search(r"^Tests:\s+(\d+) passed, (\d+) total", result.stdout, re.MULTILINE)
    assert totals and totals[1] == totals[2] and int(totals[1]) > 30, result.stdout


def test_values_schema_is_valid_json_schema(check_jsonschema: Path) -> None:
    result = run([check_jsonschema, "--check-metaschema", CHART / "values.schema.json"])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("rendering", RENDERINGS)
def test_rendering_is_valid_kubernetes(render, validate_manifests, rendering, version) -> None:
    rendered = render(*RENDERINGS[rendering], kube_version=version)
    result = validate_manifests(rendered.text, version)
    report = json.loads(result.stdout)
    problems = [r for r in report["resources"] if r["status"] != "statusValid"]
    assert result.returncode == 0 and not problems, json.dumps(problems, indent=1) + result.stderr
    summary = report["summary"]
    assert summary["valid"] == len(rendered.docs) and summary["skipped"] == 0


def test_all_on_renders_every_kind(render) -> None:
    kinds = {d["kind"] for d in render(*ALL_ON).docs}
    assert kinds == {"Deployment", "Service", "ServiceAccount", "Secret", "HorizontalPodAutoscaler",
                     "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "PrometheusRule",
                     "ConfigMap", "ScaledObject", "Role", "RoleBinding"}


def test_crd_schemas_catch_mistakes(validate_manifests) -> None:
    bad_rule = {"apiVersion": PROMETHEUS_OPERATOR_API, "kind": "PrometheusRule",
                "metadata": {"name": "x"},
                "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "exp": "up"}]}]}}
    bad_monitor = {"apiVersion": PROMETHEUS_OPERATOR_API, "kind": "ServiceMonitor",
                   "metadata": {"name": "x"},
                   "spec": {"selector": {},
                            "endpoints": [{"port": "metrics", "interval": "often"}]}}
    bad_scaler = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                  "metadata": {"name": "x"},
                  "spec": {"scaleTargetRef": {"name": "d"}, "minReplicaCount": "two",
                           "triggers": [{"type": "prometheus", "metadata": {}}]}}
    for doc in (bad_rule, bad_monitor, bad_scaler):
        result = validate_manifests(yaml.safe_dump(doc), K8S_VERSIONS[-1])
        assert result.returncode == 1, f"{doc['kind']} schema accepted a broken object"


def test_kubernetes_schemas_catch_mistakes(render, validate_manifests) -> None:
    deployment = render().one("Deployment", "-interrupter")
    broken = json.loads(json.dumps(deployment))
    container(broken)["livenesProbe"] = container(broken).pop("livenessProbe")
    result = validate_manifests(yaml.safe_dump(broken), K8S_VERSIONS[0])
    assert result.returncode == 1 and "livenesProbe" in result.stdout


def test_supported_versions_documented() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    oldest, newest = (".".join(v.split(".")[:2]) for v in (K8S_VERSIONS[0], K8S_VERSIONS[-1]))
    span = f"{oldest} - {newest}"
    assert chart["annotations"]["voice-agents/kubernetes-versions"] == span
    assert f"Kubernetes {span}" in (CHART / "README.md").read_text()


# --- bad values are rejected, naming the field -------------------------------------------------

@pytest.mark.parametrize(("setting", "message"), [
    ("agents.interrupter.replicaCount=-1", "'/agents/interrupter/replicaCount': minimum"),
    ("agents.interrupter.image.pullPolicy=Sometimes", "'/agents/interrupter/image/pullPolicy'"),
    ("agents.uninterruptable.terminationGracePeriodSeconds=300",
     "'/agents/uninterruptable/terminationGracePeriodSeconds': minimum: got 300, want 600"),
    ("agents.interrupter.drainTimeoutSeconds=-5", "'/agents/interrupter/drainTimeoutSeconds'"),
    ("secret.existingSecret=", "'/secret/values/LIVEKIT_API_KEY': minLength"),
    ("secret.values.OPENAI_API_KEY=sk-both", "'/secret/values/OPENAI_API_KEY'"),
    ("secret.existingSecret=Not_A_Name", "'/secret/existingSecret'"),
    ("config.STT_PROVIDER=whisper", "'/config/STT_PROVIDER'"),
    ("config.OPENAI_API_KEY=sk-in-plain-values", "additional properties 'OPENAI_API_KEY'"),
    ("agents.uninterruptable.env.INTERRUPT_MAX_WORDS=5", "'INTERRUPT_MAX_WORDS' not allowed"),
    ("livekit.url=localhost:7880", "'/livekit/url'"),
    ("agents.interrupter.replicas=2", "'/agents/interrupter': additional properties 'replicas'"),
    ("agents.interrupter.autoscaling.scaleDownStabilizationWindowSeconds=7200",
     "'/agents/interrupter/autoscaling/scaleDownStabilizationWindowSeconds': maximum"),
    ("ports.health=0", "'/ports/health': minimum"),
    ("agents.interrupter.autoscaling.enabled=true,agents.interrupter.autoscaling.keda.enabled=true",
     "'/agents/interrupter/autoscaling': 'not' failed"),
    ("agentDefaults.autoscaling.keda.targetActiveJobsPerPod=0",
     "'/agentDefaults/autoscaling/keda/targetActiveJobsPerPod'"),
    ("agentDefaults.autoscaling.keda.serverAddress=prometheus:9090",
     "'/agentDefaults/autoscaling/keda/serverAddress'"),
    ("agents.interrupter.autoscaling.keda.threshold=3",
     "additional properties 'threshold'"),
    ("agents.interrupter.autoscaling.podDeletionCost=yes",
     "'/agents/interrupter/autoscaling/podDeletionCost'"),
    ("agentDefaults.replicaCount=-1", "'/agentDefaults/replicaCount': minimum"),
    ("agentDefaults.env.LOG_LEVEL=DEBUG", "'/agentDefaults/env'"),
    ("agentDefaults.image.repository=", "'/agentDefaults/image/repository': minLength"),
])
def test_schema_rejects_bad_values(render, setting: str, message: str) -> None:
    error = fails_with(render, "--set", setting)
    assert "values don't meet the specifications of the schema" in error
    assert message in error, error


# --- scaling on calls ------------------------------------------------------------------------

def test_keda_trigger_reads_the_frameworks_active_job_gauge(render) -> None:
    """The query names the gauge the monitoring definition names (livekit-agents' telemetry)."""
    from deploy.monitoring.definition import ACTIVE_JOBS

    (scaler,) = render(*ALL_ON).of_kind("ScaledObject")
    (trigger,) = scaler["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert f"sum({ACTIVE_JOBS}{{" in trigger["metadata"]["query"]
    assert f'service="{scaler["spec"]["scaleTargetRef"]["name"]}"' in trigger["metadata"]["query"]


def test_pod_deletion_cost_pods_get_what_the_worker_reads(render) -> None:
    """The variables services/common/pod_cost.py reads, and a Role that allows its PATCH only."""
    from services.common import pod_cost

    deployment = render(*ALL_ON).one("Deployment", "-uninterruptable")
    c = container(deployment)
    env = {e["name"]: e for e in c["env"]}
    settings = config.load("uninterruptable", {**plain_env(c), **{n: "x" for n in SECRETS}})
    assert settings.pod_deletion_cost is True
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
    assert "replicas" not in deployment["spec"]
    (role,) = render(*ALL_ON).of_kind("Role")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"],
                              "verbs": ["get", "patch"]}]
    assert pod_cost.ANNOTATION == "controller.kubernetes.io/pod-deletion-cost"
    other = render(*ALL_ON).one("Deployment", "-interrupter")
    assert other["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert "POD_DELETION_COST" not in {e["name"] for e in container(other)["env"]}
    assert not render().of_kind("Role") and not render().of_kind("RoleBinding")


# --- the chart and the image agree ----------------------------------------------------------------

def test_pods_run_the_images_entry_command(render) -> None:
    stages = {s.name: s for s in parse_dockerfile()}
    for service in SERVICES:
        c = container(render().one("Deployment", f"-{service}"))
        (entrypoint,) = stages[service].all("ENTRYPOINT")
        (cmd,) = stages[service].all("CMD")
        assert c["command"] == exec_form(entrypoint.value)
        assert c["args"] == exec_form(cmd.value)
        assert c["name"] == service and f"voice-agents-{service}:" in c["image"]


def test_pods_run_as_the_images_user_with_its_metrics_dir(render) -> None:
    """The UID the image is built for, and its PROMETHEUS_MULTIPROC_DIR (on an emptyDir: the
    helm-unittest deployment suite checks the mounts)."""
    base = next(s for s in parse_dockerfile() if s.name == "base")
    args = dict(i.value.split("=", 1) for i in base.all("ARG") if "=" in i.value)
    env = dict(kv.split("=", 1) for i in base.all("ENV") for kv in i.value.split())
    for deployment in render().of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == int(args["APP_UID"])
        assert container(deployment)["securityContext"]["runAsUser"] == int(args["APP_UID"])
        metrics_dir = plain_env(container(deployment))["PROMETHEUS_MULTIPROC_DIR"]
        assert metrics_dir == env["PROMETHEUS_MULTIPROC_DIR"]


# --- configuration (the settings blocks are generated from config.VARIABLES) ------------------

def test_secrets_and_chart_set_values() -> None:
    """The settings blocks are generated (scripts/generate.py); what is written by hand here
    are the Secret's keys and the values the chart turns into settings."""
    v = values()
    assert set(v["secret"]["keys"]) == set(v["secret"]["values"]) == SECRETS
    assert not any(v["secret"]["values"].values()), "no secret values in the defaults"
    assert v["agentDefaults"]["drainTimeoutSeconds"] == int(default("DRAIN_TIMEOUT_SECONDS"))
    assert v["ports"] == {"health": int(default("HEALTH_PORT")),
                          "metrics": int(default("METRICS_PORT"))}


@pytest.mark.parametrize("rendering", RENDERINGS)
def test_rendered_environment_is_a_valid_configuration(render, rendering: str) -> None:
    """What the chart puts in the pods loads with the application's own config.load."""
    for service in SERVICES:
        c = container(render(*RENDERINGS[rendering]).one("Deployment", f"-{service}"))
        env = plain_env(c)
        from_secret = secret_refs(c)
        assert set(from_secret) == SECRETS
        for name, ref in from_secret.items():
            assert ref.get("optional", False) is (not name.startswith("LIVEKIT_"))
        settings = config.load(service, {**env, **{n: "placeholder" for n in SECRETS}})
        assert settings.agent_name in (service, "uninterruptable-eu")


# --- the chart and deploy/ agree: dashboards, rules -------------------------------------------

def test_chart_files_link_to_deploy() -> None:
    links = {"dashboards": ROOT / "deploy" / "grafana" / "dashboards",
             "rules": ROOT / "deploy" / "prometheus" / "rules"}
    for name, target in links.items():
        link = CHART / "files" / name
        assert link.is_symlink(), f"helm/voice-agents/files/{name} must be a symlink to {target}"
        assert not Path(link.readlink()).is_absolute()
        assert link.resolve() == target.resolve()


def test_dashboards_shipped_unchanged(render) -> None:
    files = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
    assert files, "no dashboard in deploy/grafana/dashboards (written with the Grafana issue)"
    maps = render(*ALL_ON).of_kind("ConfigMap")
    shipped = {k: v for m in maps for k, v in m["data"].items()}
    assert sorted(shipped) == [f.name for f in files]
    for f in files:
        assert shipped[f.name] == f.read_text().rstrip("\n"), f"{f.name} changed in the chart"
        json.loads(shipped[f.name])
    for m in maps:
        assert m["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert m["metadata"]["namespace"] == "monitoring"
        assert len(json.dumps(m["data"])) < 1024 * 1024


def test_rules_shipped_unchanged(render) -> None:
    files = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
    assert files, "no rule file in deploy/prometheus/rules (written with the Prometheus issue)"
    expected = [g for f in files for g in yaml.safe_load(f.read_text())["groups"]]
    rule = render(*ALL_ON).one("PrometheusRule")
    assert rule["spec"]["groups"] == expected
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_packaged_chart_is_self_contained(helm: Path, tmp_path: Path) -> None:
    """`helm package` resolves the symlinks: the published chart carries real files."""
    result = run([helm, "package", CHART, "--destination", tmp_path])
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("voice-agents-*.tgz")
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for source in [*(ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"),
                       *(ROOT / "deploy" / "prometheus" / "rules").glob("*.yml")]:
            kind = "dashboards" if source.suffix == ".json" else "rules"
            member = members[f"voice-agents/files/{kind}/{source.name}"]
            assert member.isfile()
            assert tar.extractfile(member).read() == source.read_bytes()


# --- checkov -----------------------------------------------------------------------------------

def test_checkov_rendered_manifests(checkov: Path, render, tmp_path: Path) -> None:
    files = []
    for name, args in RENDERINGS.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(render(*args).text)
        files.append(path)
    (report,) = run_checkov(checkov, "kubernetes", files)
    failed = report["results"]["failed_checks"]
    assert not failed, "checkov: " + "; ".join(
        f"{c['check_id']} {c['check_name']} ({c['resource']})" for c in failed)
    assert report["summary"]["passed"] > 100
    skipped = report["results"]["skipped_checks"]
    assert {c["check_id"] for c in skipped} == CHECKOV_SKIPS
    for c in skipped:
        assert len(c["check_result"].get("suppress_comment", "")) > 30, f"{c['check_id']}: reason?"


# --- README ----------------------------------------------------------------------------------

README_SOURCES = ("Chart.yaml", "values.yaml", "README.md.gotmpl", "README.md")


def test_readme_values_table_is_current(helm_docs: Path, tmp_path: Path) -> None:
    """helm-docs (scripts/chart-readme.sh) on a copy of the chart rewrites nothing."""
    copy = tmp_path / "voice-agents"
    copy.mkdir()
    for name in README_SOURCES:
        shutil.copy(CHART / name, copy / name)
    result = run(["bash", ROOT / "scripts" / "chart-readme.sh", copy],
                 env={**os.environ, "PATH": f"{helm_docs.parent}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (copy / "README.md").read_text() == (CHART / "README.md").read_text(), \
        "helm/voice-agents/README.md is stale: run make generate"


def test_readme_documents_every_value() -> None:
    """Every row of the generated table has a description (a `# --` comment in values.yaml)."""
    readme = (CHART / "README.md").read_text()
    rows = re.findall(r"^\| ([\w.]+) \| [^|]+ \| .*? \|(.*)\|$", readme, re.MULTILINE)
    assert len(rows) > 50
    undocumented = [key for key, description in rows if not description.strip()]
    assert not undocumented, f"values.yaml: no `# --` comment for {undocumented}"
