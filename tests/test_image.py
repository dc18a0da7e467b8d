"""The serving image, built and run for real: `docker/image-smoke.sh` builds the Dockerfile
with podman on a Debian-bookworm stand-in for python:3.11-slim, starts it, and probes
/readyz, /predict, /metrics, the healthcheck, the user, the absence of torch and a clean
stop. It needs root, podman and debootstrap (apt-get install -y podman debootstrap);
elsewhere the test is skipped with the reason. The first run takes a few minutes (the
stand-in base is built once and kept in ~/.cache/image-smoke)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def missing() -> str | None:
    tools = [t for t in ("podman", "debootstrap", "curl") if shutil.which(t) is None]
    if tools:
        return f"needs {', '.join(tools)} (apt-get install -y podman debootstrap curl)"
    if os.geteuid() != 0:
        return "needs root (debootstrap and rootful podman)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(missing() is not None, reason=missing() or "")
def test_the_image_builds_starts_serves_and_stops_cleanly() -> None:
    result = subprocess.run(
        ["bash", str(REPO / "docker" / "image-smoke.sh")], cwd=REPO, capture_output=True,
        text=True, timeout=1800, env={**os.environ, "PORT": str(free_port())},
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert '"status":"ready"' in out, out[-4000:]
    assert '"predictions"' in out and "healthcheck ok" in out, out[-4000:]
    assert "uid 10001 no torch" in out and "exit code: 0" in out, out[-4000:]
