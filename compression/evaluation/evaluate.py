"""Side-by-side evaluation of model variants in one process.

Every variant sees the same texts through the same fast tokenizer. Accuracy is taken
from the batch-1 pass (how a service answers one text), which also gives the latency
samples. Timings on shared machines drift within seconds, so the variants take turns
every few texts (LATENCY_SLICE) and medians are reported.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from compression.core.errors import ModelError
from compression.evaluation.memory import peak_memory_mb
from compression.evaluation.report import VariantReport
from compression.evaluation.runners import Variant
from compression.evaluation.timing import batch1_latencies, batch32_throughput
from compression.tasks.classification import SequenceClassification
from compression.tasks.registry import CLASSIFICATION


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))

def evaluate(
    variants: list[Variant],
    texts: list[str],
    labels: list[Any],
    max_length: int = 128,
    threads: int = 2,
    rounds: int = 3,
    reference: str | None = None,
    memory: bool = True,
    latency_threads: Sequence[int] = (),
    task: SequenceClassification = CLASSIFICATION,
) -> list[VariantReport]:
    """Measure every variant on the same texts; ratios are against `reference` (default:
    the first variant). `memory=False` skips the peak-memory probe (a process each).

    Batch-1 latency is also measured at each of `latency_threads` intra-op threads, and the
    lowest median is reported with its thread count: for a model this small, handing work
    to a second thread costs about as much as it saves, so more threads is not always
    faster.
    Accuracy, throughput and memory are measured at `threads`.
    A multi-label `task` (labels: multi-hot rows) fits each variant's thresholds on these
    texts (`VariantReport.thresholds`) and scores it at them; accuracy is then exact match."""
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
                         memory, latency_threads, task)
    finally:
        if torch:
            torch.set_num_threads(previous_threads)


def _evaluate(
    variants: list[Variant], texts: list[str], labels: list[Any], max_length: int,
    threads: int, rounds: int, reference: str | None, memory: bool,
    latency_threads: Sequence[int], task: SequenceClassification,
) -> list[VariantReport]:
    counts = [threads, *sorted(set(latency_threads) - {threads})]
    # One runner per variant and thread count; the first count's runner does the rest.
    runners = {(v.name, n): v.load(n) for v in variants for n in counts}
    encoders = {v.name: task.batch_encoder(v.tokenizer_file, max_length)
                for v in variants}
    singles = {v.name: [encoders[v.name]([t]) for t in texts] for v in variants}

    names = [v.name for v in variants]
    latencies = batch1_latencies(runners, singles, names, counts, rounds)
    predictions = {v.name: task.stack(latencies.logits[v.name]) for v in variants}
    fastest = {v.name: min(counts, key=lambda n: statistics.median(latencies.ms[v.name, n]))
               for v in variants}
    throughput = batch32_throughput(runners, encoders, texts, names, threads, rounds)

    peak = {v.name: peak_memory_mb(v, texts, max_length, threads) if memory else float("nan")
            for v in tqdm(variants, desc="peak memory", unit="variant", disable=not memory)}

    reference = reference or variants[0].name
    # Per variant: a token classifier's tags sit on its own tokenizer's positions.
    gold = {v.name: task.gold(encoders[v.name], texts, labels) for v in variants}
    thresholds = {v.name: task.fit_thresholds(predictions[v.name], gold[v.name])
                  for v in variants}
    # A question's answer is decoded from its windows' logits with the encoder's offsets.
    answers = {v.name: task.decode(encoders[v.name], texts, predictions[v.name],
                                   thresholds[v.name]) for v in variants}
    reports = []
    for v in variants:
        scores = task.score(answers[v.name], predictions[v.name], gold[v.name],
                            thresholds[v.name])
        reports.append(VariantReport(
            name=v.name,
            kind=v.kind,
            size_mb=os.path.getsize(v.model_file) / 1e6,
            accuracy=scores["accuracy"],
            # Question answering has one F1 (SQuAD's), reported in the macro-F1 column.
            macro_f1=scores.get("macro_f1", scores.get("f1", float("nan"))),
            micro_f1=scores.get("micro_f1"),
            f1=scores.get("f1"),
            exact_match=scores.get("exact_match"),
            task=task.name,
            thresholds=thresholds[v.name],
            agreement=task.agreement(answers[v.name], answers[reference]),
            latency_p50_ms=statistics.median(latencies.ms[v.name, fastest[v.name]]),
            latency_p95_ms=_percentile(latencies.ms[v.name, fastest[v.name]], 95),
            throughput_b32=throughput[v.name],
            peak_memory_mb=peak[v.name],
            latency_threads=fastest[v.name],
        ))
    return _with_ratios(reports, reference)


def _with_ratios(reports: list[VariantReport], reference: str) -> list[VariantReport]:
    """Each report's size, speed and accuracy against the `reference` variant's."""
    base = next(r for r in reports if r.name == reference)
    for r in reports:
        r.ratios = {
            "smaller": base.size_mb / r.size_mb,
            "faster_b1": base.latency_p50_ms / r.latency_p50_ms,
            "throughput_b32": r.throughput_b32 / base.throughput_b32,
            "accuracy_delta_points": 100 * (r.accuracy - base.accuracy),
            # Entity F1 (token classification) and multi-label micro-F1.
            **({"f1_delta_points": 100 * (r.micro_f1 - base.micro_f1)}
               if r.micro_f1 is not None and base.micro_f1 is not None else {}),
        }
    return reports
