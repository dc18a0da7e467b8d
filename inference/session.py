"""The onnxruntime session a registry version runs in, set up one way for the service and
for the benchmarks that measure it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import onnxruntime as ort

ProviderChoice = Literal["auto", "cpu", "cuda"]
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


class ProviderUnavailable(RuntimeError):
    pass


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


def open_session(model_file: Path | str, providers: ProviderChoice = "cpu", threads: int = 0,
                 allow_spinning: bool = False) -> ort.InferenceSession:
    """A session with every graph optimisation, `threads` intra-op threads (0: onnxruntime
    decides) and one inter-op thread. `allow_spinning=True` keeps the intra-op threads
    spinning for a while after a run (onnxruntime's default); False lets them sleep at
    once, leaving the cores to other work (the service's default)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning",
                                     "1" if allow_spinning else "0")
    return ort.InferenceSession(str(model_file), sess_options=options,
                                providers=resolve_providers(providers))
