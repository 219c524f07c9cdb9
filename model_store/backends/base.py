"""The interface every storage backend implements.

A backend knows how to store bytes atomically; the rules (names, manifests, aliases, what gc may
delete) live in `model_store.store.ModelStore`, once for all backends. Names, versions and keys
reaching a backend were validated by the store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from model_store.schema import Manifest

# Model-level documents beside the version directories. `evaluation.npz` is the model's frozen
# evaluation set (model_store.store.ModelStore.freeze_evaluation_set), written once.
Document = Literal["config.json", "aliases.json", "evaluation.npz"]
# The store-wide change marker, at the store's root: not a valid model name.
CHANGES = ".changes"


class Backend(ABC):
    uri: str

    @abstractmethod
    def model_names(self) -> list[str]:
        """Names of the models that have a directory (or prefix), complete versions or not."""

    @abstractmethod
    def versions(self, name: str) -> list[int]:
        """Complete versions of `name` (manifest present), ascending; [] for an unknown model."""

    @abstractmethod
    def read_manifest(self, name: str, version: int) -> bytes | None:
        """The raw manifest of a version, None when the version is not complete."""

    @abstractmethod
    def publish(self, name: str, files: Mapping[str, Path], manifest: Manifest) -> int:
        """Store `files` (key → local source) as a new version and return its number.

        `manifest.files` lists every key with its checksum; the backend sets `version` and
        writes the manifest last, so that no reader ever sees a partial version.
        """

    @abstractmethod
    def read_document(self, name: str, doc: Document) -> bytes | None:
        """A model-level document, None when absent."""

    @abstractmethod
    def update_document(
        self, name: str, doc: Document, update: Callable[[bytes | None], bytes]
    ) -> None:
        """Replace a document by `update(current)`, atomically and without lost updates when
        several writers race (`update` may be called more than once)."""

    @abstractmethod
    def read_changes(self) -> bytes | None:
        """The store-wide change marker, None when absent (readers then read the whole store
        at every poll, as before markers existed)."""

    @abstractmethod
    def write_changes(self, token: bytes) -> None:
        """Replaces the store-wide change marker (last writer wins: any new value is a change)."""

    @abstractmethod
    def delete_version(self, name: str, version: int) -> None:
        """Remove a version; readers see it either whole or not at all."""

    @abstractmethod
    def clean_leftovers(self, name: str) -> int:
        """Remove what interrupted publishes or deletions left behind; returns how many."""

    @abstractmethod
    def verify(self, name: str, version: int, manifest: Manifest) -> None:
        """Raise IntegrityError unless the stored files match `manifest` exactly."""

    @abstractmethod
    def materialize(self, name: str, version: int, manifest: Manifest, cache_dir: Path) -> Path:
        """A local directory holding the verified files of the version."""
