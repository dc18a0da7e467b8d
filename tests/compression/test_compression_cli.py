"""The command line: every bad input is one `error:` line and exit status 2; every
subcommand's --help works."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import save_tokenizer

from compression.cli.main import main
from registry import list_versions, verify_version

REPO = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run a command that must fail; return its one error line."""
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    assert lines[-1] == errors[0]  # nothing follows the error
    return errors[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, toy_data: dict[str, Path]) -> dict[str, Path]:
    """Good and bad data files."""
    d = tmp_path_factory.mktemp("cli-data")
    samples = {
        "empty.tsv": "",
        "header_only.tsv": "sentence\tlabel\n",
        "malformed.tsv": "sentence\tlabel\ngood film\t1\nbad\tfilm\t0\nfun\t1\n",
        "dev_new_label.tsv": "sentence\tlabel\ngood film\t1\nbad film\t0\nso so\t2\n",
        "no_label.tsv": "sentence\tlabel\ngood film\t\n",
        "data.txt": "good film 1\n",
        "bad.jsonl": '{"sentence": "good", "label": 1}\n{"sentence": "bad", "label"\n',
        "one_label.tsv": "sentence\tlabel\ngood film\t1\nfun film\t1\n",
    }
    for name, text in samples.items():
        (d / name).write_text(text)
    return {name: d / name for name in samples} | toy_data


def _finetune_args(model: Path, train: Path, dev: Path, out: Path, *extra: str) -> list[str]:
    return ["finetune", "--model", str(model), "--train", str(train), "--dev", str(dev),
            "--output", str(out), *extra]


@pytest.mark.parametrize(
    ("train", "dev", "extra", "expected"),
    [
        ("missing.tsv", "dev", (), "data file not found"),
        ("empty.tsv", "dev", (), "the file is empty"),
        ("header_only.tsv", "dev", (), "no examples"),
        ("malformed.tsv", "dev", (), "line 3 has 3 fields, the header has 2"),
        ("train", "dev_new_label.tsv", (), "row 3 has label '2'"),
        ("train", "dev", ("--text-column", "text"), "no text column 'text'"),
        ("train", "dev", ("--label-column", "y"), "no label column 'y'"),
        ("no_label.tsv", "dev", (), "line 2 has no label"),
        ("data.txt", "dev", (), "unknown data format"),
        ("bad.jsonl", "dev", (), "line 2 is not valid JSON"),
        ("one_label.tsv", "dev", (), "at least 2 distinct labels"),
        ("train", "dev", ("--label-names", "0-negative"), "RAW=NAME"),
        ("train", "dev", ("--label-names", "0=neg,7=seven"), "never has"),
    ],
)
def test_bad_data_is_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                    files: dict[str, Path], tiny_encoder: Path, train: str,
                                    dev: str, extra: tuple[str, ...], expected: str) -> None:
    train_path = files.get(train, tmp_path / train)
    line = error_line(capsys, *_finetune_args(tiny_encoder, train_path, files[dev],
                                              tmp_path / "out", *extra))
    assert expected in line
    if train_path.name != "train.tsv":  # the message names the file at fault
        assert train_path.name in line or "label-names" in line or "label_names" in line
    assert not (tmp_path / "out" / "result.json").exists()


def test_non_bert_model_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                               files: dict[str, Path]) -> None:
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2",
                                                  "architectures": ["GPT2LMHeadModel"]}))
    line = error_line(capsys, *_finetune_args(gpt2, files["train"], files["dev"],
                                              tmp_path / "out"))
    assert "'gpt2' is not a BERT-family encoder" in line
    line = error_line(capsys, "distill", "--teacher", gpt2, "--output", tmp_path / "d",
                      "--train", files["train"], "--dev", files["dev"])
    assert "gpt2" in line
    line = error_line(capsys, *_finetune_args(tmp_path / "nowhere", files["train"],
                                              files["dev"], tmp_path / "out"))
    assert "HF_HUB_OFFLINE" in line  # not a folder, and the hub is off


def test_encoder_without_head_is_not_a_teacher(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path, files: dict[str, Path],
                                               tiny_encoder: Path) -> None:
    from transformers import BertModel

    encoder = tmp_path / "encoder"
    BertModel.from_pretrained(str(tiny_encoder)).save_pretrained(str(encoder))
    save_tokenizer(encoder)
    capsys.readouterr()
    line = error_line(capsys, "distill", "--teacher", encoder, "--output", tmp_path / "d",
                      "--train", files["train"], "--dev", files["dev"], "--layers-count", "1")
    assert "not a sequence classifier" in line and "finetune" in line


def test_student_deeper_than_teacher(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     files: dict[str, Path], teacher_dir: Path) -> None:
    line = error_line(capsys, "distill", "--teacher", teacher_dir, "--output", tmp_path / "d",
                      "--train", files["train"], "--dev", files["dev"],
                      "--label-names", "0=negative,1=positive", "--layers-count", "5")
    assert "5 layers" in line and "only 2" in line
    line = error_line(capsys, "distill", "--teacher", teacher_dir, "--output", tmp_path / "d",
                      "--train", files["train"], "--dev", files["dev"], "--layers", "0,x",
                      "--layers-count", "2")
    assert "--layers" in line
    line = error_line(capsys, "distill", "--teacher", teacher_dir, "--output", tmp_path / "d",
                      "--train", files["train"], "--dev", files["dev"], "--layers", "0,1",
                      "--layers-count", "1")
    assert "num_layers=1" in line


def test_bad_pruning_parameters_are_one_line_errors(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, files: dict[str, Path],
        teacher_dir: Path) -> None:
    data = ["--train", files["train"], "--dev", files["dev"],
            "--label-names", "0=negative,1=positive"]
    line = error_line(capsys, "distill", "--teacher", teacher_dir, "--output", tmp_path / "d",
                      "--layers-count", "1", "--sparsity", "1.0", *data)
    assert "sparsity" in line
    line = error_line(capsys, "prune-structure", "--model", teacher_dir, "--output",
                      tmp_path / "p", "--heads", "0", *data)
    assert "heads must be >= 1" in line
    line = error_line(capsys, "prune-structure", "--model", teacher_dir, "--output",
                      tmp_path / "p", "--heads", "7", *data)
    assert "heads=7" in line and "only 2" in line
    assert not (tmp_path / "p" / "pruned" / "model").exists()  # nothing half-written


def test_prune_structure_global_scope_keeps_the_total_from_the_command_line(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, files: dict[str, Path],
        teacher_dir: Path) -> None:
    code, out, _ = run(capsys, "prune-structure", "--model", teacher_dir, "--output",
                       tmp_path / "p", "--heads", "1", "--ffn", "8", "--scope", "global",
                       "--importance-batches", "2", "--train", files["train"], "--dev",
                       files["dev"], "--label-names", "0=negative,1=positive")
    assert code == 0 and "not retrained" in out
    result = json.loads((tmp_path / "p" / "pruned" / "result.json").read_text())
    assert result["config"]["scope"] == "global"
    layers = len(result["shapes_before"])
    assert sum(s["heads"] for s in result["shapes_after"]) == layers  # 1 per layer on average
    assert sum(s["intermediate_size"] for s in result["shapes_after"]) == 8 * layers


def test_distill_labels_must_match_teacher(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           files: dict[str, Path], teacher_dir: Path) -> None:
    line = error_line(capsys, "distill", "--teacher", teacher_dir, "--output", tmp_path / "d",
                      "--train", files["train"], "--dev", files["dev"], "--layers-count", "1")
    assert "label_names" in line


def test_register_refuses_existing_version(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           teacher_onnx: Path) -> None:
    root = tmp_path / "models"
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"dev_accuracy": 0.75}))
    args = ["register", "--model", teacher_onnx, "--name", "toy", "--labels",
            "negative, positive", "--registry", root, "--version", "3", "--metrics", metrics,
            "--max-length", "32"]
    code, out, _ = run(capsys, *args)
    assert code == 0
    assert "register: published" in out and str(root / "toy" / "3") in out
    manifest = verify_version(root / "toy" / "3")
    assert manifest.labels == ["negative", "positive"]
    assert manifest.metrics == {"dev_accuracy": 0.75}

    line = error_line(capsys, *args)
    assert "already exists" in line and "--force" in line
    code, _, _ = run(capsys, *args, "--force")
    assert code == 0
    assert list_versions(root, "toy") == ["3"]


def test_register_needs_an_onnx_folder(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    line = error_line(capsys, "register", "--model", tmp_path, "--name", "toy", "--labels",
                      "a,b", "--registry", tmp_path / "models")
    assert "model.onnx" in line


def test_quantize_static_needs_calibration_data(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path, teacher_onnx: Path,
                                                files: dict[str, Path]) -> None:
    line = error_line(capsys, "quantize", "--model", teacher_onnx, "--output", tmp_path / "q",
                      "--check-data", files["dev"])
    assert "--calibration-data" in line


def test_bad_pipeline_configs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cases = {
        "missing.yaml": (None, "config file not found"),
        "bad.yaml": ("name: [unclosed\n", "invalid YAML"),
        "config.ini": ("name = x\n", ".yaml or .toml"),
        "unknown.yaml": ("name: x\ndata: {}\nteacher: {}\nstudnets: []\n", "studnets"),
        "two_teachers.yaml": ("name: x\ndata: {train: a.tsv, dev: b.tsv}\n"
                              "teacher: {pretrained: a, finetuned: b}\n", "exactly one"),
        "bad_key.yaml": ("name: x\ndata: {train: a.tsv, dev: b.tsv, maxlen: 3}\n"
                         "teacher: {finetuned: b}\n", "maxlen"),
        "bad_value.toml": ('name = "x"\n[data]\ntrain = "a.tsv"\ndev = "b.tsv"\n'
                           'max_length = 4\n[teacher]\nfinetuned = "b"\n', "max_length"),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        assert expected in error_line(capsys, "pipeline", path), name


def test_finetune_from_jsonl_with_string_labels(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path, tiny_encoder: Path) -> None:
    from tiny_models import toy_sentences

    texts, labels = toy_sentences(40, seed=4)
    names = {0: "sad", 1: "happy"}
    for split in ("train", "dev"):
        with open(tmp_path / f"{split}.jsonl", "w") as handle:
            for text, label in zip(texts, labels, strict=True):
                handle.write(json.dumps({"text": text, "y": names[label]}) + "\n")
    code, out, _ = run(capsys, *_finetune_args(
        tiny_encoder, tmp_path / "train.jsonl", tmp_path / "dev.jsonl", tmp_path / "out",
        "--text-column", "text", "--label-column", "y", "--max-steps", "2", "--epochs", "1",
        "--max-length", "32"))
    assert code == 0, out
    assert out.splitlines()[-1].startswith("finetune: dev accuracy")  # the summary line
    config = json.loads((tmp_path / "out" / "model" / "config.json").read_text())
    assert config["id2label"] == {"0": "happy", "1": "sad"}  # string labels sort by name
    assert (tmp_path / "out" / "model" / "tokenizer.json").is_file()


HELP = {
    "finetune": ["--model", "--output", "--train", "--dev", "--epochs", "--lr", "--no-resume",
                 "--label-names", "--max-steps"],
    "distill": ["--teacher", "--layers-count", "--layers", "--hidden-size", "--temperature",
                "--alpha-ce", "--alpha-kl", "--alpha-cos", "--alpha-hidden",
                "--alpha-attention", "--no-cache", "--sparsity", "--sparsity-scope", "--bf16",
                "--student", "--qat", "--qat-float-outputs", "--augment-copies",
                "--augment-prob", "--augment-candidates"],
    "export": ["--model", "--output", "--check-data", "--optimize", "--tolerance"],
    "float-outputs": ["--model", "--output", "--check-data"],
    "quantize": ["--preset", "static", "static-int4-embeddings", "static-float-outputs",
                 "static-float-outputs-int4-embeddings",
                 "dynamic", "weight-only-int4",
                 "--calibration",
                 "--calibration-data", "--calibration-size", "--no-embeddings", "--check-data"],
    "evaluate": ["models", "--data", "--train", "--rounds", "--threads", "--limit",
                 "--latency-threads"],
    "register": ["--model", "--name", "--labels", "--version", "--registry", "--metrics",
                 "--force"],
    "pipeline": ["config", "--force"],
    "bench": ["config", "--output", "--rounds", "--register"],
    "prune-vocab": ["--model", "--train", "--output", "--unseen", "nearest", "--no-keep-chars"],
    "prune-structure": ["--model", "--output", "--heads", "--ffn", "--scope", "global",
                        "--teacher", "--importance-batches", "--epochs"],
}


@pytest.mark.parametrize("command", sorted(HELP))
def test_subcommand_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m compression {command}")
    for option in HELP[command]:
        assert option in out, option


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in HELP:
        assert command in out


def test_usage_errors_exit_nonzero(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["shrink"], ["distill"], ["quantize", "--preset", "int4"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    capsys.readouterr()


def test_module_entry_point_exits_2_on_bad_data(tmp_path: Path, tiny_encoder: Path) -> None:
    """`python -m compression` as a user runs it: status 2, one line on stderr."""
    if shutil.which(sys.executable) is None:
        pytest.skip("no interpreter path")
    proc = subprocess.run(
        [sys.executable, "-m", "compression", *_finetune_args(
            tiny_encoder, tmp_path / "missing.tsv", tmp_path / "dev.tsv", tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'missing.tsv'}: data file not found"]
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--name", "../evil", "--labels", "a,b"], "name"),
        (["--name", "toy", "--labels", "a,b", "--version", "x/y"], "version"),
        (["--name", "toy", "--labels", "a"], "label"),
        (["--name", "toy", "--labels", "a,a"], "label"),
        (["--name", "toy", "--labels", "a,b", "--max-length", "4"], "max_length"),
    ],
)
def test_register_rejects_bad_manifest_fields(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path, teacher_onnx: Path,
                                              extra: list[str], expected: str) -> None:
    """Names that would escape the registry, one label, duplicate labels: one line, exit 2
    (not a pydantic traceback), and nothing written."""
    root = tmp_path / "models"
    line = error_line(capsys, "register", "--model", teacher_onnx, "--registry", root, *extra)
    assert expected in line
    assert not root.exists() or not any(root.rglob("manifest.json"))
    assert not (tmp_path / "evil").exists()


def test_pipeline_refuses_unsafe_name_before_any_work(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path,
                                                       teacher_dir: Path) -> None:
    """The config's name becomes a registry folder: check it when the config is read, not
    after training, distilling and evaluating."""
    path = tmp_path / "p.yaml"
    path.write_text(f"name: ../escape\nwork_dir: {tmp_path / 'run'}\n"
                    f"data: {{train: {tmp_path / 'no.tsv'}, dev: {tmp_path / 'no.tsv'}}}\n"
                    f"teacher: {{finetuned: {teacher_dir}}}\n")
    line = error_line(capsys, "pipeline", path)
    assert "name" in line and "../escape" in line
