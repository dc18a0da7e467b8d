"""Every Prometheus metric of the service, one prefix, one registry per app instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from registry import ModelRef

PREFIX = "textclf"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_MV = ("model", "version")
_PAIR = ("model", "version", "shadow_version")  # a routed version and its shadow
_DIFF_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_seconds = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time from request to response of an inference request (POST /predict or a V2 "
            "infer), by served model and version (empty labels when the request failed "
            "before a version was chosen).",
            _MV, buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.requests = Counter(
            f"{PREFIX}_requests_total",
            "Inference requests (POST /predict and V2 infer) by model, version and HTTP "
            "status.",
            (*_MV, "status"), registry=r,
        )
        self.in_flight = Gauge(
            f"{PREFIX}_requests_in_flight",
            "Inference requests (POST /predict and V2 infer) received and not yet answered "
            "(a graceful shutdown waits for them).", registry=r,
        )
        self.texts = Counter(
            f"{PREFIX}_texts_total", "Texts classified.", _MV, registry=r,
        )
        self.inference_seconds = Histogram(
            f"{PREFIX}_inference_duration_seconds",
            "Time of one batch in onnxruntime, tokenization included.",
            _MV, buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.queue_wait_seconds = Histogram(
            f"{PREFIX}_queue_wait_seconds",
            "Time a request waited in its version's queue before its batch started.",
            _MV, buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size", "Texts per inference batch.",
            _MV, buckets=_BATCH_BUCKETS, registry=r,
        )
        self.queue_depth = Gauge(
            f"{PREFIX}_queue_depth", "Requests waiting in a version's queue.", _MV, registry=r,
        )
        self.dropped = Counter(
            f"{PREFIX}_dropped_requests_total",
            "Queued requests skipped because their caller had gone.", _MV, registry=r,
        )
        self.ab_assignments = Counter(
            f"{PREFIX}_ab_assignments_total",
            "Routing decisions by chosen version and method (hash, random, pinned).",
            (*_MV, "method"), registry=r,
        )
        self.route_weight = Gauge(
            f"{PREFIX}_route_weight", "Configured traffic weight of a version.", _MV, registry=r,
        )
        self.model_bytes = Gauge(
            f"{PREFIX}_model_file_bytes", "Size of the version's ONNX file.", _MV, registry=r,
        )
        self.load_seconds = Gauge(
            f"{PREFIX}_model_load_seconds",
            "Time to verify and load the version.", _MV, registry=r,
        )
        self.loaded = Gauge(
            f"{PREFIX}_model_loaded",
            "1 while a version is loaded, 0 after unload; labelled with its provider.",
            (*_MV, "provider"), registry=r,
        )
        self.load_failures = Counter(
            f"{PREFIX}_model_load_failures_total",
            "Versions refused at load (corrupt, incomplete or invalid).", _MV, registry=r,
        )

        # A/B experiments (app/experiments): shadow copies, feedback, online accuracy.
        self.shadow_copies = Counter(
            f"{PREFIX}_shadow_copies_total",
            "Requests copied to a model's shadow version, by outcome: compared, saturated "
            "(dropped: too many copies pending), not_loaded (dropped), failed, timed_out.",
            (*_PAIR, "outcome"), registry=r,
        )
        self.shadow_texts = Counter(
            f"{PREFIX}_shadow_texts_total",
            "Texts answered by both a routed version and its shadow.", _PAIR, registry=r,
        )
        self.shadow_agreements = Counter(
            f"{PREFIX}_shadow_agreements_total",
            "Texts on which the shadow gave the routed version's label (the same label set "
            "for a multi-label model).", _PAIR, registry=r,
        )
        self.shadow_difference = Histogram(
            f"{PREFIX}_shadow_probability_difference",
            "Per text, the mean absolute difference between the routed version's and the "
            "shadow's label probabilities.", _PAIR, buckets=_DIFF_BUCKETS, registry=r,
        )
        self.shadow_seconds = Histogram(
            f"{PREFIX}_shadow_duration_seconds",
            "Time of one shadow copy's inference, tokenization included.",
            _PAIR, buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.feedback_answers = Counter(
            f"{PREFIX}_feedback_answers_total",
            "Answers judged by POST /feedback, by model, version, role (routed: it answered "
            "the client; shadow: it answered a copy) and outcome (correct, incorrect).",
            (*_MV, "role", "outcome"), registry=r,
        )
        self.feedback_refused = Counter(
            f"{PREFIX}_feedback_refused_total",
            "Feedback refused, by reason: invalid_id, expired, bad_label, duplicate.",
            ("reason",), registry=r,
        )
        self.feedback_shadow_unjudged = Counter(
            f"{PREFIX}_feedback_shadow_unjudged_total",
            "Feedback on a prediction that was copied to a shadow whose answer this process "
            "does not hold (still running, dropped, or answered by another replica).",
            _PAIR, registry=r,
        )
        self.feedback_relayed = Counter(
            f"{PREFIX}_feedback_relayed_total",
            "Feedback sent on to the replica that issued the prediction (APP_REPLICA_URL), "
            "by outcome: relayed, unreachable (judged where it arrived instead).",
            ("outcome",), registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def observer(self, ref: ModelRef) -> VersionObserver:
        return VersionObserver(self, ref)


class VersionObserver:
    """The batcher's view of the metrics for one version (it never sees Prometheus)."""

    def __init__(self, metrics: Metrics, ref: ModelRef) -> None:
        labels = {"model": ref.name, "version": ref.version}
        self._wait = metrics.queue_wait_seconds.labels(**labels)
        self._infer = metrics.inference_seconds.labels(**labels)
        self._size = metrics.batch_size.labels(**labels)
        self._texts = metrics.texts.labels(**labels)
        self._dropped = metrics.dropped.labels(**labels)

    def queue_wait(self, seconds: float) -> None:
        self._wait.observe(seconds)

    def batch(self, n_texts: int, inference_s: float) -> None:
        self._size.observe(n_texts)
        self._infer.observe(inference_s)
        self._texts.inc(n_texts)

    def dropped(self) -> None:
        self._dropped.inc()
