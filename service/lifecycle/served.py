"""A served version and the states a version goes through (Triton's repository index states)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from model_store.schema import Manifest, ModelConfig
from service.batching import Batcher
from service.metrics import VersionMetrics
from service.model_io.signature import ModelSignature
from service.protocol.request_plans import RequestPlans
from service.runtime import OnnxModel

if TYPE_CHECKING:
    from service.capture import VersionCapture
    from service.lifecycle.shadow import Shadow


class State(StrEnum):
    LOADING = "LOADING"
    READY = "READY"
    UNLOADING = "UNLOADING"
    UNAVAILABLE = "UNAVAILABLE"
    FAILED = "FAILED"


@dataclass
class Status:
    state: State
    reason: str = ""
    since: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class VersionEvent:
    """A state a version entered, as this server saw it (the console's version history)."""

    time: float  # Unix time
    version: int
    state: State
    reason: str = ""


@dataclass(eq=False)
class ServedVersion:
    """A loaded version: its signature, session and batcher."""

    name: str
    version: int
    manifest: Manifest
    config: ModelConfig
    signature: ModelSignature
    model: OnnxModel
    batcher: Batcher
    metrics: VersionMetrics
    plans: RequestPlans  # how its requests are decoded and checked
    # Set while it is a canary's champion with a mirror share: the candidate it mirrors to.
    shadow: Shadow | None = None
    # Set when traffic capture is on and its inputs are of a kind a shard holds.
    capture: VersionCapture | None = None
    # Under a memory budget (on_demand.py): what the version is charged, when a request last
    # reached it (the least recently used model is unloaded first) and how many did.
    resident_bytes: int = 0
    last_used: float = 0.0
    uses: int = 0
