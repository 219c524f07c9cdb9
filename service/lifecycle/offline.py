"""Start-up during a store outage: what the verified cache of an object store can serve.

A server syncs each version of an S3 store into `INDUCTIVE_CACHE_DIR/<model>/<version>/`, the
files and the manifest they were checked against (model_store/backends/s3.py). When it starts
while the store is unreachable, those copies are all it has: each is checked again against its
own manifest (listing, sizes, sha256, external data) and only the ones that pass are served, so a
copy damaged on disk is never served. The manager serves them until the store answers, then syncs
every model as usual: its version policy decides again, and versions it does not select leave.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from model_store.errors import StoreError
from model_store.integrity import verify_dir
from model_store.keys import MANIFEST_FILE
from model_store.schema import MODEL_NAME_PATTERN, Manifest


@dataclass(frozen=True)
class CachedVersion:
    name: str
    version: int
    directory: Path
    manifest: Manifest


@dataclass(frozen=True)
class CacheScan:
    versions: list[CachedVersion]
    problems: list[str]  # copies that were not served, and why


def verified_cache(cache_dir: Path, models: frozenset[str] | None = None) -> CacheScan:
    """Every complete, verified copy in `cache_dir` (of `models`, when given), by model name and
    version; a copy that fails its checks is left out and named in `problems`."""
    found: list[CachedVersion] = []
    problems: list[str] = []
    if not cache_dir.is_dir():
        return CacheScan(found, problems)
    for model_dir in sorted(cache_dir.iterdir()):
        name = model_dir.name
        if not MODEL_NAME_PATTERN.fullmatch(name) or not model_dir.is_dir():
            continue
        if models is not None and name not in models:
            continue
        # Interrupted downloads (.partial-*) and anything else not a version number are skipped.
        numbered = [d for d in model_dir.iterdir() if d.name.isdigit() and d.is_dir()]
        for version_dir in sorted(numbered, key=lambda d: int(d.name)):
            version = int(version_dir.name)
            try:
                manifest = _checked(version_dir, name, version)
            except (StoreError, ValidationError, OSError) as exc:
                problems.append(f"{name} v{version}: {_one_line(exc)}")
                continue
            found.append(CachedVersion(name, version, version_dir, manifest))
    return CacheScan(found, problems)


def _checked(version_dir: Path, name: str, version: int) -> Manifest:
    manifest = Manifest.model_validate_json((version_dir / MANIFEST_FILE).read_bytes())
    if (manifest.name, manifest.version) != (name, version):
        raise StoreError(f"its manifest says {manifest.name} v{manifest.version}")
    verify_dir(version_dir, manifest)
    return manifest


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
