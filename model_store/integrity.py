"""Checking a version's files against its manifest: the listing, sizes and sha256 checksums."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from model_store.errors import IntegrityError, UnsafeModelError
from model_store.hashing import sha256_file
from model_store.keys import MANIFEST_FILE
from model_store.onnx_files import check_external_data
from model_store.schema import Manifest


def onnx_keys(manifest: Manifest, keys: Iterable[str]) -> list[str]:
    """Which of a version's `keys` ONNX Runtime may load: the model, its variants, any .onnx."""
    declared = {manifest.model_file, *(v.file for v in manifest.variants.values())}
    return sorted(declared | {key for key in keys if key.endswith(".onnx")})


def compare_listing(actual: Mapping[str, int], manifest: Manifest) -> None:
    """Raise IntegrityError unless `actual` (key → size, manifest excluded) is exactly the
    manifest's file list with the listed sizes."""
    expected = {entry.path: entry.size for entry in manifest.files}
    where = f"{manifest.name} v{manifest.version}"
    for key in sorted(expected.keys() - actual.keys()):
        raise IntegrityError(f"{where}: file {key!r} is missing")
    for key in sorted(actual.keys() - expected.keys()):
        raise IntegrityError(f"{where}: file {key!r} is not listed in the manifest")
    for key, size in sorted(actual.items()):
        if size != expected[key]:
            raise IntegrityError(
                f"{where}: file {key!r} has {size} bytes, manifest says {expected[key]}"
            )


def list_version_dir(version_dir: Path) -> dict[str, int]:
    """key → size of every file under `version_dir` except the manifest; refuses symlinks."""
    if version_dir.is_symlink():
        raise UnsafeModelError(f"{version_dir} is a symlink; versions hold none")
    found: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(version_dir):
        base = Path(dirpath)
        for name in [*dirnames, *filenames]:
            path = base / name
            if path.is_symlink():
                rel = path.relative_to(version_dir).as_posix()
                raise UnsafeModelError(f"{version_dir}: {rel!r} is a symlink; versions hold none")
        for name in filenames:
            path = base / name
            rel = path.relative_to(version_dir).as_posix()
            if rel == MANIFEST_FILE:
                continue
            if not path.is_file():
                raise UnsafeModelError(f"{version_dir}: {rel!r} is not a regular file")
            found[rel] = path.stat().st_size
    return found


def verify_dir(version_dir: Path, manifest: Manifest, *, checksums: bool = True) -> None:
    """Check a local copy of a version: listing, sizes, checksums (unless the caller has just
    computed them), and that external data stays inside the directory."""
    compare_listing(list_version_dir(version_dir), manifest)
    for entry in manifest.files if checksums else ():
        digest, _ = sha256_file(version_dir / entry.path)
        if digest != entry.sha256:
            raise IntegrityError(
                f"{manifest.name} v{manifest.version}: file {entry.path!r} has sha256 "
                f"{digest[:12]}…, manifest says {entry.sha256[:12]}…"
            )
    for key in onnx_keys(manifest, (entry.path for entry in manifest.files)):
        check_external_data(version_dir / key, version_dir)
