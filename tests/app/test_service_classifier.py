"""OnnxClassifier on tiny exported models: checksums, shapes, padding, truncation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from app.classifier import OnnxClassifier, length_groups, resolve_providers
from registry import ChecksumMismatchError, RegistryError


@pytest.fixture(scope="module")
def tiny(base_registry: Path) -> OnnxClassifier:
    return OnnxClassifier.load(base_registry / "tiny" / "1", providers="cpu", threads=1)


def test_predictions_are_distributions_over_the_manifest_labels(tiny: OnnxClassifier) -> None:
    preds = tiny.predict(["a wonderful film", "boring", "it was the worst movie ever made"])
    assert len(preds) == 3
    for p in preds:
        assert set(p.scores) == {"negative", "positive"}
        assert abs(sum(p.scores.values()) - 1) < 1e-6
        assert p.label == max(p.scores, key=p.scores.__getitem__)
        assert p.score == p.scores[p.label]
    assert tiny.provider == "CPUExecutionProvider"


def test_batched_answers_equal_one_at_a_time(tiny: OnnxClassifier) -> None:
    texts = ["good", "a really very dull and boring story", "fun", "the plot is a mess !",
             "love it", "not great not terrible but quite weak"]
    together = tiny.predict(texts)
    alone = [tiny.predict([t])[0] for t in texts]
    for a, b in zip(together, alone, strict=True):
        assert a.label == b.label
        assert np.allclose(list(a.scores.values()), list(b.scores.values()), atol=1e-5)


def test_long_text_is_truncated_to_max_length(tiny: OnnxClassifier) -> None:
    long = " ".join(["good film"] * 500)
    assert len(tiny.tokenizer.encode(long).ids) == tiny.manifest.max_length
    (p,) = tiny.predict([long])
    assert abs(sum(p.scores.values()) - 1) < 1e-6


def test_length_groups_keep_order_information_and_group_similar_lengths() -> None:
    lengths = [5, 40, 6, 41, 5, 100]
    groups = length_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(6))
    assert [sorted(g) for g in groups] == [[0, 2, 4], [1, 3], [5]]


def test_corrupt_model_file_is_refused(base_registry: Path, tmp_path: Path) -> None:
    folder = tmp_path / "tiny" / "1"
    shutil.copytree(base_registry / "tiny" / "1", folder)
    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="model.onnx"):
        OnnxClassifier.load(folder, providers="cpu")


def test_incomplete_version_is_refused(base_registry: Path, tmp_path: Path) -> None:
    folder = tmp_path / "tiny" / "1"
    shutil.copytree(base_registry / "tiny" / "1", folder)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(RegistryError, match="missing"):
        OnnxClassifier.load(folder, providers="cpu")


def test_provider_resolution() -> None:
    assert resolve_providers("cpu") == ["CPUExecutionProvider"]
    assert resolve_providers("auto")[-1] == "CPUExecutionProvider"


@pytest.mark.parametrize("allow_spinning, entry", [(True, "1"), (False, "0")])
def test_spinning_setting_reaches_the_session(base_registry: Path, allow_spinning: bool,
                                              entry: str) -> None:
    classifier = OnnxClassifier.load(base_registry / "tiny" / "1", providers="cpu", threads=2,
                                     allow_spinning=allow_spinning)
    options = classifier.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == entry
