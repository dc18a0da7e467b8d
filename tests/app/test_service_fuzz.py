"""Fuzz every operation of the OpenAPI schema against a real server (schemathesis):
no 500s, every answer has a documented status and body, what fits the schema is
accepted and what does not is refused (every check schemathesis has)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from service_helpers import ADMIN, ServerProcess

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

from schemathesis.checks import CHECKS  # noqa: E402
from schemathesis.specs.openapi import checks as _openapi_checks  # noqa: E402,F401  (registers them)

EXAMPLES = 60  # per operation; derandomized, so every run tries the same cases
# Every check schemathesis has, positive-data acceptance and negative-data rejection
# included: the schema must promise exactly what the API accepts.
CHECKS_ALL = CHECKS.get_all()
OIP_INFER = "POST /v2/models/{name}/infer"

@pytest.fixture
def server(make_registry: Callable[..., Path], tmp_path: Path) -> Iterator[ServerProcess]:
    # One routed model, so requests that name none are served; tiny/2 loaded at weight 0.
    root = make_registry({"tiny": {"1": 100, "2": 0}})
    with ServerProcess(root, tmp_path / "server.log") as s:
        yield s


def fuzzer(strategy: object, seen: Counter[int]) -> Callable[[], None]:
    @hypothesis.settings(
        max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=strategy)
    def fuzz(case: schemathesis.Case) -> None:
        # The admin key on every call, so admin operations get past authentication.
        response = case.call_and_validate(headers=ADMIN, checks=CHECKS_ALL, timeout=60)
        seen[response.status_code] += 1

    return fuzz


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzzing_the_openapi_schema_finds_no_server_error(
    server: ServerProcess, mode: str,
) -> None:
    """Positive: requests that fit the schema; negative: requests that do not (wrong
    types, missing fields), which must all be refused with a documented 4xx."""
    generation_mode = schemathesis.GenerationMode(mode)
    schema = schemathesis.openapi.from_url(f"{server.base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {f"{op.method.upper()} {op.path}" for op in operations}
    assert {"POST /predict", "GET /models", "PUT /admin/routes/{name}",
            "POST /admin/models/{name}/{version}/load",
            "DELETE /admin/models/{name}/{version}", "GET /readyz", "GET /v2",
            "GET /v2/models/{name}", "GET /v2/models/{name}/versions/{version}/ready",
            OIP_INFER, "POST /v2/models/{name}/versions/{version}/infer"} <= labels
    failures: dict[str, str] = {}
    statuses: dict[str, Counter[int]] = {}
    for op in operations:
        label = f"{op.method.upper()} {op.path}"
        seen = statuses.setdefault(label, Counter())

        fuzz = fuzzer(op.as_strategy(generation_mode), seen)
        try:
            fuzz()
        except hypothesis.errors.Unsatisfiable:
            # Negative mode on an operation whose every input is valid (no body; any
            # string is a valid path segment or header): nothing to send.
            assert mode == "negative", label
        except Exception as exc:  # collect every operation's failure, then report all
            failures[label] = str(exc)[:2000]
    assert failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    if mode == "positive":  # the fuzz reached past validation: the example is served
        assert statuses["POST /predict"][200] > 0, statuses
        # Valid tensors, then the model lookup: the fuzzed names are unknown.
        assert statuses[OIP_INFER][404] > 0, statuses
    else:  # invalid bodies were sent and refused
        assert statuses["POST /predict"][422] > 0, statuses
        assert statuses["PUT /admin/routes/{name}"][422] > 0, statuses
        assert statuses[OIP_INFER][400] > 0, statuses
    log = server.log()
    assert "unhandled error" not in log and "Traceback" not in log, log
