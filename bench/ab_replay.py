"""Replay a labelled data set through a running service as labelled traffic: every text
through `POST /predict`, then its true label through `POST /feedback`, then print the
experiment's report (`GET /admin/experiments/{name}`). The walk-through in
docs/serving.md ("A/B experiments") uses it.

    python bench/ab_replay.py --url http://127.0.0.1:8000 --model sst2-sentiment \
        --data ../shared/data/sst2/dev.tsv

The data is a TSV with a header, text first and label last; a label is a label name or
an index into the model's labels (SST-2's 0/1). Standard library only: it runs wherever
the service's clients run. All predictions go first and the feedback after, as it comes
in real life: a shadow's answer is then in hand when its feedback arrives.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def call(url: str, method: str = "GET", body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def read_rows(path: Path, limit: int | None) -> list[tuple[str, str]]:
    with path.open(newline="") as f:
        rows = [(r[0], r[-1]) for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return rows[1:][:limit]  # the first row is the header


def model_labels(url: str, model: str) -> list[str]:
    _, listing = call(f"{url}/models")
    for entry in listing["models"]:
        if entry["name"] == model:
            return next(v["labels"] for v in entry["versions"] if v.get("labels"))
    raise SystemExit(f"the service has no model {model!r}")


def replay(url: str, model: str, rows: list[tuple[str, str]], labels: list[str],
           batch: int) -> dict[str, int]:
    """Predict every text (one routing key per request), then send every true label."""
    pending: list[tuple[str, str]] = []  # (prediction_id, true label)
    served: dict[str, int] = {}
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        status, body = call(f"{url}/predict", "POST",
                            {"model": model, "texts": [text for text, _ in chunk]},
                            {"X-Routing-Key": f"replay-{start}"})
        if status != 200:
            raise SystemExit(f"/predict answered {status}: {body}")
        served[body["version"]] = served.get(body["version"], 0) + len(chunk)
        for (_, label), p in zip(chunk, body["predictions"], strict=True):
            pending.append((p["prediction_id"], labels[int(label)] if label.isdigit()
                            else label))
    for prediction_id, label in pending:
        status, body = call(f"{url}/feedback", "POST",
                            {"prediction_id": prediction_id, "label": label})
        if status != 200:
            raise SystemExit(f"/feedback answered {status}: {body}")
    return served


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="sst2-sentiment")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sst2/dev.tsv"))
    parser.add_argument("--batch", type=int, default=8, help="texts per /predict request")
    parser.add_argument("--limit", type=int, default=None, help="replay the first N rows")
    parser.add_argument("--api-key", default=os.environ.get("APP_API_KEY"),
                        help="for the report (default: $APP_API_KEY)")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    rows = read_rows(args.data, args.limit)
    served = replay(url, args.model, rows, model_labels(url, args.model), args.batch)
    print(f"replayed {len(rows)} labelled texts; answered by version: {served}")
    if not args.api_key:
        print("no --api-key / APP_API_KEY: skipping the report")
        return 0
    status, report = call(f"{url}/admin/experiments/{args.model}",
                          headers={"Authorization": f"Bearer {args.api_key}"})
    print(json.dumps(report, indent=2))
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
