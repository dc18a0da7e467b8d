"""Which tensors a version takes and gives on V2 infer, by its manifest's task.

A classifier and a token classifier take one BYTES input `text`; a question answerer
takes `question` and `context`. Each gives its own outputs (`outputs.py`), which its
model metadata lists. A request's inputs are decoded before the version is chosen
(routing picks it); `TaskCheck` then refuses, before anything is queued, a request whose
inputs or named outputs are not the chosen version's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inference.entities import OUTSIDE

from ...errors import BadInput
from ...models import LoadedVersion
from ...question_answerer import QA_TASK
from ...token_classifier import TOKEN_TASK
from .outputs import OUTPUTS, QA_OUTPUTS, TOKEN_OUTPUTS, OutputSpec, Requested
from .schemas import CONTEXT_NAME, INPUT_DATATYPE, INPUT_NAME, QUESTION_NAME
from .tensors import Decoded


@dataclass(frozen=True)
class TaskTensors:
    kind: str  # what a version of the task is, for messages
    inputs: tuple[str, ...]  # BYTES tensors of one shape, [n] or [n, 1]
    outputs: tuple[OutputSpec, ...]

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.outputs)

    def metadata(self, labels: list[str]) -> dict[str, Any]:
        """The model metadata's `inputs`, `outputs` and `labels`, from the version's
        labels (a token classifier's are its IOB2 tags: `labels` is their entity types)."""
        if self.outputs is TOKEN_OUTPUTS:
            labels = sorted({tag.partition("-")[2] for tag in labels if tag != OUTSIDE})
        elif self.outputs is QA_OUTPUTS:
            labels = []  # "start", "end": the model's logits, not an answer's labels
        return {
            "inputs": [{"name": name, "datatype": INPUT_DATATYPE, "shape": [-1]}
                       for name in self.inputs],
            "outputs": [spec.metadata(len(labels)) for spec in self.outputs],
            "labels": labels,
        }


CLASSIFIER = TaskTensors("text classifier", (INPUT_NAME,), OUTPUTS)
TOKEN_CLASSIFIER = TaskTensors("token classifier (named entities)", (INPUT_NAME,),
                               TOKEN_OUTPUTS)
QUESTION_ANSWERER = TaskTensors("question answerer", (QUESTION_NAME, CONTEXT_NAME),
                                QA_OUTPUTS)


def tensors_for(task: str) -> TaskTensors:
    """A task's tensors; any other task is served as a classifier (`predictor_class`)."""
    return {TOKEN_TASK: TOKEN_CLASSIFIER, QA_TASK: QUESTION_ANSWERER}.get(task, CLASSIFIER)


class TaskCheck:
    """`InferencePath.classify`'s check: the chosen version must take the request's
    inputs and have the outputs it names (400 saying what to send otherwise). Keeps the
    version's tensors and the outputs to answer with."""

    def __init__(self, decoded: Decoded) -> None:
        self.decoded = decoded
        self.tensors = CLASSIFIER
        self.outputs: list[Requested] = []

    def __call__(self, loaded: LoadedVersion) -> None:
        tensors = tensors_for(loaded.manifest.task)
        given = set(self.decoded.inputs)
        if given != set(tensors.inputs):
            wanted = " and ".join(repr(name) for name in tensors.inputs)
            raise BadInput(f"model version {loaded.ref} is a {tensors.kind}: it takes the "
                           f"{INPUT_DATATYPE} input(s) {wanted}, not "
                           f"{' and '.join(map(repr, sorted(given)))}")
        outputs = self.decoded.wanted(tensors.output_names)
        unknown = [o.name for o in outputs if o.name not in tensors.output_names]
        if unknown:
            raise BadInput(f"model version {loaded.ref} is a {tensors.kind}: it has no "
                           f"output {', '.join(map(repr, unknown))}; its outputs are "
                           f"{', '.join(tensors.output_names)}")
        self.tensors, self.outputs = tensors, outputs
