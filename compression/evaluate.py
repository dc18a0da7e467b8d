"""Side-by-side evaluation of model variants in one process.

Every variant sees the same texts through the same fast tokenizer. Accuracy is taken
from the batch-1 pass (how a service answers one text), which also gives the latency
samples. Timings on shared machines drift within seconds, so the variants take turns
every few texts (LATENCY_SLICE) and medians are reported.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from registry import MANIFEST_FILE, Manifest

from .errors import ModelError
from .metrics import classification_metrics

log = logging.getLogger(__name__)


class Runner(Protocol):
    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray: ...


class TorchRunner:
    def __init__(self, folder: Path, threads: int) -> None:
        import torch

        from .modeling import load_classifier

        self.torch = torch
        self.threads = threads
        self.model = load_classifier(str(folder)).eval()

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        # torch's thread count is per process: runners with different counts take turns.
        if self.torch.get_num_threads() != self.threads:
            self.torch.set_num_threads(self.threads)
        with self.torch.inference_mode():
            tensors = {k: self.torch.from_numpy(v) for k, v in batch.items()}
            return self.model(**tensors).logits.numpy()


class OnnxRunner:
    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["logits"], {k: v for k, v in batch.items() if k in self.inputs})[0]


@dataclass
class Variant:
    """A model to evaluate: a PyTorch classifier folder, an ONNX file or a registry version."""

    name: str
    path: Path
    kind: str  # "torch" or "onnx"
    model_file: Path
    tokenizer_file: Path

    @classmethod
    def from_path(cls, path: Path, name: str | None = None) -> Variant:
        path = Path(path)
        if path.is_dir() and (path / MANIFEST_FILE).is_file():
            manifest = Manifest.read(path)
            return cls(name or str(manifest.ref), path, "onnx", path / manifest.model_file,
                       path / manifest.tokenizer_file)
        if path.is_dir() and (path / "config.json").is_file():
            weights = next((p for p in (path / "model.safetensors", path / "pytorch_model.bin")
                            if p.is_file()), None)
            if weights is None:
                raise ModelError(f"{path}: no model.safetensors in the folder")
            default = path.parent.name if path.name == "model" else path.name
            return cls(name or f"{default}-torch", path, "torch", weights,
                       path / "tokenizer.json")
        if path.is_file() and path.suffix == ".onnx":
            default = path.parent.name if path.stem == "model" else path.stem
            return cls(name or default, path, "onnx", path, path.parent / "tokenizer.json")
        raise ModelError(f"{path}: not a PyTorch classifier folder, .onnx file or registry version")

    def load(self, threads: int) -> Runner:
        if not self.tokenizer_file.is_file():
            raise ModelError(f"{self.path}: no tokenizer.json beside the model")
        return (TorchRunner(self.path, threads) if self.kind == "torch"
                else OnnxRunner(self.model_file, threads))


@dataclass
class VariantReport:
    name: str
    kind: str
    size_mb: float
    accuracy: float
    macro_f1: float
    agreement: float
    latency_p50_ms: float
    latency_p95_ms: float
    throughput_b32: float
    peak_memory_mb: float = float("nan")
    latency_threads: int = 0  # intra-op threads of the batch-1 latency reported
    ratios: dict[str, float] = field(default_factory=dict)


class BatchEncoder:
    """Tokenizes with the `tokenizers` library, as the service does."""

    def __init__(self, tokenizer_file: Path, max_length: int) -> None:
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.no_padding()
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.pad_id = 0 if pad_id is None else pad_id

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        encodings = self.tokenizer.encode_batch(texts)
        longest = max(len(e.ids) for e in encodings)
        ids = np.full((len(texts), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(texts), longest), dtype=np.int64)
        types = np.zeros((len(texts), longest), dtype=np.int64)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = e.ids, 1, e.type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def peak_memory_mb(variant: Variant, texts: list[str], max_length: int, threads: int) -> float:
    """Peak resident memory of a fresh process that loads `variant` and runs `texts` at
    batch 1 and 32. A child process per variant, so no variant pays for another's."""
    import subprocess
    import sys
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"variant": asdict(variant), "texts": texts, "max_length": max_length,
                   "threads": threads}, handle, default=str)
    out = subprocess.run(
        [sys.executable, "-m", "compression.evaluate", handle.name],
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
    encoder = BatchEncoder(variant.tokenizer_file, spec["max_length"])
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


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def evaluate(
    variants: list[Variant],
    texts: list[str],
    labels: list[int],
    max_length: int = 128,
    threads: int = 2,
    rounds: int = 3,
    reference: str | None = None,
    memory: bool = True,
    latency_threads: Sequence[int] = (),
) -> list[VariantReport]:
    """Measure every variant on the same texts; ratios are against `reference` (default:
    the first variant). `memory=False` skips the peak-memory probe (a process each).

    Batch-1 latency is also measured at each of `latency_threads` intra-op threads, and the
    lowest median is reported with its thread count: for a model this small, handing work
    to a second thread costs about as much as it saves, so more threads is not always
    faster.
    Accuracy, throughput and memory are measured at `threads`."""
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ModelError(f"variant names must be unique, got {names}")
    try:
        import torch
    except ImportError:  # ONNX-only evaluation needs no torch
        torch = None
    previous_threads = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(threads)
    try:
        return _evaluate(variants, texts, labels, max_length, threads, rounds, reference,
                         memory, latency_threads)
    finally:
        if torch:
            torch.set_num_threads(previous_threads)


def _evaluate(
    variants: list[Variant], texts: list[str], labels: list[int], max_length: int,
    threads: int, rounds: int, reference: str | None, memory: bool,
    latency_threads: Sequence[int],
) -> list[VariantReport]:
    counts = [threads, *sorted(set(latency_threads) - {threads})]
    # One runner per variant and thread count; the first count's runner does the rest.
    runners = {(v.name, n): v.load(n) for v in variants for n in counts}
    encoders = {v.name: BatchEncoder(v.tokenizer_file, max_length) for v in variants}
    singles = {v.name: [encoders[v.name]([t]) for t in texts] for v in variants}

    names = [v.name for v in variants]
    latencies = _batch1_latencies(runners, singles, names, counts, rounds)
    predictions = {v.name: np.stack(latencies.logits[v.name]) for v in variants}
    fastest = {v.name: min(counts, key=lambda n: statistics.median(latencies.ms[v.name, n]))
               for v in variants}
    throughput = _batch32_throughput(runners, encoders, texts, names, threads, rounds)

    peak = {v.name: peak_memory_mb(v, texts, max_length, threads) if memory else float("nan")
            for v in tqdm(variants, desc="peak memory", unit="variant", disable=not memory)}

    reference = reference or variants[0].name
    ref_labels = predictions[reference].argmax(-1)
    reports = []
    for v in variants:
        scores = classification_metrics(predictions[v.name], np.asarray(labels))
        reports.append(VariantReport(
            name=v.name,
            kind=v.kind,
            size_mb=os.path.getsize(v.model_file) / 1e6,
            accuracy=scores["accuracy"],
            macro_f1=scores["macro_f1"],
            agreement=float(np.mean(predictions[v.name].argmax(-1) == ref_labels)),
            latency_p50_ms=statistics.median(latencies.ms[v.name, fastest[v.name]]),
            latency_p95_ms=_percentile(latencies.ms[v.name, fastest[v.name]], 95),
            throughput_b32=throughput[v.name],
            peak_memory_mb=peak[v.name],
            latency_threads=fastest[v.name],
        ))
    base = next(r for r in reports if r.name == reference)
    for r in reports:
        r.ratios = {
            "smaller": base.size_mb / r.size_mb,
            "faster_b1": base.latency_p50_ms / r.latency_p50_ms,
            "throughput_b32": r.throughput_b32 / base.throughput_b32,
            "accuracy_delta_points": 100 * (r.accuracy - base.accuracy),
        }
    return reports


# Timings on this shared machine drift within tens of seconds, so the variants take turns
# on short slices of the texts: all of them see the same conditions, and their ratios do
# not depend on which of them a slow minute fell on. Before its turn a variant waits
# SETTLE_S for the others' threads to stop spinning: an onnxruntime worker keeps spinning
# after a run, and on two cores it takes a core from the next session. How long it spins
# is onnxruntime's affair: 10 ms once sufficed here (the pruned student's batch-1 p50 0.78
# ms, p95 1.41 ms with no wait, 0.61 and 0.98 ms after 10 ms), but with onnxruntime 1.32 a
# session timed 10 ms after another one's 32 runs had p95 5.0 ms (p50 0.86), after 30 ms
# 2.0 ms, after 50 ms 1.2-1.4 ms (p50 0.75-0.78), after 100 ms 1.2 ms.
LATENCY_SLICE = 32  # dev sentences per turn at batch 1
THROUGHPUT_SLICE = 4  # batches of 32 per turn
SETTLE_S = 0.05


@dataclass
class _Batch1Timings:
    ms: dict[tuple[str, int], list[float]]
    logits: dict[str, list[np.ndarray]]  # per text, in order, from the first round


def _batch1_latencies(
    runners: dict[tuple[str, int], Runner], singles: dict[str, list[dict[str, np.ndarray]]],
    names: list[str], counts: list[int], rounds: int,
) -> _Batch1Timings:
    """Batch-1 latency of every runner, visiting them in turn every LATENCY_SLICE texts.
    The first count's first round also gives the logits that accuracy is taken from."""
    timings = _Batch1Timings(ms={key: [] for key in runners}, logits={n: [] for n in names})
    size = len(singles[names[0]])
    starts = range(0, size, LATENCY_SLICE)
    progress = tqdm(total=rounds * len(starts), desc="batch-1 latency", unit="slice")
    for round_index in range(rounds):
        for start in starts:
            for name in names:
                for n in counts:
                    runner = runners[name, n]
                    batches = singles[name][start : start + LATENCY_SLICE]
                    time.sleep(SETTLE_S)
                    for batch in batches[:2]:  # warm-up: the other variants ran meanwhile
                        runner.logits(batch)
                    for batch in batches:
                        began = time.perf_counter()
                        logits = runner.logits(batch)[0]
                        timings.ms[name, n].append((time.perf_counter() - began) * 1000)
                        if round_index == 0 and n == counts[0]:
                            timings.logits[name].append(logits)
            progress.update()
    progress.close()
    return timings


def _batch32_throughput(
    runners: dict[tuple[str, int], Runner], encoders: dict[str, BatchEncoder], texts: list[str],
    names: list[str], threads: int, rounds: int,
) -> dict[str, float]:
    """Median over rounds of sentences/s at batch 32 (arrival order), visiting the
    variants in turn every THROUGHPUT_SLICE batches."""
    chunks = [texts[i : i + 32] for i in range(0, len(texts), 32)]
    encoded = {name: [encoders[name](chunk) for chunk in chunks] for name in names}
    per_round: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        elapsed = dict.fromkeys(names, 0.0)
        for start in range(0, len(chunks), THROUGHPUT_SLICE):
            for name in names:
                runner = runners[name, threads]
                batches = encoded[name][start : start + THROUGHPUT_SLICE]
                time.sleep(SETTLE_S)
                runner.logits(batches[0])  # warm-up
                began = time.perf_counter()
                for batch in batches:
                    runner.logits(batch)
                elapsed[name] += time.perf_counter() - began
        for name in names:
            per_round[name].append(len(texts) / elapsed[name])
    return {name: statistics.median(values) for name, values in per_round.items()}


def markdown_table(reports: list[VariantReport]) -> str:
    header = ("| variant | runtime | MB | dev acc | macro-F1 | agrees with ref | b1 p50 ms | "
              "b1 p95 ms | b1 threads | b32 sent/s | peak RSS MB | smaller | faster b1 | "
              "Δ acc (pts) |")
    lines = [header, "|" + " --- |" * 14]
    for r in reports:
        lines.append(
            f"| {r.name} | {r.kind} | {r.size_mb:.1f} | {100 * r.accuracy:.2f} | "
            f"{100 * r.macro_f1:.2f} | {100 * r.agreement:.1f} % | {r.latency_p50_ms:.2f} | "
            f"{r.latency_p95_ms:.2f} | {r.latency_threads} | {r.throughput_b32:.0f} | "
            f"{r.peak_memory_mb:.0f} | "
            f"{r.ratios['smaller']:.1f}x | "
            f"{r.ratios['faster_b1']:.1f}x | {r.ratios['accuracy_delta_points']:+.2f} |"
        )
    return "\n".join(lines) + "\n"


_MARKERS = "osD^vP*Xhp<>"


def plot(reports: list[VariantReport], path: Path, title: str = "") -> Path:
    """Accuracy against size and against batch-1 latency, one point per variant.

    With many variants, labels beside the points overlap: instead the model (the name
    before the precision, e.g. "l3-vocab") picks the marker, the precision ("int8-static")
    picks the colour, and two legends name them.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def split(name: str) -> tuple[str, str]:
        for marker in ("-torch-", "-fp32", "-int"):
            if marker in name:
                at = name.index(marker)
                return name[:at], name[at + 1:]
        return name, ""

    models = list(dict.fromkeys(split(r.name)[0] for r in reports))
    precisions = list(dict.fromkeys(split(r.name)[1] for r in reports))
    colours = plt.get_cmap("tab10")
    # Tall enough for both legends, one line per model and per precision, not to overlap.
    height = max(5.0, 0.2 * (len(models) + len(precisions)) + 1.5)
    fig, axes = plt.subplots(1, 2, figsize=(13, height))
    for ax, key, label in (
        (axes[0], "size_mb", "size on disk (MB, log scale)"),
        (axes[1], "latency_p50_ms", "batch-1 latency p50 (ms, log scale)"),
    ):
        for r in reports:
            model, precision = split(r.name)
            ax.scatter(getattr(r, key), 100 * r.accuracy, s=60, label=r.name,
                       marker=_MARKERS[models.index(model) % len(_MARKERS)],
                       color=colours(precisions.index(precision) % 10),
                       edgecolors="black", linewidths=0.5)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("dev accuracy (%)")
        ax.grid(True, alpha=0.3)
    # Two short legends (one entry per model, one per precision) instead of one entry
    # per point, which no longer fits beside the axes once there are dozens of variants.
    from matplotlib.lines import Line2D

    grey, white = "#bbbbbb", "white"
    model_handles = [Line2D([], [], linestyle="", marker=_MARKERS[i % len(_MARKERS)],
                            markerfacecolor=grey, markeredgecolor="black", label=m or "(other)")
                     for i, m in enumerate(models)]
    precision_handles = [Line2D([], [], linestyle="", marker="o", markerfacecolor=colours(i % 10),
                                markeredgecolor=white, markersize=9, label=p or "(other)")
                         for i, p in enumerate(precisions)]
    first = fig.legend(handles=model_handles, title="model (marker)", loc="upper right",
                       fontsize=8, title_fontsize=8, frameon=False, bbox_to_anchor=(1.0, 0.95))
    fig.add_artist(first)
    fig.legend(handles=precision_handles, title="precision (colour)", loc="lower right",
               fontsize=8, title_fontsize=8, frameon=False, bbox_to_anchor=(1.0, 0.05))
    fig.suptitle(title or "accuracy against size and latency")
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_reports(reports: list[VariantReport], out_dir: Path, title: str = "") -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out_dir / "evaluation.md",
        "json": out_dir / "evaluation.json",
        "chart": out_dir / "evaluation.png",
    }
    paths["markdown"].write_text(markdown_table(reports))
    paths["json"].write_text(json.dumps([asdict(r) for r in reports], indent=2) + "\n")
    plot(reports, paths["chart"], title)
    return paths


if __name__ == "__main__":  # the memory probe's child process
    import sys

    _memory_probe(sys.argv[1])
