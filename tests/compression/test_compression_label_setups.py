"""Label setups end to end on tiny models: a 6-class fine-tune on a carved dev split, and a
multi-label model fine-tuned, distilled, exported, registered with its dev thresholds and
served with each label at or above its threshold."""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tiny_models import MULTI_LABELS, write_toy_multi_label_tsv

from app.main import create_app
from app.settings import Settings
from compression.cli.main import main
from compression.config.pipeline_file import PipelineConfig
from compression.config.steps import DataConfig, DistillConfig, TrainConfig
from compression.core.data import load_data
from compression.evaluation.evaluate import evaluate
from compression.evaluation.runners import Variant
from compression.exporting.steps import export_step
from compression.models.loading import load_classifier
from compression.pipeline import Pipeline
from compression.tasks.registry import MULTI_LABEL
from compression.training.distill import distill
from compression.training.finetune import finetune
from registry import Manifest

# Six intents, each told by its own words (BANKING77-like, but 6 classes).
INTENTS = {"card": ["film", "movie"], "refund": ["story", "plot"], "fee": ["good", "great"],
           "limit": ["bad", "awful"], "pin": ["fun", "funny"], "top_up": ["dull", "boring"]}
FAST = TrainConfig(epochs=15, learning_rate=5e-3, batch_size=16, warmup=0.0, seed=0)


def _intents_tsv(path: Path, n: int) -> Path:
    rng = random.Random(3)
    fillers = ["the", "a", "was", "very", "really", "it", "is", "this", "so", "too"]
    rows = []
    for i in range(n):
        intent = list(INTENTS)[i % len(INTENTS)]
        words = rng.sample(fillers, 3) + [rng.choice(INTENTS[intent])]
        rng.shuffle(words)
        rows.append(f"{' '.join(words)}\t{intent}")
    path.write_text("\n".join(["sentence\tlabel", *rows]) + "\n")
    return path


def test_a_six_class_finetune_on_a_carved_dev_split(tiny_encoder: Path, tmp_path: Path) -> None:
    data = DataConfig(train=str(_intents_tsv(tmp_path / "train.tsv", 240)), dev_fraction=0.2,
                      max_length=32)
    result = finetune(str(tiny_encoder), data, FAST, tmp_path / "run")
    assert result["labels"] == sorted(INTENTS)
    model = load_classifier(result["model_dir"])
    assert model.config.num_labels == 6  # a fresh head, not the encoder's two labels
    assert model.config.problem_type in (None, "single_label_classification")
    assert result["dev_accuracy"] > 0.8  # chance is 1/6
    assert "thresholds" not in result and "label_setup" not in result


@pytest.fixture(scope="module")
def emotions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("emotions")
    labels = folder / "labels.txt"
    labels.write_text("\n".join(MULTI_LABELS) + "\n")  # the file's order, not sorted
    return {"train": write_toy_multi_label_tsv(folder / "train.tsv", 240, seed=1),
            "dev": write_toy_multi_label_tsv(folder / "dev.tsv", 64, seed=2),
            "labels": labels}


@pytest.fixture(scope="module")
def multi_label_chain(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path,
                      emotions: dict[str, Path]) -> dict:
    """The toy multi-label task fine-tuned, distilled into one layer and exported."""
    work = tmp_path_factory.mktemp("multi-label-chain")
    data = DataConfig(train=str(emotions["train"]), dev=str(emotions["dev"]),
                      label_column="labels", multi_label=True,
                      labels_file=str(emotions["labels"]), max_length=32)
    teacher = finetune(str(tiny_encoder), data, FAST, work / "teacher")
    student = distill(teacher["model_dir"], data, FAST, DistillConfig(num_layers=1),
                      work / "student")
    texts = emotions["dev"].read_text().splitlines()[1:]
    onnx = export_step(Path(student["model_dir"]), work / "onnx",
                       [t.split("\t")[0] for t in texts], max_length=32)
    return {"work": work, "teacher": teacher, "student": student, "onnx": onnx}


def test_multi_label_training_fits_a_threshold_per_label(multi_label_chain: dict) -> None:
    teacher, student = multi_label_chain["teacher"], multi_label_chain["student"]
    for result in (teacher, student):
        assert result["labels"] == list(MULTI_LABELS)
        assert result["label_setup"] == "multi-label"
        assert len(result["thresholds"]) == 3 and all(0 < t < 1 for t in result["thresholds"])
        assert result["dev_macro_f1"] > 0.6 and result["dev_micro_f1"] > 0.6
    model = load_classifier(student["model_dir"])
    assert model.config.problem_type == "multi_label_classification"


def test_evaluation_scores_multi_label_variants_at_their_own_thresholds(
        multi_label_chain: dict, emotions: dict[str, Path], tmp_path: Path) -> None:
    data = DataConfig(train=str(emotions["train"]), dev=str(emotions["dev"]),
                      label_column="labels", multi_label=True, max_length=32)
    splits = load_data(data)
    onnx = Path(multi_label_chain["onnx"]["model_path"])
    student = Path(multi_label_chain["student"]["model_dir"])
    reports = evaluate([Variant.from_path(student, "student-torch"),
                        Variant.from_path(onnx, "student-onnx")], splits.dev.texts,
                       splits.labels.encode(splits.dev), max_length=32, rounds=1,
                       memory=False, task=MULTI_LABEL)
    torch_report, onnx_report = reports
    assert onnx_report.agreement > 0.95  # whole label sets, the ONNX export is faithful
    assert onnx_report.micro_f1 == pytest.approx(torch_report.micro_f1, abs=0.05)
    assert onnx_report.thresholds == pytest.approx(torch_report.thresholds, abs=0.05)

    # The pipeline publishes a variant with the thresholds fitted on its own outputs.
    config = PipelineConfig.from_dict({
        "name": "emotions", "registry": str(tmp_path / "models"),
        "teacher": {"finetuned": multi_label_chain["teacher"]["model_dir"]},
        "data": {**asdict(data), "labels_file": None},
        "register": {"variants": ["student-onnx"], "max_drop": 100}})
    (published,) = Pipeline(config).register(reports, {"student-onnx": onnx.parent},
                                               list(MULTI_LABELS))
    manifest = Manifest.read(published)
    assert manifest.label_setup == "multi-label"
    assert manifest.thresholds == onnx_report.thresholds
    assert manifest.metrics["dev_micro_f1"] == onnx_report.micro_f1


def test_a_registered_multi_label_student_is_served_with_its_dev_thresholds(
        multi_label_chain: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "models"
    onnx_dir = str(Path(multi_label_chain["onnx"]["model_path"]).parent)
    args = ["register", "--model", onnx_dir, "--name", "emotions", "--registry",
            str(registry), "--labels", ",".join(MULTI_LABELS)]
    assert main(args) == 0, capsys.readouterr().err
    manifest = Manifest.read(registry / "emotions" / "1")
    thresholds = multi_label_chain["student"]["thresholds"]
    assert manifest.label_setup == "multi-label" and manifest.thresholds == thresholds

    texts = ["a wonderful story", "the movie is dull", "this was very really it"]
    with TestClient(create_app(Settings(models_dir=registry, intra_op_threads=1))) as client:
        served = client.post("/predict", json={"model": "emotions", "texts": texts})
        listed = client.get("/models").json()["models"][0]["versions"][0]
    assert served.status_code == 200, served.text
    assert listed["label_setup"] == "multi-label"
    for prediction in served.json()["predictions"]:
        scores = prediction["scores"]
        expected = [name for name, t in zip(MULTI_LABELS, thresholds, strict=True)
                    if scores[name] >= t]
        assert prediction["labels"] == expected
        assert prediction["label"] == max(scores, key=scores.get)
    assert "praise" in served.json()["predictions"][0]["labels"]
    assert "complaint" in served.json()["predictions"][1]["labels"]


def test_registering_a_threshold_outside_0_1_is_one_line_and_publishes_nothing(
        multi_label_chain: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "models"
    onnx_dir = str(Path(multi_label_chain["onnx"]["model_path"]).parent)
    args = ["register", "--model", onnx_dir, "--name", "emotions", "--registry",
            str(registry), "--labels", ",".join(MULTI_LABELS), "--thresholds", "0.5,1.2,0.5"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "thresholds: threshold 1 is 1.2: each must be in (0, 1)" in err
    assert not (registry / "emotions").exists()
    assert main([*args[:-1], "0.5,0.3,0.5"]) == 0  # explicit thresholds are kept
    assert Manifest.read(registry / "emotions" / "1").thresholds == [0.5, 0.3, 0.5]
    assert json.loads((registry / "emotions" / "1" / "manifest.json").read_text())[
        "label_setup"] == "multi-label"


def test_distillation_refuses_a_teacher_of_the_other_label_setup(
        teacher_dir: Path, tmp_path: Path) -> None:
    from compression.core.errors import ConfigError

    rows = ["sentence\tlabels", "good\tpositive", "bad\tnegative", "good bad\tnegative,positive"]
    (tmp_path / "data.tsv").write_text("\n".join(rows) + "\n")
    data = DataConfig(train=str(tmp_path / "data.tsv"), dev=str(tmp_path / "data.tsv"),
                      label_column="labels", multi_label=True, max_length=32)
    out = tmp_path / "student"
    with pytest.raises(ConfigError, match="a single-label teacher cannot teach multi-label"):
        distill(str(teacher_dir), data, FAST, DistillConfig(num_layers=1), out)
    assert not out.exists()
