"""A/B routing: weighted split by key hash, stickiness, and only loaded versions."""

from __future__ import annotations

import pytest

from app.routing import Router, key_point, pick


def test_hash_split_is_within_two_points_of_the_weights() -> None:
    router = Router({"m": {"1": 90, "2": 10}})
    counts = {"1": 0, "2": 0}
    for i in range(10_000):
        version, how = router.choose("m", f"user-{i}", {"1", "2"})
        assert how == "hash"
        counts[version] += 1  # type: ignore[index]
    assert abs(counts["2"] / 10_000 - 0.10) <= 0.02
    assert abs(counts["1"] / 10_000 - 0.90) <= 0.02


def test_three_way_split() -> None:
    router = Router({"m": {"1": 50, "2": 30, "3": 20}})
    counts = {"1": 0, "2": 0, "3": 0}
    for i in range(10_000):
        counts[router.choose("m", f"k{i}", {"1", "2", "3"})[0]] += 1  # type: ignore[index]
    for version, weight in {"1": 0.5, "2": 0.3, "3": 0.2}.items():
        assert abs(counts[version] / 10_000 - weight) <= 0.02


def test_same_key_same_version_while_weights_are_unchanged() -> None:
    router = Router({"m": {"1": 50, "2": 50}})
    first = {k: router.choose("m", k, {"1", "2"})[0] for k in map(str, range(1000))}
    router.set_weights("other", {"1": 100})  # another model's change does not matter
    for _ in range(3):
        assert {k: router.choose("m", k, {"1", "2"})[0] for k in first} == first
    # And across processes: the hash is sha256, not Python's salted hash().
    assert key_point("m", "abc") == key_point("m", "abc")
    assert 0 <= key_point("m", "abc") < 1


def test_moving_weight_only_moves_keys_on_the_boundary() -> None:
    router = Router({"m": {"1": 90, "2": 10}})
    before = {k: router.choose("m", k, {"1", "2"})[0] for k in map(str, range(2000))}
    router.set_weights("m", {"1": 80, "2": 20})
    after = {k: router.choose("m", k, {"1", "2"})[0] for k in before}
    assert all(after[k] == "2" for k in before if before[k] == "2")


def test_random_choice_follows_weights_and_zero_weight_gets_nothing() -> None:
    router = Router({"m": {"1": 75, "2": 25, "3": 0}})
    counts = {"1": 0, "2": 0, "3": 0}
    for _ in range(4000):
        version, how = router.choose("m", None, {"1", "2", "3"})
        assert how == "random"
        counts[version] += 1  # type: ignore[index]
    assert counts["3"] == 0
    assert 0.70 < counts["1"] / 4000 < 0.80


def test_only_loaded_versions_are_chosen() -> None:
    router = Router({"m": {"1": 50, "2": 50}})
    assert {router.choose("m", str(i), {"1"})[0] for i in range(200)} == {"1"}
    assert router.choose("m", "k", set()) == (None, "no_loaded_version")
    assert router.choose("unknown", "k", {"1"}) == (None, "unrouted")


def test_pick_uses_version_order_not_string_order() -> None:
    # "10" sorts after "9" numerically: the first 50 % of points go to "9".
    assert pick({"10": 50, "9": 50}, 0.1) == "9"
    assert pick({"10": 50, "9": 50}, 0.9) == "10"


@pytest.mark.parametrize(
    "weights", [{}, {"1": -1}, {"1": 0}, {"../x": 100}],
)
def test_invalid_weights_are_refused(weights: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Router().set_weights("m", weights)


def test_updates_replace_the_table_whole() -> None:
    router = Router({"m": {"1": 100}})
    seen = router.routes
    router.set_weights("m", {"1": 0, "2": 100})
    assert dict(seen["m"]) == {"1": 100.0}  # an old reader keeps a consistent snapshot
    assert dict(router.routes["m"]) == {"1": 0.0, "2": 100.0}
