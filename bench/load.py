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
- a naive FastAPI app around a transformers pipeline on the fp32 teacher (if given).
Load comes from wrk (a native client: a Python client on the same two cores would eat
half of them). Results replace the "Serving under load" section of the output file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry import Manifest, RoutingTable  # noqa: E402

CONCURRENCY = (1, 8, 32, 128)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, path: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server on port {port} not ready after {timeout} s")


def start(cmd: list[str], env: dict[str, str], port: int, ready_path: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(port, ready_path)
    except RuntimeError:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wrk(port: int, concurrency: int, duration: int, sentences: Path) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(concurrency), "-d", f"{duration}s", "--timeout", "10s",
         "-s", str(ROOT / "bench" / "predict.lua"), f"http://127.0.0.1:{port}", "--",
         str(sentences)],
        capture_output=True, text=True, timeout=duration + 60, check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line[len("WRK_JSON "):])
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000, "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000, "errors": raw["errors"], "requests": raw["requests"],
        "status_errors": raw["status_errors"],
    }


def ceiling(version_dir: Path, texts: list[str], threads: int) -> dict[str, float]:
    """The model alone: sentences/s at several batch sizes, and batch-1 latency."""
    from compression.evaluation.runners import OnnxRunner
    from compression.tasks.encoding import BatchEncoder

    manifest = Manifest.read(version_dir)
    runner = OnnxRunner(version_dir / manifest.model_file, threads)
    encode = BatchEncoder(version_dir / manifest.tokenizer_file, manifest.max_length)

    def run(batch: list[str]) -> None:
        runner.logits(encode(batch))

    for text in texts[:50]:
        run([text])
    latencies = []
    for text in texts:
        started = time.perf_counter()
        run([text])
        latencies.append((time.perf_counter() - started) * 1000)
    result = {"b1_p50_ms": statistics.median(latencies)}
    for size in (1, 4, 8, 16, 32, 64):
        rates = []
        for _ in range(3):
            started = time.perf_counter()
            for i in range(0, len(texts), size):
                run(texts[i : i + size])
            rates.append(len(texts) / (time.perf_counter() - started))
        result[f"b{size}"] = statistics.median(rates)
    return result


def routed_registry(folder: Path, models: Path, name: str, weights: dict[str, int]) -> Path:
    """A registry at `folder` with links to `weights`' versions of `name`, routed so."""
    (folder / name).mkdir(parents=True)
    for version in weights:
        if not (models / name / version).is_dir():
            sys.exit(f"error: no version {name}/{version} in {models}")
        os.symlink(models / name / version, folder / name / version)
    RoutingTable(routes={name: weights}).write(folder)
    return folder


def service_runs(label: str, cmd: list[str], env: dict[str, str], ready: str, port: int,
                 sentences: Path, duration: int, levels: tuple[int, ...]) -> list[dict]:
    print(f"-- {label}", flush=True)
    proc = start(cmd, env, port, ready)
    rows = []
    try:
        wrk(port, 8, 2, sentences)  # warm-up
        for c in levels:
            row = {"app": label, "concurrency": c, **wrk(port, c, duration, sentences)}
            print(f"   c={c:<4} {row['rps']:8.0f} req/s  p50 {row['p50_ms']:7.2f} ms  "
                  f"p99 {row['p99_ms']:8.2f} ms  errors {row['errors']}", flush=True)
            rows.append(row)
    finally:
        stop(proc)
    return rows


def markdown(rows: list[dict], ceil: dict[str, float], best: str, model: str,
             duration: int, command: str) -> str:
    best_rate = ceil[best]
    naive32 = next((r["rps"] for r in rows if r["app"].startswith("naive")
                    and r["concurrency"] == 32), None)
    lines = [
        "## Serving under load",
        "",
        f"Model `{model}`; one sentence per request from SST-2 dev; wrk (1 thread) on "
        f"loopback, {duration} s per level, on the same 2 cores as the server. Measured "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Command: `{command}`",
        "",
        "The ceiling, the model alone through onnxruntime in one process (tokenization "
        "included, sentences in arrival order):",
        "",
        "| batch size | " + " | ".join(k[1:] for k in ceil if k.startswith("b") and
                                       k[1:].isdigit()) + " |",
        "|" + " --- |" * (1 + sum(1 for k in ceil if k[1:].isdigit())),
        "| sentences/s | " + " | ".join(f"{v:.0f}" for k, v in ceil.items()
                                        if k[1:].isdigit()) + " |",
        "",
        f"Ceiling = {best_rate:.0f} sentences/s (batch {best[1:]}); the model's own batch-1 "
        f"latency p50 = {ceil['b1_p50_ms']:.2f} ms.",
        "",
        "The service's onnxruntime threads sleep between runs (`APP_ALLOW_SPINNING=false`, "
        "its default); rows marked \"spinning threads\" let them spin (onnxruntime's default). "
        "A/B rows send half of the requests to the other version, so their share of the "
        "ceiling (the version under test alone) is indicative only.",
        "",
        "| app | concurrency | req/s | p50 ms | p95 ms | p99 ms | errors | of ceiling "
        "| vs naive c=32 |",
        "|" + " --- |" * 9,
    ]
    for r in rows:
        vs_naive = f"{r['rps'] / naive32:.1f}x" if naive32 else "n/a"
        lines.append(
            f"| {r['app']} | {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
            f"{r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | "
            f"{100 * r['rps'] / best_rate:.0f} % | {vs_naive} |"
        )

    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="models", help="registry (default: %(default)s)")
    parser.add_argument("--model", default="sst2-sentiment")
    parser.add_argument("--version", default=None, help="default: the routed version")
    parser.add_argument("--dev", default="../shared/data/sst2/dev.tsv")
    parser.add_argument("--teacher", default="runs/sst2/teacher/model",
                        help="fp32 classifier folder for the naive baseline (skipped if absent)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per level")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--ab", metavar="VERSION", default=None,
                        help="also serve the version with this one, traffic split 50/50")
    parser.add_argument("--output", default="docs/benchmarks.md")
    return parser.parse_args()


def service_configs(args: argparse.Namespace, models: Path, version: str, tmp: Path
                    ) -> list[tuple[str, Path, dict[str, str]]]:
    """(label, registry folder, extra environment) of each service configuration to load.
    The benchmarked service routes everything to the version under test, or splits it
    50/50 with --ab's version."""
    registry = routed_registry(tmp / "models", models, args.model, {version: 100})
    spin = {"APP_ALLOW_SPINNING": "true"}
    services = [("service, dynamic batching", registry, {}),
                ("service, dynamic batching, spinning threads", registry, spin),
                ("service, no cross-request batching", registry,
                 {"APP_CROSS_REQUEST_BATCHING": "false"})]
    if args.ab:
        split = routed_registry(tmp / "ab", models, args.model, {version: 50, args.ab: 50})
        label = f"service, A/B 50/50 with version {args.ab}"
        services += [(label, split, {}), (f"{label}, spinning threads", split, spin)]
    return services


def naive_runs(teacher: Path, sentences: Path, duration: int) -> list[dict]:
    """The baseline users would write: FastAPI around a transformers pipeline, fp32."""
    if not teacher.is_dir():
        print(f"-- naive baseline skipped: no teacher folder at {teacher}")
        return []
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "bench"),
           "naive_app:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return service_runs("naive FastAPI + transformers pipeline, fp32 teacher", cmd,
                        {"NAIVE_MODEL": str(teacher), "HF_HUB_OFFLINE": "1"},
                        "/docs", port, sentences, duration, CONCURRENCY)


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
    with tempfile.TemporaryDirectory() as tmp:
        sentences = Path(tmp) / "sentences.txt"
        sentences.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n")
        print("-- ceiling (onnxruntime alone)", flush=True)
        ceil = ceiling(models / args.model / version, texts, args.threads)
        best = max((k for k in ceil if k[1:].isdigit()), key=ceil.get)
        print(f"   {json.dumps({k: round(v, 2) for k, v in ceil.items()})}", flush=True)
        rows = []
        base_env = {"APP_INTRA_OP_THREADS": str(args.threads), "APP_LOG_LEVEL": "warning"}
        for label, folder, extra in service_configs(args, models, version, Path(tmp)):
            port = free_port()
            cmd = [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)]
            rows += service_runs(label, cmd, {**base_env, "APP_MODELS_DIR": str(folder), **extra},
                                 "/readyz", port, sentences, args.duration, CONCURRENCY)
        rows += naive_runs(ROOT / args.teacher, sentences, args.duration)
    command = "python bench/load.py " + " ".join(sys.argv[1:])
    section = markdown(rows, ceil, best, f"{args.model}/{version}", args.duration,
                       command.strip())
    write_section(ROOT / args.output, "load-benchmark", section)
    print(f"wrote {args.output}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
