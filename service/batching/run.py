"""What a request learns about the batch it ran in, for its access log line and its trace.

The batcher makes one `BatchRun` per batch it hands to its worker and puts it on every ticket of
the batch before resolving them (an attribute store per request, whether or not anything reads
it), so the front end can tell how long a request waited and computed, and with how many others.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, eq=False)
class BatchRun:
    """One batch in the worker thread. Times are `time.perf_counter()` seconds, the clock the
    front end stamps its calls with."""

    started: float  # handed to the worker: the end of its requests' time queued
    samples: int  # the batch size: samples of every request in it
    requests: int
    ended: float = 0.0  # back on the event loop: answers go out from here
    span: object | None = None  # the batch's trace span, when tracing is on
