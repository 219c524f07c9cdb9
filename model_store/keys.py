"""Validation of everything a caller names: file keys inside a version, aliases, version refs.

None of these strings is ever joined to a path before it passed here, so `..`, absolute paths
and odd separators cannot reach the file system or an object key.
"""

from __future__ import annotations

import re

from model_store.errors import InvalidReferenceError, UnsafeModelError

MANIFEST_FILE = "manifest.json"
ALIAS_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# A version directory name: a positive integer without leading zeros.
VERSION_PATTERN = re.compile(r"^[1-9][0-9]{0,17}$")
_KEY_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+=@,-]{0,254}$")


def validate_file_key(key: str) -> str:
    """A file path inside a version: relative, '/'-separated, no '.', '..', hidden or odd parts."""
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise UnsafeModelError(f"file key {key!r} must be a non-empty relative path")
    parts = key.split("/")
    if any(not _KEY_PART.fullmatch(part) or part in (".", "..") for part in parts):
        raise UnsafeModelError(
            f"file key {key!r} must be a relative path of plain names "
            "(letters, digits, '_.+=@,-'; no '..', no leading '.' or '/', no backslash)"
        )
    if key == MANIFEST_FILE:
        raise UnsafeModelError(f"file key {key!r} is reserved: the store writes the manifest")
    return key


def validate_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_PATTERN.fullmatch(alias):
        raise InvalidReferenceError(
            f"invalid alias {alias!r}: aliases must match {ALIAS_PATTERN.pattern}"
        )
    return alias


def parse_version(ref: int | str) -> int | None:
    """The version number `ref` names, or None when it is not a number (an alias or 'latest')."""
    if isinstance(ref, bool):
        raise InvalidReferenceError(f"invalid version reference {ref!r}")
    if isinstance(ref, int):
        if ref < 1:
            raise InvalidReferenceError(f"invalid version {ref}: versions are positive integers")
        return ref
    if isinstance(ref, str) and VERSION_PATTERN.fullmatch(ref):
        return int(ref)
    if isinstance(ref, str) and ref.isdigit():
        raise InvalidReferenceError(f"invalid version {ref!r}: versions are positive integers")
    return None


def version_dir_name(name: str) -> int | None:
    """The version a directory (or key component) called `name` holds, None if it is not one."""
    return int(name) if VERSION_PATTERN.fullmatch(name) else None
