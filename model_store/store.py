"""`ModelStore`: the store's rules, the same over every backend.

Validation (names, keys, refs, symlinks, external data), manifests, aliases with history, and
what gc may delete live here; a `Backend` only moves bytes atomically.

Every change made through a store (publish, config, aliases, deletions) ends by writing a fresh
store-wide change marker (`.changes` at the root): a server polling a store of a thousand models
reads that one object, and lists and reads the models only when it changed.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import ValidationError

from model_store.backends.base import Backend, Document
from model_store.errors import (
    IntegrityError,
    InvalidReferenceError,
    ModelNotFoundError,
    StoreError,
    UnsafeModelError,
    VersionNotFoundError,
)
from model_store.hashing import sha256_file
from model_store.integrity import onnx_keys
from model_store.keys import parse_version, validate_alias, validate_file_key
from model_store.onnx_files import external_locations, load_graph, location_key
from model_store.policy import desired_versions
from model_store.schema import Aliases, FileEntry, Manifest, ModelConfig, validate_model_name

log = logging.getLogger(__name__)

# The serving config a version was published with, inside the version directory.
VERSION_CONFIG_FILE = "config.json"
# The model's frozen evaluation set (a shard, model_store/shards.py), beside config.json.
EVALUATION_DOCUMENT: Document = "evaluation.npz"


def version_config(directory: Path, manifest: Manifest) -> ModelConfig | None:
    """The config published inside a materialized (verified) version, or None if it has none."""
    if VERSION_CONFIG_FILE not in {entry.path for entry in manifest.files}:
        return None
    try:
        return ModelConfig.model_validate_json((directory / VERSION_CONFIG_FILE).read_bytes())
    except ValidationError as exc:
        raise StoreError(
            f"{manifest.name} v{manifest.version}: invalid config.json ({exc})"
        ) from exc


class ModelStore:
    """A model store over one backend. Build it with `model_store.open_store(uri)`."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @property
    def uri(self) -> str:
        return self.backend.uri

    def __repr__(self) -> str:
        return f"ModelStore({self.uri!r})"

    # -- the change marker --------------------------------------------------------------------

    def changes(self) -> bytes | None:
        """The store-wide change marker: a new value after every change made through a store;
        None for a store no such change was made to yet."""
        return self.backend.read_changes()

    def _changed(self) -> None:
        self.backend.write_changes(f"{uuid.uuid4().hex} {time.time():.3f}".encode())

    # -- reading ------------------------------------------------------------------------------

    def list_models(self) -> list[str]:
        """Models with at least one complete version."""
        return [name for name in self.backend.model_names() if self.backend.versions(name)]

    def list_versions(self, name: str) -> list[int]:
        return self.backend.versions(validate_model_name(name))

    def _versions_or_raise(self, name: str) -> list[int]:
        versions = self.list_versions(name)
        if not versions:
            raise ModelNotFoundError(f"model {name!r} has no version in {self.uri}")
        return versions

    def resolve(self, name: str, ref: int | str = "latest") -> int:
        """The version `ref` names: a number, 'latest', or an alias such as 'stable'."""
        versions = self._versions_or_raise(name)
        number = parse_version(ref)
        if number is not None:
            if number not in versions:
                raise VersionNotFoundError(f"model {name!r} has no version {number}")
            return number
        assert isinstance(ref, str)
        if ref == "latest":
            return versions[-1]
        alias = validate_alias(ref)
        target = self._aliases(name).current.get(alias)
        if target is None:
            raise VersionNotFoundError(f"model {name!r} has no alias {alias!r}")
        if target not in versions:
            raise VersionNotFoundError(
                f"alias {alias!r} of {name!r} names missing version {target}"
            )
        return target

    def manifest(self, name: str, version: int) -> Manifest:
        validate_model_name(name)
        number = parse_version(version)
        if number is None:
            raise InvalidReferenceError(f"invalid version {version!r}: expected a number")
        raw = self.backend.read_manifest(name, number)
        if raw is None:
            self._versions_or_raise(name)
            raise VersionNotFoundError(f"model {name!r} has no version {number}")
        try:
            manifest = Manifest.model_validate_json(raw)
        except ValidationError as exc:
            raise IntegrityError(f"{name} v{number}: unreadable manifest.json ({exc})") from exc
        if (manifest.name, manifest.version) != (name, number):
            raise IntegrityError(
                f"{name} v{number}: manifest says {manifest.name} v{manifest.version}"
            )
        return manifest

    def config(self, name: str) -> ModelConfig:
        """The model's serving config; defaults when it has no config.json."""
        raw = self.backend.read_document(validate_model_name(name), "config.json")
        if raw is None:
            return ModelConfig()
        try:
            return ModelConfig.model_validate_json(raw)
        except ValidationError as exc:
            raise StoreError(f"{name}: invalid config.json ({exc})") from exc

    def set_config(self, name: str, config: ModelConfig) -> None:
        validate_model_name(name)
        data = config.model_dump_json(indent=2).encode()
        self.backend.update_document(name, "config.json", lambda _old: data)
        self._changed()

    def update_config(self, name: str, change: Callable[[ModelConfig], ModelConfig]) -> None:
        """Replaces the config with `change(config)`, atomically: a writer racing this one is
        not lost (`change` may be called again with the config that writer left)."""

        def update(raw: bytes | None) -> bytes:
            try:
                old = ModelConfig() if raw is None else ModelConfig.model_validate_json(raw)
            except ValidationError as exc:
                raise StoreError(f"{name}: invalid config.json ({exc})") from exc
            return change(old).model_dump_json(indent=2).encode()

        self.backend.update_document(validate_model_name(name), "config.json", update)
        self._changed()

    # -- publishing ---------------------------------------------------------------------------

    def publish(
        self,
        name: str,
        files: Mapping[str, Path],
        manifest: Manifest,
        config: ModelConfig | None = None,
    ) -> int:
        """Publish `files` (key inside the version → local source) as a new version.

        Fills `manifest.files` (sha256, size) and `manifest.version`; returns the new version.

        A config, when given, travels inside the version (`config.json`, checksummed like every
        file) and becomes the model's config only once the version is complete. A server loads
        a version with the config published beside it, and applies a changed version policy
        only when the version it was published with exists: written first, a policy switch
        from `stable` to `latest` would let a server serve a held-back older version while the
        new one uploads.
        """
        validate_model_name(name)
        if manifest.name != name:
            raise StoreError(f"manifest names model {manifest.name!r}, publishing {name!r}")
        if config is None:
            return self._publish(name, files, manifest)
        with tempfile.TemporaryDirectory(prefix="inductive-config-") as scratch:
            snapshot = Path(scratch) / VERSION_CONFIG_FILE
            snapshot.write_bytes(config.model_dump_json(indent=2).encode())
            version = self._publish(name, {**files, VERSION_CONFIG_FILE: snapshot}, manifest)
        self.set_config(name, config)
        return version

    def _publish(self, name: str, files: Mapping[str, Path], manifest: Manifest) -> int:
        sources = {validate_file_key(key): Path(src) for key, src in files.items()}
        self._check_sources(sources, manifest)
        entries = []
        for key, source in sorted(sources.items()):
            digest, size = sha256_file(source)
            entries.append(FileEntry(path=key, sha256=digest, size=size))
        try:
            complete = Manifest.model_validate(
                {**manifest.model_dump(), "files": entries, "version": 0}
            )
        except ValidationError as exc:
            raise StoreError(f"{name}: invalid manifest ({exc})") from exc
        version = self.backend.publish(name, sources, complete)
        self._changed()
        return version

    @staticmethod
    def _check_sources(sources: Mapping[str, Path], manifest: Manifest) -> None:
        if manifest.model_file not in sources:
            raise StoreError(f"model file {manifest.model_file!r} is not among the files")
        for variant in manifest.variants.values():
            if variant.file not in sources:
                raise StoreError(f"variant file {variant.file!r} is not among the files")
        for key, source in sources.items():
            if source.is_symlink():
                raise UnsafeModelError(f"{source} is a symlink; publish the file it points to")
            if not source.is_file():
                raise StoreError(f"{source} (for {key!r}) is not a regular file")
        for key in onnx_keys(manifest, sources):
            for location in external_locations(load_graph(sources[key])):
                target = location_key(key, location)
                if target not in sources:
                    raise StoreError(
                        f"{key}: external data file {location!r} is not among the published files"
                    )

    # -- the frozen evaluation set ------------------------------------------------------------

    def evaluation_set(self, name: str) -> bytes | None:
        """The model's frozen evaluation set (shard bytes), None when it has none yet."""
        return self.backend.read_document(validate_model_name(name), EVALUATION_DOCUMENT)

    def freeze_evaluation_set(self, name: str, data: bytes) -> bytes:
        """Stores `data` as the model's evaluation set unless it has one; returns the stored set.

        Written once: every later version is judged on the same samples, so accuracies of
        different versions compare, whatever data the versions were trained on.
        """
        validate_model_name(name)
        stored = self.backend.read_document(name, EVALUATION_DOCUMENT)
        if stored is not None:
            return stored
        # A racing writer may have frozen one between the read and here: theirs stays.
        self.backend.update_document(
            name, EVALUATION_DOCUMENT, lambda old: data if old is None else old
        )
        stored = self.backend.read_document(name, EVALUATION_DOCUMENT)
        assert stored is not None
        return stored

    # -- aliases ------------------------------------------------------------------------------

    def _aliases(self, name: str) -> Aliases:
        raw = self.backend.read_document(name, "aliases.json")
        if raw is None:
            return Aliases()
        try:
            return Aliases.model_validate_json(raw)
        except ValidationError as exc:
            raise StoreError(f"{name}: invalid aliases.json ({exc})") from exc

    def aliases(self, name: str) -> dict[str, int]:
        return dict(self._aliases(validate_model_name(name)).current)

    def promote(self, name: str, version: int | str, alias: str = "stable") -> int:
        """Point `alias` at `version` (remembering its previous target for rollback)."""
        validate_alias(alias)
        number = self.resolve(name, version)

        def move(raw: bytes | None) -> bytes:
            aliases = Aliases.model_validate_json(raw) if raw else Aliases()
            current, history = dict(aliases.current), dict(aliases.history)
            previous = current.get(alias)
            if previous == number:
                return aliases.model_dump_json(indent=2).encode()
            if previous is not None:
                history[alias] = (*history.get(alias, ()), previous)
            current[alias] = number
            return Aliases(current=current, history=history).model_dump_json(indent=2).encode()

        self.backend.update_document(name, "aliases.json", move)
        self._changed()
        log.info("%s: alias %s → version %d", name, alias, number)
        return number

    def rollback(self, name: str, alias: str = "stable") -> int:
        """Point `alias` back at its previous target that still exists; returns that version."""
        validate_alias(alias)
        versions = set(self._versions_or_raise(name))
        result: list[int] = []

        def back(raw: bytes | None) -> bytes:
            aliases = Aliases.model_validate_json(raw) if raw else Aliases()
            if alias not in aliases.current:
                raise VersionNotFoundError(f"model {name!r} has no alias {alias!r}")
            earlier = list(aliases.history.get(alias, ()))
            # Versions deleted since (by hand or by gc) are skipped.
            while earlier and earlier[-1] not in versions:
                earlier.pop()
            if not earlier:
                raise StoreError(f"alias {alias!r} of {name!r} has no earlier version to return to")
            target = earlier.pop()
            result[:] = [target]
            current = {**aliases.current, alias: target}
            history = {**aliases.history, alias: tuple(earlier)}
            return Aliases(current=current, history=history).model_dump_json(indent=2).encode()

        self.backend.update_document(name, "aliases.json", back)
        self._changed()
        log.info("%s: alias %s rolled back to version %d", name, alias, result[0])
        return result[0]

    # -- integrity and maintenance ------------------------------------------------------------

    def verify(self, name: str, version: int | str) -> None:
        """Raise IntegrityError (naming the file) unless the version matches its manifest."""
        number = self.resolve(name, version)
        self.backend.verify(name, number, self.manifest(name, number))

    def materialize(self, name: str, version: int | str, cache_dir: Path | str) -> Path:
        """A local directory with the verified files of the version (see the backends)."""
        number = self.resolve(name, version)
        return self.backend.materialize(
            name, number, self.manifest(name, number), Path(os.fspath(cache_dir))
        )

    def gc(self, name: str, keep: int) -> list[int]:
        """Deletes all but the newest `keep` versions, never one that an alias names or that the
        version policy selects; returns the deleted."""
        if keep < 1:
            raise InvalidReferenceError(f"gc keep={keep}: keep at least the newest version")
        versions = self._versions_or_raise(name)
        aliases = self.aliases(name)
        policy = self.config(name).version_policy
        selected = desired_versions(policy, versions, aliases)  # a canary's candidate too
        protected = set(aliases.values()) | set(versions[-keep:]) | set(selected)
        doomed = [v for v in versions if v not in protected]
        for version in doomed:
            self.backend.delete_version(name, version)
            log.info("%s: deleted version %d", name, version)
        if doomed:
            self._changed()
        self.backend.clean_leftovers(name)
        return doomed
