"""Bodies of the Open Inference Protocol (KServe V2) REST API as this service serves it.

The request models check a body's structure (pydantic); the protocol's own rules (one
BYTES input `text`, its shape against its data, known outputs, the binary extension)
are `tensors.decode_request`'s, whose messages say how to fix a request. The published
schema says exactly what a JSON request may hold, no more and no less, as the rest of
the API's does: the input's name and datatype, an element count that matches the shape
(one `anyOf` branch per allowed count, written by `publish_oip_schema` from the
configured limit), non-blank texts, and no parameter this server refuses.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from .outputs import OUTPUT_NAMES

INPUT_NAME = "text"
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
    """`$request_input`: the texts to classify, one BYTES tensor named `text`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_data_required)

    name: StrictStr = Field(json_schema_extra={"enum": [INPUT_NAME]})
    shape: list[Dimension] = Field(description="[n] or [n, 1]: n texts")
    datatype: StrictStr = Field(json_schema_extra={"enum": [INPUT_DATATYPE]})
    parameters: InputParameters | None = None
    data: list[Any] | None = None  # its elements: tensors._flatten


class RequestOutput(BaseModel):
    """`$request_output`: an output to return, and how."""

    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(json_schema_extra={"enum": list(OUTPUT_NAMES)})
    parameters: OutputParameters | None = None


class InferenceRequest(BaseModel):
    """`$inference_request`. Without `outputs`, every output is returned."""

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
    inputs: list[RequestInput] = Field(json_schema_extra={"minItems": 1, "maxItems": 1})
    outputs: list[RequestOutput] | None = None


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(BaseModel):
    """`$metadata_model_response`, and `labels`: the columns of `probabilities`."""

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
    data: list[str | float] | None = None


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


def publish_oip_schema(openapi: dict[str, Any], max_texts: int, max_text_chars: int) -> None:
    """Add the infer request's schemas to an OpenAPI schema (in place), with the
    service's limits: up to `max_texts` texts of up to `max_text_chars` characters, and
    as many elements in `data` as the shape says."""
    schema = InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = openapi.setdefault("components", {}).setdefault("schemas", {})
    components.update(schema.pop("$defs"))
    components["InferenceRequest"] = schema
    data = components["RequestInput"]["properties"]["data"]
    flat, nested = data["items"]["anyOf"]
    flat["maxLength"] = nested["items"]["maxLength"] = max_text_chars
    # JSON Schema cannot compare two fields: one branch per count n, shape [n] or [n, 1].
    components["RequestInput"]["anyOf"] = [
        {"properties": {"shape": {"enum": [[n], [n, 1]]},
                        "data": {"minItems": n, "maxItems": n}}}
        for n in range(1, max_texts + 1)
    ]
    # Under /v2 an invalid request is 400 (app.errors.error_answer), never FastAPI's 422.
    for route, operations in openapi["paths"].items():
        if route.startswith("/v2"):
            for operation in operations.values():
                operation["responses"].pop("422", None)
