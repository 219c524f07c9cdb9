"""`add_onnx`: bring any ONNX file (exported anywhere) into the store as a new version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from model_store.errors import StoreError
from model_store.keys import validate_file_key
from model_store.onnx_files import (
    external_locations,
    load_graph,
    location_key,
    producer_of,
    signature_of,
)
from model_store.schema import Manifest, ModelConfig, validate_model_name
from model_store.store import ModelStore

MODEL_FILE = "model.onnx"


def add_onnx(
    store: ModelStore,
    name: str,
    onnx_path: Path | str,
    *,
    config: ModelConfig | None = None,
    labels: Sequence[str] | None = None,
    dataset: str | None = None,
    metrics: Mapping[str, float] | None = None,
) -> int:
    """Publish `onnx_path` (and the external-data files it names) as a new version of `name`.

    The file is stored as `model.onnx`; external-data files keep their locations relative to it,
    so the graph needs no rewriting. The signature and producer are read from the graph. Labels,
    when given, describe the first output; they also go into the config unless it has its own.
    """
    validate_model_name(name)
    source = Path(onnx_path)
    model = load_graph(source)
    inputs, outputs = signature_of(model)
    files: dict[str, Path] = {MODEL_FILE: source}
    for location in external_locations(model):
        key = validate_file_key(location_key(MODEL_FILE, location))
        if key == MODEL_FILE:
            raise StoreError(f"{source}: external data location {location!r} names the model")
        files[key] = source.parent / key
    if labels is not None and outputs:
        base = config or ModelConfig()
        if not base.labels:
            config = base.model_copy(update={"labels": {outputs[0].name: tuple(labels)}})
    manifest = Manifest(
        name=name,
        model_file=MODEL_FILE,
        inputs=inputs,
        outputs=outputs,
        producer=producer_of(model),
        dataset=dataset,
        metrics=dict(metrics or {}),
        labels=tuple(labels) if labels is not None else None,
        extra={"imported_from": source.name},
    )
    return store.publish(name, files, manifest, config=config)
