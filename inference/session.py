"""The onnxruntime session a registry version runs in, set up one way for the service and
for the benchmarks that measure it."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import onnxruntime as ort

from inference.cgroup import CGROUP_ROOT, PROC_SELF_CGROUP, cgroup_cpu_limit, cpu_max

ProviderChoice = Literal["auto", "cpu", "cuda"]
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


# Auto never runs more batches of one version at once than this: past it, each concurrent
# run's buffers cost memory for little more throughput.
MAX_AUTO_WORKERS = 8


class ProviderUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class ThreadPlan:
    """How a version uses the cores: `workers` batches run at once, each on `threads`
    onnxruntime intra-op threads (0: onnxruntime decides)."""

    workers: int
    threads: int


CGROUP_CPU_MAX = CGROUP_ROOT / "cpu.max"


def usable_cpus(cgroup_cpu_max: Path | None = None, *, cgroup_root: Path = CGROUP_ROOT,
                proc_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """CPUs this process may use: its affinity, capped by the tightest CPU quota of its
    cgroups, v2 or v1 (a container's `--cpus` or a pod's CPU limit, which the affinity
    does not show: `inference.cgroup`), and by `cgroup_cpu_max`, one more v2 `cpu.max`
    file to honour when given. A quota of 1.5 CPUs allows 2."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    limits = [cgroup_cpu_limit(cgroup_root, proc_cgroup)]
    if cgroup_cpu_max is not None:
        limits.append(cpu_max(cgroup_cpu_max))
    for limit in limits:
        if limit is not None:
            cpus = min(cpus, max(1, math.ceil(limit)))
    return cpus


def plan_threads(workers: int = 0, threads: int = 0, *, gpu: bool = False,
                 cpus: int | None = None) -> ThreadPlan:
    """The plan for `workers` and `threads` as set (0: auto). On CPU, auto runs one
    single-threaded batch per core: for the small models this project makes, intra-op
    parallelism buys little (one thread per run, two runs at once, served 1.6x the
    sentences/s of one run on two threads: docs/benchmarks.md), while independent runs
    scale with the cores. On a GPU, auto is one batch at a time."""
    if gpu:
        return ThreadPlan(workers or 1, threads)
    cpus = cpus or usable_cpus()
    if workers == 0:
        workers = max(1, min(MAX_AUTO_WORKERS, cpus // max(threads, 1)))
    if threads == 0:
        threads = max(1, cpus // workers)
    return ThreadPlan(workers, threads)


def resolve_providers(choice: ProviderChoice) -> list[str]:
    """Execution providers for a choice: CUDA when asked for (or `auto` and present)."""
    available = ort.get_available_providers()
    if choice == "cpu":
        return [CPU]
    if choice == "cuda":
        if CUDA not in available:
            raise ProviderUnavailable(
                f"providers='cuda' but onnxruntime offers only {available}: install "
                "onnxruntime-gpu on a machine with a GPU, or set APP_PROVIDERS=cpu"
            )
        return [CUDA, CPU]
    return [CUDA, CPU] if CUDA in available else [CPU]


# onnxruntime fuses a residual Add and the LayerNormalization after it into one
# SkipLayerNormalization. On CPU that kernel is slower than the two plain operators in this
# project's INT8 graphs (profiled: 5x the time of a LayerNormalization per node), so CPU
# sessions leave it unfused: the shipped versions ran 10-20 % faster at batch 1 (CoNLL
# tagger 1.64 -> 1.33 ms, SST-2 0.69 -> 0.56 ms), with the same labels; fp32 graphs were
# within +-3 % (docs/benchmarks.md). Unfusing Gelu as well was slower again.
# onnxruntime ignores a name it does not know: tests/app/test_service_session_fusions.py
# checks that this one still names its optimizer.
CPU_UNFUSED = ("SkipLayerNormFusion",)


def session_options(threads: int = 0, allow_spinning: bool = False) -> ort.SessionOptions:
    """Every graph optimisation, `threads` intra-op threads (0: onnxruntime decides) and
    one inter-op thread. `allow_spinning=True` keeps the intra-op threads spinning for a
    while after a run (onnxruntime's default); False lets them sleep at once, leaving the
    cores to other work (the service's default)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning",
                                     "1" if allow_spinning else "0")
    return options


def disabled_fusions(providers: list[str]) -> list[str]:
    """The graph fusions to leave out for these execution providers: `CPU_UNFUSED` when
    the session runs on the CPU alone; none with a GPU, whose fused kernels pay off."""
    return list(CPU_UNFUSED) if providers == [CPU] else []


def open_session(model_file: Path | str, providers: ProviderChoice = "cpu", threads: int = 0,
                 allow_spinning: bool = False) -> ort.InferenceSession:
    """A session as `session_options` sets it up, on the providers `providers` resolves
    to, without the fusions that are slower there (`disabled_fusions`)."""
    resolved = resolve_providers(providers)
    return ort.InferenceSession(str(model_file),
                                sess_options=session_options(threads, allow_spinning),
                                providers=resolved,
                                disabled_optimizers=disabled_fusions(resolved))
