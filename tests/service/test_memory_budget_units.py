"""The memory budget's accounting, warm-up sizes, and the allocator giving memory back."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from model_store.schema import Manifest, Producer, TensorSpec
from service.__main__ import parse_args
from service.lifecycle.budget import MB, MemoryBudget
from service.model_io.signature import ModelSignature
from service.runtime.memory import release_free_memory, rss_bytes, trim_periodically
from service.runtime.warmup import warmup_batch_sizes
from service.settings import Settings


def test_fits_without_evicting() -> None:
    budget = MemoryBudget(100)
    budget.charge("a", 1, 40)
    assert budget.victims(60, {"a": 1.0}, keep=()) == []


def test_least_recently_used_go_first_and_only_as_many_as_needed() -> None:
    budget = MemoryBudget(100)
    for name, size in (("a", 30), ("b", 30), ("c", 30)):
        budget.charge(name, 1, size)
    last_used = {"a": 3.0, "b": 1.0, "c": 2.0}
    assert budget.victims(20, last_used, keep=()) == ["b"]
    assert budget.victims(50, last_used, keep=()) == ["b", "c"]


def test_kept_models_are_never_victims() -> None:
    budget = MemoryBudget(100)
    budget.charge("pinned", 1, 60)
    budget.charge("b", 1, 30)
    assert budget.victims(40, {"pinned": 0.0, "b": 5.0}, keep={"pinned"}) == ["b"]
    assert budget.victims(50, {"pinned": 0.0, "b": 5.0}, keep={"pinned"}) is None


def test_a_model_is_charged_for_every_loaded_version() -> None:
    budget = MemoryBudget(100)
    budget.charge("m", 1, 30)
    budget.charge("m", 2, 30)
    assert budget.of_model("m") == 60
    assert budget.victims(90, {"m": 1.0}, keep=()) == ["m"]
    assert budget.release("m", 1) == 30
    assert budget.used == 30


def _signature(max_batch: int, batched: bool = True) -> ModelSignature:
    shape = (-1, 4) if batched else (4,)
    spec = TensorSpec(name="x", datatype="FP32", shape=shape)
    manifest = Manifest(
        name="m", version=1, inputs=(spec,), outputs=(spec,), producer=Producer(package="t")
    )
    from model_store.schema import BatchingConfig, ModelConfig

    config = ModelConfig(batching=BatchingConfig(max_batch_size=max_batch))
    return ModelSignature.build(manifest, config, max_batch)


def test_warm_up_covers_every_batch_size_the_batcher_forms() -> None:
    assert warmup_batch_sizes(_signature(64), (8, 32, 128)) == [64, 32, 8, 1]
    assert warmup_batch_sizes(_signature(1), ()) == [1]


def test_the_budget_flag_and_memory_settings() -> None:
    assert parse_args(["--memory-budget-mb", "512"]) == {"memory_budget_mb": 512.0}
    settings = Settings()
    assert settings.memory_budget_mb is None
    assert settings.cpu_mem_arena is False
    with pytest.raises(ValueError, match="memory_budget_mb"):
        Settings(memory_budget_mb=0)


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


def _fragmented_free_memory(libc: ctypes.CDLL) -> tuple[list[int], int]:
    """200 MB allocated and touched, then freed but for every 16th block (what unloading one
    session among others leaves): the blocks kept, and the RSS with all 200 MB touched."""
    size = 64 * 1024  # below glibc's mmap threshold: from the heap
    blocks = [libc.malloc(size) for _ in range(3200)]
    for block in blocks:
        ctypes.memset(block, 1, size)
    held = rss_bytes()
    kept = blocks[::16]  # every 16th stays: the heap's top cannot shrink past them
    for block in blocks:
        if block not in kept:
            libc.free(block)
    return kept, held


def test_malloc_trim_gives_freed_memory_back() -> None:
    """Blocks freed between blocks still held stay resident in glibc's heap; the trim returns
    their pages."""
    libc = _libc()
    kept, held = _fragmented_free_memory(libc)
    freed_kept = rss_bytes()
    assert release_free_memory()
    trimmed = rss_bytes()
    for block in kept:
        libc.free(block)
    assert held - freed_kept < 20 * MB, "glibc returned the pages by itself: nothing to fix"
    assert freed_kept - trimmed > 150 * MB


def test_periodic_trims_wait_for_a_quiet_interval() -> None:
    """While batches keep starting, freed memory stays (the next batches reuse it); the first
    interval without a batch gives it back."""
    libc = _libc()
    batches = [0]
    busy = threading.Event()
    busy.set()

    def activity() -> int:
        if busy.is_set():
            batches[0] += 1  # a batch started in every interval
        return batches[0]

    release_free_memory()
    stop = threading.Event()
    assert trim_periodically(0.05, activity, stop) is not None
    kept, _ = _fragmented_free_memory(libc)
    freed = rss_bytes()
    time.sleep(0.5)
    still_busy = rss_bytes()
    busy.clear()
    deadline = time.monotonic() + 5
    while rss_bytes() > freed - 150 * MB and time.monotonic() < deadline:
        time.sleep(0.02)
    quiet = rss_bytes()
    stop.set()
    for block in kept:
        libc.free(block)
    assert freed - still_busy < 20 * MB, "trimmed while batches were running"
    assert freed - quiet > 150 * MB, "not trimmed once quiet"


# Run in a fresh interpreter: glibc gives a thread its arena at its first allocation, so the
# tuning must come before any other thread of the process has allocated.
_BATCHES_ON_A_WORKER_THREAD = """
import ctypes, json, resource, threading
from service.runtime.memory import keep_batch_buffers, release_free_memory, rss_bytes

keep_batch_buffers()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
MB = 1 << 20
report = {}

def batches():
    # What the worker holds for good (sessions, caches): most of a 64 MiB thread heap.
    held = [libc.malloc(MB) for _ in range(48)]
    for block in held:
        ctypes.memset(block, 1, MB)
    faults = []
    for _ in range(8):  # a batch: a 24 MB buffer, written, freed
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        buffer = libc.malloc(24 * MB)
        ctypes.memset(buffer, 1, 24 * MB)
        libc.free(buffer)
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
    report["faults"] = faults
    report["kept"] = rss_bytes()
    release_free_memory()
    report["trimmed"] = rss_bytes()

worker = threading.Thread(target=batches)
worker.start()
worker.join()
print(json.dumps(report))
"""


_ARENA_SETTINGS = ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")  # the tuning leaves these be


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator"
)
def test_a_worker_threads_batch_buffers_are_reused_then_trimmed() -> None:
    """A batch on a worker thread that does not fit in what is left of its thread's heap: with
    a heap per thread, glibc mapped a new heap for it and unmapped it at the free, so every
    batch faulted its buffer's 6,000 pages in again. Tuned as the server tunes glibc, only the
    first batch does, and a trim still gives the buffer back once the server is quiet."""
    done = subprocess.run(
        [sys.executable, "-c", _BATCHES_ON_A_WORKER_THREAD],
        cwd=Path(__file__).resolve().parents[2],
        env={k: v for k, v in os.environ.items() if k not in _ARENA_SETTINGS},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(done.stdout)
    faults = report["faults"]
    assert faults[0] > 5000, faults  # the first batch maps its buffer
    assert max(faults[1:]) < 300, f"later batches faulted their buffer in again: {faults}"
    assert report["kept"] - report["trimmed"] > 20 * MB, report
