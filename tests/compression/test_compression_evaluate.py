"""Side-by-side evaluation: batch-1 latency measured at several thread counts reports the
fastest, with its count; everything else comes from the main thread count."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from compression import evaluate as evaluation
from compression.evaluate import Variant, evaluate, markdown_table


class SlowOnThreads:
    """A runner that sleeps before answering when it runs on `slow` threads."""

    def __init__(self, runner: evaluation.Runner, threads: int, slow: int) -> None:
        self.runner, self.delay = runner, 0.02 if threads == slow else 0.0

    def logits(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        time.sleep(self.delay)
        return self.runner.logits(batch)


@pytest.mark.parametrize("slow, expected", [(1, 2), (2, 1)])
def test_latency_is_reported_at_the_fastest_thread_count(
        teacher_dir: Path, teacher_onnx: Path, dev_texts: list[str],
        monkeypatch: pytest.MonkeyPatch, slow: int, expected: int) -> None:
    load = Variant.load
    monkeypatch.setattr(Variant, "load",
                        lambda self, threads: SlowOnThreads(load(self, threads), threads, slow))
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
