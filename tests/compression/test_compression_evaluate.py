"""Side-by-side evaluation: batch-1 latency measured at several thread counts reports the
fastest, with its count; everything else comes from the main thread count."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from compression.evaluation import timing as evaluation
from compression.evaluation.evaluate import evaluate
from compression.evaluation.report import markdown_table
from compression.evaluation.runners import Variant


class VirtualClock:
    """The timing module's clock, moved only by the runners below: the latencies it
    reports are the ones the test sets, whatever the load of the machine."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        pass


class SlowOnThreads:
    """A runner that takes 20 ms (of the virtual clock) when it runs on `slow` threads
    and 1 ms otherwise."""

    def __init__(self, runner: evaluation.Runner, threads: int, slow: int,
                 clock: VirtualClock) -> None:
        self.runner, self.clock = runner, clock
        self.delay = 0.02 if threads == slow else 0.001

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        self.clock.now += self.delay
        return self.runner.logits(batch)


@pytest.mark.parametrize("slow, expected", [(1, 2), (2, 1)])
def test_latency_is_reported_at_the_fastest_thread_count(
        teacher_dir: Path, teacher_onnx: Path, dev_texts: list[str],
        monkeypatch: pytest.MonkeyPatch, slow: int, expected: int) -> None:
    load, clock = Variant.load, VirtualClock()
    monkeypatch.setattr(evaluation, "time", clock)
    monkeypatch.setattr(Variant, "load", lambda self, threads: SlowOnThreads(
        load(self, threads), threads, slow, clock))
    variants = [Variant.from_path(teacher_dir, "teacher-torch"),
                Variant.from_path(teacher_onnx / "model.onnx", "teacher-onnx")]
    texts = dev_texts[:8]
    threads_before = torch.get_num_threads()
    reports = evaluate(variants, texts, [0, 1] * 4, max_length=32, threads=2, rounds=1,
                       memory=False, latency_threads=(1, 2))
    assert [r.latency_threads for r in reports] == [expected, expected]
    assert torch.get_num_threads() == threads_before
    assert "| b1 threads |" in markdown_table(reports)
    assert f"| {expected} |" in markdown_table(reports).splitlines()[2]


def test_without_latency_threads_only_the_main_count_is_measured(
        teacher_onnx: Path, dev_texts: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[int] = []
    load = Variant.load

    def counting_load(self: Variant, threads: int) -> evaluation.Runner:
        loaded.append(threads)
        return load(self, threads)

    monkeypatch.setattr(Variant, "load", counting_load)
    reports = evaluate([Variant.from_path(teacher_onnx / "model.onnx")], dev_texts[:4],
                       [0, 1, 0, 1], max_length=32, threads=2, rounds=1, memory=False)
    assert loaded == [2]
    assert reports[0].latency_threads == 2


class ParityRunner:
    """Answers class 1 for an even token count, 0 for odd, and logs who ran when."""

    def __init__(self, name: str, threads: int, calls: list[tuple[str, int]]) -> None:
        self.name, self.threads, self.calls = name, threads, calls

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        self.calls.append((self.name, self.threads))
        even = (batch["attention_mask"].sum(axis=1) % 2 == 0).astype(np.float32)
        return np.stack([1 - even, even], axis=1)


def test_variants_take_turns_every_slice_and_keep_text_order(
        teacher_onnx: Path, dev_texts: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(Variant, "load",
                        lambda self, threads: ParityRunner(self.name, threads, calls))
    monkeypatch.setattr(evaluation, "LATENCY_SLICE", 3)
    model = teacher_onnx / "model.onnx"
    variants = [Variant.from_path(model, "a"), Variant.from_path(model, "b")]
    texts = dev_texts[:7]
    encode = evaluation.BatchEncoder(variants[0].tokenizer_file, 32)
    labels = [int(encode([t])["attention_mask"].sum() % 2 == 0) for t in texts]
    reports = evaluate(variants, texts, labels, max_length=32, threads=2, rounds=2,
                       memory=False, latency_threads=(1, 2))
    # Accuracy pairs each text's answer with its own label, slice after slice.
    assert [r.accuracy for r in reports] == [1.0, 1.0]
    batch1 = calls[: len(calls) - 2 * 2 * 2]  # throughput: 1 batch of 7 + warm-up, 2 rounds
    visits = [(key, len(list(run))) for key, run in itertools.groupby(batch1)]
    # 3 slices (3, 3 and 1 texts) per round; each slice visits a/2, a/1, b/2, b/1 in turn,
    # warming up on two texts (one when the slice has one), then timing them all.
    order = [("a", 2), ("a", 1), ("b", 2), ("b", 1)]
    assert [key for key, _ in visits] == order * 3 * 2
    assert [calls for _, calls in visits] == ([2 + 3] * 4 + [2 + 3] * 4 + [1 + 1] * 4) * 2
