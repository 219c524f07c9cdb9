"""What every route shares: settings, the model manager, metrics and the in-flight count."""

from __future__ import annotations

from dataclasses import dataclass

from service.lifecycle.manager import ModelManager
from service.metrics import Metrics
from service.settings import Settings

# Scope key under which the inference route puts the ticket of its request queued in a batcher;
# the connection guard (guard.py) cancels it when the client disconnects.
PENDING_KEY = "inductive.pending"


@dataclass(eq=False)
class AppState:
    settings: Settings
    manager: ModelManager
    metrics: Metrics
    inflight: int = 0  # inference requests between body read and response sent
