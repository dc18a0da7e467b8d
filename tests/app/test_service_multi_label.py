"""Multi-label versions in the registry and the service: the manifest keeps the label setup
and one threshold per label (each in (0, 1)), and a prediction carries every label at or
above its threshold beside each label's sigmoid probability; single-label answers keep
their shape."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError
from service_helpers import serve
from tiny_models import MULTI_LABELS, publish_multi_label_versions

from app.classifier import OnnxClassifier
from registry import Lineage, Manifest, RegistryError, RoutingTable, verify_version

BIASES = (3.0, 0.0, -3.0)  # every text's logits: probabilities 0.95, 0.5, 0.05
# Thresholds that give every text none, one or all three labels.
NONE, ONE, ALL = [0.99, 0.99, 0.99], [0.9, 0.99, 0.99], [0.9, 0.4, 0.01]


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.fixture(scope="module")
def tags_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tags/1, /2, /3: the same constant-logit model with the NONE, ONE, ALL thresholds."""
    root = tmp_path_factory.mktemp("multi-label") / "models"
    root.mkdir()
    publish_multi_label_versions(root, {"1": NONE, "2": ONE, "3": ALL}, BIASES)
    RoutingTable(routes={"tags": {"1": 100, "2": 0, "3": 0}}).write(root)
    return root


def _manifest(**fields: object) -> Manifest:
    values = {"name": "tags", "version": "1", "labels": list(MULTI_LABELS),
              "lineage": Lineage(method="test"), **fields}
    return Manifest(**values)  # type: ignore[arg-type]


def test_thresholds_round_trip_through_the_manifest(tags_registry: Path) -> None:
    manifest = verify_version(tags_registry / "tags" / "3")
    assert manifest.label_setup == "multi-label"
    assert manifest.thresholds == ALL
    assert manifest.label_thresholds == dict(zip(MULTI_LABELS, ALL, strict=True))
    written = json.loads((tags_registry / "tags" / "3" / "manifest.json").read_text())
    assert written["thresholds"] == ALL and written["label_setup"] == "multi-label"


def test_a_single_label_manifest_is_written_as_before_and_old_ones_still_load(
        tmp_path: Path) -> None:
    _manifest().write(tmp_path)
    written = json.loads((tmp_path / "manifest.json").read_text())
    # As before the label setups: older readers (extra fields forbidden) still read it.
    assert "label_setup" not in written and "thresholds" not in written
    read = Manifest.read(tmp_path)
    assert read.label_setup == "single-label" and read.thresholds is None


@pytest.mark.parametrize(("fields", "message"), [
    ({"label_setup": "multi-label", "thresholds": [0.5, 1.0, 0.5]}, "each must be in (0, 1)"),
    ({"label_setup": "multi-label", "thresholds": [0.5, 0.0, 0.5]}, "each must be in (0, 1)"),
    ({"label_setup": "multi-label", "thresholds": [0.5, float("nan"), 0.5]},
     "each must be in (0, 1)"),
    ({"label_setup": "multi-label", "thresholds": [0.5, 0.5]}, "one threshold per label"),
    ({"label_setup": "multi-label"}, "one threshold per label"),
    ({"thresholds": [0.5, 0.5, 0.5]}, "multi-label only"),
    ({"label_setup": "several"}, "label_setup"),
])
def test_the_manifest_refuses_thresholds_that_do_not_fit(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        _manifest(**fields)
    assert message in str(refused.value)


def test_a_published_threshold_outside_0_1_is_one_clear_line(tags_registry: Path,
                                                             tmp_path: Path) -> None:
    folder = tmp_path / "tags" / "9"
    shutil.copytree(tags_registry / "tags" / "1", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["thresholds"] = [0.5, 1.5, 0.5]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RegistryError) as refused:
        OnnxClassifier.load(folder)
    message = str(refused.value)
    assert "\n" not in message
    assert "thresholds: threshold 1 is 1.5: each must be in (0, 1)" in message


@pytest.mark.parametrize(("version", "expected"), [
    ("1", []), ("2", ["praise"]), ("3", list(MULTI_LABELS)),
])
def test_a_text_gets_none_one_or_several_labels(tags_registry: Path, version: str,
                                                expected: list[str]) -> None:
    with serve(tags_registry) as client:
        response = client.post("/predict", json={
            "model": "tags", "version": version, "texts": ["a wonderful film", "dull"]})
    assert response.status_code == 200, response.text
    for prediction in response.json()["predictions"]:
        assert prediction["labels"] == expected
        # Each label's own sigmoid (they need not add up to 1), the most probable first.
        assert prediction["scores"] == pytest.approx(
            {name: _sigmoid(b) for name, b in zip(MULTI_LABELS, BIASES, strict=True)},
            abs=1e-5)
        assert prediction["label"] == "praise"
        assert prediction["score"] == pytest.approx(_sigmoid(3.0), abs=1e-5)


@pytest.mark.parametrize(("version", "expected"), [
    ("1", []), ("2", ["praise"]), ("3", list(MULTI_LABELS)),
])
def test_v2_infer_answers_the_same_label_sets(tags_registry: Path, version: str,
                                              expected: list[str]) -> None:
    """The Open Inference Protocol's `labels` output: one bool per label, in the metadata's
    label order, true for each label in the answer."""
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2],
                        "data": ["a wonderful film", "dull"]}],
            "outputs": [{"name": "labels"}]}
    with serve(tags_registry) as client:
        response = client.post(f"/v2/models/tags/versions/{version}/infer", json=body)
    assert response.status_code == 200, response.text
    (out,) = response.json()["outputs"]
    assert out["name"] == "labels" and out["datatype"] == "BOOL" and out["shape"] == [2, 3]
    row = [label in expected for label in MULTI_LABELS]
    assert out["data"] == row + row


def test_single_label_answers_carry_no_labels_field(client) -> None:  # type: ignore[no-untyped-def]
    prediction = client.post("/predict", json={"model": "tiny", "text": "good"}).json()[
        "predictions"][0]
    assert set(prediction) == {"label", "score", "scores", "prediction_id"}
    assert sum(prediction["scores"].values()) == pytest.approx(1.0, abs=1e-6)


def test_models_lists_each_versions_task_and_label_setup(tags_registry: Path,
                                                         client) -> None:  # type: ignore[no-untyped-def]
    with serve(tags_registry) as tags_client:
        tags = tags_client.get("/models").json()["models"]
    versions = {v["version"]: v for v in tags[0]["versions"]}
    assert versions["2"]["task"] == "text-classification"
    assert versions["2"]["label_setup"] == "multi-label"
    assert versions["2"]["thresholds"] == dict(zip(MULTI_LABELS, ONE, strict=True))
    single = client.get("/models").json()["models"]
    entry = next(m for m in single if m["name"] == "tiny")["versions"][0]
    assert entry["label_setup"] == "single-label" and "thresholds" not in entry
