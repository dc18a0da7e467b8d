"""Bodies of the Open Inference Protocol (KServe V2) REST API as this service serves it.

The request models check a body's structure (pydantic); the protocol's own rules (the
BYTES inputs: `text`, or `question` and `context`; their shapes against their data,
known outputs, the binary extension) are `tensors.decode_request`'s, whose messages say
how to fix a request. The published schema says exactly what a JSON request may hold, no
more and no less, as the rest of the API's does: the inputs' names and datatype, element
counts that match the shapes (one `anyOf` branch per allowed count, written by
`publish_oip_schema` from the configured limits), non-blank texts within their sizes,
and no parameter this server refuses. Which of the two input sets a version takes (its
task) is known only once the version is chosen, after the schema.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from .outputs import ALL_OUTPUT_NAMES

INPUT_NAME = "text"  # a classifier's or a token classifier's one input
QUESTION_NAME, CONTEXT_NAME = "question", "context"  # a question answerer's two
INPUT_NAMES = (INPUT_NAME, QUESTION_NAME, CONTEXT_NAME)
INPUT_DATATYPE = "BYTES"
# Parameters of the extensions this server does not implement: refused (400) by name.
UNSUPPORTED_PARAMETERS = {
    "classification": "the classification extension",
    "shared_memory_region": "shared memory",
    "shared_memory_byte_size": "shared memory",
    "shared_memory_offset": "shared memory",
}
# In a JSON request an input carries `data`; `binary_data_size` belongs to a binary one.
_NOT_IN_JSON_INPUTS = [*UNSUPPORTED_PARAMETERS, "binary_data_size"]

# A text must hold a character other than whitespace, where whitespace is what the
# handlers strip (Python's str.isspace), spelled out: regex engines disagree on `\s`
# (schemathesis reads it as ASCII whitespace only).
NOT_BLANK = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
TEXT_SCHEMA: dict[str, Any] = {"type": "string", "pattern": NOT_BLANK}

# A `$parameter` value: a string, a number or a boolean.
ParameterValue = (
    StrictBool | StrictInt | Annotated[float, Field(strict=True, allow_inf_nan=False)]
    | StrictStr
)
Dimension = Annotated[int, Field(strict=True, ge=0)]


def _refuse_names(names: list[str]) -> dict[str, Any]:
    return {"propertyNames": {"not": {"enum": names}}}


class _Parameters(BaseModel):
    """`$parameters`: names to scalar values; the ones this server reads are typed."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, ParameterValue]


class RequestParameters(_Parameters):
    binary_data_output: StrictBool | None = Field(
        default=None, description="every output as binary data unless it says otherwise")


class InputParameters(_Parameters):
    model_config = ConfigDict(json_schema_extra=_refuse_names(_NOT_IN_JSON_INPUTS))

    binary_data_size: Dimension | None = None


class OutputParameters(_Parameters):
    model_config = ConfigDict(json_schema_extra=_refuse_names(list(UNSUPPORTED_PARAMETERS)))

    binary_data: StrictBool | None = Field(
        default=None, description="this output as binary data (binary tensor data extension)")


def _data_required(schema: dict[str, Any]) -> None:
    """`data` may be absent only from a binary request, which the schema does not cover."""
    schema["required"] = [*schema.get("required", []), "data"]
    schema["properties"]["data"] = {
        "type": "array",
        "description": "the texts, flat ([n]) or nested ([[t], ...] for shape [n, 1])",
        "items": {"anyOf": [dict(TEXT_SCHEMA),
                            {"type": "array", "items": dict(TEXT_SCHEMA),
                             "minItems": 1, "maxItems": 1}]},
    }


class RequestInput(BaseModel):
    """`$request_input`: a BYTES tensor of texts: `text` (texts to classify), or
    `question` and `context` (one context per question)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_data_required)

    name: StrictStr = Field(json_schema_extra={"enum": list(INPUT_NAMES)})
    shape: list[Dimension] = Field(description="[n] or [n, 1]: n texts")
    datatype: StrictStr = Field(json_schema_extra={"enum": [INPUT_DATATYPE]})
    parameters: InputParameters | None = None
    data: list[Any] | None = None  # its elements: tensors._flatten


class RequestOutput(BaseModel):
    """`$request_output`: an output to return, and how."""

    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(json_schema_extra={"enum": list(ALL_OUTPUT_NAMES)})
    parameters: OutputParameters | None = None


class InferenceRequest(BaseModel):
    """`$inference_request`. Without `outputs`, every output of the version's task is
    returned."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "id": "42",
            "inputs": [{"name": INPUT_NAME, "shape": [2], "datatype": INPUT_DATATYPE,
                        "data": ["a wonderful film", "dull and boring"]}],
            "outputs": [{"name": "label"}, {"name": "probabilities"}],
        }]},
    )

    id: StrictStr | None = None
    parameters: RequestParameters | None = None
    inputs: list[RequestInput] = Field(json_schema_extra={"minItems": 1, "maxItems": 2})
    outputs: list[RequestOutput] | None = None


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    # As in MLServer's metadata: `content_type` says how to read a BYTES tensor's
    # elements (`application/json`: each is a JSON document). Absent for plain texts.
    parameters: dict[str, ParameterValue] | None = None


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(BaseModel):
    """`$metadata_model_response`, and `labels`: a classifier's labels (the columns of
    `probabilities`), a token classifier's entity types; empty for a question answerer."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    labels: list[str]


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, ParameterValue] | None = None
    data: list[StrictBool | StrictInt | float | str] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


class OipError(BaseModel):
    """The protocol's error object."""

    error: str


_OIP_ERRORS = {
    400: "invalid request: the message says what to fix",
    404: "unknown model or version, or the version is not loaded",
    413: "request body larger than APP_MAX_BODY_BYTES",
    503: "overloaded, or the model or version is being loaded or unloaded or has no "
    "routable version; see Retry-After",
    504: "no answer within APP_REQUEST_TIMEOUT_S",
}


def oip_error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a V2 route's error statuses, all with the `OipError` body;
    `descriptions` override the defaults by `_<code>`."""
    return {
        code: {"model": OipError,
               "description": descriptions.get(f"_{code}", _OIP_ERRORS[code])}
        for code in codes
    }


def infer_request_body() -> dict[str, Any]:
    """The infer routes' `requestBody` (their handler reads the body itself, to take
    binary data after the JSON too)."""
    ref = {"$ref": "#/components/schemas/InferenceRequest"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def publish_oip_schema(
    openapi: dict[str, Any], max_texts: int, max_text_chars: int,
    max_context_chars: int | None = None,
) -> None:
    """Add the infer request's schemas to an OpenAPI schema (in place), with the
    service's limits: up to `max_texts` texts (or questions) of up to `max_text_chars`
    characters, contexts of up to `max_context_chars` (default: `max_text_chars`), as
    many elements in `data` as the shape says, and `text` alone or `question` and
    `context` of one shape."""
    schema = InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = openapi.setdefault("components", {}).setdefault("schemas", {})
    components.update(schema.pop("$defs"))
    components["InferenceRequest"] = schema
    limits = {INPUT_NAME: max_text_chars, QUESTION_NAME: max_text_chars,
              CONTEXT_NAME: max_context_chars or max_text_chars}
    request_input = components["RequestInput"]
    data = request_input["properties"]["data"]
    flat, nested = data["items"]["anyOf"]
    flat["maxLength"] = nested["items"]["maxLength"] = max(limits.values())
    # JSON Schema cannot compare two fields: one branch per count n, shape [n] or [n, 1].
    request_input["anyOf"] = [
        {"properties": {"shape": {"enum": [[n], [n, 1]]},
                        "data": {"minItems": n, "maxItems": n}}}
        for n in range(1, max_texts + 1)
    ]
    request_input["allOf"] = [{"anyOf": [_sized(name, limit) for name, limit in limits.items()]}]
    schema["anyOf"] = [_text_inputs(), _question_inputs(max_texts)]
    # Under /v2 an invalid request is 400 (app.errors.error_answer), never FastAPI's 422.
    for route, operations in openapi["paths"].items():
        if route.startswith("/v2"):
            for operation in operations.values():
                operation["responses"].pop("422", None)


def _sized(name: str, max_chars: int) -> dict[str, Any]:
    """An input named `name` whose texts have at most `max_chars` characters."""
    text = {"type": "string", "maxLength": max_chars}
    row = {"type": "array", "items": {"maxLength": max_chars}}
    return {"properties": {"name": {"const": name},
                           "data": {"items": {"anyOf": [text, row]}}}}


def _text_inputs() -> dict[str, Any]:
    """`inputs` of a text request: `text` alone."""
    named = {"properties": {"name": {"const": INPUT_NAME}}}
    return {"properties": {"inputs": {"maxItems": 1, "items": named}}}


def _question_inputs(max_texts: int) -> dict[str, Any]:
    """`inputs` of a question request: `question` and `context` once each, of one shape
    (a branch per shape: JSON Schema cannot compare two items)."""
    has = [{"contains": {"properties": {"name": {"const": name}}, "required": ["name"]}}
           for name in (QUESTION_NAME, CONTEXT_NAME)]
    return {
        "properties": {"inputs": {"minItems": 2, "allOf": has}},
        "anyOf": [{"properties": {"inputs": {"items": {"properties": {"shape": {"const": s}}}}}}
                  for n in range(1, max_texts + 1) for s in ([n], [n, 1])],
    }
