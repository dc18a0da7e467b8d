"""What the service and the offline benchmarks share to run a registry version: the
tokenize-pad-feed encoder and the onnxruntime session settings. Torch-free, so that the
benchmark measures exactly the path the service runs."""

from inference.cgroup import cgroup_cpu_limit
from inference.encoder import PAD_TOKENS, TextEncoder, find_pad_id
from inference.session import (
           CPU,
           CUDA,
           ProviderChoice,
           ProviderUnavailable,
           ThreadPlan,
           open_session,
           plan_threads,
           resolve_providers,
           usable_cpus,
)

__all__ = ["CPU", "CUDA", "PAD_TOKENS", "ProviderChoice", "ProviderUnavailable", "TextEncoder",
           "ThreadPlan", "cgroup_cpu_limit", "find_pad_id", "open_session", "plan_threads",
           "resolve_providers", "usable_cpus"]
