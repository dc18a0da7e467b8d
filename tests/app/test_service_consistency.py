"""The same text gets the same answer: alone, or inside a batch of other texts of other
lengths, from concurrent clients through the HTTP API (tiny fp32 model). Padding to the
longest text of a length group must not change a float model's answer beyond 1e-5."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service_helpers import serve

from app.classifier import length_groups

TARGET = "good film"
POOL = [
    TARGET,
    "good film , really",  # a few tokens longer: padded together with the target
    "a good film",
    "the film was good",
    "boring",
    "a wonderful , brilliant film with a lovely story and a funny actor",
    "the plot was a mess and the actor weak , the worst film of the year , so dull",
    "it is not a bad movie but not a very good one either , quite fun though",
    "hated it",
    "love love love",
]
CLIENTS, REQUESTS = 8, 15


def test_same_text_same_answer_alone_and_in_mixed_batches(
    make_registry: Callable[..., Path],
) -> None:
    root = make_registry({"tiny": {"1": 100}})
    with serve(root, max_batch_size=64, max_wait_ms=20) as c:
        reference = {}
        for text in POOL:  # each text alone
            r = c.post("/predict", json={"text": text})
            assert r.status_code == 200
            reference[text] = r.json()["predictions"][0]

        lv = next(iter(c.app.state.manager.loaded().values()))
        batches: list[list[str]] = []
        real = lv.batcher._predict

        def spy(texts: list[str]) -> Any:
            batches.append(list(texts))
            return real(texts)

        lv.batcher._predict = spy
        answers: list[tuple[str, dict]] = []
        errors: list[str] = []
        lock = threading.Lock()

        def client(seed: int) -> None:
            rng = random.Random(seed)
            for i in range(REQUESTS):
                texts = rng.sample(POOL, rng.randint(1, 6))
                if TARGET not in texts and i % 2:
                    texts.insert(rng.randrange(len(texts) + 1), TARGET)
                r = c.post("/predict", json={"texts": texts})
                with lock:
                    if r.status_code != 200:
                        errors.append(r.text)
                        continue
                    answers.extend(zip(texts, r.json()["predictions"], strict=True))

        threads = [threading.Thread(target=client, args=(s,)) for s in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        lv.batcher._predict = real

    assert errors == [] and not any(t.is_alive() for t in threads)
    # The scenario happened: the target shared a padded length group with a longer text,
    # and requests from several clients shared batches.
    lengths = {text: len(lv.classifier.tokenizer.encode(text).ids) for text in POOL}
    assert any(
        TARGET in b and any(
            len({b[i] for i in g}) > 1 and TARGET in {b[i] for i in g}
            for g in length_groups([lengths[t] for t in b])
        )
        for b in batches
    )
    assert any(len(b) > 6 for b in batches), "no batch mixed several requests"
    assert sum(1 for text, _ in answers if text == TARGET) >= CLIENTS * REQUESTS // 2
    for text, got in answers:
        want = reference[text]
        assert got["label"] == want["label"], text
        for label, p in want["scores"].items():
            assert abs(got["scores"][label] - p) <= 1e-5, (text, got, want)
