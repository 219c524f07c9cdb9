"""The peers' venvs are built from their lock files and rebuilt only when a lock changes (a
record run or a test session must not pay for an install it already has)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.contenders.venvs import VenvError, ensure_venv


def test_a_venv_is_reused_until_its_lock_changes(tmp_path: Path) -> None:
    locks, root = tmp_path / "locks", tmp_path / "venvs"
    locks.mkdir()
    lock = locks / "peer.txt"
    lock.write_text("# no packages: the venv alone\n")
    python = ensure_venv("peer", root, locks)
    assert python.is_file()
    marker = python.parent / "built-here"
    marker.write_text("1")
    assert ensure_venv("peer", root, locks) == python
    assert marker.exists()  # same lock: not rebuilt
    lock.write_text("# no packages, but another lock\n")
    ensure_venv("peer", root, locks)
    assert not marker.exists()  # `uv venv --clear` made it anew


def test_a_peer_without_a_lock_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VenvError, match="no lock file"):
        ensure_venv("nobody", tmp_path / "venvs", tmp_path)
