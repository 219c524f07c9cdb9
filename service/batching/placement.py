"""Where batches compute, decided once per process and said in one log line.

On a worker thread (the default), the event loop keeps reading and answering while a batch
computes, which is what several cores are for. With one usable CPU the two threads only take
turns on it: each batch then costs a handoff in (the loop wakes the worker), a handoff out
(`call_soon_threadsafe` wakes the loop), GIL transfers, and the loop preempting the batch for every
request that arrives. There, short batches run on the loop's own thread (batcher.py), and the
requests that arrive meanwhile wait in their sockets and form the next batch.
"""

from __future__ import annotations

import logging

from service.runtime.cpus import UsableCpus, process_cpus
from service.runtime.providers import ProviderChoice
from service.settings import Settings

log = logging.getLogger(__name__)


def batches_on_loop(
    settings: Settings, choice: ProviderChoice, cpus: UsableCpus | None = None
) -> float | None:
    """The most seconds a batch may be expected to take to run on the event loop; None: every
    batch runs on a worker thread."""
    mode = settings.batches_on_loop
    limit_ms = settings.loop_batch_max_ms
    if mode == "off":
        log.info("batches compute on worker threads (set off)")
        return None
    if mode == "on":
        log.info("batches up to %g ms compute on the event loop (set on)", limit_ms)
        return limit_ms / 1000
    cpus = cpus or process_cpus()
    if choice.on_gpu or cpus.count > 1:
        where = choice.name if choice.on_gpu else str(cpus)
        log.info("batches compute on worker threads (%s)", where)
        return None
    log.info(
        "batches up to %g ms compute on the event loop, longer ones on a worker thread "
        "(one usable CPU: %s)", limit_ms, cpus,
    )  # fmt: skip
    return limit_ms / 1000
