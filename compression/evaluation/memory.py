"""Peak resident memory of a variant, measured in a fresh child process
(`python -m compression.evaluation.memory SPEC`), so no variant pays for another's."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from compression.evaluation.runners import Variant
from compression.tasks.registry import CLASSIFICATION

log = logging.getLogger(__name__)


def peak_memory_mb(variant: Variant, texts: list[str], max_length: int, threads: int) -> float:
    """Peak resident memory of a fresh process that loads `variant` and runs `texts` at
    batch 1 and 32. A child process per variant, so no variant pays for another's."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"variant": asdict(variant), "texts": texts, "max_length": max_length,
                   "threads": threads}, handle, default=str)
    out = subprocess.run(
        [sys.executable, "-m", "compression.evaluation.memory", handle.name],
        capture_output=True, text=True, timeout=600,
    )
    os.unlink(handle.name)
    if out.returncode != 0:
        log.warning("memory probe of %s failed: %s", variant.name, out.stderr.strip()[-300:])
        return float("nan")
    return float(out.stdout.strip().splitlines()[-1])


def _memory_probe(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    v = spec["variant"]
    variant = Variant(v["name"], Path(v["path"]), v["kind"], Path(v["model_file"]),
                      Path(v["tokenizer_file"]))
    runner = variant.load(spec["threads"])
    encoder = CLASSIFICATION.batch_encoder(variant.tokenizer_file, spec["max_length"])
    texts = spec["texts"]
    for text in texts:
        runner.logits(encoder([text]))
    for i in range(0, len(texts), 32):
        runner.logits(encoder(texts[i : i + 32]))
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a child
    # of a large parent would report the parent's size.
    status = Path("/proc/self/status").read_text()
    kilobytes = next(int(line.split()[1]) for line in status.splitlines()
                     if line.startswith("VmHWM:"))
    print(kilobytes / 1024)


if __name__ == "__main__":  # the memory probe's child process
    _memory_probe(sys.argv[1])
