"""The experiments' pure parts: statistics on hand-computed cases, prediction ids
(signed, forged, expired), and the routes file's shadow form."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from app.classifier import Prediction
from app.experiments.ids import (
    IdSigner,
    InvalidPredictionId,
    PredictionExpired,
    PredictionRecord,
)
from app.experiments.shadow import compare
from app.experiments.stats import (
    more_needed,
    two_proportion_test,
    verdict,
    wilson_interval,
)
from app.routing import Router
from registry import RoutingTable, ShadowRoute

KEY = b"k" * 32
NOW = 1_800_000_000.0


def test_wilson_interval_on_hand_computed_cases() -> None:
    # 8/10, z = 1.96: centre (0.8 + 0.19208) / 1.38416 = 0.71674, half-width
    # 1.96 / 1.38416 * sqrt(0.016 + 0.009604) = 0.22658.
    low, high = wilson_interval(8, 10)  # type: ignore[misc]
    assert low == pytest.approx(0.49016, abs=1e-4)
    assert high == pytest.approx(0.94332, abs=1e-4)
    # 0/10: the lower end is 0, the upper z^2 / (n + z^2) = 3.8415 / 13.8415.
    low, high = wilson_interval(0, 10)  # type: ignore[misc]
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.27753, abs=1e-4)
    low, high = wilson_interval(10, 10)  # type: ignore[misc]
    assert high == pytest.approx(1.0) and low == pytest.approx(1 - 0.27753, abs=1e-4)
    assert wilson_interval(0, 0) is None


def test_two_proportion_z_test_on_a_hand_computed_case() -> None:
    # 45/50 against 35/50: pooled 0.8, se = sqrt(0.8 * 0.2 * (2/50)) = 0.08,
    # z = 0.2 / 0.08 = 2.5, two-sided p = 2 * (1 - Phi(2.5)) = 0.012419.
    test = two_proportion_test(45, 50, 35, 50)
    assert test.difference == pytest.approx(0.2)
    assert test.z == pytest.approx(2.5)
    assert test.p_value == pytest.approx(0.012419, abs=1e-6)
    # Symmetric; and no variance at all (everything right on both sides): p = 1.
    assert two_proportion_test(35, 50, 45, 50).z == pytest.approx(-2.5)
    none = two_proportion_test(30, 30, 40, 40)
    assert none.z is None and none.p_value == 1.0
    with pytest.raises(ValueError):
        two_proportion_test(1, 0, 1, 1)


def test_verdicts_in_words() -> None:
    assert verdict("6", 45, 50, "8", 35, 50).text == "6 is better than 8 at p = 0.012"
    assert verdict("6", 35, 50, "8", 45, 50).text == "8 is better than 6 at p = 0.012"
    # 45/50 against 40/50: z = 0.1 / sqrt(0.85 * 0.15 * 0.04) = 1.40028; significance at
    # the same accuracies needs (1.95996 / 1.40028)^2 = 1.95914 times the 100 answers.
    near = verdict("6", 45, 50, "8", 40, 50)
    assert near.more_needed == 96 == more_needed(near.test.z, 100)  # type: ignore[union-attr]
    assert near.text.startswith("not enough evidence yet: about 96 more labelled answers "
                                "needed at the current difference")
    assert "equally accurate" in verdict("6", 10, 20, "8", 10, 20).text
    assert "equally accurate" in verdict("6", 30, 30, "8", 40, 40).text
    # Significant on ten answers each, but ten are too few for the test to be trusted.
    few = verdict("6", 10, 10, "8", 2, 10)
    assert few.test is not None and few.test.p_value < 0.05
    assert "at least 30 labelled answers per version" in few.text
    assert verdict("6", 0, 0, "8", 5, 10).text.endswith("no labelled answers for 6")
    assert "p < 0.001" in verdict("6", 95, 100, "8", 50, 100).text


def _record(**changes: object) -> PredictionRecord:
    values: dict[str, object] = dict(model="m", version="8", labels=("positive",),
                                     multi_label=False, issued_at=int(NOW), nonce="ab-0",
                                     shadow="6")
    values.update(changes)
    return PredictionRecord(**values)  # type: ignore[arg-type]


def test_a_signed_id_round_trips() -> None:
    signer = IdSigner(KEY, max_age_s=3600)
    record = _record(labels=("a", "b"), multi_label=True)
    assert signer.verify(signer.sign(record), now=NOW + 10) == record
    # Another replica with the same key accepts it.
    assert IdSigner(KEY, 3600).verify(signer.sign(record), now=NOW) == record


def test_forged_ids_are_refused() -> None:
    signer = IdSigner(KEY, max_age_s=3600)
    token = signer.sign(_record())
    prefix, payload, signature = token.split(".")
    # Claim the answer was another label, keeping the old signature.
    forged_payload = signer.sign(_record(labels=("negative",))).split(".")[1]
    forgeries = [
        f"{prefix}.{forged_payload}.{signature}",
        IdSigner(b"another key, 32 bytes long......", 3600).sign(_record()),
        f"{prefix}.{payload}.{signature[:-2]}",
        f"p2.{payload}.{signature}", "", "p1.", "p1..", "garbage", "p1.é.é", token + "x",
    ]
    for forged in forgeries:
        with pytest.raises(InvalidPredictionId):
            signer.verify(forged, now=NOW)


def test_expired_and_future_ids_are_refused() -> None:
    signer = IdSigner(KEY, max_age_s=3600)
    token = signer.sign(_record())
    assert signer.verify(token, now=NOW + 3600).version == "8"
    with pytest.raises(PredictionExpired):
        signer.verify(token, now=NOW + 3601)
    with pytest.raises(InvalidPredictionId):
        signer.verify(token, now=NOW - 3600)


def test_agreement_and_probability_difference_per_text() -> None:
    a = [Prediction("pos", 0.9, {"pos": 0.9, "neg": 0.1}),
         Prediction("pos", 0.6, {"pos": 0.6, "neg": 0.4})]
    b = [Prediction("pos", 0.7, {"pos": 0.7, "neg": 0.3}),
         Prediction("neg", 0.8, {"pos": 0.2, "neg": 0.8})]
    agreements, differences = compare(a, b)
    assert agreements == [True, False]
    assert differences == pytest.approx([0.2, 0.4])
    multi = [Prediction("x", 0.9, {"x": 0.9, "y": 0.8}, labels=["y", "x"])]
    same = [Prediction("y", 0.9, {"x": 0.7, "y": 0.9}, labels=["x", "y"])]
    assert compare(multi, same)[0] == [True]


def test_routes_file_round_trips_the_shadow_and_reads_old_files(tmp_path: Path) -> None:
    old = {"m": {"1": 90.0, "2": 10.0}, "n": {"1": 100.0}}
    (tmp_path / "routes.json").write_text(json.dumps(old))
    table = RoutingTable.read(tmp_path)
    assert table.routes == old and table.shadows == {}
    # Written back without shadows: the old form, byte for byte as before.
    table.write(tmp_path)
    assert json.loads((tmp_path / "routes.json").read_text()) == old
    table.shadows["m"] = ShadowRoute(version="3", fraction=0.25)
    table.write(tmp_path)
    written = json.loads((tmp_path / "routes.json").read_text())
    assert written["m"] == {"weights": {"1": 90.0, "2": 10.0},
                            "shadow": {"version": "3", "fraction": 0.25}}
    assert written["n"] == {"1": 100.0}
    again = RoutingTable.read(tmp_path)
    assert again.routes == old and again.shadows == {"m": ShadowRoute(version="3",
                                                                       fraction=0.25)}


@pytest.mark.parametrize("shadow", [
    {"version": "1", "fraction": 0.5},  # the only version with weight
    {"version": "3", "fraction": 1.5}, {"version": "3", "fraction": -0.1},
    {"version": "3", "fraction": math.nan}, {"version": "../x", "fraction": 0.5},
])
def test_invalid_shadows_are_refused(shadow: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RoutingTable(routes={"m": {"1": 100, "2": 0}}, shadows={"m": shadow})
    router = Router({"m": {"1": 100}})
    with pytest.raises(ValueError):
        router.set_weights("m", {"1": 100}, ShadowRoute(**shadow))  # type: ignore[arg-type]
    assert router.shadow("m") is None and dict(router.weights("m") or {}) == {"1": 100}
