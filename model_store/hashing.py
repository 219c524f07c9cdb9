"""Checksums of version files, computed in one pass while copying where possible."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 20  # 1 MiB: large enough that hashing runs at memory speed, small enough to stream


def sha256_file(path: Path) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file."""
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256")
        size = f.tell()
    return digest.hexdigest(), size


def copy_and_hash(src: Path, dst: Path) -> tuple[str, int]:
    """Copy `src` to a new file `dst`, fsync it; returns the (sha256, size) of what was written."""
    digest = hashlib.sha256()
    size = 0
    with src.open("rb") as fin, dst.open("xb") as fout:
        while chunk := fin.read(_CHUNK):
            digest.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return digest.hexdigest(), size


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (new files, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
