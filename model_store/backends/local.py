"""A store in a local (or network-mounted POSIX) directory.

Publishing stages every file in `<model>/.staging/<token>/`, writes the manifest there last, and
claims the version with one `rename(2)` of the staging directory to `<model>/<N>`: the rename
fails when `<N>` already holds a version, so concurrent publishers (threads or processes) end up
with distinct numbers, and a reader sees a version directory only once it is complete.

Each publisher holds an `flock` on `.staging/<token>.lock` while it works. A staging directory
whose lock can be taken belongs to a publisher that died (the kernel drops locks of killed
processes), so the next publisher or `gc` removes it; a live publisher's is never touched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from model_store.backends.base import CHANGES, Backend, Document
from model_store.errors import IntegrityError
from model_store.hashing import copy_and_hash, fsync_dir
from model_store.integrity import verify_dir
from model_store.keys import MANIFEST_FILE, version_dir_name
from model_store.schema import MODEL_NAME_PATTERN, Manifest

log = logging.getLogger(__name__)

STAGING = ".staging"
TRASH = ".trash"
LOCK = ".lock"
# rename(2) refuses a non-empty target with one of these; ENOTDIR when a plain file squats there.
_TAKEN = {errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR}


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by `data`: a reader sees the old file or the new one, never a mix."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class LocalBackend(Backend):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = str(root)

    def _model_dir(self, name: str) -> Path:
        return self.root / name

    def model_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if MODEL_NAME_PATTERN.fullmatch(p.name) and p.is_dir() and not p.is_symlink()
        )

    def versions(self, name: str) -> list[int]:
        model_dir = self._model_dir(name)
        # Symlinked model or version directories could lead anywhere: they are not versions.
        if model_dir.is_symlink() or not model_dir.is_dir():
            return []
        found = []
        for entry in model_dir.iterdir():
            version = version_dir_name(entry.name)
            if version is not None and not entry.is_symlink() and (entry / MANIFEST_FILE).is_file():
                found.append(version)
        return sorted(found)

    def read_manifest(self, name: str, version: int) -> bytes | None:
        try:
            return (self._model_dir(name) / str(version) / MANIFEST_FILE).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, name: str, files: Mapping[str, Path], manifest: Manifest) -> int:
        model_dir = self._model_dir(name)
        staging_root = model_dir / STAGING
        staging_root.mkdir(parents=True, exist_ok=True)
        self.clean_leftovers(name)
        token = uuid.uuid4().hex
        lock_path = staging_root / f"{token}.lock"
        # Lock first, then create the directory: a cleaner never sees our directory unlocked.
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        stage = staging_root / token
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            stage.mkdir()
            self._stage_files(stage, files, manifest)
            version = self._claim(model_dir, stage, manifest)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        finally:
            lock_path.unlink(missing_ok=True)
            os.close(lock_fd)
        log.info("published %s version %d", name, version)
        return version

    def _stage_files(self, stage: Path, files: Mapping[str, Path], manifest: Manifest) -> None:
        dirs = {stage}
        for key, source in files.items():
            target = stage / key
            target.parent.mkdir(parents=True, exist_ok=True)
            dirs.update(p for p in target.parents if p.is_relative_to(stage))
            digest, size = copy_and_hash(source, target)
            entry = manifest.file(key)
            if (digest, size) != (entry.sha256, entry.size):
                raise IntegrityError(f"{source} changed while it was being published")
        for directory in dirs:
            fsync_dir(directory)

    def _claim(self, model_dir: Path, stage: Path, manifest: Manifest) -> int:
        version = self._next_version(model_dir)
        while True:
            numbered = manifest.model_copy(update={"version": version})
            write_atomically(stage / MANIFEST_FILE, numbered.model_dump_json(indent=2).encode())
            try:
                os.rename(stage, model_dir / str(version))
            except OSError as exc:
                if exc.errno not in _TAKEN:
                    raise
                # Another publisher claimed it first: take the next free number.
                version = max(version + 1, self._next_version(model_dir))
                continue
            fsync_dir(model_dir)
            return version

    @staticmethod
    def _next_version(model_dir: Path) -> int:
        # Count every numbered entry, complete or not, so a number is never handed out twice.
        numbers = [v for p in model_dir.iterdir() if (v := version_dir_name(p.name)) is not None]
        return max(numbers, default=0) + 1

    def clean_leftovers(self, name: str) -> int:
        """Remove staging and trash left behind by killed publishers or interrupted gc runs."""
        model_dir = self._model_dir(name)
        removed: list[Path] = []
        staging_root = model_dir / STAGING
        if staging_root.is_dir():
            for stage in staging_root.iterdir():
                if stage.is_dir() and self._owner_is_gone(staging_root / f"{stage.name}.lock"):
                    shutil.rmtree(stage, ignore_errors=True)
                    (staging_root / f"{stage.name}.lock").unlink(missing_ok=True)
                    removed.append(stage)
        trash = model_dir / TRASH
        if trash.is_dir():
            for entry in trash.iterdir():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        if removed:
            log.info("removed %d leftovers of interrupted publishes in %s", len(removed), name)
        return len(removed)

    @staticmethod
    def _owner_is_gone(lock_path: Path) -> bool:
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:
            # The owner creates and locks its lock file before the directory and removes it
            # after the rename, so a directory without one is left from a killed process.
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
        return True

    # -- model-level documents ----------------------------------------------------------------

    def read_document(self, name: str, doc: Document) -> bytes | None:
        try:
            return (self._model_dir(name) / doc).read_bytes()
        except FileNotFoundError:
            return None

    def update_document(
        self, name: str, doc: Document, update: Callable[[bytes | None], bytes]
    ) -> None:
        model_dir = self._model_dir(name)
        model_dir.mkdir(parents=True, exist_ok=True)
        with _locked(model_dir / LOCK):
            write_atomically(model_dir / doc, update(self.read_document(name, doc)))

    def read_changes(self) -> bytes | None:
        try:
            return (self.root / CHANGES).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def write_changes(self, token: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomically(self.root / CHANGES, token)

    # -- maintenance and reading --------------------------------------------------------------

    def delete_version(self, name: str, version: int) -> None:
        model_dir = self._model_dir(name)
        trash = model_dir / TRASH
        trash.mkdir(exist_ok=True)
        # Renaming first makes the version vanish at once; the slow delete happens out of sight.
        doomed = trash / f"{version}.{uuid.uuid4().hex}"
        os.rename(model_dir / str(version), doomed)
        fsync_dir(model_dir)
        shutil.rmtree(doomed)

    def verify(self, name: str, version: int, manifest: Manifest) -> None:
        verify_dir(self._model_dir(name) / str(version), manifest)

    def materialize(self, name: str, version: int, manifest: Manifest, cache_dir: Path) -> Path:
        # The version directory is already local and immutable: verify it in place.
        version_dir = self._model_dir(name) / str(version)
        verify_dir(version_dir, manifest)
        return version_dir
