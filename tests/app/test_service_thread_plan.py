"""How a version uses the cores: `inference.plan_threads` and the settings behind it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.models import thread_plan
from app.settings import Settings
from inference import ThreadPlan, plan_threads, usable_cpus


@pytest.mark.parametrize(("workers", "threads", "cpus", "expected"), [
    (0, 0, 2, ThreadPlan(2, 1)),  # auto: one single-threaded batch per core
    (0, 0, 1, ThreadPlan(1, 1)),
    (0, 0, 64, ThreadPlan(8, 8)),  # at most 8 batches at once; the cores shared among them
    (0, 2, 2, ThreadPlan(1, 2)),  # threads set (the old way to fit a pod's limit): one batch
    (0, 2, 8, ThreadPlan(4, 2)),
    (3, 0, 8, ThreadPlan(3, 2)),
    (4, 4, 2, ThreadPlan(4, 4)),  # both set: as set, even past the cores
])
def test_plan_on_cpu(workers: int, threads: int, cpus: int, expected: ThreadPlan) -> None:
    assert plan_threads(workers, threads, cpus=cpus) == expected


def test_plan_on_gpu_runs_one_batch_at_a_time_unless_told() -> None:
    assert plan_threads(0, 0, gpu=True, cpus=16) == ThreadPlan(1, 0)
    assert plan_threads(2, 4, gpu=True, cpus=16) == ThreadPlan(2, 4)


def test_usable_cpus_honours_a_cgroup_quota(tmp_path: Path) -> None:
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # 1.5 CPUs: two threads may run
    assert usable_cpus(quota) == min(2, usable_cpus(tmp_path / "absent"))
    quota.write_text("max 100000\n")
    assert usable_cpus(quota) == usable_cpus(tmp_path / "absent") >= 1


def test_the_service_plans_from_its_settings(tmp_path: Path) -> None:
    settings = Settings(models_dir=tmp_path, providers="cpu", inference_workers=3,
                        intra_op_threads=1)
    assert thread_plan(settings) == ThreadPlan(3, 1)
    auto = thread_plan(Settings(models_dir=tmp_path, providers="cpu"))
    assert auto.workers >= 1 and auto.threads >= 1


@pytest.mark.parametrize("enabled", [False, True])
def test_the_opentelemetry_bridge_is_asked_only_when_enabled(
    make_registry: Any, monkeypatch: pytest.MonkeyPatch, enabled: bool,
) -> None:
    """Off (the default), a request never asks OpenTelemetry for its tracer provider."""
    from opentelemetry import trace
    from service_helpers import serve

    asked = []
    real = trace.get_tracer_provider
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: asked.append(1) or real())
    with serve(make_registry({"tiny": {"1": 100}}), opentelemetry=enabled) as client:
        asked.clear()
        assert client.post("/predict", json={"text": "good", "model": "tiny"}).status_code == 200
    assert bool(asked) is enabled
