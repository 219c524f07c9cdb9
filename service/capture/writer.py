"""The capture's bounds and its one writer thread.

The event loop only admits and queues (`admit`, `put`); the writer thread groups what arrives by
model version, writes a shard when one holds `shard_samples` samples or its first sample is
`flush_interval_s` old, and stops writing (saying so once) when the next shard would take the
bytes written past `max_bytes`. A write that fails (a directory that cannot be written, S3 down)
loses that shard's samples, counted and logged (at most once a minute), and the writer goes on:
serving never waits for it, and when it falls behind the queue's byte bound turns new captures
away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from model_store.prefix import DataPrefix, open_prefix
from service.capture.shards import Captured, build_shard, shard_name
from service.capture.version import VersionCapture, capturable_input
from service.metrics import Metrics
from service.settings import Settings

if TYPE_CHECKING:
    from service.lifecycle.served import ServedVersion

log = logging.getLogger(__name__)

_FAILURE_LOG_INTERVAL_S = 60.0
_CLOSE_TIMEOUT_S = 5.0


@dataclass
class _Buffer:
    """One version's captured requests waiting to become a shard."""

    deadline: float
    entries: list[Captured] = field(default_factory=list)
    samples: int = 0


class CaptureWriter:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        open_target: Callable[[str], DataPrefix] = open_prefix,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert settings.capture_uri is not None
        self.uri = settings.capture_uri
        self.sample_rate = settings.capture_sample_rate
        self._rate = settings.capture_max_samples_per_s
        self._max_bytes = settings.capture_max_bytes
        self._queue_bytes = settings.capture_queue_bytes
        self._shard_samples = settings.capture_shard_samples
        self._flush_s = settings.capture_flush_interval_s
        self._metrics = metrics
        self._open_target = open_target
        self._clock = clock
        # Set once by the writer thread at the size bound; read by the event loop.
        self.stopped = False
        # Event loop side: the token bucket of the rate bound, and the bytes ever queued.
        self._tokens = self._rate
        self._refilled = clock()
        self._bytes_in = 0
        # Writer side: the bytes ever taken off the queue; queued = in - out (each counter has
        # one writer, so no lock is needed to read their difference).
        self._bytes_out = 0
        self._queue: queue.SimpleQueue[Captured | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._target: DataPrefix | None = None
        self._token = secrets.token_hex(4)
        self._seq = 0
        self._written = 0
        self._failures_unlogged = 0
        self._last_failure_log = float("-inf")

    # --- event loop ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        log.info(
            "capturing %.4g of the requests (at most %g samples/s, %d bytes) to %s",
            self.sample_rate, self._rate, self._max_bytes, self.uri,
        )  # fmt: skip

    def for_version(self, served: ServedVersion) -> VersionCapture | None:
        """The capture of a version being loaded, or None (logged and counted) when its requests
        do not fit a shard."""
        fit = capturable_input(served.signature, served.config.ragged_inputs)
        if isinstance(fit, str):
            log.warning("model %s v%d is not captured: %s", served.name, served.version, fit)
            self._metrics.capture_skipped.labels(served.name).inc()
            return None
        metrics = self._metrics.for_capture(served.name, served.version)
        return VersionCapture(self, served.name, served.version, *fit, metrics)

    def admit(self, samples: int, size: int) -> str | None:
        """None when a request of `samples` samples and `size` bytes may be queued (its share of
        the bounds is taken), else the outcome it is counted under."""
        if self.stopped:
            return "stopped"
        now = self._clock()
        # A token bucket holding one second of samples; it may go into debt by one request, so
        # a request larger than a second's worth is still captured now and then.
        self._tokens = min(self._rate, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens <= 0:
            return "rate_limited"
        if self._bytes_in - self._bytes_out + size > self._queue_bytes:
            return "queue_full"
        self._tokens -= samples
        self._bytes_in += size
        return None

    def put(self, entry: Captured) -> None:
        self._queue.put(entry)

    async def close(self) -> None:
        """Writes what is buffered and stops the thread (waiting at most a few seconds: a store
        that hangs must not hold the shutdown up)."""
        if not self._thread.is_alive():
            return
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join, _CLOSE_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("capture writer still busy after %.0f s; not waiting", _CLOSE_TIMEOUT_S)

    # --- writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        buffers: dict[VersionCapture, _Buffer] = {}
        while True:
            timeout = None
            if buffers:
                timeout = max(0.0, min(b.deadline for b in buffers.values()) - self._clock())
            try:
                entry = self._queue.get(timeout=timeout)
                if entry is None:
                    break  # closing
            except queue.Empty:
                entry = None  # a flush deadline passed
            try:
                if entry is not None:
                    self._add(buffers, entry)
                now = self._clock()
                for capture, buffer in list(buffers.items()):
                    if buffer.deadline <= now:
                        self._write(capture, buffers.pop(capture))
            except Exception:  # a bug of ours: log it, lose that shard, keep capturing
                log.exception("capture writer failed")
        for capture, buffer in buffers.items():
            with contextlib.suppress(Exception):
                self._write(capture, buffer)

    def _add(self, buffers: dict[VersionCapture, _Buffer], entry: Captured) -> None:
        self._bytes_out += entry.size
        buffer = buffers.get(entry.capture)
        if buffer is None:
            buffer = buffers[entry.capture] = _Buffer(self._clock() + self._flush_s)
        buffer.entries.append(entry)
        buffer.samples += entry.samples
        if buffer.samples >= self._shard_samples:
            self._write(entry.capture, buffers.pop(entry.capture))

    def _write(self, capture: VersionCapture, buffer: _Buffer) -> None:
        samples = capture.metrics.samples
        if self.stopped:
            samples["over_size"].inc(buffer.samples)
            return
        data = build_shard(
            capture.model, capture.version, capture.input_name, capture.ragged, buffer.entries
        )
        if self._written + len(data) > self._max_bytes:
            self.stopped = True
            self._metrics.capture_stopped.set(1)
            samples["over_size"].inc(buffer.samples)
            log.warning(
                "capture stopped: %d bytes written to %s, and the next shard (%d bytes) would "
                "pass INDUCTIVE_CAPTURE_MAX_BYTES=%d",
                self._written, self.uri, len(data), self._max_bytes,
            )  # fmt: skip
            return
        self._seq += 1
        name = shard_name(
            capture.model, capture.version, datetime.now(UTC), f"{self._token}-{self._seq:06d}"
        )
        try:
            if self._target is None:
                self._target = self._open_target(self.uri)
            self._target.write(name, data)
        except Exception as exc:
            self._metrics.capture_shards.labels("failed").inc()
            samples["failed"].inc(buffer.samples)
            self._log_failure(name, exc)
            return
        self._written += len(data)
        self._metrics.capture_bytes.inc(len(data))
        self._metrics.capture_shards.labels("written").inc()
        samples["written"].inc(buffer.samples)

    def _log_failure(self, name: str, exc: Exception) -> None:
        self._failures_unlogged += 1
        now = self._clock()
        if now - self._last_failure_log < _FAILURE_LOG_INTERVAL_S:
            return
        log.warning(
            "capture: %d shard(s) could not be written to %s (last: %s: %s: %s)",
            self._failures_unlogged, self.uri, name, type(exc).__name__, exc,
        )  # fmt: skip
        self._failures_unlogged = 0
        self._last_failure_log = now
