"""The peers of bench/load.py: the same registry version served by other frameworks, each
with its own cross-request batching (scripts in bench/peers/). A peer whose package is not
installed (`pip install -e '.[bench]'`) is skipped with a line saying so."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from load_servers import ROOT, free_port, service_runs


@dataclass(frozen=True)
class Peer:
    name: str
    package: str
    script: str  # under bench/peers/
    ready: str  # the path that answers 200 once the model is loaded
    body: str  # wrk's request body: "object" {"text": "..."}, "list" {"text": ["..."]}
    batching: str
    workers: int = 1  # processes holding the model; the intra-op threads are split among them

    def missing(self) -> str | None:
        """Why the peer cannot run here, or None."""
        if importlib.util.find_spec(self.package) is None:
            return f"{self.package} is not installed (pip install -e '.[bench]')"
        return None

    def threads_per_worker(self, threads: int) -> int:
        return max(1, threads // self.workers)

    def label(self, threads: int) -> str:
        version = importlib.metadata.version(self.package)
        workers = f"{self.workers} worker{'s' if self.workers > 1 else ''}"
        return (f"{self.name} {version}, {workers} x {self.threads_per_worker(threads)} "
                f"thread{'s' if self.threads_per_worker(threads) > 1 else ''}, {self.batching}")

    def command(self, version_dir: Path, port: int, threads: int) -> list[str]:
        return [sys.executable, str(ROOT / "bench" / "peers" / self.script),
                "--model-dir", str(version_dir), "--port", str(port),
                "--threads", str(self.threads_per_worker(threads)),
                "--workers", str(self.workers)]


LITSERVE = Peer("LitServe", "litserve", "litserve_peer.py", "/health", "object",
                "dynamic batching (max 32, 2 ms)")
BENTOML = Peer("BentoML", "bentoml", "bentoml_peer.py", "/readyz", "list",
               "adaptive batching (max 32)")
# Each with one worker (the service's one process, its threads) and with a worker per core,
# one thread each (LitServe's advice for CPUs; BentoML's workers="cpu_count").
PEERS = tuple(dict.fromkeys((LITSERVE, replace(LITSERVE, workers=os.cpu_count() or 1),
                             BENTOML, replace(BENTOML, workers=os.cpu_count() or 1))))


def peer_runs(version_dir: Path, threads: int, sentences: Path, duration: int,
              levels: tuple[int, ...], repeats: int) -> list[dict]:
    rows, skipped = [], set()
    for peer in PEERS:
        reason = peer.missing()
        if reason:
            if peer.name not in skipped:
                print(f"-- {peer.name} skipped: {reason}", flush=True)
            skipped.add(peer.name)
            continue
        port = free_port()
        rows += service_runs(peer.label(threads), peer.command(version_dir, port, threads),
                             {"BENTOML_DO_NOT_TRACK": "true"}, peer.ready, port, sentences,
                             duration, levels, repeats, peer.body)
    return rows
