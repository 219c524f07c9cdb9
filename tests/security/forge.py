"""Versions crafted by hand on disk, the way an attacker with write access to the store (or a
buggy publisher) could leave them: files written directly, a matching manifest written last, no
check by `model_store.publish`. The server must refuse them at load time by itself."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from model_store import FileEntry, Manifest, open_store


def forge_version(store_dir: Path, name: str, files: dict[str, bytes | Path]) -> int:
    """Writes `files` (key → bytes, or a Path to link to as a symlink) as the next version of
    `name`, with a copy of the latest manifest listing them; returns the version number."""
    store = open_store(str(store_dir))
    latest = store.list_versions(name)[-1]
    version = latest + 1
    version_dir = store_dir / name / str(version)
    version_dir.mkdir()
    entries = []
    for key, content in sorted(files.items()):
        path = version_dir / key
        if isinstance(content, Path):
            path.symlink_to(content)
            content = content.read_bytes()
        else:
            path.write_bytes(content)
        entries.append(FileEntry(path=key, sha256=hashlib.sha256(content).hexdigest(),
                                 size=len(content)))  # fmt: skip
    manifest = store.manifest(name, latest).model_copy(
        update={"version": version, "files": tuple(entries)}
    )
    Manifest.model_validate(manifest.model_dump())  # still a valid manifest, only lying
    (version_dir / "manifest.json").write_text(json.dumps(manifest.model_dump(mode="json")))
    # The store-wide change marker, rewritten as by any writer through the store: a polling
    # server reads the store at once instead of at its next full read (a minute away).
    store.backend.write_changes(f"forged {name} v{version}".encode())
    return version
