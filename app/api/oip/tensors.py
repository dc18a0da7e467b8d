"""An infer request of the Open Inference Protocol, decoded: the texts of its BYTES
inputs (`text`, or `question` and `context`), the batch shape they came in, and the
outputs asked for.

A request is JSON, or JSON followed by binary tensor data (the binary tensor data
extension, tritonclient's default): then the `Inference-Header-Content-Length` header
gives the JSON's length, and an input's `parameters.binary_data_size` the length of its
data (inputs' data follow in input order), a BYTES tensor serialized as each element's
length (4 bytes, little-endian) and bytes. Every refusal is `BadInput` (400 under /v2)
with a message that says what to fix. Which input set and outputs the chosen version's
task takes is `tasks.TaskCheck`'s to say, once the version is known.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ...errors import BadInput
from .outputs import ALL_OUTPUT_NAMES, Requested
from .schemas import (
    CONTEXT_NAME,
    INPUT_DATATYPE,
    INPUT_NAME,
    INPUT_NAMES,
    QUESTION_NAME,
    UNSUPPORTED_PARAMETERS,
    InferenceRequest,
    RequestInput,
)

_EXPECTED = (f"the model takes one {INPUT_DATATYPE} input {INPUT_NAME!r} of shape [n] or "
             f"[n, 1] (a classifier), or {QUESTION_NAME!r} and {CONTEXT_NAME!r} of one "
             "such shape (a question answerer)")
QUESTION_INPUTS = (QUESTION_NAME, CONTEXT_NAME)


@dataclass(frozen=True)
class Decoded:
    inputs: dict[str, list[str]]  # input name -> its texts: `text`, or question and context
    batch_shape: list[int]  # the inputs' shape: [n] or [n, 1]
    outputs: list[Requested] | None  # None: none named, every output of the task
    id: str | None
    binary_output: bool = False  # the request's `binary_data_output`

    @property
    def texts(self) -> list[str]:
        """The texts of input `text` (empty for a question request)."""
        return self.inputs.get(INPUT_NAME, [])

    @property
    def asks_questions(self) -> bool:
        return INPUT_NAME not in self.inputs

    def wanted(self, names: tuple[str, ...]) -> list[Requested]:
        """The outputs to return when the version's outputs are `names`."""
        if self.outputs is not None:
            return self.outputs
        return [Requested(name, self.binary_output) for name in names]


def decode_request(
    body: bytes, header_length: str | None, content_encoding: str | None = None,
) -> Decoded:
    """Decode an infer request's body, given its `Inference-Header-Content-Length` and
    `Content-Encoding` headers (compressed bodies are refused)."""
    if content_encoding is not None and content_encoding.strip().lower() != "identity":
        raise BadInput(f"Content-Encoding {content_encoding!r} is not supported: send the "
                       "request uncompressed")
    head, binary = _split(body, header_length)
    try:
        request = InferenceRequest.model_validate_json(head)
    except ValidationError as exc:
        raise BadInput(_describe(exc)) from None
    tensors = _the_inputs(request.inputs)
    texts = _all_texts(tensors, binary)
    default = bool(request.parameters and request.parameters.binary_data_output)
    return Decoded(texts, list(tensors[0].shape), requested_outputs(request), request.id,
                   default)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes | None]:
    if header_length is None:
        return body, None
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 <= length <= len(body):
        raise BadInput(
            f"Inference-Header-Content-Length is {header_length!r}: it must be the length "
            f"of the JSON at the start of the body (at most {len(body)} bytes)"
        )
    return body[:length], body[length:]


def _describe(exc: ValidationError) -> str:
    errors = exc.errors()
    if any(e["type"] == "json_invalid" for e in errors):
        return "the request is not valid JSON"
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def _the_inputs(inputs: list[RequestInput]) -> list[RequestInput]:
    """The inputs, checked: one known set, each once, BYTES, of one shape [n] or [n, 1]."""
    names = [tensor.name for tensor in inputs]
    unknown = sorted({name for name in names if name not in INPUT_NAMES})
    if unknown:
        raise BadInput(f"unknown input {', '.join(map(repr, unknown))}: {_EXPECTED}")
    for name in dict.fromkeys(names):
        if names.count(name) > 1:
            raise BadInput(f"input {name!r} is given {names.count(name)} times: {_EXPECTED}")
    if INPUT_NAME in names and len(names) > 1:
        raise BadInput(f"input {INPUT_NAME!r} goes alone: {_EXPECTED}")
    expected = QUESTION_INPUTS if names and INPUT_NAME not in names else (INPUT_NAME,)
    for name in expected:
        if name not in names:
            raise BadInput(f"missing input {name!r}: {_EXPECTED}")
    for tensor in inputs:
        if tensor.datatype != INPUT_DATATYPE:
            raise BadInput(f"input {tensor.name!r} has datatype {tensor.datatype!r}: "
                           f"{_EXPECTED}")
        shape = tensor.shape
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise BadInput(f"input {tensor.name!r} has shape {shape}: {_EXPECTED}")
    shapes = {tensor.name: tensor.shape for tensor in inputs}
    if len({tuple(shape) for shape in shapes.values()}) > 1:
        raise BadInput(f"inputs {QUESTION_NAME!r} and {CONTEXT_NAME!r} have shapes "
                       f"{shapes[QUESTION_NAME]} and {shapes[CONTEXT_NAME]}: send one "
                       "context per question, both of one shape")
    return inputs


def _all_texts(tensors: list[RequestInput], binary: bytes | None) -> dict[str, list[str]]:
    """Each input's texts; binary data is shared out in input order."""
    texts, rest = {}, binary
    for tensor in tensors:
        texts[tensor.name], rest = _texts(tensor, rest)
    if rest:
        announced = any(t.parameters and t.parameters.binary_data_size is not None
                        for t in tensors)
        if not announced:
            raise BadInput("binary data follows the JSON but no input has binary_data_size")
        raise BadInput(f"{len(rest)} bytes of binary data follow the inputs' announced "
                       "binary_data_size: send exactly what they announce")
    return texts


def _texts(tensor: RequestInput, binary: bytes | None) -> tuple[list[str], bytes | None]:
    """The input's texts, and the binary data left for the next inputs."""
    name, params = tensor.name, tensor.parameters
    _refuse_unsupported(params.model_extra or {} if params else {}, f"input {name!r}")
    size = params.binary_data_size if params else None
    if size is not None:
        if tensor.data is not None:
            raise BadInput(f"input {name!r} has both 'data' and binary_data_size")
        if binary is None or len(binary) < size:
            got = "none" if binary is None else f"{len(binary)} bytes"
            raise BadInput(
                f"input {name!r} announces {size} bytes of binary data; the request has "
                f"{got} left after its JSON (Inference-Header-Content-Length gives its "
                "length)"
            )
        texts, binary = _deserialize_bytes(binary[:size], name), binary[size:]
    elif tensor.data is None:
        raise BadInput(f"input {name!r} has no 'data'")
    else:
        texts = _flatten(tensor.data)
    if len(texts) != tensor.shape[0]:
        raise BadInput(
            f"input {name!r} has shape {tensor.shape} but holds {len(texts)} "
            f"element(s): send one text per row"
        )
    if not texts:
        raise BadInput(f"input {name!r} holds no text: send at least one")
    return texts, binary


def _flatten(data: list[Any]) -> list[str]:
    texts = []
    for i, item in enumerate(data):
        if isinstance(item, list):
            if len(item) != 1:
                raise BadInput(
                    f"data[{i}] holds {len(item)} elements: nest one text per row "
                    "([[t1], [t2], ...] for shape [n, 1]) or send a flat list"
                )
            item = item[0]
        if not isinstance(item, str):
            raise BadInput(f"data[{i}] is not a string: the elements of a BYTES tensor "
                           "are texts")
        texts.append(item)
    return texts


def _deserialize_bytes(raw: bytes, name: str) -> list[str]:
    texts, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadInput(f"binary data of input {name!r} ends inside an element's length")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BadInput(f"binary data of input {name!r} ends inside element {len(texts)}")
        try:
            texts.append(raw[offset:offset + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise BadInput(f"element {len(texts)} of input {name!r} is not UTF-8") from None
        offset += length
    return texts


def requested_outputs(request: InferenceRequest) -> list[Requested] | None:
    """The outputs named, each once, in the order asked (None when none is named: every
    output of the version's task), and whether each goes as binary data: its own
    `binary_data` if given, else the request's `binary_data_output`, else not."""
    default = bool(request.parameters and request.parameters.binary_data_output)
    if not request.outputs:
        return None
    chosen: dict[str, Requested] = {}
    for output in request.outputs:
        if output.name not in ALL_OUTPUT_NAMES:
            raise BadInput(f"unknown output {output.name!r}: the outputs are "
                           f"{', '.join(ALL_OUTPUT_NAMES)} (which a version has: its "
                           "model metadata)")
        params = output.parameters
        _refuse_unsupported(params.model_extra or {} if params else {},
                            f"output {output.name!r}")
        binary = default if params is None or params.binary_data is None else params.binary_data
        chosen.setdefault(output.name, Requested(output.name, binary))
    return list(chosen.values())


def _refuse_unsupported(parameters: dict[str, object], where: str) -> None:
    for name in parameters:
        if name in UNSUPPORTED_PARAMETERS:
            raise BadInput(
                f"{where}: parameter {name!r} needs {UNSUPPORTED_PARAMETERS[name]}, "
                "which this server does not support"
            )
