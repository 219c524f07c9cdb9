"""What the server and its models say about themselves, the same over every front door: the
server metadata (name, version, extensions) and a model's metadata (versions, signature)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from service.lifecycle.manager import ModelManager
from service.lifecycle.served import ServedVersion

SERVER_NAME = "inductive"
# schedule_policy: the request parameters `timeout` and `priority` are honoured by the batcher.
EXTENSIONS = (
    "binary_tensor_data", "classification", "model_repository", "schedule_policy", "statistics",
)  # fmt: skip
PLATFORM = "onnxruntime_onnx"


def server_version() -> str:
    try:
        return version("inductive")
    except PackageNotFoundError:
        return "0+unknown"


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": server_version(), "extensions": EXTENSIONS}


def model_metadata(manager: ModelManager, served: ServedVersion) -> dict[str, Any]:
    spec = served.signature
    return {
        "name": served.name,
        "versions": [str(v) for v in manager.served_versions(served.name)],
        "platform": PLATFORM,
        "inputs": [t.model_dump() for t in spec.inputs.values()],
        "outputs": [t.model_dump() for t in spec.outputs.values()],
    }
