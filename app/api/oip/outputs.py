"""The output tensors of the Open Inference Protocol's infer, and their encoding.

Each output is one row of a task's table (`OUTPUTS` for a classifier, `TOKEN_OUTPUTS`,
`QA_OUTPUTS`): its name, datatype, whether it has one value per input row (the shape of
the input batch, `[n]` or `[n, 1]`) or one per label (`[n, n_labels]`), and the function
that reads a row's values from its `Answered`. Another output is another row, as
`labels` (which labels are in the answer) and `prediction_id` were.

An output is sent in the JSON answer (`data`, row-major) or, with the binary tensor data
extension, after it (`parameters.binary_data_size` bytes each, in output order, the JSON's
length in the `Inference-Header-Content-Length` header).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from registry import ModelRef

from ...classifier import Prediction
from ...question_answerer import AnswerPrediction

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
Value = str | float | bool


@dataclass(frozen=True)
class Answered:
    """One input row's answer: its prediction, and its signed id for POST /feedback
    (a classifier's only; None when not issued)."""

    prediction: Any  # Prediction, or AnswerPrediction for a question answerer
    prediction_id: str | None = None


@dataclass(frozen=True)
class OutputSpec:
    name: str
    datatype: str  # a key of _NUMERIC, or "BYTES"
    per_label: bool  # one value per label ([n, n_labels]), else one per input row
    values: Callable[[Answered], list[Value]]  # one row's values
    # Each element's content type, for BYTES elements that are not plain text.
    content_type: str | None = None

    def metadata(self, n_labels: int) -> dict[str, Any]:
        """The output's `$metadata_tensor` (variable dimensions are -1)."""
        shape = [-1, n_labels] if self.per_label else [-1]
        tensor: dict[str, Any] = {"name": self.name, "datatype": self.datatype,
                                  "shape": shape}
        if self.content_type is not None:
            tensor["parameters"] = {"content_type": self.content_type}
        return tensor

    def shape(self, batch_shape: list[int], n_labels: int) -> list[int]:
        return [batch_shape[0], n_labels] if self.per_label else list(batch_shape)


def _p(a: Answered) -> Prediction:
    return a.prediction


def _qa(a: Answered) -> AnswerPrediction:
    return a.prediction


OUTPUTS: tuple[OutputSpec, ...] = (  # a (sequence) classifier's
    OutputSpec("label", "BYTES", False, lambda a: [_p(a).label]),  # the most probable
    OutputSpec("score", "FP32", False, lambda a: [_p(a).score]),  # its probability
    # Every label's probability, in the order of the model metadata's `labels`.
    OutputSpec("probabilities", "FP32", True, lambda a: list(_p(a).scores.values())),
    # Whether each label is in the answer, in the same order: a multi-label version's
    # labels at or above their thresholds; for a single-label one, the most probable.
    OutputSpec("labels", "BOOL", True, lambda a: _chosen(_p(a))),
    # What POST /feedback takes, signed as /predict's (empty if none was issued).
    OutputSpec("prediction_id", "BYTES", False, lambda a: [a.prediction_id or ""]),
)
# A token classifier's: a text has any number of entities, and a tensor is rectangular.
# Padded per-field tensors ([n, max_entities] labels, starts, ...) would need a count
# tensor and a pad value to be read; one JSON array per text, the entities exactly as
# /predict's, reads with one json.loads in any client.
TOKEN_OUTPUTS: tuple[OutputSpec, ...] = (
    OutputSpec("entities", "BYTES", False, lambda a: [_entities_json(_p(a))], JSON_TYPE),
)
QA_OUTPUTS: tuple[OutputSpec, ...] = (  # a question answerer's: one span per question
    OutputSpec("answer", "BYTES", False, lambda a: [_qa(a).answer.text]),
    # Character offsets into the context as sent: context[start:end] is the answer.
    OutputSpec("start", "INT64", False, lambda a: [_qa(a).answer.start]),
    OutputSpec("end", "INT64", False, lambda a: [_qa(a).answer.end]),
    OutputSpec("score", "FP32", False, lambda a: [_qa(a).answer.score]),
)


def _chosen(p: Prediction) -> list[Value]:
    answer = set(p.labels) if p.labels is not None else {p.label}
    return [label in answer for label in p.scores]


def _entities_json(p: Prediction) -> str:
    """A text's entities, as /predict answers them (label, text, start, end, score)."""
    return json.dumps([asdict(e) for e in p.entities or []], ensure_ascii=False,
                      separators=(",", ":"), allow_nan=False)


OUTPUT_NAMES: tuple[str, ...] = tuple(spec.name for spec in OUTPUTS)
# Every output some task has: a request may name these before its version is chosen.
ALL_OUTPUT_NAMES: tuple[str, ...] = tuple(dict.fromkeys(
    spec.name for table in (OUTPUTS, TOKEN_OUTPUTS, QA_OUTPUTS) for spec in table))

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
    ref: ModelRef, specs: Sequence[OutputSpec], answered: list[Answered],
    batch_shape: list[int], outputs: list[Requested], request_id: str | None,
) -> tuple[bytes, dict[str, str]]:
    """The answer's body and headers: the `$inference_response` JSON, then the binary
    data of the outputs asked for as such (if any). `outputs` are names of `specs`."""
    scores = getattr(answered[0].prediction, "scores", None) if answered else None
    n_labels = len(scores) if scores is not None else 0
    by_name = {spec.name: spec for spec in specs}
    tensors, buffers = [], []
    for wanted in outputs:
        spec = by_name[wanted.name]
        values = [v for a in answered for v in spec.values(a)]  # row-major
        tensor: dict[str, Any] = {"name": spec.name, "datatype": spec.datatype,
                                  "shape": spec.shape(batch_shape, n_labels)}
        parameters: dict[str, Any] = {}
        if spec.content_type is not None:
            parameters["content_type"] = spec.content_type
        if wanted.binary:
            raw = tensor_bytes(spec.datatype, values)
            parameters["binary_data_size"] = len(raw)
            buffers.append(raw)
        else:
            tensor["data"] = values
        if parameters:
            tensor["parameters"] = parameters
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
