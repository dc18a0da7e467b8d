"""The Kubernetes manifests in docker/k8s: valid against the API schemas (offline, with
kubernetes-validate), and consistent with the image and the app they run."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from service_helpers import image_command

from app.__main__ import GRACEFUL_SHUTDOWN_S
from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "docker" / "k8s"
MANIFESTS = sorted(K8S.rglob("*.yaml"))


def docs() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def port_number(c: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in c["ports"] if p["name"] == port)


DEPLOYMENTS = ["textclf", "textclf-gpu"]


def test_every_manifest_is_valid_against_the_kubernetes_schema() -> None:
    kv = pytest.importorskip("kubernetes_validate")
    assert {p.name for p in MANIFESTS} >= {"deployment.yaml", "service.yaml", "hpa.yaml"}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            # strict: unknown fields (a typo such as `readinesProbe`) are errors too.
            kv.validate(doc, kv.latest_version(), strict=True)


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_deployment_runs_the_image_command_with_probes_on_the_health_endpoints(
    name: str,
) -> None:
    deployment = docs()[("Deployment", name)]
    c = container(deployment)
    assert c["command"] == image_command()
    served_port = int(image_command()[image_command().index("--port") + 1])
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"EXPOSE {served_port}" in dockerfile
    assert port_number(c, "http") == served_port
    probes = {kind: c[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert port_number(c, probe["port"]) == served_port
    # Resources: requests for the scheduler and the autoscaler, limits for the node.
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])
    # Prometheus scrapes the app's /metrics on the container port.
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == served_port
    assert annotations["prometheus.io/path"] == "/metrics"
    # Kubernetes waits longer than the pause before SIGTERM plus the graceful shutdown.
    pause = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > pause + GRACEFUL_SHUTDOWN_S
    # The image's user, and the pod labels its selector needs.
    user = re.search(r"^USER (\d+)", dockerfile, flags=re.M)
    assert user and deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == \
        int(user.group(1))
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_deployment_environment_is_valid_settings(
    name: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {e["name"]: e["value"] for e in container(docs()[("Deployment", name)])["env"]
           if "value" in e}
    for key in [k for k in os.environ if k.startswith("APP_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert str(settings.models_dir) == "/srv/models"
    assert settings.providers == ("cuda" if name.endswith("gpu") else "cpu")


def test_gpu_deployment_asks_for_a_gpu_node() -> None:
    spec = docs()[("Deployment", "textclf-gpu")]["spec"]["template"]["spec"]
    c = container(docs()[("Deployment", "textclf-gpu")])
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    cpu = docs()[("Deployment", "textclf")]["spec"]["selector"]["matchLabels"]
    gpu = docs()[("Deployment", "textclf-gpu")]["spec"]["selector"]["matchLabels"]
    assert cpu != gpu and not (cpu.items() <= gpu.items() or gpu.items() <= cpu.items())


def test_service_hpa_and_disruption_budget_point_at_the_deployments() -> None:
    all_docs = docs()
    service = all_docs[("Service", "textclf")]
    for name in DEPLOYMENTS:
        pod = all_docs[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod.items()
        pdb = all_docs[("PodDisruptionBudget", "textclf")]["spec"]["selector"]["matchLabels"]
        assert pdb.items() <= pod.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"
    hpa = all_docs[("HorizontalPodAutoscaler", "textclf")]["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["kind"], target["name"]) in all_docs and target["apiVersion"] == "apps/v1"
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"  # utilization is relative to the requests
    assert "cpu" in container(all_docs[(target["kind"], target["name"])])["resources"]["requests"]
