"""`python -m compression bench`: every variant of a pipeline measured in one process,
written to a Markdown report with a chart."""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import onnxruntime
import torch
import transformers

from compression.config.pipeline_file import PipelineConfig
from compression.evaluation.report import markdown_table, plot
from compression.evaluation.timing import LATENCY_SLICE, SETTLE_S, THROUGHPUT_SLICE
from compression.models.loading import labels_of, load_classifier
from compression.pipeline import Pipeline


def write_section(path: Path, name: str, section: str) -> Path:
    """Replace (or append) the part of `path` between `<!-- NAME:start/end -->` markers,
    so the compression and load benchmarks each own one section of one report."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{section.strip()}\n{end}\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def machine_description() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores visible; Python {platform.python_version()}, "
            f"torch {torch.__version__}, transformers {transformers.__version__}, "
            f"onnxruntime {onnxruntime.__version__}")


def run_benchmark(config_path: Path, output: Path, rounds: int = 5,
                  register: bool = False, force: bool = False) -> Path:
    """Measure every variant, write the report; with `register`, also publish the config's
    chosen variants with the metrics of this very run (no second evaluation)."""
    config = PipelineConfig.load(config_path)
    pipeline = Pipeline(replace(config, eval_rounds=rounds), force=force)
    teacher_dir = pipeline.teacher()
    torch_models = {"teacher": teacher_dir, **pipeline.students(teacher_dir)}
    onnx_dirs = pipeline.onnx_variants(torch_models)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    # The registry's versions are measured in the same run, so the shipped default's
    # ratios against the teacher come from the same timings as the candidates'.
    reports = pipeline.evaluate(teacher_dir, onnx_dirs, pipeline.published_versions())
    if register:
        pipeline.register(reports, onnx_dirs, labels_of(load_classifier(teacher_dir)))
    output = Path(output)
    # One section and one chart per model: the benchmarks of several models share a report.
    chart = output.with_name(f"{output.stem}-{config.name}.png")
    dev = config.data.dev or f"{config.data.dev_fraction:g} of {config.data.train}, stratified"
    plot(reports, chart, f"{config.name}: dev, one process, {rounds} interleaved rounds")
    command = "python -m compression bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == [
        "bench"] else f"python -m compression bench {config_path}"
    counts = sorted({2, *config.eval_latency_threads})
    latency_note = (
        f", except batch-1 latency: measured at {' and '.join(map(str, counts))} threads, "
        "the faster reported (`b1 threads`)" if len(counts) > 1 else "")
    text = f"""## Compression: {config.name}

Measured {started} on {machine_description()}.
Two intra-op threads for every variant{latency_note}; dev set `{dev}`;
accuracy from one text at a time; peak RSS from a fresh child process per variant; latency
is the median (p50) and p95 of batch-1 calls over every dev sentence, {rounds} rounds, the
variants taking turns every {LATENCY_SLICE} sentences ({THROUGHPUT_SLICE * 32} for throughput),
each after a {SETTLE_S * 1000:.0f} ms pause in which the previous one's threads stop spinning, so
that all of them see the same machine; throughput is batch 32 in arrival order (no length sorting).
Ratios are against the fine-tuned teacher in PyTorch fp32, measured in the same run. Rows named
`{config.name}/<version>` are the versions in the registry (`{config.registry}`) when the
run started.

Command: `{command}`

{markdown_table(reports)}
![accuracy against size and latency]({chart.name})
"""
    return write_section(output, f"compression-benchmark-{config.name}", text)
