"""The process's resident memory, the allocator's tuning, and giving freed memory back.

glibc's allocator keeps freed chunks in its arenas for reuse: after a session is released its
pages often stay resident, so a server that loads and unloads models (a memory budget) would see
its RSS ratchet up to the largest it ever was. `malloc_trim(0)` returns the free pages at the top
of every arena and the unused pages inside them; it is called after loads and unloads, off the
event loop.

Without ONNX Runtime's CPU arena (the default, INDUCTIVE_CPU_MEM_ARENA), a batch's buffers are
allocated and freed at every run. glibc serves allocations above its mmap threshold with fresh
mappings and trims the heap's free top past its trim threshold, so every large batch would fault
its pages in again (benchmarks/results/model-memory/: a tenth of batch-64 throughput lost).
`keep_batch_buffers` raises both thresholds: freed batch buffers stay in the heap and are reused by
the next batch of any model, one pool for all sessions instead of one arena per session; the trims
after loads and unloads still give the rest back.

It also makes every thread allocate from the one main arena. Batches run on worker threads, and
by default a thread other than the main one gets its own arena: a chain of heaps of at most
64 MiB each. A batch whose buffers do not fit in what is left of its thread's first heap gets a
new heap, which glibc unmaps as soon as all of it is free again, whatever the trim threshold: a
busy server then mapped, faulted in and unmapped its largest batch's buffers at every batch
(70–100 page faults per cnn request served; under an open stream of requests near capacity the
served rate fell below what was offered and latency grew to seconds, benchmarks/results/
allocator/). The main arena is one heap that only the trims shrink, and `malloc_trim` gives back
its free top, which it cannot do for a thread heap's. The price is that allocations from
threads on different cores take one lock: a spot check with two batch threads on two cores ran
the cnn as fast either way, but many cores were not measured, so a MALLOC_ARENA_MAX (or the
glibc.malloc.arena_max tunable) set in the environment is left as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 where it cannot be read)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _libc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # musl and other libcs have no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _libc_trim()


# mallopt parameters (malloc.h) and the values set: glibc's largest mmap threshold (32 MiB on
# 64-bit), a trim threshold that leaves giving memory back to the explicit trims, and one arena.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD = 32 * 1024 * 1024
_TRIM_THRESHOLD = 1024 * 1024 * 1024
# Periodic trims wait for the RSS to grow this much past what the last trim left: a trim makes
# the next batches fault their buffers' pages in again, which a steady load should not pay for.
TRIM_SLACK = 16 * 1024 * 1024


def keep_batch_buffers() -> bool:
    """Tunes glibc so that freed batch buffers are reused rather than unmapped; False where
    there is no mallopt (not glibc). Call it before a second thread allocates: glibc gives a
    thread its arena at its first allocation."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    arenas_chosen = "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get(
        "GLIBC_TUNABLES", ""
    )
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
        and (arenas_chosen or mallopt(_M_ARENA_MAX, 1))
    )


def trim_periodically(
    interval_s: float, activity: Callable[[], int], stop: threading.Event | None = None
) -> threading.Thread | None:
    """Every `interval_s`, from a daemon thread, gives free memory back when the server was
    quiet for the whole interval (`activity()`, a count of batches started, did not move) and
    the RSS grew by `TRIM_SLACK` since the last trim, until `stop` is set; None where there is
    no malloc_trim.

    Only quiet intervals: under load the freed batch buffers are the next batches' buffers, and
    a trim makes them fault their pages in again. A trim whenever the RSS had grown 16 MB could
    fire under load each time batches grew (a batch's buffers alone are that much). A quiet
    server still gives back what a burst left. In alternating rounds
    (benchmarks/results/model-memory/compare-trim-when-quiet.md) the difference in throughput
    and open-loop latency was within the machine's noise.
    """
    if _TRIM is None:
        return None

    ticks = stop or threading.Event()

    def trim_forever() -> None:
        floor = rss_bytes()
        seen = activity()
        while not ticks.wait(interval_s):
            now = activity()
            quiet, seen = now == seen, now
            rss = rss_bytes()
            if quiet and rss > floor + TRIM_SLACK:
                release_free_memory()
                floor = rss_bytes()  # what is live now: the next trim waits for more growth
            elif rss < floor:
                floor = rss

    thread = threading.Thread(target=trim_forever, name="malloc-trim", daemon=True)
    thread.start()
    return thread


def release_free_memory() -> bool:
    """Hands the allocator's free pages back to the system; False where there is no
    malloc_trim (not glibc)."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
