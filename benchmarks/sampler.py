"""Watches a server process while a load generator drives it: memory, descriptors, threads from
/proc, queue depth from /metrics.

The sampling runs in a process of its own. As a thread of the load generator it shared that
process's GIL: every scrape (an HTTP round trip and parsing the exposition text, a few ms on the
2-core VM) held up the answers the generator was timing, and 4 scrapes a second doubled the p99
of a refusal in benchmarks.overload (3.2 → 6.6 ms over two runs each, 2026-11-30).
"""

from __future__ import annotations

import multiprocessing
import os
import time
import urllib.request
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.harness.servers import ServerProcess

Sample = dict[str, float]


def process_status(pid: int) -> dict[str, float]:
    """Resident memory (MB), open file descriptors and threads of the server process."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": len(os.listdir(f"/proc/{pid}/task")),
    }


def queue_depth(metrics_url: str) -> float:
    """The deepest queue of any served version, as the server's gauge reports it."""
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    return max(
        (
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "inductive_inference_queue_depth"
        ),
        default=0.0,
    )


def _sample_until(
    stop: Event,
    results: Connection,
    pid: int,
    metrics_url: str | None,
    period: float,
    queue_every: int,
) -> None:
    """The sampling process: one sample per `period` until `stop`; the queue depth on every
    `queue_every`-th. Sends back (samples, failed scrapes)."""
    samples: list[Sample] = []
    failures = 0
    started = time.perf_counter()
    tick = 0
    while not stop.wait(period):
        tick += 1
        sample = {"t": time.perf_counter() - started, **process_status(pid)}
        if metrics_url is not None and tick % queue_every == 0:
            try:
                sample["queue"] = queue_depth(metrics_url)
            except OSError:
                failures += 1  # a scrape refused or timed out under load
        samples.append(sample)
    results.send((samples, failures))


class Sampler:
    """Samples `server` every `period` s; with `queue_period`, also its queue depth that often
    (a scrape costs the server a render, so it is rarer than the /proc reads, which cost it
    nothing)."""

    def __init__(
        self, server: ServerProcess, period: float, queue_period: float | None = None
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._results, child_end = context.Pipe(duplex=False)
        metrics_url = server.metrics_url if queue_period is not None else None
        self._process = context.Process(
            target=_sample_until,
            args=(
                self._stop,
                child_end,
                server.pid,
                metrics_url,
                period,
                max(1, round((queue_period or period) / period)),
            ),
            daemon=True,
        )
        self.failures = 0

    def start(self) -> None:
        self._process.start()

    def stop(self) -> list[Sample]:
        self._stop.set()
        samples, self.failures = self._results.recv()
        self._process.join(timeout=10)
        return samples
