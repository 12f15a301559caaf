"""Shared fixtures of the deployment checks: where the pinned tools are, helm rendering, offline
Kubernetes schemas for kubeconform, and small parsers for the Dockerfile.

The tools are installed by `scripts/setup.sh` under .cache/ (helm, helm-unittest, helm-docs and
kubeconform in .cache/bin, the Prometheus Operator's CRD schemas in .cache/crd-schemas, hadolint,
checkov, check-jsonschema and the Kubernetes schemas in the .cache/tools venv). A missing
tool fails the test that needs it, with the command that installs it: nothing is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from services import registry

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "voice-agents"
TOOL_DIRS = (ROOT / ".cache" / "bin", ROOT / ".cache" / "tools" / "bin")
SITE_PACKAGES = ROOT / ".cache" / "tools" / "lib" / "python3.11" / "site-packages"
SETUP_HINT = "run `bash scripts/setup.sh` to install the pinned deploy tools under .cache/"
SERVICES = tuple(registry.AGENTS)

# Oldest and newest Kubernetes the chart supports; every rendering is validated against both.
K8S_VERSIONS = ("1.29.0", "1.37.0")
PROMETHEUS_OPERATOR_API = "monitoring.coreos.com/v1"


def find_tool(name: str) -> Path:
    for directory in TOOL_DIRS:
        path = directory / name
        if path.is_file() and os.access(path, os.X_OK):
            return path
    pytest.fail(f"{name} not found in .cache/bin or .cache/tools/bin: {SETUP_HINT}", pytrace=False)


@pytest.fixture(scope="session")
def helm() -> Path:
    return find_tool("helm")


@pytest.fixture(scope="session")
def kubeconform() -> Path:
    return find_tool("kubeconform")


@pytest.fixture(scope="session")
def helm_docs() -> Path:
    return find_tool("helm-docs")


@pytest.fixture(scope="session")
def helm_unittest() -> Path:
    return find_tool("helm-unittest")


@pytest.fixture(scope="session")
def hadolint() -> Path:
    return find_tool("hadolint")


@pytest.fixture(scope="session")
def checkov() -> Path:
    return find_tool("checkov")


@pytest.fixture(scope="session")
def check_jsonschema() -> Path:
    return find_tool("check-jsonschema")


@pytest.fixture(scope="session")
def livekit_server() -> Path:
    return find_tool("livekit-server")


def run(cmd: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("cwd", ROOT)
    kwargs.setdefault("timeout", 180)
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)


def run_checkov(checkov: Path, framework: str, files: list[Path]) -> list[dict[str, Any]]:
    """checkov's JSON report (one entry per framework), offline: --skip-download."""
    cmd: list[str | Path] = [checkov, "--framework", framework, "--output", "json",
                             "--skip-download", "--compact"]
    for f in files:
        cmd += ["--file", f]
    result = run(cmd, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})
    assert result.returncode in (0, 1), f"checkov did not run:\n{result.stderr[-3000:]}"
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


# --- helm -------------------------------------------------------------------------------------

@dataclass
class Rendered:
    text: str
    docs: list[dict[str, Any]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {len(found)}"
        return found[0]


class HelmError(AssertionError):
    pass


@pytest.fixture(scope="session")
def render(helm: Path) -> Callable[..., Rendered]:
    """helm template of the chart (release `va`, namespace `voice-agents`); cached per args."""
    cache: dict[tuple[str, ...], Rendered] = {}

    def _render(*args: str, kube_version: str = K8S_VERSIONS[-1]) -> Rendered:
        key = (*args, kube_version)
        if key not in cache:
            result = run([helm, "template", "va", CHART, "--namespace", "voice-agents",
                          "--kube-version", kube_version, *args])
            if result.returncode != 0:
                raise HelmError(result.stderr)
            docs = [d for d in yaml.safe_load_all(result.stdout) if d]
            cache[key] = Rendered(result.stdout, docs)
        return cache[key]

    return _render


ALL_ON_VALUES = ("--values", str(CHART / "ci" / "all-on-values.yaml"))
ALL_ON = (*ALL_ON_VALUES, "--api-versions", PROMETHEUS_OPERATOR_API)


# --- offline schemas for kubeconform -----------------------------------------------------------

def _schema_pack() -> Path:
    pack = SITE_PACKAGES / "kubernetes_validate" / "kubernetes-json-schema"
    if not pack.is_dir():
        pytest.fail(f"kubernetes-validate's schemas not found at {pack}: {SETUP_HINT}",
                    pytrace=False)
    return pack


@pytest.fixture(scope="session")
def k8s_schema_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubernetes-validate's strict schemas, made usable offline by kubeconform.

    Each kind's schema refers to its definitions as `/api/_definitions.json` relative to an
    https://kubernetes.io `$id`, which kubeconform would download. The copies here point the
    references at the local `_definitions.json` (file://) instead; nothing else changes.
    Layout: <dir>/v<version>-local-strict/<kind>-<group>-<version>.json.
    """
    out = tmp_path_factory.mktemp("k8s-schemas")
    pack = _schema_pack()
    for version in K8S_VERSIONS:
        src = pack / f"v{version}-local-strict"
        if not src.is_dir():
            pytest.fail(f"no Kubernetes {version} schemas in {pack}: {SETUP_HINT}", pytrace=False)
        definitions = (src / "_definitions.json").as_uri()
        dst = out / src.name
        dst.mkdir()
        for schema in src.glob("*.json"):
            if schema.name == "_definitions.json":
                continue
            text = schema.read_text()
            (dst / schema.name).write_text(
                text.replace('"/api/_definitions.json#', f'"{definitions}#'))
    return out


@pytest.fixture(scope="session")
def crd_schema_dir() -> Path:
    """Schemas of the Prometheus Operator's and KEDA's CRDs, which the Kubernetes schemas lack:
    converted by scripts/crd_schemas.py from the CRDs of the releases pinned in scripts/setup.sh."""
    out = ROOT / ".cache" / "crd-schemas"
    for kind in ("servicemonitor-monitoring-v1", "prometheusrule-monitoring-v1",
                 "scaledobject-keda-v1alpha1"):
        if not (out / f"{kind}.json").is_file():
            pytest.fail(f"no {kind} schema in {out}: {SETUP_HINT}", pytrace=False)
    return out


@pytest.fixture(scope="session")
def validate_manifests(
    kubeconform: Path, k8s_schema_dir: Path, crd_schema_dir: Path, tmp_path_factory
) -> Callable[[str, str], subprocess.CompletedProcess[str]]:
    """kubeconform -strict against one Kubernetes version, offline."""
    work = tmp_path_factory.mktemp("manifests")

    def _validate(manifests: str, version: str) -> subprocess.CompletedProcess[str]:
        path = work / f"manifests-{abs(hash(manifests))}-{version}.yaml"
        path.write_text(manifests)
        return run([
            kubeconform, "-strict", "-summary", "-output", "json",
            "-kubernetes-version", version,
            "-schema-location",
            f"{k8s_schema_dir}/{{{{ .NormalizedKubernetesVersion }}}}-local-strict/"
            "{{ .ResourceKind }}{{ .KindSuffix }}.json",
            "-schema-location",
            f"{crd_schema_dir}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
            path,
        ])

    return _validate


# --- Dockerfile --------------------------------------------------------------------------------

@dataclass
class Instruction:
    keyword: str
    value: str
    line: int


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(path: Path = ROOT / "Dockerfile") -> list[Stage]:
    """Stages of a Dockerfile: continuation lines joined, comments dropped."""
    stages: list[Stage] = []
    buffer, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, value = buffer.partition(" ")
        buffer = ""
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = value.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else ""
            stages.append(Stage(parts[0], name, []))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, value.strip(), start))
    return stages


def exec_form(value: str) -> list[str]:
    """The JSON array of an exec-form instruction (ENTRYPOINT/CMD/HEALTHCHECK CMD)."""
    match = re.search(r"\[.*\]\s*$", value)
    assert match, f"not in exec form: {value}"
    return json.loads(match.group(0))


def healthcheck_options(value: str) -> dict[str, str]:
    head = value.split(" CMD ", 1)[0]
    return dict(opt.lstrip("-").split("=", 1) for opt in shlex.split(head) if opt.startswith("--"))
