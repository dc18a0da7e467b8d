"""`python -m app [--host H] [--port P] [--models DIR]`: flags override `APP_*` variables."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType
from typing import Any

import uvicorn
from pydantic import ValidationError

from .http_protocol import guarded_protocol
from .main import create_app
from .settings import Settings

# Seconds uvicorn waits for in-flight requests after SIGTERM before cancelling them. The
# Kubernetes manifests give the pod a longer terminationGracePeriodSeconds than this.
GRACEFUL_SHUTDOWN_S = 30


class GracefulServer(uvicorn.Server):
    """uvicorn's server, which on SIGTERM stops accepting connections, answers the
    requests it has already received, and only then runs the lifespan shutdown (which
    drains the batchers). Added here: `/readyz` answers 503 from the signal on, so a load
    balancer that still probes stops sending traffic."""

    def __init__(self, config: uvicorn.Config, state: Any) -> None:
        super().__init__(config)
        self._state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._state.draining = True  # a plain attribute store: safe in a signal handler
        super().handle_exit(sig, frame)


def _stopped(sig: int, frame: FrameType | None) -> None:
    """Receives the stop signal that uvicorn re-raises after its graceful shutdown."""


def parse_args(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument("--host", help="address to bind (APP_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (APP_PORT, default 8000)")
    parser.add_argument("--models", dest="models_dir", help="registry folder (APP_MODELS_DIR)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    return {k: v for k, v in vars(args).items() if v is not None}


def main(argv: list[str] | None = None) -> int:
    overrides = parse_args(argv)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            print(f"invalid setting {where}: {err['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        http=guarded_protocol(settings.max_header_bytes, settings.read_timeout_s,
                              app.state.admission),
    )
    server = GracefulServer(config, app.state)
    # uvicorn re-raises SIGTERM / SIGINT once it has shut down, so that the process ends
    # "killed by SIGTERM" (status 143). A graceful stop is a success: the re-raised signal
    # lands on this no-op handler and the process exits 0. (uvicorn installs its own
    # handlers while it serves, and restores these afterwards.)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stopped)
    server.run()
    if not server.started:
        return 3  # start-up failed (uvicorn has logged why), as uvicorn.run would exit
    logging.getLogger("app").info("stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
