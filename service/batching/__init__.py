"""When to compute: a dynamic batcher per served model version."""

from service.batching.batcher import Batcher, BatchPolicy, Clock, MonotonicClock, Runner

__all__ = ["BatchPolicy", "Batcher", "Clock", "MonotonicClock", "Runner"]
