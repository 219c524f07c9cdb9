"""What every route shares: settings, the model manager, metrics and the in-flight count."""

from __future__ import annotations

from dataclasses import dataclass

from service.lifecycle.manager import ModelManager
from service.metrics import Metrics
from service.settings import Settings


@dataclass(eq=False)
class AppState:
    settings: Settings
    manager: ModelManager
    metrics: Metrics
    inflight: int = 0  # inference requests between their head and their response
