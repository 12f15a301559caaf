"""scripts/crd_schemas.py: a CRD's schema becomes a strict kubeconform schema."""

from __future__ import annotations

from scripts import crd_schemas

CRD = {
    "kind": "CustomResourceDefinition",
    "spec": {
        "group": "monitoring.coreos.com",
        "names": {"kind": "ServiceMonitor"},
        "versions": [
            {"name": "v1", "served": True, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "spec": {"type": "object", "properties": {
                        "port": {"x-kubernetes-int-or-string": True, "type": "string"},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                                 "properties": {"a": {"type": "string"}}},
                    }},
                },
            }}},
            {"name": "v1alpha1", "served": False, "schema": {"openAPIV3Schema": {}}},
        ],
    },
}


def test_served_versions_become_strict_schemas() -> None:
    out = crd_schemas.schemas(CRD)
    assert list(out) == ["servicemonitor-monitoring-v1.json"]
    schema = out["servicemonitor-monitoring-v1.json"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["apiVersion"] == {"enum": ["monitoring.coreos.com/v1"]}
    assert schema["properties"]["kind"] == {"enum": ["ServiceMonitor"]}
    spec = schema["properties"]["spec"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["port"] == {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    # an object that keeps unknown fields stays open
    assert "additionalProperties" not in spec["properties"]["free"]
