"""What every route shares: settings, the model manager, metrics, the in-flight count and the
observer of inference requests (traces, access log)."""

from __future__ import annotations

from dataclasses import dataclass

from service.lifecycle.manager import ModelManager
from service.metrics import Metrics
from service.observability.observer import Observer
from service.settings import Settings


@dataclass(eq=False)
class AppState:
    settings: Settings
    manager: ModelManager
    metrics: Metrics
    inflight: int = 0  # inference requests between their head and their response
    observer: Observer | None = None  # traces and the access log, when either is on
