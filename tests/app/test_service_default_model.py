"""The registry's default model: with several models routed, a request that names none
goes to the model `models/default.json` names (APP_DEFAULT_MODEL overrides it); a broken
file is ignored with a log line, never a failed start."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from service_helpers import serve

from registry import read_default_model, write_default_model

ROUTES = {"tiny": {"1": 100}, "other": {"1": 100}}


def test_a_request_naming_no_model_goes_to_the_registrys_default(
    make_registry: Callable[..., Path],
) -> None:
    root = make_registry(ROUTES)
    write_default_model(root, "other")
    with serve(root) as c:
        r = c.post("/predict", json={"text": "good"})
        assert r.status_code == 200 and r.headers["X-Model-Version"] == "other/1"
        named = c.post("/predict", json={"text": "good", "model": "tiny"})
        assert named.headers["X-Model-Version"] == "tiny/1"  # naming one still wins


def test_the_setting_overrides_the_registrys_default(
    make_registry: Callable[..., Path],
) -> None:
    root = make_registry(ROUTES)
    write_default_model(root, "other")
    with serve(root, default_model="tiny") as c:
        assert c.post("/predict", json={"text": "good"}).headers["X-Model-Version"] == "tiny/1"


@pytest.mark.parametrize("content", ["{", '{"model": 3}', '{"model": "../etc"}', "[]"])
def test_a_broken_default_file_is_refused_in_one_line_and_ignored_by_the_service(
    make_registry: Callable[..., Path], content: str,
) -> None:
    root = make_registry(ROUTES)
    (root / "default.json").write_text(content)
    with pytest.raises(ValueError) as refused:
        read_default_model(root)
    assert "\n" not in str(refused.value)
    with serve(root) as c:
        assert c.get("/readyz").status_code == 200
        r = c.post("/predict", json={"text": "good"})
        assert r.status_code == 422 and "name one with 'model'" in r.json()["error"]["message"]


def test_the_shipped_registry_names_the_sst2_model_its_default() -> None:
    models = Path(__file__).resolve().parents[2] / "models"
    assert json.loads((models / "default.json").read_text()) == {"model": "sst2-sentiment"}
    assert read_default_model(models) == "sst2-sentiment"
