"""`python -m app [--host H] [--port P] [--models DIR]`: flags override `APP_*` variables."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError

from .main import create_app
from .settings import Settings


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
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
