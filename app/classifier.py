"""One registry version as a predictor: onnxruntime for the model, `tokenizers` for text.

No torch, no transformers: this is the whole inference path of the serving image.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from registry import Manifest, verify_version

log = logging.getLogger(__name__)

ProviderChoice = Literal["auto", "cpu", "cuda"]
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

# Length grouping inside a batch: a sub-batch grows while its longest sequence stays
# within this ratio (plus slack) of its shortest. Padding costs more than batching saves
# for small models on CPU (FACTS.md: sorting by length nearly doubles throughput).
_GROUP_RATIO = 1.25
_GROUP_SLACK = 2


class ProviderUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    scores: dict[str, float]


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


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)  # (batch, n_labels)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def length_groups(lengths: list[int]) -> list[list[int]]:
    """Indices grouped by similar length, shortest first (each group is padded alone)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] <= lengths[groups[-1][0]] * _GROUP_RATIO + _GROUP_SLACK:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


class OnnxClassifier:
    """A verified registry version, ready to classify: `predict(texts) -> predictions`."""

    def __init__(
        self,
        version_dir: Path,
        manifest: Manifest,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
    ) -> None:
        self.version_dir = Path(version_dir)
        self.manifest = manifest
        self.session = session
        self.tokenizer = tokenizer
        self.labels = list(manifest.labels)
        self._inputs = {i.name for i in session.get_inputs()}
        self._output = session.get_outputs()[0].name
        self._pad_id = self._find_pad_id(tokenizer)

    @classmethod
    def load(
        cls,
        version_dir: Path,
        providers: ProviderChoice = "auto",
        threads: int = 0,
        allow_spinning: bool = False,
    ) -> OnnxClassifier:
        """Verify the version's checksums, then build the session and the tokenizer.
        `allow_spinning=True` keeps the intra-op threads spinning for a while after a run
        (onnxruntime's default); False lets them sleep at once, leaving the cores free.

        Raises `registry.RegistryError` for a missing, corrupt or incomplete version.
        """
        version_dir = Path(version_dir)
        manifest = verify_version(version_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         "1" if allow_spinning else "0")
        session = ort.InferenceSession(
            str(version_dir / manifest.model_file),
            sess_options=options,
            providers=resolve_providers(providers),
        )
        tokenizer = Tokenizer.from_file(str(version_dir / manifest.tokenizer_file))
        tokenizer.no_padding()  # the batch pads itself, per length group
        tokenizer.enable_truncation(max_length=manifest.max_length)
        n_out = session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(manifest.labels):
            raise ValueError(
                f"{version_dir}: the model has {n_out} outputs but the manifest lists "
                f"{len(manifest.labels)} labels"
            )
        return cls(version_dir, manifest, session, tokenizer)

    def close(self) -> None:
        """Release the onnxruntime session and the tokenizer now, not whenever the garbage
        collector breaks the reference cycles around a loaded version: an unloaded
        version's native memory would otherwise linger, one model's worth per cycle."""
        self.session = None  # type: ignore[assignment]
        self.tokenizer = None  # type: ignore[assignment]

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    @property
    def model_bytes(self) -> int:
        return (self.version_dir / self.manifest.model_file).stat().st_size

    @staticmethod
    def _find_pad_id(tokenizer: Tokenizer) -> int:
        for token in ("[PAD]", "<pad>", "<PAD>"):
            token_id = tokenizer.token_to_id(token)
            if token_id is not None:
                return token_id
        return 0

    def predict(self, texts: list[str]) -> list[Prediction]:
        """Classify a batch; answers come back in input order, one per text."""
        if not texts:
            return []
        encodings = self.tokenizer.encode_batch(texts)
        probs = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        for group in length_groups([len(e.ids) for e in encodings]):
            probs[group] = self._run([encodings[i] for i in group])
        out = []
        for row in probs:
            best = int(row.argmax())
            out.append(
                Prediction(
                    label=self.labels[best],
                    score=float(row[best]),
                    scores={label: float(p) for label, p in zip(self.labels, row, strict=True)},
                )
            )
        return out

    def _run(self, encodings: list) -> np.ndarray:
        longest = max(len(e.ids) for e in encodings)
        shape = (len(encodings), longest)  # (batch, sequence)
        ids = np.full(shape, self._pad_id, dtype=np.int64)
        mask = np.zeros(shape, dtype=np.int64)
        types = np.zeros(shape, dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = 1
            types[row, :n] = enc.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        feeds = {k: v for k, v in feeds.items() if k in self._inputs}  # what the graph takes
        (logits,) = self.session.run([self._output], feeds)  # (batch, n_labels)
        return softmax(np.asarray(logits, dtype=np.float64))


def load_timed(
    version_dir: Path, providers: ProviderChoice, threads: int, allow_spinning: bool
) -> tuple[OnnxClassifier, float]:
    start = time.perf_counter()
    clf = OnnxClassifier.load(version_dir, providers, threads, allow_spinning)
    return clf, time.perf_counter() - start
