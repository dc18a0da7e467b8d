"""Where a request's time goes: the service under wrk, sampled by py-spy.

    python bench/profile_load.py [--concurrency 32] [--seconds 8]

Serves the shipped default model (`python -m app`, its default settings) on a free port,
loads it with wrk at one concurrency, and samples every thread with py-spy meanwhile
(`pip install py-spy`; `--gil` counts only samples that hold the interpreter's lock).
Prints requests/s, each thread's share of the wall time, and the functions the event
loop and the inference threads spend it in. docs/benchmarks.md, "Where the time went",
quotes its output.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from load_servers import free_port, start, stop, wrk  # noqa: E402

RATE_HZ = 200
# Frames worth naming in the summary: the inference path and the request path's layers.
WATCHED = ("Session.run", "TextEncoder.encode", "TextEncoder.feed", "OnnxClassifier.predict",
           "RequestResponseCycle.run_asgi", "RequestResponseCycle.send",
           "FastPredictMiddleware._answer", "InferencePath.classify", "Experiments.served",
           "solve_dependencies", "PredictMetricsMiddleware.__call__", "NativeTelemetry.enabled",
           "HttpToolsProtocol.data_received", "Runner.run")


def summarise(raw: Path, seconds: float) -> list[str]:
    """Each thread's busy share of the wall time, and the watched frames' shares."""
    threads: collections.Counter[str] = collections.Counter()
    frames: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        parts = stack.split(";")
        if parts[-1].startswith("_worker (") and "futures/thread.py" in parts[-1]:
            continue  # a pool thread waiting for work: idle, though py-spy counts it
        thread = parts[0].split(": ", 1)[-1].rstrip(")")
        threads[thread] += int(count)
        for name in {p.split(" (")[0] for p in parts[1:]} & set(WATCHED):
            frames[(thread, name)] += int(count)
    total = RATE_HZ * seconds
    lines = [f"{thread:<28} busy {n / total:6.1%} of the wall time"
             for thread, n in threads.most_common()]
    lines += [f"  {thread:<26} {name:<36} {n / total:6.1%}"
              for (thread, name), n in sorted(frames.items(), key=lambda x: -x[1])]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    parser.add_argument("--dev", default=str(ROOT.parent / "shared/data/sst2/dev.tsv"))
    args = parser.parse_args()
    for tool in ("wrk", "py-spy"):
        if shutil.which(tool) is None:
            sys.exit(f"error: {tool} not found on PATH")
    from compression.core.data import load_split

    texts = load_split(Path(args.dev)).texts
    with tempfile.TemporaryDirectory() as tmp:
        sentences, raw = Path(tmp) / "sentences.txt", Path(tmp) / "profile.txt"
        sentences.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n")
        port = free_port()
        proc = start([sys.executable, "-m", "app", "--port", str(port)],
                     {"APP_LOG_LEVEL": "warning"}, port, "/readyz")
        try:
            wrk(port, args.concurrency, 2, sentences)  # warm-up
            spy = subprocess.Popen(
                ["py-spy", "record", "-p", str(proc.pid), "-d", str(args.seconds), "-r",
                 str(RATE_HZ), "-f", "raw", "-o", str(raw), "--threads",
                 *(["--gil"] if args.gil else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            load = wrk(port, args.concurrency, args.seconds, sentences)
            spy.wait(timeout=args.seconds + 60)
        finally:
            stop(proc)
        print(f"{load['rps']:.0f} requests/s at {args.concurrency} clients, p50 "
              f"{load['p50_ms']:.2f} ms, p99 {load['p99_ms']:.2f} ms")
        print("\n".join(summarise(raw, args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
