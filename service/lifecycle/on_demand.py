"""Models loaded on their first request under a memory budget (INDUCTIVE_MEMORY_BUDGET_MB).

With a budget, start-up loads only the pinned models (`"pinned": true` in a model's config.json);
every other model of the store is known but not loaded. A request for one that is not loaded
waits for its load (verify, open, warm up: the manager's ordinary load), which a first request
starts and later ones join. A load first makes room: the least recently used models that are
neither pinned nor loading are unloaded until the new one's expected size fits. An unloaded
model leaves the routing table at once, but the requests already queued on it are answered
before its session is released, so eviction fails no request.

Loads run one at a time (the manager's loader is one thread anyway): each makes room for itself
alone, so two loads can never both count on the same free bytes. A model is expected to take
`model_memory_factor` × its weights + `model_overhead_mb` until its load measures it (the
growth of the process's resident memory while the loader opened and warmed it up, never less
than its weights); a model expected to be larger than the whole budget is refused with a 400
naming both, and never loaded (which would only evict everything, then itself, in a loop); its
size is read from the store again a minute later.

After unloads, the allocator's free pages are handed back to the system (runtime/memory.py), so
that the process's RSS follows what is loaded rather than the most it ever held.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from model_store.policy import desired_versions
from model_store.schema import Manifest
from service.errors import BadRequestError, UnavailableError
from service.lifecycle.budget import MB, MemoryBudget, megabytes
from service.lifecycle.served import ServedVersion
from service.runtime.memory import release_free_memory
from service.settings import Settings

if TYPE_CHECKING:
    from service.lifecycle.manager import ModelManager

log = logging.getLogger(__name__)

REFUSAL_KEPT_S = 60.0
_LOAD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ModelOverBudgetError(BadRequestError):
    """The model is expected to need more memory than the whole budget: it is never loaded."""


def weights_bytes(manifest: Manifest) -> int:
    """Bytes of the files a session is built from: every file but the serving config and the
    variants of other precisions (which files serve is the session's choice; the fp32 model
    and its external data are the usual case, and the largest)."""
    variants = {v.file for v in manifest.variants.values()}
    return sum(f.size for f in manifest.files if f.path != "config.json" and f.path not in variants)


class BudgetMetrics:
    """Loads, evictions, hits and misses, load latency, and resident bytes per version."""

    def __init__(self, registry: CollectorRegistry, hits: Callable[[], tuple[int, int]]) -> None:
        self.capacity = Gauge(
            "inductive_memory_budget_bytes", "The memory budget of the loaded models.",
            registry=registry,
        )  # fmt: skip
        self.used = Gauge(
            "inductive_memory_budget_used_bytes",
            "What the loaded models are charged against the budget, together.",
            registry=registry,
        )
        self.resident = Gauge(
            "inductive_model_resident_bytes",
            "What a loaded version is charged: the resident memory its load added (at least "
            "its weights).",
            ("model", "version"),
            registry=registry,
        )
        self.loads = Counter(
            "inductive_memory_budget_loads",
            "Loads on first request, by outcome (loaded, failed, refused: larger than the "
            "budget or no room beside the pinned models).",
            ("outcome",),
            registry=registry,
        )
        self.evictions = Counter(
            "inductive_memory_budget_evictions",
            "Models unloaded to make room for another.",
            registry=registry,
        )
        self.load_seconds = Histogram(
            "inductive_memory_budget_load_duration_seconds",
            "From a load on first request starting to the model serving (making room, verify, "
            "session, warm-up).",
            buckets=_LOAD_BUCKETS,
            registry=registry,
        )
        registry.register(_HitCollector(hits))


class _HitCollector(Collector):
    """Requests that found their model loaded (hit) or waited for its load (miss); read at
    scrape time from counts the request path keeps as plain integers."""

    def __init__(self, hits: Callable[[], tuple[int, int]]) -> None:
        self._hits = hits

    def collect(self) -> Iterator[CounterMetricFamily]:
        hit, miss = self._hits()
        family = CounterMetricFamily(
            "inductive_memory_budget_requests",
            "Inference requests under the memory budget: hit = the model was loaded, miss = "
            "the request waited for its load. Hit ratio = hit / (hit + miss).",
            labels=("outcome",),
        )
        family.add_metric(("hit",), hit)
        family.add_metric(("miss",), miss)
        yield family


class OnDemand:
    """Loads models on first request within the budget; the manager calls `loaded` and
    `unloaded` for every version whatever loaded or unloaded it, so the charges stay exact."""

    def __init__(self, manager: ModelManager, settings: Settings, registry: CollectorRegistry):
        assert settings.memory_budget_mb is not None
        self._manager = manager
        self._settings = settings
        self.budget = MemoryBudget(int(settings.memory_budget_mb * MB))
        self.metrics = BudgetMetrics(registry, self._hit_counts)
        self.metrics.capacity.set(self.budget.capacity)
        self.pinned: set[str] = set()
        self._loading: dict[str, asyncio.Task[None]] = {}
        self._room = asyncio.Lock()
        # Model → why it is not loaded, and when that was decided: its requests are refused at
        # once, and its size is read again from the store a minute later (a smaller version
        # may have been published since), never by loading it.
        self._refused: dict[str, tuple[str, float]] = {}
        self._misses = 0
        self._retired_uses = 0  # requests answered by versions since unloaded

    # --- the request path -----------------------------------------------------------------

    def request(self, name: str) -> asyncio.Future[None] | None:
        """The load a request for `name` waits for, started if none is running; None when the
        model is unknown or already loaded (the lookup's own error stands). Raises at once for
        a model refused for its size."""
        manager = self._manager
        if name not in manager.known_models or manager.is_loaded(name):
            return None
        refused = self._refused.get(name)
        if refused is not None:
            if time.monotonic() - refused[1] < REFUSAL_KEPT_S:
                raise ModelOverBudgetError(refused[0])
            del self._refused[name]
        self._misses += 1
        task = self._loading.get(name)
        if task is None:
            task = self._loading[name] = asyncio.get_running_loop().create_task(self._load(name))
            task.add_done_callback(self._load_done)
        return task

    def _load_done(self, task: asyncio.Task[None]) -> None:
        self._loading = {n: t for n, t in self._loading.items() if t is not task}
        if not task.cancelled():
            task.exception()  # retrieved: every waiter gets it, none may be left to

    def _hit_counts(self) -> tuple[int, int]:
        uses = self._retired_uses + sum(s.uses for s in self._manager.served())
        return max(uses - self._misses, 0), self._misses

    # --- the manager's notices ------------------------------------------------------------

    def loaded(self, served: ServedVersion, grown: int) -> None:
        """A version finished loading; `grown`: how much the process's RSS grew meanwhile."""
        served.resident_bytes = max(grown, weights_bytes(served.manifest))
        served.last_used = time.perf_counter()  # the clock InferCall.started reads
        self.budget.charge(served.name, served.version, served.resident_bytes)
        self.metrics.resident.labels(served.name, str(served.version)).set(served.resident_bytes)
        self.metrics.used.set(self.budget.used)

    def unloaded(self, served: ServedVersion) -> None:
        self._retired_uses += served.uses
        self.budget.release(served.name, served.version)
        with contextlib.suppress(KeyError):  # never charged: its load failed half-way
            self.metrics.resident.remove(served.name, str(served.version))
        self.metrics.used.set(self.budget.used)

    async def starts_loaded(self, name: str) -> bool:
        """Whether start-up loads `name`: a pinned model does."""
        try:
            config = await self._manager.in_loader(lambda: self._manager.store.config(name))
        except Exception as exc:  # the request path will load it (and report) if it can
            log.warning("model %s: cannot read its config (%s); not pinned", name, exc)
            return False
        if config.pinned:
            self.pinned.add(name)
        return config.pinned

    # --- loading --------------------------------------------------------------------------

    async def _load(self, name: str) -> None:
        started = time.perf_counter()
        async with self._room:
            manager = self._manager
            if manager.is_loaded(name):  # loaded while this load waited its turn
                return
            try:
                expected, pinned = await manager.in_loader(lambda: self._expected_bytes(name))
            except Exception as exc:
                self.metrics.loads.labels("failed").inc()
                raise UnavailableError(
                    f"cannot read model '{name}' from the store: {exc}"
                ) from None
            if pinned:
                self.pinned.add(name)
            if expected > self.budget.capacity:
                why = (
                    f"model '{name}' needs an expected {megabytes(expected)}, more than the "
                    f"whole memory budget of {megabytes(self.budget.capacity)} "
                    "(INDUCTIVE_MEMORY_BUDGET_MB): it is not loaded"
                )
                self._refused[name] = (why, time.monotonic())
                self.metrics.loads.labels("refused").inc()
                log.error("%s", why)
                raise ModelOverBudgetError(why)
            await self._make_room(name, expected)
            errors = await manager.sync(name)
            if not manager.is_loaded(name):
                self.metrics.loads.labels("failed").inc()
                raise UnavailableError(
                    f"model '{name}' could not be loaded: {'; '.join(errors) or 'no version'}"
                )
        self.metrics.loads.labels("loaded").inc()
        self.metrics.load_seconds.observe(time.perf_counter() - started)

    def _expected_bytes(self, name: str) -> tuple[int, bool]:
        """Loader thread: what the versions its policy selects are expected to take."""
        store = self._manager.store
        versions = store.list_versions(name)
        config = store.config(name)
        by_alias = config.version_policy.kind in ("alias", "canary")
        aliases = store.aliases(name) if by_alias else {}
        weights = sum(
            weights_bytes(store.manifest(name, v))
            for v in desired_versions(config.version_policy, versions, aliases)
        )
        s = self._settings
        return int(weights * s.model_memory_factor + s.model_overhead_mb * MB), config.pinned

    async def _make_room(self, name: str, need: int) -> None:
        """Unloads the least recently used models until `need` more bytes fit."""
        last_used = {s.name: max(s.last_used, 0.0) for s in self._manager.served()}
        keep = {*self.pinned, name, *self._loading}
        victims = self.budget.victims(need, last_used, keep)
        if victims is None:
            self.metrics.loads.labels("refused").inc()
            raise UnavailableError(
                f"no room for model '{name}' ({megabytes(need)} expected) in the memory budget "
                f"of {megabytes(self.budget.capacity)}: the pinned and loading models take "
                f"{megabytes(self.budget.used)}"
            )
        if not victims:
            return
        for victim in victims:
            log.info(
                "unloading model %s (%s) to make room for %s", victim,
                megabytes(self.budget.of_model(victim)), name,
            )  # fmt: skip
        self.metrics.evictions.inc(len(victims))
        await asyncio.gather(
            *(self._manager.evict(v, f"unloaded to make room for '{name}' (memory budget)")
              for v in victims)
        )  # fmt: skip
        await self._manager.in_loader(release_free_memory)
