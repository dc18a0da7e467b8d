"""The output tensors of the Open Inference Protocol's infer, and their encoding.

Each output is one row of `OUTPUTS`: its name, datatype, whether it has one value per
text (shape of the input batch, `[n]` or `[n, 1]`) or one per label (`[n, n_labels]`),
and the function that reads a text's values from its `Prediction`. Another output is
another row, as `labels` (which labels are in the answer) was.

An output is sent in the JSON answer (`data`, row-major) or, with the binary tensor data
extension, after it (`parameters.binary_data_size` bytes each, in output order, the JSON's
length in the `Inference-Header-Content-Length` header).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from registry import ModelRef

from ...classifier import Prediction

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
Value = str | float | bool


@dataclass(frozen=True)
class OutputSpec:
    name: str
    datatype: str  # a key of _NUMERIC, or "BYTES"
    per_label: bool  # one value per label ([n, n_labels]), else one per text
    values: Callable[[Prediction], list[Value]]  # one text's values

    def metadata(self, n_labels: int) -> dict[str, Any]:
        """The output's `$metadata_tensor` (variable dimensions are -1)."""
        shape = [-1, n_labels] if self.per_label else [-1]
        return {"name": self.name, "datatype": self.datatype, "shape": shape}

    def shape(self, batch_shape: list[int], n_labels: int) -> list[int]:
        return [batch_shape[0], n_labels] if self.per_label else list(batch_shape)


OUTPUTS: tuple[OutputSpec, ...] = (
    OutputSpec("label", "BYTES", False, lambda p: [p.label]),  # the most probable label
    OutputSpec("score", "FP32", False, lambda p: [p.score]),  # its probability
    # Every label's probability, in the order of the model metadata's `labels`.
    OutputSpec("probabilities", "FP32", True, lambda p: list(p.scores.values())),
    # Whether each label is in the answer, in the same order: a multi-label version's
    # labels at or above their thresholds; for a single-label one, the most probable.
    OutputSpec("labels", "BOOL", True, lambda p: _chosen(p)),
)


def _chosen(p: Prediction) -> list[Value]:
    answer = set(p.labels) if p.labels is not None else {p.label}
    return [label in answer for label in p.scores]
OUTPUT_NAMES: tuple[str, ...] = tuple(spec.name for spec in OUTPUTS)
_BY_NAME = {spec.name: spec for spec in OUTPUTS}

# Little-endian element types of the binary tensor data extension.
_NUMERIC = {"FP32": "<f4", "FP64": "<f8", "INT64": "<i8", "BOOL": "?"}


@dataclass(frozen=True)
class Requested:
    """An output the answer is to hold, and whether as binary data."""

    name: str
    binary: bool


def serialize_bytes(values: Sequence[str]) -> bytes:
    """A BYTES tensor as binary data: each element's UTF-8 length (4 bytes, little-endian),
    then the element."""
    parts = []
    for value in values:
        raw = value.encode("utf-8")
        parts += [struct.pack("<I", len(raw)), raw]
    return b"".join(parts)


def tensor_bytes(datatype: str, values: Sequence[Any]) -> bytes:
    if datatype == "BYTES":
        return serialize_bytes(values)
    return np.asarray(values, dtype=_NUMERIC[datatype]).tobytes()


def infer_answer(
    ref: ModelRef, predictions: list[Prediction], batch_shape: list[int],
    outputs: list[Requested], request_id: str | None,
) -> tuple[bytes, dict[str, str]]:
    """The answer's body and headers: the `$inference_response` JSON, then the binary
    data of the outputs asked for as such (if any)."""
    n_labels = len(predictions[0].scores) if predictions else 0
    tensors, buffers = [], []
    for wanted in outputs:
        spec = _BY_NAME[wanted.name]
        values = [v for p in predictions for v in spec.values(p)]  # row-major
        tensor: dict[str, Any] = {"name": spec.name, "datatype": spec.datatype,
                                  "shape": spec.shape(batch_shape, n_labels)}
        if wanted.binary:
            raw = tensor_bytes(spec.datatype, values)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            buffers.append(raw)
        else:
            tensor["data"] = values
        tensors.append(tensor)
    answer: dict[str, Any] = {"model_name": ref.name, "model_version": ref.version}
    if request_id is not None:
        answer["id"] = request_id
    answer["outputs"] = tensors
    head = json.dumps(answer, separators=(",", ":")).encode()
    if not buffers:
        return head, {"content-type": JSON_TYPE}
    return head + b"".join(buffers), {"content-type": BINARY_TYPE,
                                      HEADER_LENGTH: str(len(head))}
