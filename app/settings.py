"""The service's one settings object: flags, `APP_*` environment variables, defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service. Environment variables use the prefix `APP_`
    (`APP_MODELS_DIR=/srv/models`); `python -m app` flags override them."""

    model_config = SettingsConfigDict(env_prefix="APP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    models_dir: Path = Path("models")
    # Admin endpoints need `Authorization: Bearer <api_key>`; with no key they are disabled.
    api_key: SecretStr | None = None
    # The model served when a request names none; None = the registry's default.json, else
    # the only routed model, if one.
    default_model: str | None = None

    # Dynamic batching, per loaded version.
    max_batch_size: int = Field(default=32, ge=1, le=4096)
    max_wait_ms: float = Field(default=2.0, ge=0)
    max_queue: int = Field(default=256, ge=1)  # queued requests per version, then 503
    # Requests to /predict in flight in the whole process (all versions) beyond which a new
    # one is answered 503 at once, before its body is read: shedding costs microseconds,
    # not a pass through validation and routing. None = max_queue + max_batch_size.
    max_in_flight: int | None = Field(default=None, ge=1)
    # A connection refused for overload is not read again for this long (`python -m app`),
    # the Retry-After its answer gave: clients that re-send at once would otherwise spend
    # the CPU on refusals (at 16x the queue on two cores, the accepted rate fell to 26 %
    # of c=32; docs/serving.md, Overload). 0 = read it again at once.
    refused_pause_s: float = Field(default=1.0, ge=0, le=60)
    # False: a batch holds one request's texts only. Dynamic-INT8 models compute
    # activation scales over the whole batch, so another client's texts can change an
    # answer (docs/experiments/sst2.md, findings); static INT8 and float models do not need this.
    cross_request_batching: bool = True

    # Input limits.
    max_text_chars: int = Field(default=2000, ge=1)  # a text, or a question
    # A question-answering input's context (longer ones are read in windows).
    max_context_chars: int = Field(default=20_000, ge=1)
    max_texts_per_request: int | None = Field(default=None, ge=1)  # None = max_batch_size
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    request_timeout_s: float = Field(default=30.0, gt=0)
    # Guards of the HTTP layer (`python -m app`): the request line and headers may take at
    # most max_header_bytes (else 431), and a request must arrive whole, head and body,
    # within read_timeout_s of its first byte (else 408); both close the connection.
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    read_timeout_s: float = Field(default=15.0, gt=0)

    # onnxruntime.
    providers: Literal["auto", "cpu", "cuda"] = "auto"
    # How a version uses the cores (`inference.plan_threads`): `inference_workers` batches at
    # once, each on `intra_op_threads` threads. 0 = auto: on CPU one single-threaded batch per
    # usable core (cgroup quota included), on a GPU one batch at a time. The process as a
    # whole runs no more batches than `inference_workers`, every version together (app/gate).
    inference_workers: int = Field(default=0, ge=0, le=64)
    intra_op_threads: int = Field(default=0, ge=0)
    # After a run, onnxruntime's intra-op threads can spin for a while, waiting for the next.
    # Two versions served side by side (A/B) run at the same time, and one's spinning
    # threads took the cores from the other's: at 32 clients under a 50/50 split, 809 and
    # 849 requests/s with spinning off against 483 and 521 with it on (two runs of
    # bench/load.py). With one version the two settings were within run-to-run noise.
    allow_spinning: bool = False

    # A/B experiments (app/experiments). Every prediction carries an id signed with this
    # key (HMAC-SHA256), which POST /feedback checks: replicas that share the key accept
    # each other's ids with no shared state. None: a random key per process, so an id is
    # accepted only by the process that issued it, until it restarts.
    feedback_key: SecretStr | None = None
    # Feedback for a prediction older than this is refused (410).
    feedback_max_age_s: float = Field(default=7 * 24 * 3600, gt=0)
    # Shadow copies running or waiting in the whole process; beyond this a copy is dropped
    # and counted, never queued behind live traffic.
    shadow_max_pending: int = Field(default=4, ge=1)
    # This replica's base URL as the other replicas reach it (e.g. http://$(POD_IP):8000).
    # Set: ids name the replica that issued them and feedback sent to another replica is
    # relayed here, so shadows are judged and repeats caught whichever replica gets it.
    replica_url: str | None = Field(default=None, pattern=r"^https?://[^/\s]+/?$")
    # How long a relay waits for the issuing replica before judging the feedback locally.
    feedback_relay_timeout_s: float = Field(default=2.0, gt=0, le=60)

    # Write route changes made through the admin API back to `<models_dir>/routes.json`.
    persist_routes: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # FastAPI's OpenTelemetry bridge. Off by default: even with no provider configured it
    # asks the OpenTelemetry API on every request whether one is, which took about 8 % of
    # the event loop's time under load (Prometheus metrics are the service's own).
    opentelemetry: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.max_texts_per_request is None:
            self.max_texts_per_request = self.max_batch_size
        if self.max_texts_per_request > self.max_batch_size:
            raise ValueError(
                f"max_texts_per_request ({self.max_texts_per_request}) is larger than "
                f"max_batch_size ({self.max_batch_size}): such a request could never be "
                "batched; lower APP_MAX_TEXTS_PER_REQUEST or raise APP_MAX_BATCH_SIZE"
            )
        if self.max_wait_ms / 1000 >= self.request_timeout_s:
            raise ValueError(
                f"max_wait_ms ({self.max_wait_ms}) is not shorter than request_timeout_s "
                f"({self.request_timeout_s}): every request would time out waiting for a "
                "batch; lower APP_MAX_WAIT_MS or raise APP_REQUEST_TIMEOUT_S"
            )
        if self.replica_url is not None:
            self.replica_url = self.replica_url.rstrip("/")
        if self.feedback_key is not None and len(self.feedback_key.get_secret_value()) < 16:
            raise ValueError(
                "feedback_key is shorter than 16 characters: set a longer APP_FEEDBACK_KEY "
                "(e.g. `openssl rand -hex 32`), or unset it for a random key per process"
            )
        if self.api_key is not None and len(self.api_key.get_secret_value()) < 8:
            raise ValueError(
                "api_key is shorter than 8 characters: set a longer APP_API_KEY, or unset it "
                "to disable the admin endpoints"
            )
        return self

    @property
    def in_flight_limit(self) -> int:
        return self.max_in_flight or self.max_queue + self.max_batch_size

    @property
    def texts_limit(self) -> int:
        return self.max_texts_per_request or self.max_batch_size
