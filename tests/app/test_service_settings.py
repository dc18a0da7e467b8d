"""Settings: defaults, APP_ environment variables, impossible combinations refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.__main__ import parse_args
from app.settings import Settings


def test_defaults() -> None:
    s = Settings()
    assert s.models_dir == Path("models")
    assert s.max_batch_size == 32 and s.max_texts_per_request == 32
    assert s.max_wait_ms == 2 and s.max_queue == 256
    assert s.api_key is None and s.providers == "auto"
    assert s.allow_spinning is False  # spinning threads took cores from HTTP and A/B peers


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_PORT", "9123")
    monkeypatch.setenv("APP_MODELS_DIR", "/srv/models")
    monkeypatch.setenv("APP_API_KEY", "secret-key-123")
    monkeypatch.setenv("APP_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("APP_ALLOW_SPINNING", "true")
    s = Settings()
    assert s.allow_spinning is True
    assert s.port == 9123 and s.models_dir == Path("/srv/models") and s.max_batch_size == 8
    assert s.api_key is not None and s.api_key.get_secret_value() == "secret-key-123"
    assert "secret-key-123" not in repr(s)


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_PORT", "9123")
    s = Settings(**parse_args(["--port", "8001", "--models", "elsewhere", "--host", "0.0.0.0"]))
    assert s.port == 8001 and s.models_dir == Path("elsewhere") and s.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("values", "fix"),
    [
        ({"max_batch_size": 8, "max_texts_per_request": 16}, "APP_MAX_TEXTS_PER_REQUEST"),
        ({"max_wait_ms": 5000, "request_timeout_s": 1}, "APP_MAX_WAIT_MS"),
        ({"api_key": "short"}, "APP_API_KEY"),
    ],
)
def test_impossible_combinations_name_the_fix(values: dict, fix: str) -> None:
    with pytest.raises(ValidationError, match=fix):
        Settings(**values)


def test_unknown_provider_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(providers="tpu")


def test_python_m_app_reports_bad_settings_and_exits_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {"APP_MAX_BATCH_SIZE": "4", "APP_MAX_TEXTS_PER_REQUEST": "8", "PATH": "/usr/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "app", "--port", "0"], cwd=repo, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "APP_MAX_TEXTS_PER_REQUEST" in result.stderr
