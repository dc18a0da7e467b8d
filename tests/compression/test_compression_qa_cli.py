"""The standalone commands on a question answerer, as on a classifier: `finetune` on
SQuAD-layout JSON, then `export` (one logits output, (batch, sequence, 2): start and
end), `quantize` with every preset, `float-outputs`, `evaluate` (exact match and F1)
and `register`, each reading the windows the model was trained with from its lineage;
and one clear line, no traceback, where a command cannot take what it is given."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from cli_run import run_cli
from toy_qa import write_toy_squad

from compression.cli.main import main
from compression.config.steps import QUANT_PRESETS
from registry import Manifest

WINDOWS = ["--max-length=32", "--doc-stride=8", "--max-question-length=8",
           "--max-answer-length=5"]


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path) -> dict[str, Path]:
    """A tiny question answerer fine-tuned by the CLI, and its fp32 export."""
    work = tmp_path_factory.mktemp("qa-cli")
    train = write_toy_squad(work / "train.json", 200, 1, (4, 40))
    dev = write_toy_squad(work / "dev.json", 40, 2, (4, 40))
    assert main(["finetune", "--model", str(tiny_encoder), "--output", str(work / "ft"),
                 "--train", str(train), "--dev", str(dev), "--task", "question-answering",
                 "--epochs", "8", "--lr", "5e-3", "--batch-size", "16", "--warmup", "0",
                 *WINDOWS]) == 0
    # No window flags: export reads them (and --max-length) from the fine-tuning's record.
    assert main(["export", "--model", str(work / "ft" / "model"), "--output",
                 str(work / "onnx"), "--check-data", str(dev)]) == 0
    return {"work": work, "train": train, "dev": dev, "model": work / "ft" / "model",
            "onnx": work / "onnx"}


def test_finetune_reports_exact_match_and_f1(reader: dict[str, Path]) -> None:
    result = json.loads((reader["work"] / "ft" / "result.json").read_text())
    assert result["dev_f1"] > 0.8 and result["dev_exact_match"] == result["dev_accuracy"]


def test_export_writes_start_and_end_logits_with_dynamic_axes(reader: dict[str, Path]) -> None:
    graph = onnx.load(str(reader["onnx"] / "model.onnx")).graph
    (output,) = graph.output
    dims = [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim]
    assert (output.name, dims) == ("logits", ["batch", "sequence", 2])
    assert all([d.dim_param for d in i.type.tensor_type.shape.dim] == ["batch", "sequence"]
               for i in graph.input)
    result = json.loads((reader["onnx"] / "result.json").read_text())
    assert result["outputs"] == {"logits": ["batch", "sequence", 2]}
    assert result["max_abs_diff"] < 1e-3  # checked on windows of the dev questions


@pytest.mark.parametrize("preset", sorted(QUANT_PRESETS))
def test_every_quantization_preset_takes_a_question_answerer(
        reader: dict[str, Path], preset: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / preset
    code, stdout, err = run_cli(capsys, "quantize", "--model", reader["onnx"], "--output", out,
                             "--preset", preset, "--calibration-data", reader["train"],
                             "--calibration-size", 32, "--check-data", reader["dev"])
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    assert 0 < result["agreement"] <= 1 and "agreement with fp32" in stdout
    ops = {node.op_type for node in onnx.load(str(out / "model.onnx")).graph.node}
    if QUANT_PRESETS[preset].get("float_outputs"):
        assert "MatMulIntegerToFloat" in ops


def test_the_chain_rewrites_evaluates_and_registers(
        reader: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    static, rewritten = tmp_path / "static", tmp_path / "float-outputs"
    assert run_cli(capsys, "quantize", "--model", reader["onnx"], "--output", static,
                "--calibration-data", reader["train"], "--calibration-size", 32,
                "--check-data", reader["dev"])[0] == 0
    code, _, err = run_cli(capsys, "float-outputs", "--model", static, "--output", rewritten,
                        "--check-data", reader["dev"])
    assert code == 0, err
    # No --task: the models say they answer questions; scored by SQuAD's EM and F1.
    onnx_files = [folder / "model.onnx" for folder in (reader["onnx"], static, rewritten)]
    code, stdout, err = run_cli(capsys, "evaluate", reader["model"], *onnx_files,
                             "--data", reader["dev"], "--rounds", 1,
                             "--output", tmp_path / "eval")
    assert code == 0, err
    reports = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert len(reports) == 4 and "| dev EM | dev F1 |" in stdout
    assert reports[0]["f1"] > 0.8 and all(r["exact_match"] == r["accuracy"] for r in reports)
    assert reports[1]["f1"] == pytest.approx(reports[0]["f1"])  # the fp32 export

    # No --max-length: the reader's own, as its windows.
    code, _, err = run_cli(capsys, "register", "--model", rewritten, "--name", "qa",
                        "--labels", "start,end", "--registry", tmp_path / "models")
    assert code == 0, err
    manifest = Manifest.read(tmp_path / "models" / "qa" / "1")
    assert manifest.task == "question-answering" and manifest.labels == ["start", "end"]
    assert manifest.max_length == 32 and manifest.qa is not None
    assert (manifest.qa.doc_stride, manifest.qa.max_answer_length) == (8, 5)
    assert "float-outputs" in manifest.lineage.method and "finetune" in manifest.lineage.method


def test_what_a_question_answerer_cannot_take_is_one_line(
        reader: dict[str, Path], tmp_path: Path, toy_data: dict[str, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    refusals = [
        ("export", "--model", reader["model"], "--output", tmp_path / "x",
         "--check-data", toy_data["dev"]),  # a TSV of sentences, not questions
        ("evaluate", reader["onnx"] / "model.onnx", "--data", toy_data["dev"], "--task",
         "text-classification", "--output", tmp_path / "e"),
        ("register", "--model", reader["onnx"], "--name", "qa", "--labels", "a,b",
         "--registry", tmp_path / "models"),
        ("float-outputs", "--model", reader["onnx"], "--output", tmp_path / "f",
         "--check-data", reader["dev"]),  # fp32: nothing to rewrite
    ]
    for argv in refusals:
        code, _, err = run_cli(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
