"""Fixtures for the compression tests: toy data, a tiny random encoder and a tiny
fine-tuned teacher, each built once per session with no network."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

TESTS_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS_DIR))

from tiny_models import build_classifier, write_toy_tsv  # noqa: E402

TRAIN_ROWS = 240
DEV_ROWS = 64


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread for every test, restored after each: `evaluate` sets torch's
    process-wide thread count, and two threads on a busy 2-core machine crawl."""
    import torch

    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Toy sentiment train/dev TSVs (header `sentence<TAB>label`, labels 0/1)."""
    folder = tmp_path_factory.mktemp("toy-data")
    return {
        "train": write_toy_tsv(folder / "train.tsv", TRAIN_ROWS, seed=1),
        "dev": write_toy_tsv(folder / "dev.tsv", DEV_ROWS, seed=2),
    }


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer, 32-wide BERT classifier folder (stands in for a pretrained
    encoder; fine-tuning gives it a fresh head)."""
    return build_classifier(tmp_path_factory.mktemp("encoder") / "model", labels=("0", "1"))


@pytest.fixture(scope="session")
def teacher_run(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path,
                toy_data: dict[str, Path]) -> dict:
    """The result of fine-tuning the tiny encoder on the toy task."""
    from compression.config.steps import DataConfig, TrainConfig
    from compression.training.finetune import finetune

    data = DataConfig(train=str(toy_data["train"]), dev=str(toy_data["dev"]),
                      label_names={"0": "negative", "1": "positive"}, max_length=32)
    train = TrainConfig(epochs=8, learning_rate=3e-3, batch_size=16, warmup=0.0, seed=0)
    return finetune(str(tiny_encoder), data, train, tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="session")
def teacher_dir(teacher_run: dict) -> Path:
    """The tiny fine-tuned teacher: a BertForSequenceClassification folder with
    labels negative/positive and a tokenizer.json."""
    return Path(teacher_run["model_dir"])


def pytest_configure(config: pytest.Config) -> None:
    # Trainer asks for pinned memory; on a CPU-only machine torch warns on every epoch.
    config.addinivalue_line("filterwarnings", "ignore:'pin_memory' argument:UserWarning")
    # onnxruntime's 4-bit quantizer divides by the zero scale of all-zero blocks (the
    # [PAD] embedding) before masking the result with np.where.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:invalid value encountered in divide:RuntimeWarning:"
        "onnxruntime.quantization.matmul_nbits_quantizer",
    )


@pytest.fixture(scope="session")
def dev_texts() -> list[str]:
    from tiny_models import toy_sentences

    return toy_sentences(64, seed=2)[0]  # the dev TSV's sentences


@pytest.fixture(scope="session")
def teacher_onnx(tmp_path_factory: pytest.TempPathFactory, teacher_dir: Path,
                 dev_texts: list[str]) -> Path:
    """The tiny teacher exported by `export_step`: model.onnx, tokenizer.json, result.json."""
    from compression.exporting.steps import export_step

    out = tmp_path_factory.mktemp("teacher-onnx")
    export_step(teacher_dir, out, dev_texts, max_length=32)
    return out
