"""The one inference path behind both APIs, `POST /predict` and the Open Inference
Protocol's `POST /v2/models/{name}[/versions/{version}]/infer`: check the texts, choose a
version (pinned, or routed by weight and `X-Routing-Key`), queue the texts on its batcher
and await their predictions within the request time-out.

Its errors carry their status (404 unknown, 503 being loaded/unloaded or no routable
version or queue full, 504 time-out); each API renders them in its own shape
(`app.errors.error_answer`). Admission and the request metrics are the middleware's, by
path (`app.admission.is_inference_path`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from registry import ModelRef, check_safe_name

from ..classifier import Prediction
from ..errors import BadInput, NotFound, Timeout, Unavailable
from ..experiments import Experiments
from ..metrics import Metrics
from ..models import LoadedVersion, ModelManager
from ..routing import Router
from ..settings import Settings
from .schemas import TEXT_PATTERN

_VISIBLE = re.compile(TEXT_PATTERN)  # what the schema calls a non-blank text


@dataclass(frozen=True)
class Served:
    """The version that answered and its predictions, one per text, in input order."""

    ref: ModelRef
    predictions: list[Prediction]
    # One per prediction, for POST /feedback (app.experiments); None when not issued.
    prediction_ids: list[str] | None = None


def is_blank(text: str) -> bool:
    """Whether `text` holds nothing the schema calls visible (TEXT_PATTERN): the rule of
    `check_texts`, for question answering's questions and contexts."""
    return _VISIBLE.search(text) is None


def check_texts(texts: list[str], settings: Settings) -> list[str]:
    """The texts of one request, refused (422) when there are none or too many, or one is
    blank, not valid Unicode or too long."""
    if not texts:
        raise BadInput("'texts' is empty: send at least one text")
    if len(texts) > settings.texts_limit:
        raise BadInput(
            f"{len(texts)} texts in one request; the limit is {settings.texts_limit}: "
            "split the request"
        )
    for i, text in enumerate(texts):
        if _VISIBLE.search(text) is None:
            raise BadInput(f"text {i} is empty or only whitespace")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadInput(f"text {i} is not valid Unicode (lone surrogate)") from None
        if len(text) > settings.max_text_chars:
            raise BadInput(
                f"text {i} has {len(text)} characters; the limit is {settings.max_text_chars}"
            )
    return texts


def safe(value: str, what: str) -> str:
    """`value` if it is a safe model or version name, else 422 saying what one is."""
    try:
        return check_safe_name(value, what)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


@dataclass(frozen=True)
class InferencePath:
    """The shared objects a request needs, reached through `deps.InferencePathDep`."""

    settings: Settings
    manager: ModelManager
    routes: Router
    metrics: Metrics
    experiments: Experiments | None = None

    def model_name(self, name: str | None) -> str:
        """The model a request names, or the default one when it names none."""
        return safe(name, "name") if name is not None else default_model(self.settings,
                                                                           self.routes)

    def loaded(self, ref: ModelRef) -> LoadedVersion:
        """The loaded version `ref`: 503 while it is being loaded or unloaded, 404 when it
        is not loaded or does not exist."""
        loaded = self.manager.get(ref)
        if loaded is not None:
            return loaded
        if self.manager.changing(ref):
            raise Unavailable(f"model version {ref} is being loaded or unloaded: retry shortly")
        if self.manager.exists(ref):
            raise NotFound(
                f"model version {ref} exists but is not loaded: load it with "
                f"POST /admin/models/{ref.name}/{ref.version}/load"
            )
        raise NotFound(f"unknown model version {ref}")

    def choose(
        self, name: str, version: str | None, routing_key: str | None,
    ) -> tuple[LoadedVersion, str]:
        """The loaded version that serves a request for `name` (pinned to `version`, or
        routed) and how it was chosen: "pinned", "hash" or "random"."""
        if version is not None:
            return self.loaded(ModelRef(name=name, version=safe(version, "version"))), "pinned"
        chosen, method = self.routes.choose(name, routing_key,
                                            self.manager.loaded_versions(name))
        if chosen is None:
            raise no_version(name, method, self.manager)
        return self.loaded(ModelRef(name=name, version=chosen)), method

    async def classify(
        self, texts: list[str], name: str | None, version: str | None,
        routing_key: str | None, check: Callable[[LoadedVersion], None] | None = None,
    ) -> Served:
        """Classify checked texts with the chosen version, through its batcher. `check`
        may refuse the chosen version for these inputs (a QA version and texts)."""
        loaded, method = self.choose(self.model_name(name), version, routing_key)
        if check is not None:
            check(loaded)
        ref = loaded.ref
        # No await between the lookup and the submit: an unload cannot slip in between.
        future = loaded.batcher.submit(texts)
        self.metrics.ab_assignments.labels(ref.name, ref.version, method).inc()
        timeout = self.settings.request_timeout_s
        try:
            predictions = await asyncio.wait_for(future, timeout=timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"no answer from {ref} within {timeout} s") from None
        if self.experiments is None:
            return Served(ref, predictions)
        ids = self.experiments.served(ref, texts, predictions, method)
        return Served(ref, predictions, ids)


def inference_path(state: Any) -> InferencePath:
    """The inference path of an app's state (`app.state`), as its lifespan set it up."""
    return InferencePath(state.settings, state.manager, state.router, state.metrics,
                         state.experiments)

def default_model(settings: Settings, routes: Router) -> str:
    if settings.default_model is not None:
        return settings.default_model
    if routes.default_model is not None:
        return routes.default_model
    names = routes.models()
    if len(names) == 1:
        return names[0]
    if not names:
        raise Unavailable("no model is routed yet: publish a model and load it")
    raise BadInput(f"several models are served ({', '.join(names)}): name one with 'model'")


def no_version(name: str, why: str, manager: ModelManager) -> Exception:
    """The error for a request that no version of `name` can serve (`why` from
    `Router.choose`): 404 when the model has no route, 503 when none of its routed
    versions is loaded."""
    if why == "unrouted":
        if manager.loaded_versions(name) or manager.has_model(name):
            return NotFound(
                f"model {name!r} has no route: pin a 'version', or set its weights with "
                f"PUT /admin/routes/{name}"
            )
        return NotFound(f"unknown model {name!r}")
    return Unavailable(f"no loaded version of {name!r} has route weight: try again shortly")
