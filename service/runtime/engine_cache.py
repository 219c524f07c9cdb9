"""TensorRT engine caches kept per model file content, so that a reload or a new pod reuses one.

ONNX Runtime's TensorRT provider builds an engine for a graph the first time it sees it (minutes
for a large model) and, with `trt_engine_cache_enable`, saves it under `trt_engine_cache_path`.
One directory shared by every model and version would hold engines whose names ONNX Runtime
derives from the graph, not from the bytes of the file; a directory per sha256 of the file the
session is built from (the manifest records it) ties an engine to exactly that file: the same
version loaded again, by this process or by another pod sharing the directory, finds its engine,
and a new version, or another precision variant of the same version, never picks up a stale one.
"""

from __future__ import annotations

import os
from typing import Any

from model_store.schema import Manifest
from service.runtime.providers import ProviderChoice, ProviderList

TENSORRT = "TensorrtExecutionProvider"


def file_sha256(manifest: Manifest, file: str) -> str | None:
    """The sha256 the manifest records for `file`, None when the manifest lists no files."""
    try:
        return manifest.file(file).sha256
    except KeyError:
        return None


def version_providers(choice: ProviderChoice, sha256: str | None) -> ProviderList:
    """The providers to build one session with: the process's choice, with the TensorRT engine
    cache (when one is configured) moved into the directory of this file's sha256."""
    if sha256 is None:
        return choice.providers
    providers: ProviderList = []
    for provider in choice.providers:
        if isinstance(provider, tuple) and provider[0] == TENSORRT:
            name, options = provider
            provider = (name, _keyed(options, sha256))
        providers.append(provider)
    return providers


def _keyed(options: dict[str, Any], sha256: str) -> dict[str, Any]:
    root = options.get("trt_engine_cache_path")
    if not options.get("trt_engine_cache_enable") or not root:
        return options
    directory = os.path.join(root, sha256)
    os.makedirs(directory, exist_ok=True)
    return {**options, "trt_engine_cache_path": directory}
