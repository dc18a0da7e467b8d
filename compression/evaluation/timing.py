"""Batch-1 latency and batch-32 throughput of several runners, taking turns."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from compression.evaluation.runners import Runner
from compression.tasks.encoding import BatchEncoder

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
    # Per text, in order, from the first round: its whole output (a question's windows).
    logits: dict[str, list[np.ndarray]]


def batch1_latencies(
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
                        logits = runner.logits(batch)
                        timings.ms[name, n].append((time.perf_counter() - began) * 1000)
                        if round_index == 0 and n == counts[0]:
                            timings.logits[name].append(logits)
            progress.update()
    progress.close()
    return timings


def batch32_throughput(
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
