"""The architecture tests' shared pieces (a plain module: `conftest` is ambiguous when
several test folders have one): for each supported model type a tiny encoder, the
teacher fine-tuned from it and a one-layer student distilled from that, each made once
per session, on first use, by the commands themselves, with no network."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))  # for tiny_models and tiny_architectures

from tiny_architectures import build_encoder  # noqa: E402
from tiny_models import toy_sentences, write_toy_tsv  # noqa: E402

from compression.cli.main import main  # noqa: E402

MAX_LENGTH = 32
LABELS = "0=negative,1=positive"


class Chain:
    """Each model type's models, made on first use and kept for the session: encoder ->
    teacher (finetune) -> student (distill, one layer, TinyBERT losses)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.train = write_toy_tsv(root / "data" / "train.tsv", 240, seed=1)
        self.dev = write_toy_tsv(root / "data" / "dev.tsv", 64, seed=2)
        self._made: dict[tuple[str, str], Path] = {}

    def labels(self, split: str = "train") -> list[int]:
        """A split's labels (0 negative, 1 positive), row for row."""
        return toy_sentences(240, seed=1)[1] if split == "train" else toy_sentences(64, seed=2)[1]

    def data_args(self) -> list[str]:
        return ["--train", str(self.train), "--dev", str(self.dev), "--label-names", LABELS,
                "--max-length", str(MAX_LENGTH), "--batch-size", "16", "--warmup", "0",
                "--seed", "0"]

    def _once(self, kind: str, name: str, make: Callable[[], Path]) -> Path:
        if (kind, name) not in self._made:
            self._made[(kind, name)] = make()
        return self._made[(kind, name)]

    def encoder(self, name: str) -> Path:
        return self._once("encoder", name,
                          lambda: build_encoder(name, self.root / name / "encoder"))

    def teacher(self, name: str) -> Path:
        def make() -> Path:
            out = self.root / name / "teacher"
            run_cli("finetune", "--model", self.encoder(name), "--output", out,
                    *self.data_args(), "--epochs", "8", "--lr", "3e-3")
            return out / "model"
        return self._once("teacher", name, make)

    def student(self, name: str) -> Path:
        def make() -> Path:
            out = self.root / name / "student"
            run_cli("distill", "--teacher", self.teacher(name), "--output", out,
                    "--layers-count", "1", "--alpha-hidden", "1", "--alpha-attention", "1",
                    *self.data_args(), "--epochs", "2", "--lr", "3e-3")
            return out / "model"
        return self._once("student", name, make)


def run_cli(*argv: object) -> str:
    """Run a command through the CLI; its summary line (AssertionError if it failed)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    assert code == 0, err.getvalue()[-2000:]
    return out.getvalue().strip().splitlines()[-1]
