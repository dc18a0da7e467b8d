"""The whole chain from one config file: distil, export, quantize, evaluate, register;
a second run reuses every finished step."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from pipeline_config import write_config as _config

from compression.cli.main import main
from compression.exporting.steps import ONNX_FILE
from compression.pipeline import PipelineConfig
from registry import ROUTES_FILE, RoutingTable, list_versions, verify_version

SST2 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sst2"
VARIANTS = ["teacher-torch-fp32", "teacher-fp32", "teacher-int8", "l1-fp32", "l1-int8"]


def _step_results(work: Path) -> dict[str, str]:
    return {str(p.relative_to(work)): p.read_text() for p in sorted(work.rglob("result.json"))
            if "checkpoint" not in str(p)}


def _skip_memory_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The peak-memory probe starts a Python process per variant (seconds each); tests
    that are not about it skip it."""
    from compression.evaluation import evaluate

    monkeypatch.setattr(evaluate, "peak_memory_mb", lambda *a, **k: float("nan"))


def test_pipeline_end_to_end_and_rerun(tmp_path: Path, teacher_dir: Path,
                                       toy_data: dict[str, Path],
                                       capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = _config(tmp_path, teacher_dir, toy_data["train"], toy_data["dev"])
    config = PipelineConfig.load(path)
    assert [s.name for s in config.students] == ["l1"]
    assert config.students[0].train.learning_rate == 3e-3
    assert config.register_variants == ("l1-int8",)

    assert main(["pipeline", str(path)]) == 0
    out = capsys.readouterr().out
    root, work = tmp_path / "models", tmp_path / "run"
    assert str(root / "toy-sentiment" / "1") in out

    # Published: one verified version with the evaluation's metrics and full lineage.
    assert list_versions(root, "toy-sentiment") == ["1"]
    manifest = verify_version(root / "toy-sentiment" / "1")
    assert manifest.labels == ["negative", "positive"]
    assert manifest.max_length == 32
    for key in ("dev_accuracy", "dev_macro_f1", "agreement_with_teacher", "size_mb",
                "latency_b1_p50_ms", "smaller_than_teacher"):
        assert key in manifest.metrics
    assert manifest.metrics["dev_accuracy"] >= 0.9
    assert manifest.metrics["smaller_than_teacher"] > 1
    # The teacher's own fine-tuning is part of the chain (its result.json is beside it).
    assert manifest.lineage.method == "finetune+distill+export+quantize"
    assert manifest.lineage.teacher == str(teacher_dir)
    assert manifest.lineage.dataset == str(toy_data["train"])
    assert RoutingTable.read(root).routes == {"toy-sentiment": {"1": 100.0}}

    # Evaluation: every variant, in a table, a JSON file and a chart.
    eval_dir = work / "eval"
    reports = json.loads((eval_dir / "evaluation.json").read_text())
    assert [r["name"] for r in reports] == VARIANTS
    assert reports[0]["kind"] == "torch" and reports[0]["agreement"] == 1.0
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in reports)
    assert all(r["agreement"] >= 0.9 for r in reports)
    assert all(r["peak_memory_mb"] > 0 for r in reports)  # the memory probe ran
    table = (eval_dir / "evaluation.md").read_text()
    assert all(f"| {name} |" in table for name in VARIANTS)
    assert (eval_dir / "evaluation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Second run: every step reused, nothing new published.
    results = _step_results(work)
    assert {Path(k).parent.as_posix() for k in results} == {
        "students/l1", "onnx/teacher-fp32", "onnx/teacher-int8", "onnx/l1-fp32", "onnx/l1-int8"}
    routes = (root / ROUTES_FILE).read_text()
    published = (root / "toy-sentiment" / "1" / "manifest.json").read_text()
    _skip_memory_probe(monkeypatch)
    assert main(["pipeline", str(path)]) == 0
    capsys.readouterr()
    assert _step_results(work) == results
    assert list_versions(root, "toy-sentiment") == ["1"]
    assert (root / "toy-sentiment" / "1" / "manifest.json").read_text() == published
    assert (root / ROUTES_FILE).read_text() == routes

    # The bench measures the published version beside the variants, in the same run.
    report = tmp_path / "bench.md"
    assert main(["bench", str(path), "--output", str(report), "--rounds", "1"]) == 0
    capsys.readouterr()
    rows = {cells[1].strip(): [c.strip() for c in cells]
            for cells in (line.split("|") for line in report.read_text().splitlines()
                          if line.startswith("| ") and not line.startswith("| ---"))}
    assert set(rows) == {"variant", *VARIANTS, "toy-sentiment/1"}
    # Version 1 is l1-int8's file: the same size and the same answers on dev.
    assert rows["toy-sentiment/1"][3:5] == rows["l1-int8"][3:5]
    chart = report.with_name(f"{report.stem}-toy-sentiment.png")  # one chart per model
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<!-- compression-benchmark-toy-sentiment:start -->" in report.read_text()


def test_pipeline_on_a_slice_of_sst2(tmp_path: Path, teacher_dir: Path,
                                     capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Real sentences through the tiny model (its tokenizer falls back to characters):
    accuracy is near chance, so only the structure is checked."""
    if not (SST2 / "train.tsv").is_file() or not (SST2 / "dev.tsv").is_file():
        pytest.skip(f"SST-2 not found at {SST2}")
    path = _config(tmp_path, teacher_dir, SST2 / "train.tsv", SST2 / "dev.tsv",
                   limit_train=200, limit_dev=64, max_length=64)
    _skip_memory_probe(monkeypatch)
    assert main(["pipeline", str(path)]) == 0
    capsys.readouterr()
    root = tmp_path / "models"
    assert list_versions(root, "toy-sentiment") == ["1"]
    manifest = verify_version(root / "toy-sentiment" / "1")
    assert manifest.max_length == 64
    assert 0.0 <= manifest.metrics["dev_accuracy"] <= 1.0
    assert manifest.lineage.dataset == str(SST2 / "train.tsv")
    reports = json.loads((tmp_path / "run" / "eval" / "evaluation.json").read_text())
    assert [r["name"] for r in reports] == VARIANTS
    student = json.loads((tmp_path / "run" / "students" / "l1" / "result.json").read_text())
    assert student["config"]["data"]["limit_train"] == 200
    assert not math.isnan(student["dev_accuracy"])


def _run_with_student(tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
                      capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                      student: dict, register: str) -> tuple[Path, set[str]]:
    """Run the toy pipeline with `student` merged into its student; return the work folder
    and the evaluated variant names."""
    path = _config(tmp_path, teacher_dir, toy_data["train"], toy_data["dev"])
    config = yaml.safe_load(path.read_text())
    config["students"][0].update(student)
    config["register"] = {"variants": [register], "max_drop": 100}
    return _run_pipeline(path, config, capsys, monkeypatch)


def _run_pipeline(path: Path, config: dict, capsys: pytest.CaptureFixture[str],
                  monkeypatch: pytest.MonkeyPatch) -> tuple[Path, set[str]]:
    """Write `config` to `path`, run it; return the work folder and the evaluated names."""
    path.write_text(yaml.safe_dump(config))
    _skip_memory_probe(monkeypatch)
    assert main(["pipeline", str(path)]) == 0
    capsys.readouterr()
    work = Path(config["work_dir"])
    names = {r["name"] for r in json.loads((work / "eval" / "evaluation.json").read_text())}
    return work, names


def test_pipeline_prune_vocab_adds_a_smaller_student(tmp_path: Path, teacher_dir: Path,
                                                     toy_data: dict[str, Path],
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    work, names = _run_with_student(tmp_path, teacher_dir, toy_data, capsys, monkeypatch,
                                    {"prune_vocab": True}, "l1-vocab-int8")
    assert {"l1-vocab-fp32", "l1-vocab-int8"} <= names
    pruned = json.loads((work / "students" / "l1-vocab" / "result.json").read_text())
    assert pruned["vocab_after"] < pruned["vocab_before"]
    full = (work / "onnx" / "l1-fp32" / ONNX_FILE).stat().st_size
    assert (work / "onnx" / "l1-vocab-fp32" / ONNX_FILE).stat().st_size < full
    manifest = verify_version(tmp_path / "models" / "toy-sentiment" / "1")
    assert "prune-vocab" in manifest.lineage.method


def test_pipeline_structured_pruning_adds_a_narrower_recovered_student(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    student = {
        "distill": {"num_layers": 2, "alpha_ce": 0.5, "alpha_kl": 0.5},
        "prune": {"heads": 1, "ffn": 16, "importance_batches": 2},
        "recover": {"train": {"epochs": 1, "learning_rate": "3e-3", "batch_size": 16,
                              "warmup": 0}},
    }
    work, names = _run_with_student(tmp_path, teacher_dir, toy_data, capsys, monkeypatch,
                                    student, "l1-pruned-int8")
    assert {"l1-pruned-fp32", "l1-pruned-int8"} <= names
    init = json.loads((work / "students" / "l1-pruned-init" / "result.json").read_text())
    assert init["shapes_after"] == [{"heads": 1, "intermediate_size": 16}] * 2
    recovered = json.loads((work / "students" / "l1-pruned" / "result.json").read_text())
    assert recovered["student_parameters"] == init["parameters_after"]
    # The published version's lineage runs through the pruning back to the first student.
    manifest = verify_version(tmp_path / "models" / "toy-sentiment" / "1")
    assert manifest.lineage.method == (
        "finetune+distill+prune-structure+distill+export+quantize")
    assert manifest.lineage.teacher == str(teacher_dir)
    full = (work / "onnx" / "l1-fp32" / ONNX_FILE).stat().st_size
    assert (work / "onnx" / "l1-pruned-fp32" / ONNX_FILE).stat().st_size < full
    verify_version(tmp_path / "models" / "toy-sentiment" / "1")


def test_pipeline_prune_only_student_prunes_an_earlier_one_without_distilling_it(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = _config(tmp_path, teacher_dir, toy_data["train"], toy_data["dev"])
    config = yaml.safe_load(path.read_text())
    recover = {"train": {"epochs": 1, "learning_rate": "3e-3", "batch_size": 16, "warmup": 0},
               "distill": {"alpha_ce": 0.5, "alpha_kl": 0.5}}
    config["students"].append({"name": "l1-narrow", "init": "l1", "prune_only": True,
                               "prune": {"heads": 1, "ffn": 8, "importance_batches": 2},
                               "recover": recover, "prune_vocab": True})
    config["register"] = {"variants": ["l1-narrow-pruned-vocab-int8"], "max_drop": 100}
    work, names = _run_pipeline(path, config, capsys, monkeypatch)
    assert {"l1-narrow-pruned-fp32", "l1-narrow-pruned-vocab-int8"} <= names
    # No copy of l1 under the new name: nothing was distilled or exported for it.
    assert not (work / "students" / "l1-narrow").exists()
    assert not any(n.startswith("l1-narrow-") and "pruned" not in n for n in names)
    init = json.loads((work / "students" / "l1-narrow-pruned-init" / "result.json").read_text())
    assert init["parent"] == str(work / "students" / "l1" / "model")
    assert init["shapes_after"] == [{"heads": 1, "intermediate_size": 8}]
    manifest = verify_version(tmp_path / "models" / "toy-sentiment" / "1")
    assert manifest.lineage.method == (
        "finetune+distill+prune-structure+distill+prune-vocab+export+quantize")


def test_a_prune_only_student_can_keep_fewer_layers_of_a_pruned_one(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The teacher narrowed in every layer, then a copy of that with one of its two layers
    (recovered with the hidden-state losses mapped to the teacher's layers), published."""
    path = _config(tmp_path, teacher_dir, toy_data["train"], toy_data["dev"])
    config = yaml.safe_load(path.read_text())
    train = {"epochs": 1, "learning_rate": "3e-3", "batch_size": 16, "warmup": 0}
    config["students"] = [
        {"name": "narrow", "init": "teacher", "prune_only": True,
         "prune": {"heads": 1, "ffn": 8, "importance_batches": 2},
         "recover": {"train": train, "distill": {"alpha_ce": 0.5, "alpha_kl": 0.5}}},
        {"name": "shallow", "init": "narrow-pruned", "prune_only": True,
         "prune": {"layers": [1]},
         "recover": {"train": train, "distill": {"alpha_ce": 0.5, "alpha_kl": 0.5,
                                                  "alpha_hidden": 1.0}}},
    ]
    config["register"] = {"variants": ["shallow-pruned-int8"], "max_drop": 100}
    work, names = _run_pipeline(path, config, capsys, monkeypatch)
    assert {"narrow-pruned-fp32", "shallow-pruned-fp32", "shallow-pruned-int8"} <= names
    init = json.loads((work / "students" / "shallow-pruned-init" / "result.json").read_text())
    assert init["parent"] == str(work / "students" / "narrow-pruned" / "model")
    assert init["shapes_before"] == [{"heads": 1, "intermediate_size": 8}] * 2
    assert init["shapes_after"] == [{"heads": 1, "intermediate_size": 8}]
    onnx = work / "onnx"
    assert ((onnx / "shallow-pruned-fp32" / ONNX_FILE).stat().st_size
            < (onnx / "narrow-pruned-fp32" / ONNX_FILE).stat().st_size)
    manifest = verify_version(tmp_path / "models" / "toy-sentiment" / "1")
    assert manifest.lineage.method.count("prune-structure") == 2


def test_a_prune_only_students_pruned_model_is_what_a_later_one_starts_from(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path]) -> None:
    from compression.core.errors import ConfigError

    config = yaml.safe_load(_config(tmp_path, teacher_dir, toy_data["train"],
                                    toy_data["dev"]).read_text())
    config["students"].append({"name": "l1-narrow", "init": "l1", "prune_only": True,
                               "prune": {"heads": 1},
                               "recover": {"train": {"epochs": 1}, "distill": {}}})
    config["students"].append({"name": "q", "init": "l1-narrow-pruned"})
    assert PipelineConfig.from_dict(config).students[1].prune_only
    config["students"][2]["init"] = "l1-narrow"  # its own name is a copy of l1: not made
    with pytest.raises(ConfigError, match="choose one of .*l1-narrow-pruned"):
        PipelineConfig.from_dict(config)


def test_pipeline_sparse_student_and_nearest_vocabulary(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    work, _ = _run_with_student(tmp_path, teacher_dir, toy_data, capsys, monkeypatch,
                                {"sparsity": {"sparsity": 0.5, "every": 2},
                                 "prune_vocab": "nearest"}, "l1-vocab-int8")
    student = json.loads((work / "students" / "l1" / "result.json").read_text())
    assert student["sparsity"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    vocab = json.loads((work / "students" / "l1-vocab" / "result.json").read_text())
    assert vocab["unseen"] == "nearest"
    verify_version(tmp_path / "models" / "toy-sentiment" / "1")


def test_pipeline_quantization_aware_student_from_an_earlier_one(
        tmp_path: Path, teacher_dir: Path, toy_data: dict[str, Path],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = _config(tmp_path, teacher_dir, toy_data["train"], toy_data["dev"])
    config = yaml.safe_load(path.read_text())
    config["students"].append({
        "name": "l1-qat", "init": "l1", "qat": True,
        "distill": {"alpha_ce": 0.5, "alpha_kl": 0.5},
        "train": {"epochs": 1, "learning_rate": "1e-3", "batch_size": 16, "warmup": 0},
    })
    config["register"] = {"variants": ["l1-qat-int8"], "max_drop": 100}
    work, _ = _run_pipeline(path, config, capsys, monkeypatch)
    result = json.loads((work / "students" / "l1-qat" / "result.json").read_text())
    assert result["quantization_aware"]["per_channel"] is True
    first = json.loads((work / "students" / "l1" / "result.json").read_text())
    assert result["student_parameters"] == first["student_parameters"], (
        "the quantization-aware student did not start from l1")
    names = {r["name"] for r in json.loads((work / "eval" / "evaluation.json").read_text())}
    assert {"l1-qat-fp32", "l1-qat-int8"} <= names
    verify_version(tmp_path / "models" / "toy-sentiment" / "1")


def test_pipeline_ensemble_student_learns_from_the_teacher_and_its_twin(
        tmp_path: Path, tiny_encoder: Path, toy_data: dict[str, Path],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = _config(tmp_path, tiny_encoder, toy_data["train"], toy_data["dev"])
    config = yaml.safe_load(path.read_text())
    config["teacher"] = {"pretrained": str(tiny_encoder), "ensemble_seeds": [3],
                         "train": {"epochs": 2, "learning_rate": "3e-3", "batch_size": 16,
                                   "warmup": 0, "seed": 0}}
    config["students"][0]["ensemble"] = True
    config["students"].append({**config["students"][0], "name": "l1-alone", "ensemble": False})
    work, names = _run_pipeline(path, config, capsys, monkeypatch)
    assert {"l1-int8", "l1-alone-int8"} <= names
    twin = json.loads((work / "teacher-seed3" / "result.json").read_text())
    assert twin["config"]["train"]["seed"] == 3
    assert json.loads((work / "teacher" / "result.json").read_text())["config"]["train"][
        "seed"] == 0
    ensemble = json.loads((work / "students" / "l1" / "result.json").read_text())
    assert ensemble["extra_teachers"] == [twin["model_dir"]]
    assert 0.0 <= ensemble["teacher_ensemble_dev_accuracy"] <= 1.0
    alone = json.loads((work / "students" / "l1-alone" / "result.json").read_text())
    assert alone["extra_teachers"] == [] and alone["teacher_ensemble_dev_accuracy"] is None


def test_pipeline_teacher_is_the_candidate_seed_with_the_best_dev_accuracy(
        tmp_path: Path, tiny_encoder: Path, toy_data: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import compression.pipeline
    from compression.pipeline import Pipeline

    accuracy = {0: 0.80, 3: 0.90, 5: 0.85}
    trained: list[tuple[int, Path]] = []

    def fake_finetune(model_ref: str, data: object, train: object, output_dir: Path,
                      **kwargs: object) -> dict:
        trained.append((train.seed, output_dir))
        return {"dev_accuracy": accuracy[train.seed], "model_dir": f"model-{train.seed}",
                "config": {"train": {"seed": train.seed}}}

    monkeypatch.setattr(compression.pipeline, "finetune", fake_finetune)
    config = yaml.safe_load(_config(tmp_path, tiny_encoder, toy_data["train"],
                                    toy_data["dev"]).read_text())
    config["teacher"] = {"pretrained": str(tiny_encoder), "candidate_seeds": [3, 5],
                         "train": {"seed": 0}}
    pipeline = Pipeline(PipelineConfig.from_dict(config))
    assert pipeline.teacher() == "model-3"
    work = Path(config["work_dir"])
    assert trained == [(0, work / "teacher"), (3, work / "teacher-seed3"),
                       (5, work / "teacher-seed5")]
    accuracy[0] = 0.90  # a tie keeps the configured seed's own run
    assert pipeline.teacher() == "model-0"


