"""The file layout of a step's output folder, and the file helpers steps share."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from registry import sha256_file

RESULT_FILE = "result.json"  # beside every step's output: what made it (core.steps)
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MODEL_SUBDIR = "model"  # a PyTorch step writes its model to OUTPUT/model
CHECKPOINTS_SUBDIR = "checkpoints"


def checksum_or_none(path: Path) -> str | None:
    """sha256 of a step's input file, for reuse keys; None when the file is absent
    (a hub id rather than a folder)."""
    return sha256_file(path) if Path(path).is_file() else None


def copy_tokenizer_files(model_dir: Path, target: Path) -> None:
    """Copy a model folder's tokenizer files into `target` byte for byte: re-saving
    would drop the aliases of a vocabulary pruned with unseen="nearest" (several strings
    for one id; see `pruning.vocabulary`)."""
    for path in Path(model_dir).iterdir():
        if path.name.startswith(("tokenizer", "special_tokens", "vocab")) and path.is_file():
            shutil.copyfile(path, Path(target) / path.name)


def make_world_readable(folder: Path) -> None:
    """transformers writes 0600 files; the service's container runs as another user."""
    for path in Path(folder).iterdir():
        if path.is_file():
            os.chmod(path, 0o644)
