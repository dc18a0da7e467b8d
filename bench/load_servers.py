"""Servers under wrk for bench/load.py: start one on a free port, wait until it is ready,
load it at each concurrency (the median of a few wrk runs), stop it and its children."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREDICT_LUA = ROOT / "bench" / "predict.lua"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, path: str, timeout: float = 120,
               proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server on port {port} not ready after {timeout} s")


def start(cmd: list[str], env: dict[str, str], port: int, ready_path: str,
          timeout: float = 120) -> subprocess.Popen:
    """The server in a session of its own (a peer forks workers: stop() ends them all),
    its stderr in a temporary file (a pipe nobody reads would fill and block it)."""
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=log, text=True)
    proc.log = log
    try:
        wait_ready(port, ready_path, timeout, proc)
    except RuntimeError as error:
        log.seek(0)
        tail = log.read()[-2000:]
        stop(proc)
        raise RuntimeError(f"{error}; its stderr ends:\n{tail}") from None
    return proc


def signal_group(pgid: int, signum: int) -> bool:
    """Send `signum` to a process group; False when no process is left in it."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL to what is left of it once the server
    has exited (a peer's workers may outlive it) or after 30 s; returns when none is left."""
    signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    signal_group(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while signal_group(proc.pid, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    if getattr(proc, "log", None):
        proc.log.close()


def session_cpu_s(sid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of session `sid`: a
    server and the workers it forked (`start` gives each server a session of its own)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended meanwhile
            continue
        # After the command: state, ppid, pgrp, session, ..., utime (12th), stime (13th).
        if int(fields[3]) == sid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    """CPU seconds used by this process's finished, waited-for children (wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk(port: int, concurrency: int, duration: int, sentences: Path,
        body: str = "object", server_sid: int | None = None) -> dict[str, float]:
    """One wrk run; `body` "list" sends {"text": ["..."]} instead of {"text": "..."}. With
    `server_sid`, also the CPU milliseconds a request cost the server and wrk itself."""
    server_before = session_cpu_s(server_sid) if server_sid else 0.0
    wrk_before = children_cpu_s()
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(concurrency), "-d", f"{duration}s", "--timeout", "10s",
         "-s", str(PREDICT_LUA), f"http://127.0.0.1:{port}", "--", str(sentences), body],
        capture_output=True, text=True, timeout=duration + 60, check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line[len("WRK_JSON "):])
    cpu = {}
    if server_sid and raw["requests"]:
        per_request = 1000 / raw["requests"]
        cpu = {"server_cpu_ms": (session_cpu_s(server_sid) - server_before) * per_request,
               "wrk_cpu_ms": (children_cpu_s() - wrk_before) * per_request}
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000, "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000, "errors": raw["errors"], "requests": raw["requests"],
        "status_errors": raw["status_errors"], **cpu,
    }


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each rate and latency the median over the runs; errors and requests their sums."""
    summed = ("errors", "requests", "status_errors")
    return {key: sum(r[key] for r in runs) if key in summed
            else statistics.median(r[key] for r in runs) for key in runs[0]}


def service_runs(label: str, cmd: list[str], env: dict[str, str], ready: str, port: int,
                 sentences: Path, duration: int, levels: tuple[int, ...], repeats: int = 1,
                 body: str = "object") -> list[dict]:
    """The server started, warmed up, measured `repeats` times at each concurrency, stopped."""
    print(f"-- {label}", flush=True)
    proc = start(cmd, env, port, ready)
    rows = []
    try:
        wrk(port, 8, 2, sentences, body)  # warm-up
        for c in levels:
            runs = [wrk(port, c, duration, sentences, body, proc.pid) for _ in range(repeats)]
            row = {"app": label, "concurrency": c, **median_of(runs)}
            print(f"   c={c:<4} {row['rps']:8.0f} req/s  p50 {row['p50_ms']:7.2f} ms  "
                  f"p99 {row['p99_ms']:8.2f} ms  errors {row['errors']}"
                  f"  (median of {repeats})", flush=True)
            rows.append(row)
    finally:
        stop(proc)
    return rows
