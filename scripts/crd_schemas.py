"""kubeconform JSON schemas from CustomResourceDefinition files (scripts/setup.sh runs it on the
Prometheus Operator's published CRDs).

    python -m scripts.crd_schemas OUT_DIR CRD.yaml...

Writes OUT_DIR/<kind>-<group prefix>-<version>.json for every served version, the layout of
kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json` template. Like kubeconform's own
openapi2jsonschema in strict mode, objects that list their properties refuse any other (typos are
errors, not ignored fields), and `x-kubernetes-int-or-string` becomes "string or integer".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def strict(node: Any) -> Any:
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def schemas(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """File name -> schema, one per served version of one CRD."""
    spec = crd["spec"]
    kind, group = spec["names"]["kind"], spec["group"]
    out = {}
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = strict(version["schema"]["openAPIV3Schema"])
        schema["properties"]["apiVersion"] = {"enum": [f"{group}/{version['name']}"]}
        schema["properties"]["kind"] = {"enum": [kind]}
        out[f"{kind.lower()}-{group.split('.')[0]}-{version['name']}.json"] = schema
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = Path(argv[0])
    for path in argv[1:]:
        for crd in yaml.safe_load_all(Path(path).read_text()):
            if crd and crd.get("kind") == "CustomResourceDefinition":
                for name, schema in schemas(crd).items():
                    (out_dir / name).write_text(json.dumps(schema, indent=1) + "\n")
                    print(f"wrote {out_dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
