"""A/B routing: weighted routes per model name over its versions.

A request with a routing key goes to the version whose slice of [0, 1) holds the key's
hash; slices follow the version order, so moving weight between two versions moves
only the keys on the boundary. Requests without a key get a weighted random choice.
The table is replaced whole on every change: a reader sees the old weights or the new
ones, never half of an update. A model may also have a shadow version (`ShadowRoute`),
which answers a sampled fraction of its routed requests off the response's path
(`app.experiments.shadow`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Collection, Mapping
from types import MappingProxyType

from registry import RoutingTable, ShadowRoute, check_safe_name, check_shadow, check_weights


def version_order(version: str) -> tuple[bool, int, str]:
    """Numeric versions in numeric order, then the others alphabetically."""
    return (not version.isdigit(), int(version) if version.isdigit() else 0, version)


def key_point(name: str, key: str) -> float:
    """A stable, uniform point in [0, 1) for a routing key (same key, same point)."""
    digest = hashlib.sha256(f"{name}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(weights: Mapping[str, float], point: float) -> str:
    """The version whose cumulative-weight slice holds `point` in [0, 1)."""
    versions = sorted((v for v, w in weights.items() if w > 0), key=version_order)
    total = sum(weights[v] for v in versions)
    target = point * total
    cumulative = 0.0
    for version in versions:
        cumulative += weights[version]
        if target < cumulative:
            return version
    return versions[-1]


Routes = Mapping[str, Mapping[str, float]]


class Router:
    def __init__(self, routes: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self._routes: Routes = MappingProxyType({})
        self._shadows: Mapping[str, ShadowRoute] = MappingProxyType({})
        # The model of a request that names none when several are routed (the registry's
        # default.json); None: only a lone routed model is implied.
        self.default_model: str | None = None
        self._rng = random.Random()
        for name, weights in (routes or {}).items():
            self.set_weights(name, weights)

    @property
    def routes(self) -> Routes:
        return self._routes

    def models(self) -> list[str]:
        return sorted(self._routes)

    def weights(self, name: str) -> Mapping[str, float] | None:
        return self._routes.get(name)

    def shadow(self, name: str) -> ShadowRoute | None:
        return self._shadows.get(name)

    @property
    def shadows(self) -> Mapping[str, ShadowRoute]:
        return self._shadows

    def set_weights(
        self, name: str, weights: Mapping[str, float], shadow: ShadowRoute | None = None,
    ) -> None:
        """Replace a model's weights and its shadow (None: no shadow)."""
        check_safe_name(name, "name")
        clean = {str(v): float(w) for v, w in weights.items()}
        check_weights(clean)
        if shadow is not None:
            check_shadow(clean, shadow)
        shadows = dict(self._shadows)
        shadows.pop(name, None)
        if shadow is not None:
            shadows[name] = shadow
        table = dict(self._routes)
        table[name] = MappingProxyType(clean)
        # One assignment per table: atomic for readers. A reader between the two may pair
        # the old shadow with the new weights for one request, which only samples a copy.
        self._shadows = MappingProxyType(shadows)
        self._routes = MappingProxyType(table)

    def table_with(
        self, name: str, weights: Mapping[str, float], shadow: ShadowRoute | None,
    ) -> RoutingTable:
        """The routes file's table once `name` has these weights and this shadow."""
        routes = {n: dict(w) for n, w in self._routes.items()}
        routes[name] = dict(weights)
        shadows = {n: s for n, s in self._shadows.items() if n != name}
        if shadow is not None:
            shadows[name] = shadow
        return RoutingTable(routes=routes, shadows=shadows)

    def choose(
        self, name: str, key: str | None, loaded: Collection[str]
    ) -> tuple[str | None, str]:
        """(version, how) for a request to `name`: by key hash or weighted random, over
        the routed versions that are loaded. (None, why) when none can serve."""
        weights = self._routes.get(name)
        if weights is None:
            return None, "unrouted"
        live = {v: w for v, w in weights.items() if w > 0 and v in loaded}
        if not live:
            return None, "no_loaded_version"
        if key is not None:
            return pick(live, key_point(name, key)), "hash"
        return pick(live, self._rng.random()), "random"
