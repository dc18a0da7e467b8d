"""Loaded versions: load (verify, build, start a batcher) and unload (drain, release).

The table of loaded versions is replaced whole on every change, like the routes, and a
request looks up its version and queues its texts without awaiting in between: once a
version is out of the table no new request can reach it, and its batcher's `stop()`
finishes every request queued before that.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from inference import CUDA, ThreadPlan, plan_threads, resolve_providers
from registry import (
    DEFAULT_FILE,
    ROUTES_FILE,
    Manifest,
    ModelRef,
    RegistryError,
    RoutingTable,
    ShadowRoute,
    list_models,
    list_versions,
    read_default_model,
)

from .batcher import MicroBatcher
from .classifier import OnnxClassifier, ProviderUnavailable
from .errors import Conflict, NotFound, RegistryUnavailable
from .gate import BatchGate
from .listing import manifest_fields
from .metrics import Metrics
from .predictors import load_timed
from .routing import Router, version_order
from .settings import Settings

log = logging.getLogger(__name__)


@dataclass
class LoadedVersion:
    ref: ModelRef
    classifier: OnnxClassifier
    batcher: MicroBatcher
    provider: str
    load_seconds: float
    model_bytes: int

    @property
    def manifest(self) -> Manifest:
        return self.classifier.manifest


class LoadError(Exception):
    """A version could not be loaded; the message is one line, fit for a log."""


class ModelManager:
    def __init__(self, settings: Settings, metrics: Metrics, router: Router) -> None:
        self.settings = settings
        self.root = Path(settings.models_dir)
        self.metrics = metrics
        self.router = router
        self._loaded: Mapping[ModelRef, LoadedVersion] = MappingProxyType({})
        self._lock = asyncio.Lock()  # one load or unload at a time
        self._changing: set[ModelRef] = set()  # being loaded or unloaded right now
        self._published: set[tuple[str, str]] = set()  # route-weight gauges exported
        self.failures: dict[ModelRef, str] = {}
        self.thread_plan = thread_plan(settings)
        # The plan's batches for the whole process, not for each version (app/gate.py).
        self.gate = BatchGate(self.thread_plan.workers)

    # ---- lookups (synchronous: safe between a lookup and a submit) ----

    def get(self, ref: ModelRef) -> LoadedVersion | None:
        return self._loaded.get(ref)

    def loaded(self) -> Mapping[ModelRef, LoadedVersion]:
        return self._loaded

    def loaded_versions(self, name: str) -> list[str]:
        return [ref.version for ref in self._loaded if ref.name == name]

    def exists(self, ref: ModelRef) -> bool:
        return ref.version in self._versions(ref.name)

    def changing(self, ref: ModelRef) -> bool:
        """True while `ref` is being loaded or unloaded: a request for it should come
        back shortly (503), not give up (404)."""
        return ref in self._changing

    # ---- the registry on disk, which may change or vanish under a running server ----

    def has_model(self, name: str) -> bool:
        return bool(self._versions(name))

    def registry_available(self) -> bool:
        return self.root.is_dir()

    def _models(self) -> list[str]:
        try:
            return list_models(self.root)
        except OSError as exc:  # a folder removed between listing and reading it
            log.warning("cannot list the registry %s: %s", self.root, exc)
            return []

    def _versions(self, name: str) -> list[str]:
        try:
            return list_versions(self.root, name)
        except OSError as exc:
            log.warning("cannot list the versions of %s in %s: %s", name, self.root, exc)
            return []

    # ---- start-up ----

    async def start(self) -> None:
        """Load every version named in `routes.json`. With no routes file, route each
        model in the registry 100 % to its newest version."""
        try:
            table = RoutingTable.read(self.root)
        except ValueError as exc:
            log.error("ignoring %s/routes.json: %s", self.root, str(exc).splitlines()[0])
            table = RoutingTable()
        for name, weights in table.routes.items():
            self.router.set_weights(name, weights, table.shadows.get(name))
        try:
            self.router.default_model = read_default_model(self.root)
        except ValueError as exc:
            log.error("ignoring %s/%s: %s", self.root, DEFAULT_FILE, exc)
        if not (self.root / ROUTES_FILE).is_file():
            for name in self._models():
                versions = self._versions(name)
                if not versions:
                    continue
                newest = versions[-1]
                self.router.set_weights(name, {newest: 100})
                log.info("no %s: routing %s 100%% to its newest version %s",
                         ROUTES_FILE, name, newest)
        for name in self.router.models():
            weights = self.router.weights(name) or {}
            shadow = self.router.shadow(name)
            for version in [*weights, *([shadow.version] if shadow else [])]:
                try:
                    await self.load(ModelRef(name=name, version=version))
                except (LoadError, NotFound) as exc:
                    log.error("not serving %s/%s: %s", name, version, exc)
        self.publish_weights()
        if not self._loaded:
            log.warning("no model version loaded from %s", self.root.resolve())

    async def stop(self) -> None:
        async with self._lock:
            loaded, self._loaded = self._loaded, MappingProxyType({})
            await asyncio.gather(*(lv.batcher.stop() for lv in loaded.values()))

    # ---- load / unload ----

    async def load(self, ref: ModelRef) -> tuple[LoadedVersion, bool]:
        """Load a version (idempotent). Returns (version, newly_loaded)."""
        async with self._lock:
            current = self._loaded.get(ref)
            if current is not None:
                return current, False
            self._changing.add(ref)
            try:
                return await self._load(ref), True
            finally:
                self._changing.discard(ref)

    async def _load(self, ref: ModelRef) -> LoadedVersion:
        folder = ref.path(self.root)
        if not folder.is_dir():
            if not self.registry_available():
                log.error("cannot load %s: the registry folder %s is gone; loaded "
                          "versions keep serving", ref, self.root)
            else:
                log.warning("cannot load %s: no folder %s", ref, folder)
            raise NotFound(f"model version {ref} is not in the registry")
        try:
            classifier, seconds = await asyncio.to_thread(
                load_timed, folder, self.settings.providers, self.thread_plan.threads,
                self.settings.allow_spinning,
            )
        except (RegistryError, ProviderUnavailable, ValueError, OSError) as exc:
            raise self._load_failed(ref, exc, with_type=False) from exc
        except Exception as exc:  # onnxruntime raises its own types for bad graphs
            raise self._load_failed(ref, exc, with_type=True) from exc
        s = self.settings
        batcher = MicroBatcher(
            classifier.predict,
            max_batch_size=s.max_batch_size,
            max_wait_s=s.max_wait_ms / 1000,
            max_queue=s.max_queue,
            name=str(ref),
            observer=self.metrics.observer(ref),
            cross_request=s.cross_request_batching,
            workers=self.thread_plan.workers,
            gate=self.gate,
        )
        batcher.start()
        lv = LoadedVersion(
            ref=ref, classifier=classifier, batcher=batcher, provider=classifier.provider,
            load_seconds=seconds, model_bytes=classifier.model_bytes,
        )
        table = dict(self._loaded)
        table[ref] = lv
        self._loaded = MappingProxyType(table)
        self.failures.pop(ref, None)
        m, labels = self.metrics, (ref.name, ref.version)
        m.model_bytes.labels(*labels).set(lv.model_bytes)
        m.load_seconds.labels(*labels).set(seconds)
        m.loaded.labels(*labels, lv.provider).set(1)
        m.queue_depth.labels(*labels).set_function(lambda: batcher.depth)
        log.info(
            "loaded %s on %s in %.2f s (%d bytes, labels %s)",
            ref, lv.provider, seconds, lv.model_bytes, lv.manifest.labels,
        )
        return lv

    def _load_failed(self, ref: ModelRef, exc: Exception, with_type: bool) -> LoadError:
        """Record why `ref` did not load and return the LoadError to raise. What GET
        /models shows is said in the registry's own terms: the server's folders (its
        absolute path) are for the log, not for anyone who can reach the API."""
        first = str(exc).splitlines()[0] if str(exc) else ""
        reason = f"{type(exc).__name__}: {first}" if with_type or not first else first
        log.error("refused to load %s: %s", ref, reason)
        folder = ref.path(self.root)
        for path, public in ((folder.resolve(), str(ref)), (folder, str(ref)),
                             (self.root.resolve(), "<registry>"), (self.root, "<registry>")):
            reason = reason.replace(str(path), public)
        self.failures[ref] = reason
        self.metrics.load_failures.labels(ref.name, ref.version).inc()
        return LoadError(reason)

    async def unload(self, ref: ModelRef) -> None:
        """Unload a version that no route sends traffic to; in-flight requests finish."""
        async with self._lock:
            lv = self._loaded.get(ref)
            if lv is None:
                raise NotFound(f"model version {ref} is not loaded")
            weight = (self.router.weights(ref.name) or {}).get(ref.version, 0)
            if weight > 0:
                raise Conflict(
                    f"{ref} still has route weight {weight:g}: set its weight to 0 with "
                    f"PUT /admin/routes/{ref.name} first"
                )
            shadow = self.router.shadow(ref.name)
            if shadow is not None and shadow.version == ref.version and shadow.fraction > 0:
                raise Conflict(f"{ref} is the shadow of {ref.name}: remove the shadow with "
                               f"PUT /admin/routes/{ref.name} first")
            table = dict(self._loaded)
            del table[ref]
            self._loaded = MappingProxyType(table)  # no new request can reach it now
            self._changing.add(ref)
            try:
                await lv.batcher.stop()  # finishes what was queued before
                lv.classifier.close()
                await asyncio.to_thread(release_free_memory)
            finally:
                self._changing.discard(ref)
            m, labels = self.metrics, (ref.name, ref.version)
            m.loaded.labels(*labels, lv.provider).set(0)
            m.queue_depth.remove(*labels)
            log.info("unloaded %s", ref)

    # ---- routes ----

    async def set_weights(
        self, name: str, weights: Mapping[str, float], shadow: ShadowRoute | None = None,
    ) -> None:
        """Replace a model's weights and shadow (None: none), after checking that every
        version they name exists and that those given traffic or copies are loaded."""
        named = dict(weights)
        if shadow is not None:
            named[shadow.version] = max(named.get(shadow.version, 0.0), shadow.fraction)
        async with self._lock:
            for version, weight in named.items():
                ref = ModelRef(name=name, version=version)
                if ref not in self._loaded and not self.exists(ref):
                    raise Conflict(
                        f"{ref} is not in the registry: a route may only name versions "
                        "that exist"
                    )
                if weight > 0 and ref not in self._loaded:
                    raise Conflict(
                        f"{ref} is not loaded: load it with POST "
                        f"/admin/models/{name}/{version}/load before routing traffic to it"
                    )
            if self.settings.persist_routes:
                # Saved first: a change that cannot be saved is not applied either, so
                # what serves and what a restart would serve never differ.
                table = self.router.table_with(name, weights, shadow)
                try:
                    await asyncio.to_thread(table.write, self.root)
                except OSError as exc:
                    log.error("route change for %s not applied: cannot write %s/%s: %s",
                              name, self.root, ROUTES_FILE, exc)
                    raise RegistryUnavailable(
                        f"cannot save the routes to the registry ({type(exc).__name__}); "
                        "the change was not applied"
                    ) from None
            self.router.set_weights(name, weights, shadow)
            self.publish_weights()

    def publish_weights(self) -> None:
        """Export the route weights; a version a route no longer names is removed."""
        current = set()
        for name, weights in self.router.routes.items():
            for version, weight in weights.items():
                self.metrics.route_weight.labels(name, version).set(weight)
                current.add((name, version))
        for name, version in self._published - current:
            self.metrics.route_weight.remove(name, version)
        self._published = current

    # ---- the registry, for GET /models ----

    def describe(self) -> list[dict[str, Any]]:
        """Every model and version, from the registry on disk and from memory: a version
        whose folder is gone while it is loaded is still listed (it still serves)."""
        if not self.registry_available():
            log.error("the registry folder %s is missing: listing loaded versions only",
                      self.root)
        names = sorted(set(self._models()) | {r.name for r in self._loaded})
        out = []
        for name in names:
            weights = self.router.weights(name) or {}
            versions = []
            known = set(self._versions(name)) | set(self.loaded_versions(name))
            for version in sorted(known, key=version_order):
                ref = ModelRef(name=name, version=version)
                lv = self._loaded.get(ref)
                entry: dict[str, Any] = {
                    "version": version,
                    "loaded": lv is not None,
                    "weight": weights.get(version, 0.0),
                }
                manifest = lv.manifest if lv else _read_manifest(ref.path(self.root))
                if manifest is not None:
                    entry.update(manifest_fields(manifest))
                if lv is not None:
                    entry.update(
                        provider=lv.provider,
                        load_seconds=round(lv.load_seconds, 4),
                        model_bytes=lv.model_bytes,
                        queue_depth=lv.batcher.depth,
                    )
                if ref in self.failures:
                    entry["load_error"] = self.failures[ref]
                versions.append(entry)
            shadow = self.router.shadow(name)
            out.append({"name": name, "routes": dict(weights), "versions": versions,
                        "shadow": shadow.model_dump() if shadow else None})
        return out


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim). A session's
    buffers are freed in the threads that allocated them, into per-thread malloc arenas
    that glibc otherwise keeps: without this, every unload/load cycle of a 17 MB version
    left 5-10 MB of RSS behind. A no-op where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _read_manifest(folder: Path) -> Manifest | None:
    try:
        return Manifest.read(folder)
    except (OSError, ValueError):
        return None


def thread_plan(settings: Settings) -> ThreadPlan:
    """Every version's workers and intra-op threads, from the settings (0: auto)."""
    try:
        gpu = resolve_providers(settings.providers)[0] == CUDA
    except ProviderUnavailable:
        gpu = False  # each load then fails with the reason
    return plan_threads(settings.inference_workers, settings.intra_op_threads, gpu=gpu)
