"""The model manager: which versions are served, loading and unloading them, and their states.

Start-up loads every model by its version policy, then the server is ready. In poll mode the store
is re-read every `poll_interval_s`; the repository API (explicit mode) asks for the same sync for
one model. A new version is verified, opened and warmed up in a loader thread while the old one
keeps serving; then the serving table is replaced in one assignment (atomic for the event loop),
and the old version drains its queue before its session is released. A version that fails to
load never replaces a working one: it is marked FAILED with the reason, and the server stays ready.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from model_store import ModelNotFoundError, StoreUnavailableError, open_store, version_config
from model_store.policy import desired_versions
from model_store.schema import (
    InvalidModelNameError,
    Manifest,
    ModelConfig,
    validate_model_name,
)
from service.batching import Batcher, BatchPolicy
from service.batching.assemble import Layout, assemble
from service.errors import BadRequestError, NotFoundError, UnavailableError
from service.lifecycle.served import ServedVersion, State, Status
from service.metrics import Metrics
from service.model_io.signature import ModelSignature
from service.protocol.request_plans import RequestPlans
from service.runtime import OnnxModel, ProviderChoice, choose_providers, load_model
from service.runtime.warmup import warmup_inputs
from service.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreRootMissingError(OSError):
    """The local store's root directory, seen before, is gone."""


class ModelManager:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.ready = False
        self.draining = False
        self._served: dict[str, dict[int, ServedVersion]] = {}
        # Version served when a request names none: the newest served version.
        self._default: dict[str, ServedVersion] = {}
        self._status: dict[tuple[str, int], Status] = {}
        self._known: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._local_root_seen = False
        # Polling retries a FAILED version this long after its failure (a transient store or
        # download error heals by itself; a broken file fails again, visibly, at this pace).
        self._retry_failed_after = max(60.0, 10 * settings.poll_interval_s)
        self._choice: ProviderChoice | None = None
        self._store: Any = None

    # --- lookups (hot path: dictionary reads only) ---------------------------------------

    def lookup(self, name: str, version: int | None = None) -> ServedVersion:
        if version is None:
            served = self._default.get(name)
            if served is not None:
                return served
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

    # --- lifecycle ------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Decides the execution provider; raises if the settings ask for one that cannot serve."""
        self._choice = await self._in_loader(lambda: choose_providers(self.settings))
        if self._choice.on_gpu:
            self.metrics.enable_gpu(self.settings.cuda_device_id)

    async def load_all(self) -> None:
        """Loads every model by its policy (retrying while the store is unreachable), then ready."""
        while True:
            try:
                self._store = await self._in_loader(lambda: open_store(self.settings.store))
                names = await self._model_names()
                break
            except Exception as exc:
                self.metrics.store_poll_failures.inc()
                log.error(
                    "store %s unreachable at start-up (%s); retrying", self.settings.store, exc
                )
                await asyncio.sleep(self.settings.poll_interval_s)
        for name in names:
            await self.sync(name)
        if self.draining:  # a SIGTERM arrived while loading: stay not ready
            return
        self.ready = True
        if self._served:
            log.info("ready: serving %s", ", ".join(
                f"{n} v{','.join(map(str, sorted(vs)))}" for n, vs in self._served.items()
            ))  # fmt: skip
        else:
            log.warning("ready, but no model is served (none in the store, or all failed)")
        if self.settings.model_control_mode == "poll":
            self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

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
        self._known.update(names)
        return list(names)

    async def _poll_forever(self) -> None:
        while not self.draining:
            await asyncio.sleep(self.settings.poll_interval_s)
            if self.draining:
                return
            # Store unreachable: what is loaded keeps serving; the next poll tries again.
            try:
                names = await self._model_names()
            except Exception as exc:
                self.metrics.store_poll_failures.inc()
                log.warning("store poll failed: %s", exc)
                continue
            for name in names:
                try:
                    await self.sync(name, retry_failed=False, raise_store_errors=True)
                except Exception as exc:  # this model only; the others are still polled
                    self.metrics.store_poll_failures.inc()
                    log.warning("store poll of model %s failed: %s", name, exc)

    async def sync(
        self, name: str, *, retry_failed: bool = True, raise_store_errors: bool = False
    ) -> list[str]:
        """Brings `name` to what its version policy selects now; returns the load errors."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            try:
                config, versions, aliases = await self._in_loader(lambda: self._read_model(name))
            except Exception as exc:
                if raise_store_errors:
                    raise
                log.error("model %s: cannot read the store: %s", name, exc)
                return [f"cannot read model '{name}' from the store: {exc}"]
            self._known.add(name)
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
            self._publish(name, ready)
            for v, old in current.items():
                if v not in ready:
                    self._spawn(self._unload(old, "replaced by the version policy"))
            return errors

    def _read_model(self, name: str) -> tuple[ModelConfig, list[int], dict[str, int]]:
        versions = self._store.list_versions(name)
        if not versions:
            raise ModelNotFoundError(f"model '{name}' has no complete version in the store")
        config = self._store.config(name)
        aliases = self._store.aliases(name) if config.version_policy.kind == "alias" else {}
        return config, versions, aliases

    def _publish(self, name: str, table: dict[int, ServedVersion]) -> None:
        """Switches traffic: the new tables replace the old ones in single assignments."""
        served = dict(self._served)
        default = dict(self._default)
        if table:
            served[name] = table
            default[name] = table[max(table)]
        else:
            served.pop(name, None)
            default.pop(name, None)
        self._served, self._default = served, default

    async def _load_version(self, name: str, version: int) -> ServedVersion:
        self._set_status(name, version, State.LOADING)
        started = time.perf_counter()
        try:
            manifest, config, model = await self._in_loader(lambda: self._open(name, version))
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
        seconds = time.perf_counter() - started
        self.metrics.load_seconds.labels(name, str(version)).set(seconds)
        self._set_status(name, version, State.READY)
        log.info("model %s v%d ready in %.2f s on %s", name, version, seconds, model.providers[0])
        return served

    def _open(self, name: str, version: int) -> tuple[Manifest, ModelConfig, OnnxModel]:
        """Loader thread: sync + verify, open the session, warm up at max batch and batch 1."""
        assert self._choice is not None
        manifest = self._store.manifest(name, version)
        directory = Path(self._store.materialize(name, version, self.settings.cache_dir))
        # The config published with the version; versions from before that use the model's.
        config = version_config(directory, manifest) or self._store.config(name)
        model = load_model(directory, manifest, self.settings, self._choice)
        sig = self._signature(manifest, config)
        layout = Layout(sig, config.ragged_inputs)
        for batch in sorted({sig.max_batch_size, 1}, reverse=True):
            model.run(assemble([warmup_inputs(sig, batch)], layout))
        return manifest, config, model

    def _signature(self, manifest: Manifest, config: ModelConfig) -> ModelSignature:
        max_batch = self.settings.max_batch_size or config.batching.max_batch_size
        return ModelSignature.build(manifest, config, max_batch)

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
        batcher = Batcher(label, model.run, layout, policy, metrics, worker_nice=s.worker_nice)
        plans = RequestPlans(sig, layout, s.max_tensor_elements)
        return ServedVersion(
            manifest.name, manifest.version, manifest, config, sig, model, batcher, metrics, plans
        )

    async def _unload(self, served: ServedVersion, reason: str) -> None:
        """Lets the version finish what it has queued, then releases its session."""
        name, version = served.name, served.version
        self._set_status(name, version, State.UNLOADING)
        await served.batcher.close()
        served.model.close()
        self._set_status(name, version, State.UNAVAILABLE, reason)
        log.info("model %s v%d unloaded (%s)", name, version, reason)

    def _set_status(self, name: str, version: int, state: State, reason: str = "") -> None:
        self._status[(name, version)] = Status(state, reason)
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
            self._publish(name, {})
            await asyncio.gather(*(self._unload(s, "unloaded") for s in current.values()))

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
        self._served, self._default = {}, {}
        await asyncio.gather(*(self._unload(s, "server shutting down") for s in served))
        self._loader.shutdown(wait=False, cancel_futures=True)

    # --- helpers --------------------------------------------------------------------------

    async def _in_loader(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._loader, fn)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
