"""Offline validation of deploy/k8s: Kubernetes cannot run here, so check structure and rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").exists())


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def _build(kustomization_dir: Path) -> list[dict[str, Any]]:
    """The objects a kustomization pulls in (resources only, recursively; patches checked apart)."""
    k = yaml.safe_load((kustomization_dir / "kustomization.yaml").read_text())
    objs: list[dict[str, Any]] = []
    for res in k.get("resources", []):
        target = (kustomization_dir / res).resolve()
        assert target.exists(), f"{kustomization_dir}: resource {res} does not exist"
        objs += _build(target) if target.is_dir() else _docs(target)
    return objs


def _kustomizations() -> list[Path]:
    return sorted(p.parent for p in K8S.rglob("kustomization.yaml"))


def _workloads(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] in ("Deployment", "StatefulSet")]


@pytest.mark.parametrize("kdir", _kustomizations(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_kustomization_resolves_and_its_patches_hit_existing_objects(kdir: Path) -> None:
    objs = _build(kdir)
    assert objs
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    k = yaml.safe_load((kdir / "kustomization.yaml").read_text())
    for patch in k.get("patches", []):
        t = patch["target"]
        assert (t["kind"], t["name"]) in names, f"patch targets missing {t}"
        ops = yaml.safe_load(patch["patch"]) if "patch" in patch else yaml.safe_load(
            (kdir / patch["path"]).read_text())
        assert all(op["op"] in ("add", "replace", "remove") and op["path"].startswith("/")
                   for op in ops)


def test_every_service_has_a_deployment_with_probes_resources_and_non_root() -> None:
    objs = _build(K8S / "base")
    deployments = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Deployment"}
    for service in SERVICES:
        assert service in deployments, f"services/{service} has no Deployment in deploy/k8s/base"
        spec = deployments[service]["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        (c,) = spec["containers"]
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"cpu", "memory"} <= set(c["resources"]["requests"])
        assert {"cpu", "memory"} <= set(c["resources"]["limits"])
        refs = [e.get("secretRef", {}).get("name") for e in c.get("envFrom", [])]
        assert "gridpilot-credentials" in refs


def test_selectors_match_their_pod_labels_and_services_select_something() -> None:
    objs = _build(K8S / "base")
    pod_labels = [w["spec"]["template"]["metadata"]["labels"] for w in _workloads(objs)]
    for w in _workloads(objs):
        sel = w["spec"]["selector"]["matchLabels"]
        assert sel.items() <= w["spec"]["template"]["metadata"]["labels"].items()
    for svc in (o for o in objs if o["kind"] == "Service"):
        sel = svc["spec"]["selector"]
        assert any(sel.items() <= labels.items() for labels in pod_labels), svc["metadata"]["name"]


def test_no_secret_values_are_committed() -> None:
    for path in K8S.rglob("*.yaml"):
        for doc in _docs(path):
            assert doc.get("kind") != "Secret", f"{path} commits a Secret"
            for w in _workloads([doc]):
                for c in w["spec"]["template"]["spec"]["containers"]:
                    for env in c.get("env", []):
                        if any(s in env["name"] for s in ("SECRET", "TOKEN", "PASSWORD")):
                            assert "valueFrom" in env, f"{path}: {env['name']} has a literal value"


def test_the_scope_gateway_never_runs_two_replicas() -> None:
    objs = _build(K8S / "base")
    (gw,) = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "scope-gateway"]
    assert gw["spec"]["replicas"] == 1
    assert gw["spec"]["strategy"]["type"] == "Recreate"
