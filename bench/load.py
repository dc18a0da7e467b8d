"""Serving load benchmark: the service under wrk, against baselines measured in the same run.

    python bench/load.py            # shipped default model, writes docs/benchmarks.md

Measures, one sentence per request, loopback only, each run bounded by --duration:
- the ceiling: the same ONNX model through onnxruntime in this process, no HTTP, dev
  sentences in arrival order, at several batch sizes (tokenization included);
- the service (`python -m app`) with dynamic batching, at concurrency 1, 8, 32, 128;
- the same with onnxruntime's threads spinning between runs (APP_ALLOW_SPINNING=true);
- the service with cross-request batching turned off;
- with --ab VERSION, the service splitting traffic 50/50 between the two versions, with
  spinning on and off;
- a naive FastAPI app around a transformers pipeline on the fp32 teacher (if given);
- peers, the same model behind LitServe and BentoML with their own batching
  (bench/peers/, `pip install -e '.[bench]'`; a missing one is skipped).
Each level is measured --repeats times and the medians reported. Load comes from wrk (a
native client: a Python client on the same two cores would eat half of them). Results
replace the "Serving under load" section of the output file; the chart goes beside it
(docs/benchmarks-load.png).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from load_peers import peer_runs  # noqa: E402
from load_report import markdown, write_chart  # noqa: E402
from load_servers import free_port, service_runs  # noqa: E402

from inference import ThreadPlan, plan_threads  # noqa: E402
from registry import Manifest, RoutingTable  # noqa: E402

CONCURRENCY = (1, 8, 32, 128)


def ceiling(version_dir: Path, texts: list[str], plan: ThreadPlan) -> dict[str, float]:
    """The model alone, run as the service runs it but without HTTP: its predictor
    (tokenization, length groups, probabilities), `plan.workers` threads each taking the
    next batch in arrival order, `plan.threads` intra-op threads a run. Sentences/s at
    several batch sizes (`b<size>`), the process's CPU milliseconds a sentence at each
    (`cpu_ms_b<size>`), and the batch-1 latency of one run alone."""
    from app.predictors import load_predictor

    predictor = load_predictor(version_dir, "cpu", plan.threads)
    for text in texts[:50]:
        predictor.predict([text])
    latencies = []
    for text in texts:
        started = time.perf_counter()
        predictor.predict([text])
        latencies.append((time.perf_counter() - started) * 1000)
    result = {"b1_p50_ms": statistics.median(latencies), "workers": float(plan.workers),
              "threads": float(plan.threads)}
    for size in (1, 4, 8, 16, 32, 64):
        rates, cpu_ms = [], []
        for _ in range(3):
            started, cpu_started = time.perf_counter(), time.process_time()
            _in_order(predictor.predict, texts, size, plan.workers)
            rates.append(len(texts) / (time.perf_counter() - started))
            cpu_ms.append(1000 * (time.process_time() - cpu_started) / len(texts))
        result[f"b{size}"] = statistics.median(rates)
        result[f"cpu_ms_b{size}"] = statistics.median(cpu_ms)
    return result


def _in_order(predict: Callable[[list[str]], object], texts: list[str], size: int,
              workers: int) -> None:
    """Every text through `predict` in batches of `size`, `workers` threads each taking
    the next batch, as the service's workers take the next requests from their queue."""
    starts = iter(range(0, len(texts), size))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                start = next(starts, None)
            if start is None:
                return
            predict(texts[start : start + size])

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def routed_registry(folder: Path, models: Path, name: str, weights: dict[str, int]) -> Path:
    """A registry at `folder` with links to `weights`' versions of `name`, routed so."""
    (folder / name).mkdir(parents=True)
    for version in weights:
        if not (models / name / version).is_dir():
            sys.exit(f"error: no version {name}/{version} in {models}")
        os.symlink(models / name / version, folder / name / version)
    RoutingTable(routes={name: weights}).write(folder)
    return folder


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="models", help="registry (default: %(default)s)")
    parser.add_argument("--model", default="sst2-sentiment")
    parser.add_argument("--version", default=None, help="default: the routed version")
    parser.add_argument("--dev", default="../shared/data/sst2/dev.tsv")
    parser.add_argument("--teacher", default="runs/sst2/teacher/model",
                        help="fp32 classifier folder for the naive baseline (skipped if absent)")
    parser.add_argument("--duration", type=int, default=6,
                        help="seconds per wrk run (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="wrk runs per level, the median reported (default: %(default)s)")
    parser.add_argument("--no-peers", action="store_true", help="skip LitServe and BentoML")
    parser.add_argument("--workers", type=int, default=0,
                        help="batches the service runs at once (APP_INFERENCE_WORKERS; "
                        "default: the service's auto)")
    parser.add_argument("--threads", type=int, default=0,
                        help="onnxruntime intra-op threads a run (APP_INTRA_OP_THREADS; "
                        "default: the service's auto)")
    parser.add_argument("--ab", metavar="VERSION", default=None,
                        help="also serve the version with this one, traffic split 50/50")
    parser.add_argument("--output", default="docs/benchmarks.md")
    return parser.parse_args()


def service_configs(args: argparse.Namespace, models: Path, version: str, tmp: Path,
                    plan: ThreadPlan) -> list[tuple[str, Path, dict[str, str]]]:
    """(label, registry folder, extra environment) of each service configuration to load.
    The benchmarked service routes everything to the version under test, or splits it
    50/50 with --ab's version. Beside its plan: one batch at a time on all the cores (the
    service before several workers), and spinning threads where a run has several."""
    registry = routed_registry(tmp / "models", models, args.model, {version: 100})
    cores = plan.workers * plan.threads
    spin = {"APP_ALLOW_SPINNING": "true"} if plan.threads > 1 else None
    services = [("service, dynamic batching", registry, {})]
    if plan.workers > 1:
        services.append((f"service, one batch at a time on {cores} threads", registry,
                         {"APP_INFERENCE_WORKERS": "1", "APP_INTRA_OP_THREADS": str(cores)}))
    if spin:
        services.append(("service, dynamic batching, spinning threads", registry, spin))
    services.append(("service, no cross-request batching", registry,
                     {"APP_CROSS_REQUEST_BATCHING": "false"}))
    if args.ab:
        split = routed_registry(tmp / "ab", models, args.model, {version: 50, args.ab: 50})
        label = f"service, A/B 50/50 with version {args.ab}"
        services.append((label, split, {}))
        if spin:
            services.append((f"{label}, spinning threads", split, spin))
    return services


def naive_runs(teacher: Path, sentences: Path, duration: int, repeats: int) -> list[dict]:
    """The baseline users would write: FastAPI around a transformers pipeline, fp32."""
    if not teacher.is_dir():
        print(f"-- naive baseline skipped: no teacher folder at {teacher}")
        return []
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "bench"),
           "naive_app:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return service_runs("naive FastAPI + transformers pipeline, fp32 teacher", cmd,
                        {"NAIVE_MODEL": str(teacher), "HF_HUB_OFFLINE": "1"},
                        "/docs", port, sentences, duration, CONCURRENCY, repeats)


def measure(args: argparse.Namespace, models: Path, version: str, texts: list[str]
            ) -> tuple[dict[str, float], list[dict]]:
    """The ceiling, then every server in turn: the service's configurations, the naive
    app, the peers."""
    with tempfile.TemporaryDirectory() as tmp:
        sentences = Path(tmp) / "sentences.txt"
        sentences.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n")
        plan = plan_threads(args.workers, args.threads)
        print(f"-- ceiling (the model alone, {plan.workers} x {plan.threads} thread(s))",
              flush=True)
        ceil = ceiling(models / args.model / version, texts, plan)
        print(f"   {json.dumps({k: round(v, 2) for k, v in ceil.items()})}", flush=True)
        rows = []
        base_env = {"APP_INFERENCE_WORKERS": str(plan.workers),
                    "APP_INTRA_OP_THREADS": str(plan.threads), "APP_LOG_LEVEL": "warning"}
        for label, folder, extra in service_configs(args, models, version, Path(tmp), plan):
            port = free_port()
            cmd = [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)]
            rows += service_runs(label, cmd, {**base_env, "APP_MODELS_DIR": str(folder), **extra},
                                 "/readyz", port, sentences, args.duration, CONCURRENCY,
                                 args.repeats)
        rows += naive_runs(ROOT / args.teacher, sentences, args.duration, args.repeats)
        if not args.no_peers:
            rows += peer_runs(models / args.model / version, plan.workers * plan.threads,
                              sentences,
                              args.duration, CONCURRENCY, args.repeats)
    return ceil, rows


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("error: wrk not found; install it (Debian: apt-get install wrk)")
    from compression.bench import write_section
    from compression.core.data import load_split

    models = (ROOT / args.models).resolve()
    routes = RoutingTable.read(models).routes.get(args.model, {})
    version = args.version or max(routes, key=routes.get)
    texts = load_split(ROOT / args.dev if not Path(args.dev).is_absolute() else args.dev).texts
    ceil, rows = measure(args, models, version, texts)
    best = max((k for k in ceil if k[1:].isdigit()), key=ceil.get)
    output = ROOT / args.output
    chart = write_chart(rows, ceil[best], output.with_name(f"{output.stem}-load.png"))
    command = ("python bench/load.py " + " ".join(sys.argv[1:])).strip()
    registered = Manifest.read(models / args.model / version).metrics.get("latency_b1_p50_ms")
    section = markdown(rows, ceil, best, f"{args.model}/{version}", args.duration, command,
                       args.repeats, chart.name, registered_b1_ms=registered)
    write_section(output, "load-benchmark", section)
    print(f"wrote {args.output} and {chart.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
