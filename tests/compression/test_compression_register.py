"""Publishing an exported ONNX folder: manifest round trip, checksums, refusing to
overwrite, and an interrupted publish that leaves nothing behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from compression.core.errors import ModelError
from compression.exporting.steps import ONNX_FILE, TOKENIZER_FILE
from compression.register import lineage_chain, register
from registry import (
    ChecksumMismatchError,
    Manifest,
    RegistryError,
    VersionExistsError,
    list_versions,
    sha256_file,
    verify_version,
)

LABELS = ["negative", "positive"]
METRICS = {"dev_accuracy": 1.0, "size_mb": 0.2}


def _publish(root: Path, onnx_dir: Path, **kwargs) -> Path:  # type: ignore[no-untyped-def]
    return register(onnx_dir, root, "toy", LABELS, 32, METRICS, dataset="toy.tsv", **kwargs)


def test_round_trip(tmp_path: Path, teacher_onnx: Path, teacher_dir: Path) -> None:
    root = tmp_path / "models"
    folder = _publish(root, teacher_onnx)
    assert folder == root / "toy" / "1"
    assert list_versions(root, "toy") == ["1"]

    manifest = verify_version(folder)
    assert manifest == Manifest.read(folder)
    assert (manifest.name, manifest.version) == ("toy", "1")
    assert manifest.labels == LABELS
    assert manifest.max_length == 32
    assert manifest.metrics == METRICS
    assert set(manifest.files) == {ONNX_FILE, TOKENIZER_FILE}
    assert manifest.files[ONNX_FILE].sha256 == sha256_file(teacher_onnx / ONNX_FILE)
    assert (folder / ONNX_FILE).read_bytes() == (teacher_onnx / ONNX_FILE).read_bytes()
    # Lineage follows result.json files back: the export, then the fine-tuning.
    lineage = manifest.lineage
    assert lineage.method == "finetune+export"
    assert lineage.parent == str(teacher_dir)
    assert lineage.dataset == "toy.tsv"
    assert [step["step"] for step in lineage.params["steps"]] == ["export", "finetune"]
    assert lineage.code_version
    # every step names the library versions that made it (numbers depend on them)
    from importlib.metadata import version
    for step in lineage.params["steps"]:
        assert step["libraries"]["transformers"] == version("transformers")
        assert step["libraries"]["onnxruntime"] == version("onnxruntime")

    # Versions count up by default.
    assert _publish(root, teacher_onnx).name == "2"
    assert list_versions(root, "toy") == ["1", "2"]


def test_lineage_chain_names_the_teacher(tmp_path: Path, teacher_onnx: Path) -> None:
    chain = lineage_chain(teacher_onnx)
    assert [step["step"] for step in chain] == ["export", "finetune"]
    assert all("labels" not in step for step in chain)
    assert lineage_chain(tmp_path) == []  # no result.json: nothing known


def test_lineage_continues_through_a_registry_version(tmp_path: Path,
                                                      teacher_onnx: Path) -> None:
    # A model made from a published version (e.g. by `float-outputs`) inherits the
    # version's steps, read from its manifest.
    published = _publish(tmp_path / "models", teacher_onnx)
    derived = tmp_path / "derived"
    shutil.copytree(teacher_onnx, derived)
    (derived / "result.json").write_text(
        f'{{"step": "float-outputs", "parent": "{published}", "config_digest": "x"}}')
    chain = lineage_chain(derived)
    assert [step["step"] for step in chain] == ["float-outputs"] + [
        step["step"] for step in lineage_chain(teacher_onnx)]
    manifest = Manifest.read(_publish(tmp_path / "models", derived))
    assert manifest.lineage.parent == str(published)
    assert manifest.lineage.method.endswith("+float-outputs")


@pytest.mark.parametrize("victim", [ONNX_FILE, TOKENIZER_FILE])
def test_flipped_byte_fails_verification(tmp_path: Path, teacher_onnx: Path, victim: str) -> None:
    folder = _publish(tmp_path / "models", teacher_onnx)
    path = folder / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match=victim):
        verify_version(folder)


def test_missing_file_fails_verification(tmp_path: Path, teacher_onnx: Path) -> None:
    folder = _publish(tmp_path / "models", teacher_onnx)
    (folder / TOKENIZER_FILE).unlink()
    with pytest.raises(RegistryError, match="missing"):
        verify_version(folder)


def test_existing_version_is_refused_unless_forced(tmp_path: Path, teacher_onnx: Path) -> None:
    root = tmp_path / "models"
    folder = _publish(root, teacher_onnx, version="7")
    before = (folder / "manifest.json").read_text()
    with pytest.raises(VersionExistsError, match="--force"):
        _publish(root, teacher_onnx, version="7")
    assert (folder / "manifest.json").read_text() == before

    # Forced from another folder: the version is replaced by the new publication.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copyfile(teacher_onnx / TOKENIZER_FILE, other / TOKENIZER_FILE)
    (other / ONNX_FILE).write_bytes((teacher_onnx / ONNX_FILE).read_bytes() + b"\n")
    forced = register(other, root, "toy", LABELS, 32, {"dev_accuracy": 0.5}, version="7",
                      force=True)
    assert forced == folder
    manifest = verify_version(forced)
    assert manifest.metrics == {"dev_accuracy": 0.5}
    assert manifest.files[ONNX_FILE].sha256 == sha256_file(other / ONNX_FILE)
    assert manifest.lineage.method == "import"  # no result.json beside `other`
    assert list_versions(root, "toy") == ["7"]
    assert not [p for p in (root / "toy").iterdir() if p.name.startswith(".")]


def test_interrupted_publish_leaves_nothing(tmp_path: Path, teacher_onnx: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "models"
    real_copy = shutil.copyfile
    copied: list[str] = []

    def copy_then_interrupt(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if copied:
            raise KeyboardInterrupt
        copied.append(str(dst))
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", copy_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _publish(root, teacher_onnx)
    assert len(copied) == 1  # interrupted midway, after the first file
    assert list_versions(root, "toy") == []
    assert not (root / "toy" / "1").exists()
    assert list((root / "toy").iterdir()) == []  # no staging folder either

    monkeypatch.setattr(shutil, "copyfile", real_copy)
    assert _publish(root, teacher_onnx).name == "1"  # and the next try works


def test_interrupted_forced_replace_keeps_old_version(tmp_path: Path, teacher_onnx: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "models"
    folder = _publish(root, teacher_onnx, version="1")
    before = verify_version(folder)

    def interrupt(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copyfile", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _publish(root, teacher_onnx, version="1", force=True)
    assert verify_version(folder) == before
    assert [p.name for p in (root / "toy").iterdir()] == ["1"]


def test_register_needs_model_and_tokenizer(tmp_path: Path, teacher_onnx: Path) -> None:
    folder = tmp_path / "half"
    folder.mkdir()
    shutil.copyfile(teacher_onnx / ONNX_FILE, folder / ONNX_FILE)
    with pytest.raises(ModelError, match=TOKENIZER_FILE):
        _publish(tmp_path / "models", folder)
    assert not (tmp_path / "models" / "toy").exists()
