"""The Helm chart: lint, render with the defaults and with everything switched on, validate every
rendering offline with kubeconform against the oldest and newest supported Kubernetes, scan with
checkov, reject bad values with a message naming the field, and agree with the code (config
variables, ports, entry command, user) and with deploy/ (dashboards, rules)."""

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
CHECKOV_SKIPS = {"CKV_K8S_11", "CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43"}


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


# --- lint, schema, kubeconform -----------------------------------------------------------------

@pytest.mark.parametrize("values_args", [(), ALL_ON_VALUES], ids=["defaults", "all-on"])
def test_helm_lint_strict(helm: Path, values_args: tuple[str, ...]) -> None:
    result = run([helm, "lint", "--strict", CHART, *values_args])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


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
                     "ConfigMap"}


def test_crd_schemas_catch_mistakes(validate_manifests) -> None:
    bad_rule = {"apiVersion": PROMETHEUS_OPERATOR_API, "kind": "PrometheusRule",
                "metadata": {"name": "x"},
                "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "exp": "up"}]}]}}
    bad_monitor = {"apiVersion": PROMETHEUS_OPERATOR_API, "kind": "ServiceMonitor",
                   "metadata": {"name": "x"},
                   "spec": {"selector": {},
                            "endpoints": [{"port": "metrics", "interval": "often"}]}}
    for doc in (bad_rule, bad_monitor):
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
])
def test_schema_rejects_bad_values(render, setting: str, message: str) -> None:
    error = fails_with(render, "--set", setting)
    assert "values don't meet the specifications of the schema" in error
    assert message in error, error


def test_grace_period_must_outlast_the_drain(render) -> None:
    error = fails_with(render, "--set", "agents.interrupter.drainTimeoutSeconds=900",
                       "--set", "agents.interrupter.terminationGracePeriodSeconds=700")
    assert "agents.interrupter.terminationGracePeriodSeconds (700) must be greater than " \
           "agents.interrupter.drainTimeoutSeconds (900)" in error


def test_autoscaling_bounds_checked(render) -> None:
    error = fails_with(render, "--set", "agents.interrupter.autoscaling.enabled=true",
                       "--set", "agents.interrupter.autoscaling.minReplicas=4",
                       "--set", "agents.interrupter.autoscaling.maxReplicas=3")
    assert "agents.interrupter.autoscaling.minReplicas (4) must not exceed" in error


# --- deployments -------------------------------------------------------------------------------

@pytest.mark.parametrize("rendering", RENDERINGS)
def test_grace_period_outlasts_the_drain(render, rendering: str) -> None:
    for deployment in render(*RENDERINGS[rendering]).of_kind("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        drain = int(plain_env(container(deployment))["DRAIN_TIMEOUT_SECONDS"])
        assert spec["terminationGracePeriodSeconds"] > drain
        assert spec["terminationGracePeriodSeconds"] >= 600


def test_grace_period_computed_from_the_drain(render) -> None:
    rendered = render()
    for service in SERVICES:
        spec = rendered.one("Deployment", f"-{service}")["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] == int(default("DRAIN_TIMEOUT_SECONDS")) + 60
    longer = render("--set", "agents.interrupter.drainTimeoutSeconds=3600")
    spec = longer.one("Deployment", "-interrupter")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 3660


def test_pods_run_the_images_entry_command(render) -> None:
    stages = {s.name: s for s in parse_dockerfile()}
    for service in SERVICES:
        c = container(render().one("Deployment", f"-{service}"))
        (entrypoint,) = stages[service].all("ENTRYPOINT")
        (cmd,) = stages[service].all("CMD")
        assert c["command"] == exec_form(entrypoint.value)
        assert c["args"] == exec_form(cmd.value)
        assert c["name"] == service and f"voice-agents-{service}:" in c["image"]


def test_ports_and_probes_on_the_health_endpoint(render) -> None:
    rendered = render()
    for service in SERVICES:
        c = container(rendered.one("Deployment", f"-{service}"))
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"health": int(default("HEALTH_PORT")),
                         "metrics": int(default("METRICS_PORT"))}
        env = plain_env(c)
        assert (env["HEALTH_PORT"], env["METRICS_PORT"]) == (default("HEALTH_PORT"),
                                                             default("METRICS_PORT"))
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert c[probe]["httpGet"] == {"path": "/", "port": "health"}
        svc = rendered.one("Service", f"-{service}")
        assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == ports


def test_restricted_security_context(render) -> None:
    base = next(s for s in parse_dockerfile() if s.name == "base")
    args = dict(i.value.split("=", 1) for i in base.all("ARG") if "=" in i.value)
    env = dict(kv.split("=", 1) for i in base.all("ENV") for kv in i.value.split())
    for rendering in RENDERINGS.values():
        for deployment in render(*rendering).of_kind("Deployment"):
            pod = deployment["spec"]["template"]["spec"]
            c = container(deployment)
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] == int(args["APP_UID"])
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert pod["automountServiceAccountToken"] is False
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]]
            metrics_dir = plain_env(c)["PROMETHEUS_MULTIPROC_DIR"]
            assert metrics_dir == env["PROMETHEUS_MULTIPROC_DIR"]
            parent = next(p for p in mounts if metrics_dir.startswith(p + "/"))
            assert "emptyDir" in volumes[mounts[parent]]


def test_rolling_update_never_drops_capacity(render) -> None:
    for deployment in render().of_kind("Deployment"):
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


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


def test_agent_env_overrides_common_config(render) -> None:
    env = plain_env(container(render(*ALL_ON).one("Deployment", "-interrupter")))
    assert env["LOG_LEVEL"] == "INFO" and env["INTERRUPT_MAX_WORDS"] == "120"
    other = plain_env(container(render(*ALL_ON).one("Deployment", "-uninterruptable")))
    assert other["LOG_LEVEL"] == "WARNING" and other["PROTECTED_SPEECH_USER_AUDIO"] == "keep"
    assert "INTERRUPT_MAX_WORDS" not in other


def test_worker_load_is_measured_against_the_cpu_request(render) -> None:
    """Without a CPU limit, livekit-agents divides the pod's CPU use by the node's CPUs: on a
    32-core node a 1-CPU pod would take calls until it used 22 cores. NUM_CPUS = the request."""
    for service in SERVICES:
        env = container(render().one("Deployment", f"-{service}"))["env"]
        (num_cpus,) = [e for e in env if e["name"] == "NUM_CPUS"]
        assert num_cpus["valueFrom"] == {
            "resourceFieldRef": {"resource": "requests.cpu", "divisor": "1"}}
    # an explicit setting wins; without a CPU request there is nothing to point at
    c = container(render("--set", "config.NUM_CPUS=3").one("Deployment", "-interrupter"))
    assert [e for e in c["env"] if e["name"] == "NUM_CPUS"] == [{"name": "NUM_CPUS", "value": "3"}]
    c = container(render("--set", "agents.interrupter.resources.requests=null")
                  .one("Deployment", "-interrupter"))
    assert "NUM_CPUS" not in {e["name"] for e in c["env"]}


# --- secret ------------------------------------------------------------------------------------

def test_existing_secret_by_default(render) -> None:
    rendered = render()
    assert not rendered.of_kind("Secret")
    for deployment in rendered.of_kind("Deployment"):
        refs = {ref["name"] for ref in secret_refs(container(deployment)).values()}
        assert refs == {values()["secret"]["existingSecret"]}


def test_chart_creates_the_secret_only_from_given_values(render) -> None:
    rendered = render(*ALL_ON)
    secret = rendered.one("Secret")
    assert set(secret["stringData"]) == SECRETS
    for deployment in rendered.of_kind("Deployment"):
        refs = {ref["name"] for ref in secret_refs(container(deployment)).values()}
        assert refs == {secret["metadata"]["name"]}
        assert "checksum/secret" in deployment["spec"]["template"]["metadata"]["annotations"]
    partial = render("--set", "secret.existingSecret=", "--set", "secret.values.LIVEKIT_API_KEY=k",
                     "--set", "secret.values.LIVEKIT_API_SECRET=s")
    assert set(partial.one("Secret")["stringData"]) == {"LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"}


# --- agents on/off, autoscaling, disruption budget ---------------------------------------------

@pytest.mark.parametrize("off", SERVICES)
def test_agents_switch_on_and_off_independently(render, off: str) -> None:
    (on,) = set(SERVICES) - {off}
    rendered = render("--set", f"agents.{off}.enabled=false", *ALL_ON)
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"):
        names = [d["metadata"]["name"] for d in rendered.of_kind(kind)]
        assert not any(n.endswith(f"-{off}") for n in names), f"{kind} of disabled {off}"
        assert any(n.endswith(f"-{on}") for n in names), f"{kind} of {on} missing"


def test_hpa_scales_down_slowly(render) -> None:
    rendered = render(*ALL_ON)
    hpa = rendered.one("HorizontalPodAutoscaler", "-interrupter")
    assert hpa["apiVersion"] == "autoscaling/v2"
    scale_down = hpa["spec"]["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] >= 600
    assert scale_down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]
    assert hpa["spec"]["scaleTargetRef"]["name"] == rendered.one(
        "Deployment", "-interrupter")["metadata"]["name"]
    assert "replicas" not in rendered.one("Deployment", "-interrupter")["spec"]
    assert rendered.one("Deployment", "-uninterruptable")["spec"]["replicas"] == 3
    assert not render().of_kind("HorizontalPodAutoscaler")


def test_pod_disruption_budgets(render) -> None:
    for service in SERVICES:
        pdb = render().one("PodDisruptionBudget", f"-{service}")
        deployment = render().one("Deployment", f"-{service}")
        assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
        assert pdb["spec"]["maxUnavailable"] == 1


# --- monitoring: CRDs, dashboards, rules -------------------------------------------------------

def test_monitoring_objects_need_the_crds_and_the_switch(render) -> None:
    without_crds = render(*ALL_ON_VALUES)
    assert not without_crds.of_kind("ServiceMonitor") and not without_crds.of_kind("PrometheusRule")
    assert without_crds.of_kind("ConfigMap"), "dashboards need no CRD"
    switched_off = render("--api-versions", PROMETHEUS_OPERATOR_API)
    assert not {"ServiceMonitor", "PrometheusRule", "ConfigMap"} & {
        d["kind"] for d in switched_off.docs}
    both = render(*ALL_ON)
    monitor = both.one("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    services = both.of_kind("Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert len(services) == 2 and all(
        selector.items() <= s["metadata"]["labels"].items() for s in services)


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


# --- NOTES.txt ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def notes_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart whose NOTES.txt is also rendered into a ConfigMap, because
    `helm template` skips NOTES and `helm install --dry-run` wants a cluster."""
    copy = tmp_path_factory.mktemp("notes") / "voice-agents"
    shutil.copytree(CHART, copy, symlinks=False)
    notes = (copy / "templates" / "NOTES.txt").read_text()
    (copy / "templates" / "_notes_probe.tpl").write_text(
        '{{- define "notes-probe" -}}\n' + notes + "\n{{- end }}\n")
    (copy / "templates" / "notes-probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-probe\n"
        'data:\n  notes: {{ include "notes-probe" . | toJson }}\n')
    return copy


def notes(helm: Path, chart: Path, *args: str) -> str:
    result = run([helm, "template", "va", chart, "--namespace", "voice-agents", *args,
                  "--show-only", "templates/notes-probe.yaml"])
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["data"]["notes"]


def test_notes_render(helm: Path, notes_chart: Path) -> None:
    text = notes(helm, notes_chart)
    assert "drain 600s, grace period 660s" in text
    assert "voice-agents-credentials" in text and "kubectl" in text
    warned = notes(helm, notes_chart, "--set", "monitoring.serviceMonitor.enabled=true")
    assert "WARNING: monitoring.serviceMonitor.enabled" in warned
    all_on = notes(helm, notes_chart, *ALL_ON)
    assert "WARNING" not in all_on and "(created by this chart)" in all_on
    assert "2-6 pods (HPA)" in all_on


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
