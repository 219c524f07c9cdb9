"""The model manager: which versions are served, loading and unloading them, and their states.

Start-up loads every model by its version policy, then the server is ready. In poll mode the store
is re-read every `poll_interval_s`; the repository API (explicit mode) asks for the same sync for
one model. A new version is verified, opened and warmed up in a loader thread while the old one
keeps serving; then the serving table is replaced in one assignment (atomic for the event loop),
and the old version drains its queue before its session is released. A version that fails to
load never replaces a working one: it is marked FAILED with the reason. `ready` says the start-up
load is done and no drain has begun (inference is admitted); whether the server can serve what it
is configured to serve, the readiness probe's question, is `readiness()` (readiness.py).
A canary (routing.py) swaps its route in the same assignment; a weight or mirror change is a new
route over the versions already loaded. With capture on, each loaded version gets its capture.
Edges with modules of their own: where models come from (source.py: a store, or one plain
directory), explicit mode loading only INDUCTIVE_MODELS, models gone from the store (removal.py)
and a start-up during a store outage, served from the verified cache (offline.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from model_store import ModelNotFoundError, StoreUnavailableError, version_config
from model_store.policy import desired_versions
from model_store.schema import (
    InvalidModelNameError,
    Manifest,
    ModelConfig,
    VersionPolicy,
    validate_model_name,
)
from service.batching import Batcher, BatchPolicy
from service.batching.assemble import Layout, assemble
from service.batching.placement import batches_on_loop
from service.batching.worker import WorkerPool, lower_priority
from service.capture import CaptureWriter
from service.errors import BadRequestError, NotFoundError, UnavailableError
from service.lifecycle.offline import CachedVersion, verified_cache
from service.lifecycle.on_demand import OnDemand
from service.lifecycle.readiness import Readiness, assess
from service.lifecycle.removal import RemovalWatch
from service.lifecycle.routing import CanaryRoute, Routing, plan
from service.lifecycle.served import ServedVersion, State, Status, VersionEvent
from service.lifecycle.shadow import Shadow, ShadowLimits
from service.lifecycle.source import follows_a_store, open_model_source
from service.lifecycle.store_changes import ChangeWatch
from service.metrics import Metrics
from service.model_io.signature import ModelSignature
from service.protocol.request_plans import RequestPlans
from service.runtime import OnnxModel, ProviderChoice, choose_providers, load_model
from service.runtime.cpus import process_cpus
from service.runtime.memory import release_free_memory, rss_bytes
from service.runtime.warmup import warmup_batch_sizes, warmup_inputs
from service.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# State changes kept per model for the console's history: enough for a day of retrains and
# rollbacks, bounded however often a broken version is retried.
HISTORY_LENGTH = 50


class StoreRootMissingError(OSError):
    """The local store's root directory, seen before, is gone."""


class ModelManager:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.ready = False
        self.draining = False
        self._served: dict[str, dict[int, ServedVersion]] = {}
        # Version served when a request names none: the newest served version, or a canary's
        # champion. A model whose canary candidate takes a share is in `_canaries` instead.
        self._default: dict[str, ServedVersion] = {}
        self._canaries: dict[str, CanaryRoute] = {}
        self._routing_seen: dict[str, tuple[object, ...] | None] = {}
        self._shadow_limits = ShadowLimits(settings.shadow_max_inflight, settings.shadow_max_queue)
        self._capture = CaptureWriter(settings, metrics) if settings.capture_uri else None
        self._status: dict[tuple[str, int], Status] = {}
        self._history: dict[str, deque[VersionEvent]] = {}
        # Each model's version policy and aliases as the last sync read them from the store.
        self._policies: dict[str, tuple[VersionPolicy, dict[str, int]]] = {}
        self._known: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        self._workers = WorkerPool(
            settings.batch_threads or max(4, 2 * process_cpus().count),
            "infer",
            on_start=partial(lower_priority, settings.worker_nice),
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._local_root_seen = False
        # Polling retries a FAILED version this long after its failure (a transient store or
        # download error heals by itself; a broken file fails again, visibly, at this pace).
        self._retry_failed_after = max(60.0, 10 * settings.poll_interval_s)
        self._changes = ChangeWatch(full_every_s=self._retry_failed_after)
        self._choice: ProviderChoice | None = None
        self._loop_batch_max_s: float | None = None  # see `batches_on_loop`
        self._store: Any = None
        # Readiness: the models the configuration says to serve, and per model why its last
        # sync left it without a READY version ("" when it has one).
        self._to_serve: set[str] = set(settings.models)
        self._outcomes: dict[str, str] = {}
        self._removals = RemovalWatch(settings.removal_grace_s)
        # A memory budget: models load on first request, the least recently used unload.
        self.on_demand = (
            OnDemand(self, settings, metrics.registry) if settings.memory_budget_mb else None
        )

    # --- lookups (hot path: dictionary reads only) ---------------------------------------

    def lookup(self, name: str, version: int | None = None, *, split: bool = True) -> ServedVersion:
        """The version that answers; during a canary a request naming no version is split by
        the weight (a model without one pays for no more than the first dictionary read), or
        gets the champion with `split` False (its metadata)."""
        if version is None:
            served = self._default.get(name)
            if served is not None:
                return served
            route = self._canaries.get(name)
            if route is not None:
                return route.pick() if split else route.champion
        else:
            found = self._served.get(name, {}).get(version)
            if found is not None:
                return found
        raise self._not_served(name, version)

    def _not_served(self, name: str, version: int | None) -> Exception:
        shown = name if len(name) <= 80 else f"{name[:80]}…"
        if name not in self._known:
            return NotFoundError(f"unknown model '{shown}'")
        if version is not None:
            status = self._status.get((name, version))
            if status is not None and status.state == State.LOADING:
                return UnavailableError(f"model '{name}' version {version} is still loading")
            served = sorted(self._served.get(name, {}))
            return NotFoundError(
                f"model '{name}' version {version} is not served (served versions: "
                f"{', '.join(map(str, served)) or 'none'})"
            )
        states = [
            f"v{v} {s.state}{': ' + s.reason if s.reason else ''}"
            for (n, v), s in sorted(self._status.items())
            if n == name
        ]
        if any(s.state in (State.LOADING, State.FAILED) for (n, _), s in self._status.items()
               if n == name):  # fmt: skip
            return UnavailableError(f"model '{name}' has no version ready ({'; '.join(states)})")
        return NotFoundError(f"model '{name}' is not loaded")

    def served_versions(self, name: str) -> list[int]:
        return sorted(self._served.get(name, {}))

    def readiness(self) -> Readiness:
        return assess(
            self.settings.ready_requires,
            started=self.ready,
            draining=self.draining,
            to_serve=self._to_serve,
            # Under a memory budget a model not loaded is served: its first request loads it.
            served=self._served.keys() if self.on_demand is None else self._known,
            outcomes=self._outcomes,
            nothing_asked_is_ready=self._explicit,
        )

    def served(self, name: str | None = None) -> list[ServedVersion]:
        """Every served version by model name and version, or only those of `name` (none when
        it is known but has no version served; NotFoundError when it is not known)."""
        if name is not None and name not in self._known:
            raise self._not_served(name, None)
        tables = self._served if name is None else {name: self._served.get(name, {})}
        return [table[v] for _, table in sorted(tables.items()) for v in sorted(table)]

    def index(self) -> list[dict[str, str]]:
        """Triton's repository index: one entry per known version, plus models never loaded."""
        entries = []
        seen = set()
        for (name, version), status in sorted(self._status.items()):
            seen.add(name)
            entries.append(
                {
                    "name": name,
                    "version": str(version),
                    "state": status.state.value,
                    "reason": status.reason,
                }
            )
        entries.extend({"name": n} for n in sorted(self._known - seen))
        return entries

    def history(self, name: str) -> list[VersionEvent]:
        """The model's latest version state changes, oldest first."""
        return list(self._history.get(name, ()))

    def policy(self, name: str) -> tuple[VersionPolicy, dict[str, int]] | None:
        """The version policy and aliases the last sync of `name` followed (None before one)."""
        return self._policies.get(name)

    @property
    def _explicit(self) -> bool:
        return self.settings.model_control_mode == "explicit"

    @property
    def provider(self) -> str | None:
        """The execution provider `prepare` chose: cuda, tensorrt or cpu (None before)."""
        return None if self._choice is None else self._choice.name

    # --- lifecycle ------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Decides the execution provider; raises if the settings ask for one that cannot serve."""
        self._choice = await self._in_loader(lambda: choose_providers(self.settings))
        if self._choice.on_gpu:
            self.metrics.enable_gpu(self.settings.cuda_device_id)
        self._loop_batch_max_s = batches_on_loop(self.settings, self._choice)
        if self._capture is not None:
            self._capture.start()

    async def load_all(self) -> None:
        """Loads every model by its policy (retrying while the store is unreachable), then ready.
        Started during an outage, it serves the verified cache meanwhile (offline.py)."""
        from_cache = False
        while True:
            try:
                self._store = await self._in_loader(lambda: open_model_source(self.settings))
                names = await self._model_names()
                break
            except Exception as exc:
                self.metrics.store_poll_failures.inc()
                log.error(
                    "store %s unreachable at start-up (%s); retrying", self.settings.store, exc
                )
                if not from_cache and not self.draining:
                    from_cache = await self._serve_cache()
                await asyncio.sleep(self.settings.poll_interval_s)
        for name in self._loaded_at_start(names):
            if self.on_demand is None or await self.on_demand.starts_loaded(name):
                await self.sync(name)
        if from_cache:
            self.metrics.serving_from_cache.set(0)
            log.warning("store %s reachable again: caught up with it", self.settings.store)
        if self.draining:  # a SIGTERM arrived while loading: stay not ready
            return
        self.ready = True
        if self._served:
            log.info("ready: serving %s", ", ".join(
                f"{n} v{','.join(map(str, sorted(vs)))}" for n, vs in self._served.items()
            ))  # fmt: skip
        else:
            log.warning("ready, but no model is served (none in the store, or all failed)")
        if self.settings.model_control_mode == "poll" and follows_a_store(self.settings):
            self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def _serve_cache(self) -> bool:
        """Serves every verified copy in the cache of the models to load at start-up; True
        (and ready) when at least one serves. The newest version of a model answers requests
        naming none, until the store is back and its version policy decides again."""
        if not self.settings.store_is_remote or not follows_a_store(self.settings):
            return False  # a local store is read in place: there is no cache of it
        wanted = frozenset(self.settings.models) if self.settings.models else None
        cache_dir = Path(self.settings.cache_dir)
        scan = await self._in_loader(lambda: verified_cache(cache_dir, wanted))
        for problem in scan.problems:
            log.warning("cached copy not served: %s", problem)
        names = self._loaded_at_start(sorted({c.name for c in scan.versions}))
        tables: dict[str, dict[int, ServedVersion]] = {}
        for copy in scan.versions:
            if copy.name not in names:
                continue
            with contextlib.suppress(Exception):  # logged and marked FAILED like any load
                served = await self._load_version(
                    copy.name, copy.version, opener=partial(self._open_copy, copy)
                )
                tables.setdefault(copy.name, {})[copy.version] = served
        for name, table in tables.items():
            self._known.add(name)
            self._publish(name, table, plan(table, VersionPolicy(), {}))
            self._outcomes[name] = ""
        for missing in set(self.settings.models) - tables.keys():
            self._outcomes[missing] = "the store is unreachable and the cache has no copy of it"
        if not tables:
            return False
        self.metrics.serving_from_cache.set(1)
        self.ready = not self.draining
        log.warning(
            "store %s unreachable at start-up: serving from the verified cache %s (%s) until "
            "it answers", self.settings.store, cache_dir, ", ".join(
                f"{n} v{','.join(map(str, sorted(t)))}" for n, t in sorted(tables.items())
            ),
        )  # fmt: skip
        return True

    def _open_copy(self, copy: CachedVersion) -> tuple[Manifest, ModelConfig, OnnxModel]:
        """Loader thread: a verified cached copy, with the config published inside it."""
        config = version_config(copy.directory, copy.manifest) or ModelConfig()
        return self._open_verified(copy.manifest, copy.directory, config)

    def _loaded_at_start(self, names: list[str]) -> list[str]:
        """Explicit mode loads only what INDUCTIVE_MODELS lists (as Triton's explicit mode loads
        only its --load-model list); the rest waits for the repository API."""
        if self._explicit and not self.settings.models:
            return []
        return names

    async def _model_names(self) -> list[str]:
        names = await self._in_loader(self._store.list_models)
        # A local store lists a missing root as empty; once the root has been seen, its going
        # away (renamed, unmounted) is an outage like an unreachable S3, not "every model
        # deleted": the poll counts and logs it as a failure and what is loaded keeps serving.
        root = getattr(self._store.backend, "root", None)
        if isinstance(root, Path):
            if await self._in_loader(root.is_dir):
                self._local_root_seen = True
            elif self._local_root_seen:
                raise StoreRootMissingError(f"store root {root} is missing")
        if self.settings.models:
            names = [n for n in names if n in self.settings.models]
            for missing in set(self.settings.models).difference(names, self._served):
                self._outcomes[missing] = "not in the store"
        elif not self._explicit:  # explicit mode: what INDUCTIVE_MODELS and the API loaded
            self._to_serve = set(names)
        self._known.update(names)
        return list(names)

    async def _poll_forever(self) -> None:
        while not self.draining:
            await asyncio.sleep(self.settings.poll_interval_s)
            if self.draining:
                return
            # Store unreachable: what is loaded keeps serving; the next poll tries again.
            try:
                due, marker = await self._in_loader(lambda: self._changes.read(self._store))
                if not due and not self._removals.counting:
                    continue  # store_changes.py: nothing changed since the last full poll
                names = await self._model_names()
            except Exception as exc:
                self.metrics.store_poll_failures.inc()
                log.warning("store poll failed: %s", exc)
                continue
            # A model the repository API loaded beyond INDUCTIVE_MODELS is not this poll's.
            watched = [
                n for n in self._served if not self.settings.models or n in self.settings.models
            ]
            for name in self._removals.update(names, watched):
                await self._remove(name)
            complete = True  # every model read and every load done: the marker may be trusted
            for name in names:
                if self.on_demand is not None and name not in self._served:
                    continue  # under a memory budget, its first request loads what it finds
                try:
                    if await self.sync(name, retry_failed=False, raise_store_errors=True):
                        complete = False  # a load failed: the next poll retries it
                except ModelNotFoundError:
                    # Listed, then without a complete version when its versions were read: a
                    # deletion (or a rename) in progress, not an outage. The next poll lists the
                    # store again and, if it is still gone, starts its removal grace.
                    complete = False
                    log.info("model %s: gone from the store while it was polled", name)
                except Exception as exc:  # this model only; the others are still polled
                    complete = False
                    self.metrics.store_poll_failures.inc()
                    log.warning("store poll of model %s failed: %s", name, exc)
            if complete:
                self._changes.polled(marker)

    async def sync(
        self, name: str, *, retry_failed: bool = True, raise_store_errors: bool = False
    ) -> list[str]:
        """Brings `name` to what its version policy selects now; returns the load errors."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            try:
                config, versions, aliases = await self._in_loader(lambda: self._read_model(name))
            except Exception as exc:
                self._outcomes[name] = f"cannot read it from the store: {exc}"
                if raise_store_errors:
                    raise
                log.error("model %s: cannot read the store: %s", name, exc)
                return [f"cannot read model '{name}' from the store: {exc}"]
            self._known.add(name)
            self._policies[name] = (config.version_policy, aliases)
            desired = desired_versions(config.version_policy, versions, aliases)
            current = self._served.get(name, {})
            errors = []
            loaded: dict[int, ServedVersion] = {}
            for version in desired:
                if version in current:
                    continue
                status = self._status.get((name, version))
                if (
                    status is not None
                    and status.state == State.FAILED
                    and not retry_failed
                    and time.monotonic() - status.since < self._retry_failed_after
                ):
                    continue
                try:
                    loaded[version] = await self._load_version(name, version)
                except Exception as exc:
                    errors.append(f"version {version}: {exc}")
            ready = {v: current.get(v) or loaded[v] for v in desired if v in current or v in loaded}
            # Never fewer versions than before because of a failure: keep the newest old ones.
            for v in sorted(current, reverse=True):
                if len(ready) >= max(len(desired), 1 if current else 0):
                    break
                ready.setdefault(v, current[v])
            routing = plan(ready, config.version_policy, aliases) if ready else None
            self._publish(name, ready, routing)
            self._set_shadows(name, [*current.values(), *loaded.values()], routing)
            self._outcomes[name] = "" if ready else self._why_no_version_ready(name, desired)
            for v, old in current.items():
                if v not in ready:
                    self._spawn(self._unload(old, "replaced by the version policy"))
            return errors

    async def _remove(self, name: str) -> None:
        """Unloads a model gone from the store for its grace period (removal.py); what its
        versions have queued is answered first, new requests get 404."""
        async with self._locks.setdefault(name, asyncio.Lock()):
            gone_for = self._removals.missing_for(name) or 0.0
            self._removals.forget(name)
            current = self._served.get(name, {})
            if not current:
                return
            self._publish(name, {}, None)
            self._set_shadows(name, current.values(), None)
            self._outcomes[name] = "removed from the store"
            self.metrics.models_removed.labels(name).inc()
            log.warning(
                "model %s: gone from the store for %.1f s (INDUCTIVE_REMOVAL_GRACE_S=%g): "
                "unloading v%s", name, gone_for, self.settings.removal_grace_s,
                ",".join(map(str, sorted(current))),
            )  # fmt: skip
            for served in current.values():
                self._spawn(self._unload(served, "removed from the store"))

    def _why_no_version_ready(self, name: str, desired: list[int]) -> str:
        if not desired:
            return "its version policy selects no version in the store"
        states = [(v, self._status.get((name, v))) for v in desired]
        text = "; ".join(
            f"v{v} {s.state}{': ' + s.reason if s.reason else ''}" for v, s in states if s
        )
        return text or "no version of it loaded"

    def _read_model(self, name: str) -> tuple[ModelConfig, list[int], dict[str, int]]:
        versions = self._store.list_versions(name)
        if not versions:
            raise ModelNotFoundError(f"model '{name}' has no complete version in the store")
        # The config before the aliases: a canary's promote moves the alias first, so aliases
        # read after the config are never older than it (model_store/policy.py).
        config = self._store.config(name)
        by_alias = config.version_policy.kind in ("alias", "canary")
        aliases = self._store.aliases(name) if by_alias else {}
        return config, versions, aliases

    def _publish(self, name: str, table: dict[int, ServedVersion], routing: Routing | None) -> None:
        """Switches traffic: the new tables replace the old ones in single assignments."""
        served = dict(self._served)
        default = dict(self._default)
        canaries = dict(self._canaries)
        served.pop(name, None)
        default.pop(name, None)
        canaries.pop(name, None)
        if table and routing is not None:
            served[name] = table
            if routing.canary is not None:
                canaries[name] = routing.canary
            else:
                default[name] = routing.default
        self._served, self._default, self._canaries = served, default, canaries
        self._show_routing(name, routing)

    def _set_shadows(
        self, name: str, versions: Iterable[ServedVersion], routing: Routing | None
    ) -> None:
        """The champion of a canary with a mirror share mirrors to its candidate; no other
        version of the model mirrors. A shadow whose pair is unchanged keeps its count of
        requests in flight (only its share is updated)."""
        mirror = routing.mirror if routing is not None else None
        for served in versions:
            if mirror is None or served is not mirror.champion:
                served.shadow = None
            elif served.shadow is not None and served.shadow.candidate is mirror.candidate:
                served.shadow.share = mirror.share
            else:
                metrics = self.metrics.for_shadow(name, served.version, mirror.candidate.version)
                served.shadow = Shadow(mirror.candidate, mirror.share, self._shadow_limits, metrics)

    def _show_routing(self, name: str, routing: Routing | None) -> None:
        """Logs a canary's routing and sets its gauges when a poll changed them."""
        key = None if routing is None else routing.key
        before = self._routing_seen.get(name)
        if key == before:
            return
        self._routing_seen[name] = key
        if routing is not None and routing.note:
            log.info("model %s: %s", name, routing.note)
        elif before is not None and before[-1]:  # the last routing had a note: a canary's
            log.info("model %s: no canary any more", name)
        route = None if routing is None else routing.canary or routing.mirror
        if routing is None or route is None:
            self.metrics.set_canary(name, None, 0.0, 0.0)
            return
        self.metrics.set_canary(
            name,
            (route.champion.version, route.candidate.version),
            routing.canary.weight if routing.canary else 0.0,
            routing.mirror.share if routing.mirror else 0.0,
        )

    async def _load_version(
        self,
        name: str,
        version: int,
        opener: Callable[[], tuple[Manifest, ModelConfig, OnnxModel]] | None = None,
    ) -> ServedVersion:
        self._set_status(name, version, State.LOADING)
        started = time.perf_counter()
        try:
            (manifest, config, model), grown = await self._in_loader(
                lambda: _rss_growth(opener or (lambda: self._open(name, version)))
            )
        except StoreUnavailableError as exc:
            # The store went away mid-load: nothing is wrong with the version, so it is not
            # FAILED (which polling retries only slowly) but UNAVAILABLE, retried next poll.
            reason = f"{type(exc).__name__}: {exc}"
            self._set_status(name, version, State.UNAVAILABLE, reason)
            self.metrics.store_poll_failures.inc()
            log.warning("model %s v%d could not be fetched, will retry: %s", name, version, reason)
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self._set_status(name, version, State.FAILED, reason)
            self.metrics.load_failures.labels(name).inc()
            log.error("model %s v%d failed to load: %s", name, version, reason)
            raise
        served = self._serve(manifest, config, model)
        served.batcher.start()
        if self.on_demand is not None:
            self.on_demand.loaded(served, grown)
        seconds = time.perf_counter() - started
        self.metrics.load_seconds.labels(name, str(version)).set(seconds)
        self._set_status(name, version, State.READY)
        log.info("model %s v%d ready in %.2f s on %s", name, version, seconds, model.providers[0])
        return served

    def _open(self, name: str, version: int) -> tuple[Manifest, ModelConfig, OnnxModel]:
        """Loader thread: sync + verify, open the session, warm up at the sizes it batches."""
        assert self._choice is not None
        manifest = self._store.manifest(name, version)
        directory = Path(self._store.materialize(name, version, self.settings.cache_dir))
        # The config published with the version; versions from before that use the model's.
        config = version_config(directory, manifest) or self._store.config(name)
        return self._open_verified(manifest, directory, config)

    def _open_verified(
        self, manifest: Manifest, directory: Path, config: ModelConfig
    ) -> tuple[Manifest, ModelConfig, OnnxModel]:
        """Loader thread: open the session of a verified copy and warm it up."""
        assert self._choice is not None
        model = load_model(directory, manifest, self.settings, self._choice)
        sig = self._signature(manifest, config)
        layout = Layout(sig, config.ragged_inputs)
        for batch in warmup_batch_sizes(sig, config.batching.preferred_batch_sizes):
            model.run(assemble([warmup_inputs(sig, batch)], layout))
        return manifest, config, model

    def _signature(self, manifest: Manifest, config: ModelConfig) -> ModelSignature:
        max_batch = self.settings.max_batch_size or config.batching.max_batch_size
        default_max_length = self.settings.max_sequence_length or None
        return ModelSignature.build(manifest, config, max_batch, default_max_length)

    def _serve(self, manifest: Manifest, config: ModelConfig, model: OnnxModel) -> ServedVersion:
        s, b = self.settings, config.batching
        sig = self._signature(manifest, config)
        delay_ms = (
            s.max_queue_delay_ms if s.max_queue_delay_ms is not None else b.max_queue_delay_ms
        )
        timeout_ms = s.default_timeout_ms or b.default_timeout_ms
        policy = BatchPolicy(
            max_batch_size=sig.max_batch_size,
            max_queue_delay_s=delay_ms / 1000 if s.batching else 0.0,
            preferred_batch_sizes=b.preferred_batch_sizes,
            max_queue_size=s.max_queue_size or b.max_queue_size,
            default_timeout_s=None if timeout_ms is None else timeout_ms / 1000,
            merge=s.batching and sig.batched,
        )
        label = f"{manifest.name}:{manifest.version}"
        metrics = self.metrics.for_version(manifest.name, manifest.version)
        layout = Layout(sig, config.ragged_inputs)
        batcher = Batcher(
            label, model.run, layout, policy, metrics, workers=self._workers,
            loop_batch_max_s=self._loop_batch_max_s,
        )  # fmt: skip
        plans = RequestPlans(sig, layout, s.max_tensor_elements)
        served = ServedVersion(
            manifest.name, manifest.version, manifest, config, sig, model, batcher, metrics, plans
        )
        if self._capture is not None:
            served.capture = self._capture.for_version(served)
        return served

    async def _unload(self, served: ServedVersion, reason: str) -> None:
        """Lets the version finish what it has queued, then releases its session."""
        name, version = served.name, served.version
        self._set_status(name, version, State.UNLOADING)
        await served.batcher.close()
        served.model.close()
        if self.on_demand is not None:
            self.on_demand.unloaded(served)
        self._set_status(name, version, State.UNAVAILABLE, reason)
        log.info("model %s v%d unloaded (%s)", name, version, reason)

    def _set_status(self, name: str, version: int, state: State, reason: str = "") -> None:
        self._status[(name, version)] = Status(state, reason)
        events = self._history.setdefault(name, deque(maxlen=HISTORY_LENGTH))
        events.append(VersionEvent(time.time(), version, state, reason))
        self.metrics.set_state(name, version, state.value)

    # --- repository API -------------------------------------------------------------------

    async def load(self, name: str) -> None:
        if self.settings.model_control_mode == "none":
            raise BadRequestError("model control mode is 'none': the repository API cannot load")
        try:
            validate_model_name(name)
            errors = await self.sync(name, raise_store_errors=True)
        except (ModelNotFoundError, InvalidModelNameError):
            raise NotFoundError(f"model '{name}' is not in the store") from None
        except Exception as exc:
            raise UnavailableError(f"cannot read model '{name}' from the store: {exc}") from None
        if name in self._served and (self._explicit or not self.settings.models):
            self._to_serve.add(name)  # explicit mode: what the repository API loaded
        if errors:
            served = ", ".join(f"v{v}" for v in self.served_versions(name)) or "nothing"
            raise BadRequestError(
                f"failed to load model '{name}' (serving {served}): {'; '.join(errors)}"
            )

    async def unload(self, name: str) -> None:
        if self.settings.model_control_mode == "none":
            raise BadRequestError("model control mode is 'none': the repository API cannot unload")
        if name not in self._known:
            raise NotFoundError(f"unknown model '{name}'")
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            current = self._served.get(name, {})
            self._publish(name, {}, None)
            self._set_shadows(name, current.values(), None)
            self._outcomes[name] = "unloaded through the repository API"
            if self._explicit or not self.settings.models:
                self._to_serve.discard(name)
            await asyncio.gather(*(self._unload(s, "unloaded") for s in current.values()))

    # --- memory budget (lifecycle/on_demand.py) ------------------------------------------

    def load_on_demand(self, name: str) -> asyncio.Future[None] | None:
        """Under a memory budget, the load a request for `name` (known, not loaded) waits for;
        None otherwise."""
        return None if self.on_demand is None else self.on_demand.request(name)

    @property
    def known_models(self) -> set[str]:
        return self._known

    @property
    def store(self) -> Any:
        return self._store

    def is_loaded(self, name: str) -> bool:
        return name in self._served

    async def in_loader(self, fn: Callable[[], T]) -> T:
        return await self._in_loader(fn)

    async def evict(self, name: str, reason: str) -> None:
        """Takes `name` out of the routing table now; its versions answer what they have
        queued, then release their sessions."""
        async with self._locks.setdefault(name, asyncio.Lock()):
            current = self._served.get(name, {})
            self._publish(name, {}, None)
            self._set_shadows(name, current.values(), None)
            await asyncio.gather(*(self._unload(s, reason) for s in current.values()))

    # --- shutdown -------------------------------------------------------------------------

    def begin_drain(self) -> None:
        """Readiness false and no more polling; queued requests still complete."""
        self.draining = True
        self.ready = False

    async def close(self) -> None:
        self.begin_drain()
        if self._poller is not None:
            self._poller.cancel()
        # Versions already being replaced finish draining first.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        served = [s for table in self._served.values() for s in table.values()]
        self._served, self._default, self._canaries = {}, {}, {}
        await asyncio.gather(*(self._unload(s, "server shutting down") for s in served))
        if self._capture is not None:  # after the last answers: their captures are queued
            await self._capture.close()
        self._loader.shutdown(wait=False, cancel_futures=True)
        self._workers.stop(wait=False)

    # --- helpers --------------------------------------------------------------------------

    async def _in_loader(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._loader, fn)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _rss_growth(fn: Callable[[], T]) -> tuple[T, int]:
    """`fn()` and how much the process's resident memory grew while it ran."""
    before = rss_bytes()
    result = fn()
    # What the load freed (the file's bytes once parsed, warm-up buffers) goes back to the
    # system first, so that the growth is what the version keeps.
    release_free_memory()
    return result, rss_bytes() - before
