"""Helpers shared by the service tests (a plain module: `conftest` is ambiguous when
several test folders have one)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))  # for tiny_models

API_KEY = "test-admin-key-123"
ADMIN = {"Authorization": f"Bearer {API_KEY}"}


def settings_for(root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"models_dir": root, "api_key": API_KEY, "intra_op_threads": 1}
    values.update(overrides)
    return Settings(**values)


@contextmanager
def serve(root: Path, **overrides: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(root, **overrides))) as client:
        yield client


def without_ids(body: dict[str, Any]) -> dict[str, Any]:
    """A /predict answer without its prediction ids (unique to each answer): what two
    answers to the same texts share."""
    predictions = [{k: v for k, v in p.items() if k != "prediction_id"}
                   for p in body.get("predictions", [])]
    return {**body, "predictions": predictions}


def image_command() -> list[str]:
    """The CMD of the Dockerfile, as a list (exec form)."""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            return json.loads(line[4:])
    raise AssertionError("Dockerfile has no CMD line")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS from /proc; psutil elsewhere)."""
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    import psutil

    return psutil.Process(pid).memory_info().rss


class ServerProcess:
    """A real `python -m app` process: the Dockerfile's command with this interpreter,
    on 127.0.0.1 and a free port. `start()` waits until /readyz answers 200; `stop()`
    sends SIGTERM, then SIGKILL if it has not exited in time. Use as a context manager."""

    def __init__(self, root: Path, log_path: Path, **env: str) -> None:
        self.root = root
        self.log_path = log_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable if part == "python" else part for part in image_command()]
        self.command = [
            "127.0.0.1" if part == "0.0.0.0" else str(self.port) if part == "8000" else part
            for part in command
        ]
        self.env = dict(os.environ, APP_MODELS_DIR=str(root), APP_API_KEY=API_KEY,
                        APP_INTRA_OP_THREADS="1", PYTHONPATH=str(REPO), **env)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, ready_timeout_s: float = 120) -> ServerProcess:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.command, cwd=REPO, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + ready_timeout_s
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"server exited early:\n{self.log()}")
                try:
                    if httpx.get(f"{self.base}/readyz", timeout=5).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"server not ready:\n{self.log()}")
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout_s: float = 60) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout_s)
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def metric_sum(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples of metric `name` in a Prometheus text exposition whose
    labels include `labels`."""
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith(name + "{"):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total
