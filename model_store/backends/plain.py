"""A plain directory seen as a read-only store of one model with one version.

KServe's storage initializer downloads a model's `storageUri` into `/mnt/models` and hands the
runtime that directory, not a store: no manifest, no version directories. This backend describes
such a directory as model `name`, version 1, so that the server loads and serves it exactly as it
serves a store's version:

    DIR/model.onnx       the model (required)
    DIR/<external data>  the files model.onnx names as external data, where it names them
    DIR/config.json      optional: a model config (model_store/schema.py `ModelConfig`), for
                         class labels and batching

The manifest (signature, producer, files with sha256 and size) is computed once, when the
backend is built, and every check the store makes on a published version is made here, with the
same errors: a missing model.onnx, an unreadable ONNX file, an input with no V2 datatype,
external data missing or outside the directory, symlinks, an invalid config.json.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from onnx import ModelProto
from pydantic import ValidationError

from model_store.backends.base import Backend, Document
from model_store.errors import StoreError
from model_store.hashing import sha256_file
from model_store.integrity import compare_listing, list_version_dir, verify_dir
from model_store.keys import validate_file_key
from model_store.onnx_files import (
    check_external_data,
    external_locations,
    load_graph,
    location_key,
    producer_of,
    signature_of,
)
from model_store.schema import FileEntry, Manifest, ModelConfig, validate_model_name

MODEL_FILE = "model.onnx"
CONFIG_FILE = "config.json"
VERSION = 1


class PlainDirectoryError(StoreError):
    """The directory cannot be served as a model; the message names the directory and why."""


class PlainDirectoryBackend(Backend):
    def __init__(self, directory: Path, name: str) -> None:
        self.directory = Path(directory)
        self.name = validate_model_name(name)
        self.uri = str(self.directory)
        try:
            self._manifest = _describe(self.directory, self.name)
        except PlainDirectoryError:
            raise
        except (StoreError, OSError) as exc:
            raise PlainDirectoryError(f"model directory {self.directory}: {exc}") from exc
        self._raw_manifest = self._manifest.model_dump_json(indent=2).encode()

    # -- reading ------------------------------------------------------------------------------

    def model_names(self) -> list[str]:
        return [self.name]

    def versions(self, name: str) -> list[int]:
        return [VERSION] if name == self.name else []

    def read_manifest(self, name: str, version: int) -> bytes | None:
        return self._raw_manifest if (name, version) == (self.name, VERSION) else None

    def read_document(self, name: str, doc: Document) -> bytes | None:
        # The config is the version's own (inside it, checksummed); there are no aliases.
        if name == self.name and doc == CONFIG_FILE:
            path = self.directory / CONFIG_FILE
            return path.read_bytes() if path.is_file() else None
        return None

    def verify(self, name: str, version: int, manifest: Manifest) -> None:
        verify_dir(self.directory, manifest)

    def materialize(self, name: str, version: int, manifest: Manifest, cache_dir: Path) -> Path:
        """The directory itself: nothing to copy, and its files were hashed when the manifest
        was computed, an instant ago (KServe's storage initializer wrote them once)."""
        compare_listing(list_version_dir(self.directory), manifest)
        return self.directory

    # -- writing: never ------------------------------------------------------------------------

    def _read_only(self) -> StoreError:
        return StoreError(f"{self.directory} is a model directory (--model-dir), not a store")

    def publish(self, name: str, files: Mapping[str, Path], manifest: Manifest) -> int:
        raise self._read_only()

    def update_document(
        self, name: str, doc: Document, update: Callable[[bytes | None], bytes]
    ) -> None:
        raise self._read_only()

    def read_changes(self) -> bytes | None:
        return None  # nothing changes it: the one model is read at start-up

    def write_changes(self, token: bytes) -> None:
        raise self._read_only()

    def delete_version(self, name: str, version: int) -> None:
        raise self._read_only()

    def clean_leftovers(self, name: str) -> int:
        return 0


def check_model_dir(directory: Path) -> None:
    """Every check the backend makes, without hashing the files: a server refuses a bad
    directory before it starts. Raises PlainDirectoryError naming the directory and the fault."""
    try:
        _inspect(Path(directory))
    except PlainDirectoryError:
        raise
    except (StoreError, OSError) as exc:
        raise PlainDirectoryError(f"model directory {directory}: {exc}") from exc


def _describe(directory: Path, name: str) -> Manifest:
    """The manifest of the model in `directory`, after every check a published version gets."""
    graph, keys, labels = _inspect(directory)
    entries = []
    for key in keys:
        digest, size = sha256_file(directory / key)
        entries.append(FileEntry(path=key, sha256=digest, size=size))
    inputs, outputs = signature_of(graph)
    return Manifest(
        name=name,
        version=VERSION,
        model_file=MODEL_FILE,
        files=tuple(entries),
        inputs=inputs,
        outputs=outputs,
        producer=producer_of(graph),
        labels=labels,
        extra={"served_from": str(directory)},
    )


def _inspect(directory: Path) -> tuple[ModelProto, list[str], tuple[str, ...] | None]:
    """The graph, every file key of the directory, and the first output's labels."""
    where = f"model directory {directory}"
    if not directory.is_dir():
        raise PlainDirectoryError(f"{where} does not exist or is not a directory")
    model_path = directory / MODEL_FILE
    if not model_path.is_file():
        others = sorted(p.name for p in directory.glob("*.onnx"))
        found = (
            f" (it holds {', '.join(others)}; rename the model to {MODEL_FILE})" if others else ""
        )
        raise PlainDirectoryError(f"{where} has no {MODEL_FILE}{found}")
    graph = load_graph(model_path)
    _, outputs = signature_of(graph)  # refuses inputs and outputs with no V2 datatype
    keys = [MODEL_FILE]
    keys.extend(
        validate_file_key(location_key(MODEL_FILE, location))
        for location in external_locations(graph)
    )
    check_external_data(model_path, directory)
    labels = None
    if (directory / CONFIG_FILE).exists():
        config = _config(directory / CONFIG_FILE, where)
        unknown = sorted(set(config.labels) - {o.name for o in outputs})
        if unknown:
            raise PlainDirectoryError(
                f"{where}: {CONFIG_FILE} has labels for {', '.join(map(repr, unknown))}, which "
                f"{MODEL_FILE} does not output (outputs: {', '.join(o.name for o in outputs)})"
            )
        keys.append(CONFIG_FILE)
        labels = config.labels.get(outputs[0].name) if outputs else None
    # Anything else in the directory (a README, KServe's own files) is served along, unread:
    # listing it keeps the directory's contents and the manifest identical, as for a version.
    listed = list_version_dir(directory)
    return graph, sorted(set(keys) | listed.keys()), labels


def _config(path: Path, where: str) -> ModelConfig:
    if not path.is_file():
        raise PlainDirectoryError(f"{where}: {CONFIG_FILE} is not a regular file")
    try:
        return ModelConfig.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'document'}: {e['msg']}" for e in exc.errors()
        )
        raise PlainDirectoryError(f"{where}: invalid {CONFIG_FILE} ({problems})") from exc
