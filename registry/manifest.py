"""The registry's manifest schema, shared by `compression` (writer) and `app` (reader).

A registry version lives in `models/<name>/<version>/` and holds the ONNX model, the
tokenizer files and `manifest.json`. This module must stay free of torch and
transformers: the serving image installs only pydantic, onnxruntime and tokenizers.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
ROUTES_FILE = "routes.json"

# Names and versions become folder names: a strict pattern makes path traversal
# impossible by construction (no "/", no "..", no leading dot). The pattern is a plain
# regular language (no look-ahead), so an OpenAPI schema can publish it as it is and
# schema-driven clients generate only names the API accepts.
SAFE_NAME_PATTERN = r"^[A-Za-z0-9](?:\.?[A-Za-z0-9_-])*\.?$"
SAFE_NAME_MAX_LENGTH = 64
_SAFE_NAME = re.compile(SAFE_NAME_PATTERN)
# How a version's labels are answered: "single-label" (softmax; the most probable label)
# or "multi-label" (a sigmoid per label; each label at or above its threshold).
LABEL_SETUPS = ("single-label", "multi-label")
LabelSetup = Literal["single-label", "multi-label"]
# Fields added after manifests existed: written only when they differ from the default,
# so a single-label manifest reads as it did (and older readers still accept it).
_ADDED_LATER = {"label_setup": "single-label", "thresholds": None, "budget": None}
# Route weights are relative; a bound keeps their sum finite (two weights of 1e308 added
# up to infinity and sent all traffic to one version).
MAX_ROUTE_WEIGHT = 1_000_000.0


def check_safe_name(value: str, what: str = "name") -> str:
    """Return `value` if it is a safe registry folder name, else raise ValueError."""
    if (not isinstance(value, str) or len(value) > SAFE_NAME_MAX_LENGTH
            or not _SAFE_NAME.match(value)):
        raise ValueError(
            f"invalid model {what} {value!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


ModelName = Annotated[str, AfterValidator(lambda v: check_safe_name(v, "name"))]
VersionName = Annotated[str, AfterValidator(lambda v: check_safe_name(v, "version"))]


class ModelRef(BaseModel):
    """Which model: a (name, version) pair that can only point inside the registry."""

    model_config = ConfigDict(frozen=True)

    name: ModelName
    version: VersionName

    def path(self, root: Path) -> Path:
        return Path(root) / self.name / self.version

    def __str__(self) -> str:
        return f"{self.name}/{self.version}"


class FileEntry(BaseModel):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Lineage(BaseModel):
    """Where an artifact came from, so any version can be traced and reproduced."""

    method: str  # e.g. "finetune", "distill+export+quantize"
    parent: str | None = None  # the model this one was made from (path, hub id or ref)
    teacher: str | None = None
    dataset: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    code_version: str = "unknown"


class BudgetRecord(BaseModel):
    """How the version met the accuracy budget it was published under."""

    metric: str  # the main dev metric, e.g. "dev_accuracy"
    max_drop: float  # the budget: points below the teacher
    drop: float  # this version's points below the teacher (negative: above)
    teacher: float  # the teacher's metric, measured in the same evaluation
    chosen_by: str  # "budget:smallest", "budget:fastest" or "listed"
    forced: bool = False  # listed and published over budget with force: true


class Manifest(BaseModel):
    """`manifest.json` of one registry version."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    name: ModelName
    version: VersionName
    task: str = "text-classification"
    labels: list[str] = Field(min_length=2)
    label_setup: LabelSetup = "single-label"
    # Multi-label only: the decision threshold on each label's sigmoid probability, in
    # the order of `labels`, each in (0, 1) (chosen on dev for the label's best F1).
    thresholds: list[float] | None = None
    max_length: int = Field(default=128, ge=8, le=8192)
    model_file: str = "model.onnx"
    tokenizer_file: str = "tokenizer.json"
    files: dict[str, FileEntry] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    budget: BudgetRecord | None = None  # absent in versions published before budgets
    lineage: Lineage

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"labels must be unique, got {v}")
        return v

    @field_validator("thresholds")
    @classmethod
    def _thresholds_inside(cls, v: list[float] | None) -> list[float] | None:
        for i, threshold in enumerate(v or []):
            if not 0 < threshold < 1:  # NaN fails this too
                raise ValueError(f"threshold {i} is {threshold}: each must be in (0, 1)")
        return v

    @model_validator(mode="after")
    def _schema_known(self) -> Manifest:
        if self.schema_version > SCHEMA_VERSION:
            raise ValueError(
                f"manifest schema {self.schema_version} is newer than this code "
                f"understands ({SCHEMA_VERSION}): upgrade the package"
            )
        return self

    @model_validator(mode="after")
    def _thresholds_fit_the_setup(self) -> Manifest:
        if self.label_setup == "multi-label":
            if self.thresholds is None or len(self.thresholds) != len(self.labels):
                found = "none" if self.thresholds is None else len(self.thresholds)
                raise ValueError(f"a multi-label manifest needs one threshold per label: "
                                 f"{len(self.labels)} labels, {found} thresholds")
        elif self.thresholds is not None:
            raise ValueError("thresholds are for label_setup multi-label only")
        return self

    @property
    def label_thresholds(self) -> dict[str, float]:
        """Each label's threshold (multi-label), or {}."""
        return dict(zip(self.labels, self.thresholds or [], strict=False))

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name=self.name, version=self.version)

    @classmethod
    def read(cls, version_dir: Path) -> Manifest:
        return cls.model_validate_json((Path(version_dir) / MANIFEST_FILE).read_text())

    def write(self, version_dir: Path) -> Path:
        path = Path(version_dir) / MANIFEST_FILE
        default = {k for k, v in _ADDED_LATER.items() if getattr(self, k) == v}
        path.write_text(self.model_dump_json(indent=2, exclude=default) + "\n")
        return path


class ShadowRoute(BaseModel):
    """A version that also answers a sampled `fraction` of a model's routed requests, off
    the response's path, to be compared with the routed versions: `{"version": "6",
    "fraction": 0.25}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: VersionName
    fraction: float = Field(ge=0, le=1, allow_inf_nan=False)


class RoutingTable(BaseModel):
    """`models/routes.json`: per model name, traffic weights over its versions, and
    optionally a shadow version.

    Example: {"sst2-sentiment": {"1": 90, "2": 10}}. A model with a shadow is written as
    {"sst2-sentiment": {"weights": {"1": 90, "2": 10}, "shadow": {"version": "3",
    "fraction": 0.25}}}; a file without shadows reads and writes as it always did, so
    older readers still accept it (a weight is a number, never an object: the two forms
    cannot be confused).
    """

    routes: dict[str, dict[str, float]] = Field(default_factory=dict)
    shadows: dict[str, ShadowRoute] = Field(default_factory=dict)

    @field_validator("routes")
    @classmethod
    def _check(cls, routes: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for name, weights in routes.items():
            check_safe_name(name, "name")
            check_weights(weights)
        return routes

    @model_validator(mode="after")
    def _check_shadows(self) -> RoutingTable:
        for name, shadow in self.shadows.items():
            if name not in self.routes:
                raise ValueError(f"the shadow of {name!r} belongs to no route")
            check_shadow(self.routes[name], shadow)
        return self

    @classmethod
    def read(cls, root: Path) -> RoutingTable:
        path = Path(root) / ROUTES_FILE
        if not path.exists():
            return cls()
        import json

        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            return cls(routes=data)  # refused by validation, with pydantic's message
        routes: dict[str, Any] = {}
        shadows: dict[str, Any] = {}
        for name, entry in data.items():
            if isinstance(entry, dict) and isinstance(entry.get("weights"), dict):
                routes[name] = entry["weights"]
                if entry.get("shadow") is not None:
                    shadows[name] = entry["shadow"]
            else:
                routes[name] = entry
        return cls(routes=routes, shadows=shadows)

    def write(self, root: Path) -> Path:
        import json

        data: dict[str, Any] = {
            name: ({"weights": weights, "shadow": self.shadows[name].model_dump()}
                   if name in self.shadows else weights)
            for name, weights in self.routes.items()
        }
        path = Path(root) / ROUTES_FILE
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return path


def check_shadow(weights: dict[str, float], shadow: ShadowRoute) -> ShadowRoute:
    """A shadow must leave some routed traffic to the other versions: a shadow that is
    the only version with weight would be compared with nothing."""
    if all(w <= 0 for v, w in weights.items() if v != shadow.version):
        raise ValueError(
            f"the shadow version {shadow.version!r} is the only version with route weight: "
            "a shadow is compared with the routed versions, so route traffic to another "
            "version or choose another shadow"
        )
    return shadow


def check_weights(weights: dict[str, float]) -> dict[str, float]:
    """Validate one model's route weights: safe version names, finite numbers between 0
    and MAX_ROUTE_WEIGHT, some traffic. NaN fails every comparison, so it is refused by
    name rather than by a comparison it would slip through."""
    if not weights:
        raise ValueError("weights must name at least one version")
    for version, weight in weights.items():
        check_safe_name(version, "version")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ValueError(f"weight of version {version!r} is not a number ({weight!r})")
        if not math.isfinite(weight):
            raise ValueError(f"weight of version {version!r} is not a finite number ({weight})")
        if weight < 0:
            raise ValueError(f"weight of version {version!r} is negative ({weight})")
        if weight > MAX_ROUTE_WEIGHT:
            raise ValueError(
                f"weight of version {version!r} is over {MAX_ROUTE_WEIGHT:g} ({weight:g}): "
                "weights are relative, use smaller numbers"
            )
    if sum(weights.values()) <= 0:
        raise ValueError("weights must add up to more than 0")
    return weights
