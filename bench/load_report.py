"""bench/load.py's report: its section of docs/benchmarks.md (every server at every
concurrency, as shares of the ceiling and as ratios to the service) and its chart."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path

SERVICE = "service, dynamic batching"  # the configuration every other row is compared with
PEER_SETUP = """\
Peers (`bench/peers/`, installed by `pip install -e '.[bench]'`; a peer whose package is \
missing is skipped with a line saying so) serve the same `model.onnx` and `tokenizer.json`: \
onnxruntime with the service's session options (`inference.open_session`), `tokenizers` \
padding each batch to its longest sentence (the service also sorts a batch into length \
groups), softmax, one sentence per request. Each peer runs twice: with one worker process \
holding the model with the service's intra-op threads, as the service does, and with one \
worker per core of one thread each (LitServe's advice for CPUs, BentoML's \
`workers="cpu_count"`), each worker batching on its own. LitServe: its dynamic batching \
with `max_batch_size=32` and `batch_timeout=0.002` (the service's `APP_MAX_BATCH_SIZE` and \
`APP_MAX_WAIT_MS`), `fast_queue=True` (ZeroMQ between its API servers and workers, what it \
recommends above 100 requests/s), one API-server process per worker (its default). \
BentoML: `batchable=True` with `max_batch_size=32`; its adaptive dispatcher picks the wait \
itself from the latencies it measures, and `max_latency_ms=10000` (wrk's time-out) so that \
it sheds nothing wrk would still count; access log off, as the service has none. MLServer \
was not used: its latest release (1.7.1) pins `fastapi<0.116` and `starlette<0.47`, so \
installing it beside the service downgrades the service's own web stack, which would then \
no longer be measured as shipped. Ratios: a server's req/s, p50 and p99 divided by the \
service's ("service, dynamic batching") at the same concurrency; req/s above 1x, or a \
latency below 1x, is a server ahead of the service."""


def ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:.2f}x" if reference else "n/a"


def machine() -> str:
    """The CPU model as lscpu names it, the cores, and the versions that matter here."""
    cpu = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        cpu = next(x.split(":", 1)[1].strip() for x in out.splitlines()
                   if x.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    versions = []
    for package in ("onnxruntime", "fastapi", "uvicorn", "litserve", "bentoml"):
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return (f"{cpu} (lscpu), {os.cpu_count()} cores; Python {platform.python_version()}, "
            + ", ".join(versions))


def ceiling_lines(ceil: dict[str, float], best: str,
                  registered_b1_ms: float | None = None) -> list[str]:
    """The ceiling's table, and how fast this machine ran against the model's registration
    (its manifest's batch-1 latency), to tell a slow machine from a slow server."""
    sizes = [k for k in ceil if k[1:].isdigit()]
    speed = "" if not registered_b1_ms else (
        f" Its manifest says {registered_b1_ms:.2f} ms, measured when it was registered: "
        f"this machine ran {ceil['b1_p50_ms'] / registered_b1_ms:.1f}x as slow in this run, "
        "so compare other runs' figures through the ratios, not as absolute values.")
    how = ("" if "workers" not in ceil else
           f", run as the service runs it: {ceil['workers']:.0f} batch(es) at once, "
           f"{ceil['threads']:.0f} onnxruntime thread(s) each")
    return [
        f"The ceiling, the model alone in one process, no HTTP{how} (tokenization, length "
        "groups and probabilities included, sentences in arrival order):",
        "",
        "| batch size | " + " | ".join(k[1:] for k in sizes) + " |",
        "|" + " --- |" * (1 + len(sizes)),
        "| sentences/s | " + " | ".join(f"{ceil[k]:.0f}" for k in sizes) + " |",
        "",
        f"Ceiling = {ceil[best]:.0f} sentences/s (batch {best[1:]}); the model's own batch-1 "
        f"latency p50 = {ceil['b1_p50_ms']:.2f} ms.{speed}",
    ]


def behind_lines(rows: list[dict]) -> list[str]:
    """Every concurrency where a server beats the service on req/s or p99, said plainly."""
    service = {r["concurrency"]: r for r in rows if r["app"] == SERVICE}
    lines = []
    for r in rows:
        ref = service.get(r["concurrency"])
        if r["app"].startswith("service") or ref is None:
            continue
        if r["rps"] > ref["rps"]:
            lines.append(f"- {r['app']} answers more requests/s than the service at "
                         f"{r['concurrency']} clients ({ratio(r['rps'], ref['rps'])}).")
        if r["p99_ms"] < ref["p99_ms"]:
            lines.append(f"- {r['app']} has a lower p99 than the service at "
                         f"{r['concurrency']} clients ({ratio(r['p99_ms'], ref['p99_ms'])}).")
    head = "Where the service is behind another server:" if lines else \
        "The service is ahead of every other server at every concurrency, on req/s and p99."
    return [head, *lines]


def cpu_lines(rows: list[dict], ceil: dict[str, float], best: str,
              cores: int | None = None) -> list[str]:
    """What a request costs in CPU, the service's process and wrk's, against the model alone
    at the ceiling's batch size: on cores the load generator shares, this cost bounds the
    share of the ceiling any server can reach."""
    model_ms = ceil.get(f"cpu_ms_{best}")
    measured = [r for r in rows if r["app"] == SERVICE and "server_cpu_ms" in r]
    if model_ms is None or not measured:
        return []
    cores = cores or os.cpu_count() or 1
    lines = [
        f"CPU a request, \"{SERVICE}\" (the service's process, all its threads, and wrk, each "
        "over its wrk runs, per request answered), against the model alone at batch "
        f"{best[1:]} in the ceiling's run ({model_ms:.2f} ms of CPU a sentence). On {cores} "
        f"cores the load generator shares, a server whose request costs C ms of CPU (its own "
        f"and wrk's) answers at most {1000 * cores:.0f} / C requests/s:",
        "",
        "| concurrency | service ms | of which beyond the model alone | wrk ms | "
        "at most req/s | of ceiling | measured req/s |",
        "|" + " --- |" * 7,
    ]
    for r in measured:
        total = r["server_cpu_ms"] + r["wrk_cpu_ms"]
        bound = 1000 * cores / total
        lines.append(f"| {r['concurrency']} | {r['server_cpu_ms']:.2f} | "
                     f"{r['server_cpu_ms'] - model_ms:.2f} | {r['wrk_cpu_ms']:.2f} | "
                     f"{bound:.0f} | {100 * bound / ceil[best]:.0f} % | {r['rps']:.0f} |")
    left = 1000 * cores / (0.9 * ceil[best]) - model_ms
    lines += ["", f"90 % of the ceiling is {0.9 * ceil[best]:.0f} requests/s: {cores} cores "
              f"then have {1000 * cores / (0.9 * ceil[best]):.2f} ms of CPU a request, of "
              f"which the model alone takes {model_ms:.2f}, leaving {left:.2f} ms for HTTP "
              "on both sides, the server's own work and wrk."]
    return lines


def row_table(rows: list[dict], best_rate: float) -> list[str]:
    """A row per server and concurrency; the column against the naive app only with it."""
    naive32 = next((r["rps"] for r in rows if r["app"].startswith("naive")
                    and r["concurrency"] == 32), None)
    service = {r["concurrency"]: r for r in rows if r["app"] == SERVICE}
    columns = ["app", "concurrency", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors",
               "of ceiling", *(["vs naive c=32"] if naive32 else []), "req/s vs service",
               "p50 vs service", "p99 vs service"]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for r in rows:
        ref = service.get(r["concurrency"], {})
        cells = [r["app"], r["concurrency"], f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}",
                 f"{r['p95_ms']:.2f}", f"{r['p99_ms']:.2f}", r["errors"],
                 f"{100 * r['rps'] / best_rate:.0f} %",
                 *([f"{r['rps'] / naive32:.1f}x"] if naive32 else []),
                 ratio(r["rps"], ref.get("rps")), ratio(r["p50_ms"], ref.get("p50_ms")),
                 ratio(r["p99_ms"], ref.get("p99_ms"))]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def markdown(rows: list[dict], ceil: dict[str, float], best: str, model: str,
             duration: int, command: str, repeats: int = 1, chart: str | None = None,
             machine_line: str | None = None, registered_b1_ms: float | None = None) -> str:
    lines = [
        "## Serving under load",
        "",
        f"Model `{model}`; one sentence per request from SST-2 dev; wrk (1 thread) on "
        f"loopback, {duration} s per level, each figure the median of {repeats} such "
        f"run{'s' if repeats > 1 else ''}, on the same cores as the server. Measured "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Machine: {machine_line or machine()}.",
        f"Command: `{command}`",
        "",
        *ceiling_lines(ceil, best, registered_b1_ms),
        "",
        "The service's onnxruntime threads sleep between runs (`APP_ALLOW_SPINNING=false`, "
        "its default); rows marked \"spinning threads\" let them spin (onnxruntime's default). "
        "A/B rows send half of the requests to the other version, so their share of the "
        "ceiling (the version under test alone) is indicative only.",
        "",
        PEER_SETUP,
        *([] if any(r["app"].startswith("naive") for r in rows) else [
            "", "No naive FastAPI + transformers app in this run: it needs the fp32 teacher "
            "(`--teacher`); docs/experiments/sst2.md quotes the last run that had it."]),
        "",
        *row_table(rows, ceil[best]),
        "",
        *behind_lines(rows),
    ]
    cpu = cpu_lines(rows, ceil, best)
    if cpu:
        lines += ["", *cpu]
    if chart:
        lines += ["", f"![requests/s and p99 against clients, one line per server]({chart})"]
    return "\n".join(lines)


def write_chart(rows: list[dict], ceiling_rate: float, path: Path) -> Path:
    """Requests/s and p99 against clients (log x), one line per server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate_ax, p99_ax) = plt.subplots(1, 2, figsize=(13, 5.5))
    for app in dict.fromkeys(r["app"] for r in rows):
        mine = sorted((r for r in rows if r["app"] == app), key=lambda r: r["concurrency"])
        clients = [r["concurrency"] for r in mine]
        style = "-" if app == SERVICE else "--" if app.startswith("service") else "-."
        rate_ax.plot(clients, [r["rps"] for r in mine], style, marker="o", label=app)
        p99_ax.plot(clients, [r["p99_ms"] for r in mine], style, marker="o", label=app)
    rate_ax.axhline(ceiling_rate, color="grey", linestyle=":", label="ceiling (model alone)")
    levels = sorted({r["concurrency"] for r in rows})
    for ax, title in ((rate_ax, "requests/s"), (p99_ax, "p99 latency, ms (log)")):
        ax.set_xscale("log")
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.minorticks_off()
        ax.set_xlabel("concurrent clients (log)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    p99_ax.set_yscale("log")
    rate_ax.set_ylim(bottom=0)
    handles, labels = rate_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.03 * ((len(labels) + 1) // 2), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
