"""What evaluation runs: a model variant (a PyTorch folder, an ONNX file or a registry
version) and the runner that turns a tokenized batch into logits."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from compression.core.errors import ModelError
from compression.core.files import CONFIG_FILE, MODEL_SUBDIR, TOKENIZER_FILE, WEIGHTS_FILE
from inference import open_session
from registry import MANIFEST_FILE, Manifest


class Runner(Protocol):
    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray: ...


class TorchRunner:
    def __init__(self, folder: Path, threads: int) -> None:
        # Imported here: ONNX-only evaluation (and the memory probe of an ONNX variant)
        # must not pay for, or need, torch and transformers.
        import torch

        from compression.models.loading import load_classifier
        from compression.models.outputs import output_logits

        self.torch = torch
        self.output_logits = output_logits  # a QA head's start and end logits, stacked
        self.threads = threads
        self.model = load_classifier(str(folder)).eval()
        # Models without segment embeddings (DistilBERT, RoBERTa) take no token_type_ids.
        self.inputs = set(inspect.signature(self.model.forward).parameters)

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        # torch's thread count is per process: runners with different counts take turns.
        if self.torch.get_num_threads() != self.threads:
            self.torch.set_num_threads(self.threads)
        with self.torch.inference_mode():
            tensors = {k: self.torch.from_numpy(v) for k, v in batch.items() if k in self.inputs}
            return self.output_logits(self.model(**tensors)).numpy()


class OnnxRunner:
    def __init__(self, path: Path, threads: int) -> None:
        # The service's own session settings (spinning off included): measured as served.
        self.session = open_session(path, "cpu", threads)
        self.inputs = {i.name for i in self.session.get_inputs()}

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["logits"], {k: v for k, v in batch.items() if k in self.inputs})[0]


@dataclass
class Variant:
    """A model to evaluate: a PyTorch classifier folder, an ONNX file or a registry version."""

    name: str
    path: Path
    kind: str  # "torch" or "onnx"
    model_file: Path
    tokenizer_file: Path

    @classmethod
    def from_path(cls, path: Path, name: str | None = None) -> Variant:
        path = Path(path)
        if path.is_dir() and (path / MANIFEST_FILE).is_file():
            manifest = Manifest.read(path)
            return cls(name or str(manifest.ref), path, "onnx", path / manifest.model_file,
                       path / manifest.tokenizer_file)
        if path.is_dir() and (path / CONFIG_FILE).is_file():
            weights = next((p for p in (path / WEIGHTS_FILE, path / "pytorch_model.bin")
                            if p.is_file()), None)
            if weights is None:
                raise ModelError(f"{path}: no model.safetensors in the folder")
            default = path.parent.name if path.name == MODEL_SUBDIR else path.name
            return cls(name or f"{default}-torch", path, "torch", weights,
                       path / TOKENIZER_FILE)
        if path.is_file() and path.suffix == ".onnx":
            default = path.parent.name if path.stem == "model" else path.stem
            return cls(name or default, path, "onnx", path, path.parent / TOKENIZER_FILE)
        raise ModelError(f"{path}: not a PyTorch classifier folder, .onnx file or registry version")

    def load(self, threads: int) -> Runner:
        if not self.tokenizer_file.is_file():
            raise ModelError(f"{self.path}: no tokenizer.json beside the model")
        return (TorchRunner(self.path, threads) if self.kind == "torch"
                else OnnxRunner(self.model_file, threads))
