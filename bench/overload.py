"""Overload benchmark: the service at 16x its queue, against itself at 32 clients.

    python bench/overload.py                 # shipped default model, queue of 32
    python bench/overload.py --queue 256     # the default queue: 4,096 clients

One process of `python -m app` with APP_MAX_QUEUE=Q serves one sentence per request
(loopback, wrk). It is measured at 32 clients, where everything is accepted, then at 16 x Q
clients, where most requests must be refused, then at 32 again. What an operator needs
to know about overload:
- the accepted throughput (2xx per second) at 16 x Q against the mean of the two c=32
  runs around it: refusing must not starve the requests the service keeps;
- how long a refusal takes at the server: the service's own request-duration histogram
  for the refused requests (503s carry no version label), from the ASGI call to the answer.
Run it where nothing else loads the machine; it prints the medians of --rounds rounds.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import ROOT, routed_registry  # noqa: E402
from load_servers import free_port, start, stop, wrk  # noqa: E402

from registry import RoutingTable  # noqa: E402

REFUSED = re.compile(
    r'^textclf_request_duration_seconds_bucket\{le="([^"]+)",model="",version=""\} (\S+)$'
)


def refusal_buckets(port: int) -> dict[float, float]:
    """Cumulative counts of the refused requests' server-side durations, by bucket."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        match = REFUSED.match(line)
        if match:
            out[float(match.group(1))] = float(match.group(2))
    return out


def accepted(run: dict[str, float], duration: int) -> float:
    """2xx answers per second (wrk counts every other status as a status error)."""
    return (run["requests"] - run["status_errors"]) / duration


def one_round(cmd: list[str], env: dict[str, str], port: int, sentences: Path,
              duration: int, clients: int) -> dict[str, float]:
    proc = start(cmd, env, port, "/readyz")
    try:
        wrk(port, 8, 2, sentences)  # warm-up
        before = wrk(port, 32, duration, sentences)
        buckets_before = refusal_buckets(port)
        flood = wrk(port, clients, duration, sentences)
        buckets = {le: n - buckets_before.get(le, 0.0) for le, n in refusal_buckets(port).items()}
        after = wrk(port, 32, duration, sentences)
    finally:
        stop(proc)
    refused = buckets.get(float("inf"), 0.0)
    c32 = (accepted(before, duration) + accepted(after, duration)) / 2
    return {
        "c32_accepted_rps": c32,
        "flood_accepted_rps": accepted(flood, duration),
        "flood_refused": refused,
        "flood_requests": flood["requests"],
        "flood_socket_errors": flood["errors"] - flood["status_errors"],
        "refused_under_1ms": buckets.get(0.001, 0.0) / refused if refused else float("nan"),
        "refused_under_10ms": buckets.get(0.01, 0.0) / refused if refused else float("nan"),
        "flood_p99_ms": flood["p99_ms"],
        "c32_p99_ms": (before["p99_ms"] + after["p99_ms"]) / 2,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="models", help="registry (default: %(default)s)")
    parser.add_argument("--model", default="sst2-sentiment")
    parser.add_argument("--dev", default="../shared/data/sst2/dev.tsv",
                        help="sentences to send (default: %(default)s)")
    parser.add_argument("--queue", type=int, default=32, help="APP_MAX_QUEUE (default: 32)")
    parser.add_argument("--factor", type=int, default=16, help="clients = factor x queue")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0,
                        help="APP_INFERENCE_WORKERS (default: the service's auto)")
    parser.add_argument("--threads", type=int, default=0,
                        help="APP_INTRA_OP_THREADS (default: the service's auto)")
    parser.add_argument("--pauses", default="0,0.5",
                        help="APP_REFUSED_PAUSE_S values to compare, each its own server in "
                             "every round; 0 is the baseline (default: %(default)s)")
    return parser.parse_args()


def summary(rows: list[dict[str, float]], clients: int) -> str:
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    ratio = median["flood_accepted_rps"] / median["c32_accepted_rps"]
    return "\n".join([
        f"  accepted at c=32:          {median['c32_accepted_rps']:8.0f} req/s",
        f"  accepted at c={clients:<5}:      {median['flood_accepted_rps']:8.0f} req/s "
        f"({ratio:.1%} of c=32)",
        f"  refused at c={clients}:        {median['flood_refused']:8.0f} "
        f"({median['refused_under_1ms']:.1%} under 1 ms, "
        f"{median['refused_under_10ms']:.1%} under 10 ms at the server)",
        f"  socket errors:             {median['flood_socket_errors']:8.0f}",
    ])


def main() -> int:
    args = parse_args()
    from compression.core.data import load_split

    models = (ROOT / args.models).resolve()
    routes = RoutingTable.read(models).routes.get(args.model, {})
    version = max(routes, key=routes.get)
    texts = load_split(ROOT / args.dev if not Path(args.dev).is_absolute() else args.dev).texts
    clients = args.factor * args.queue
    pauses = [p.strip() for p in args.pauses.split(",")]
    rows: dict[str, list[dict[str, float]]] = {p: [] for p in pauses}
    with tempfile.TemporaryDirectory() as tmp:
        sentences = Path(tmp) / "sentences.txt"
        sentences.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n")
        registry = routed_registry(Path(tmp) / "models", models, args.model, {version: 100})
        env = {"APP_MODELS_DIR": str(registry), "APP_INTRA_OP_THREADS": str(args.threads),
               "APP_INFERENCE_WORKERS": str(args.workers),
               "APP_MAX_QUEUE": str(args.queue), "APP_LOG_LEVEL": "warning"}
        for i in range(args.rounds):
            for pause in pauses:  # interleaved: a slow spell lands on every setting
                port = free_port()
                cmd = [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)]
                row = one_round(cmd, {**env, "APP_REFUSED_PAUSE_S": pause}, port, sentences,
                                args.duration, clients)
                print(f"round {i + 1}, pause {pause} s: "
                      f"{json.dumps({k: round(v, 3) for k, v in row.items()})}", flush=True)
                rows[pause].append(row)
    print(f"\n{args.model}/{version}, queue {args.queue}, {clients} clients, "
          f"median of {args.rounds} rounds of {args.duration} s:")
    for pause in pauses:
        print(f"APP_REFUSED_PAUSE_S={pause}:\n{summary(rows[pause], clients)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
