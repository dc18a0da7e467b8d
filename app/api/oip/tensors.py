"""An infer request of the Open Inference Protocol, decoded: the texts of its one BYTES
input, the batch shape they came in, and the outputs to return.

A request is JSON, or JSON followed by binary tensor data (the binary tensor data
extension, tritonclient's default): then the `Inference-Header-Content-Length` header
gives the JSON's length, and an input's `parameters.binary_data_size` the length of its
data, a BYTES tensor serialized as each element's length (4 bytes, little-endian) and
bytes. Every refusal is `BadInput` (400 under /v2) with a message that says what to fix.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ...errors import BadInput
from .outputs import OUTPUT_NAMES, Requested
from .schemas import (
    INPUT_DATATYPE,
    INPUT_NAME,
    UNSUPPORTED_PARAMETERS,
    InferenceRequest,
    RequestInput,
)

_EXPECTED = f"the model takes one {INPUT_DATATYPE} input {INPUT_NAME!r} of shape [n] or [n, 1]"


@dataclass(frozen=True)
class Decoded:
    texts: list[str]
    batch_shape: list[int]  # the input's shape: [n] or [n, 1]
    outputs: list[Requested]
    id: str | None


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
    tensor = _the_input(request.inputs)
    texts = _texts(tensor, binary)
    return Decoded(texts, list(tensor.shape), requested_outputs(request), request.id)


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


def _the_input(inputs: list[RequestInput]) -> RequestInput:
    names = [tensor.name for tensor in inputs]
    unknown = sorted({name for name in names if name != INPUT_NAME})
    if unknown:
        raise BadInput(f"unknown input {', '.join(map(repr, unknown))}: {_EXPECTED}")
    if not names:
        raise BadInput(f"missing input {INPUT_NAME!r}: {_EXPECTED}")
    if len(names) > 1:
        raise BadInput(f"input {INPUT_NAME!r} is given {len(names)} times: {_EXPECTED}")
    tensor = inputs[0]
    if tensor.datatype != INPUT_DATATYPE:
        raise BadInput(f"input {INPUT_NAME!r} has datatype {tensor.datatype!r}: {_EXPECTED}")
    shape = tensor.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise BadInput(f"input {INPUT_NAME!r} has shape {shape}: {_EXPECTED}")
    return tensor


def _texts(tensor: RequestInput, binary: bytes | None) -> list[str]:
    params = tensor.parameters
    _refuse_unsupported(params.model_extra or {} if params else {}, f"input {INPUT_NAME!r}")
    size = params.binary_data_size if params else None
    if size is not None:
        if tensor.data is not None:
            raise BadInput(f"input {INPUT_NAME!r} has both 'data' and binary_data_size")
        if binary is None or len(binary) != size:
            got = "none" if binary is None else f"{len(binary)} bytes"
            raise BadInput(
                f"input {INPUT_NAME!r} announces {size} bytes of binary data; the request "
                f"has {got} after its JSON (Inference-Header-Content-Length gives its length)"
            )
        texts = _deserialize_bytes(binary)
    elif tensor.data is None:
        raise BadInput(f"input {INPUT_NAME!r} has no 'data'")
    elif binary:
        raise BadInput("binary data follows the JSON but no input has binary_data_size")
    else:
        texts = _flatten(tensor.data)
    if len(texts) != tensor.shape[0]:
        raise BadInput(
            f"input {INPUT_NAME!r} has shape {tensor.shape} but holds {len(texts)} "
            f"element(s): send one text per row"
        )
    if not texts:
        raise BadInput(f"input {INPUT_NAME!r} holds no text: send at least one")
    return texts


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


def _deserialize_bytes(raw: bytes) -> list[str]:
    texts, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadInput("binary data of input 'text' ends inside an element's length")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BadInput(f"binary data of input 'text' ends inside element {len(texts)}")
        try:
            texts.append(raw[offset:offset + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise BadInput(f"element {len(texts)} of input 'text' is not UTF-8") from None
        offset += length
    return texts


def requested_outputs(request: InferenceRequest) -> list[Requested]:
    """The outputs to return, each once, in the order asked (all of them when none is
    named), and whether each goes as binary data: its own `binary_data` if given, else
    the request's `binary_data_output`, else not."""
    default = bool(request.parameters and request.parameters.binary_data_output)
    if not request.outputs:
        return [Requested(name, default) for name in OUTPUT_NAMES]
    chosen: dict[str, Requested] = {}
    for output in request.outputs:
        if output.name not in OUTPUT_NAMES:
            raise BadInput(
                f"unknown output {output.name!r}: the outputs are {', '.join(OUTPUT_NAMES)}"
            )
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
