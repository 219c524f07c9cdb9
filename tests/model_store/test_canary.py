"""A canary in the store: starting it, promoting or rolling it back, and what a polling server
may read between the document writes; gc and verify around it. Local and S3 stores alike."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from model_store import ModelStore, VersionNotFoundError, add_onnx, open_store
from model_store.backends.base import Document
from model_store.cli import main
from model_store.policy import (
    CanaryError,
    desired_versions,
    promote_canary,
    rollback_canary,
    start_canary,
)
from model_store.schema import Aliases, ModelConfig, VersionPolicy
from tests.model_store.seaweed import SeaweedS3
from tests.service import models


@pytest.fixture(params=["local", pytest.param("s3", marks=[pytest.mark.s3])])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ModelStore:
    if request.param == "local":
        return open_store(tmp_path / "store")
    store: ModelStore = request.getfixturevalue("s3_store")
    return store


def _three_versions(store: ModelStore, model_file: Path) -> None:
    """m v1, v2, v3 (same signature) under an alias policy, stable → v1."""
    config = ModelConfig(version_policy=VersionPolicy(kind="alias"))
    for _ in range(3):
        add_onnx(store, "m", model_file, config=config)
    store.promote("m", 1)


def test_a_canary_starts_changes_its_weight_and_is_promoted(
    any_store: ModelStore, model_file: Path
) -> None:
    _three_versions(any_store, model_file)
    canary = start_canary(any_store, "m", 2, weight=0.2)
    assert (canary.champion, canary.candidate, canary.alias) == (1, 2, "stable")
    policy = any_store.config("m").version_policy
    assert (policy.kind, policy.candidate, policy.weight, policy.mirror) == ("canary", 2, 0.2, 0)
    start_canary(any_store, "m", "2", weight=0.5, mirror=0.25)  # same candidate: new shares
    policy = any_store.config("m").version_policy
    assert (policy.weight, policy.mirror) == (0.5, 0.25)

    promote_canary(any_store, "m")
    assert any_store.aliases("m") == {"stable": 2}
    assert any_store.config("m").version_policy == VersionPolicy(kind="alias")
    any_store.rollback("m")  # outside a canary, the alias history works as before
    assert any_store.aliases("m") == {"stable": 1}


def test_a_rolled_back_canary_leaves_stable_where_it_was(
    any_store: ModelStore, model_file: Path
) -> None:
    _three_versions(any_store, model_file)
    start_canary(any_store, "m", 3, weight=0.0, mirror=0.5)  # a shadow
    ended = rollback_canary(any_store, "m")
    assert (ended.champion, ended.candidate) == (1, 3)
    assert any_store.aliases("m") == {"stable": 1}
    assert any_store.config("m").version_policy == VersionPolicy(kind="alias")


def test_the_canary_keeps_the_rest_of_the_config(store: ModelStore, model_file: Path) -> None:
    config = ModelConfig(
        version_policy=VersionPolicy(kind="alias", alias="prod"), labels={"logits": ("a", "b")}
    )
    add_onnx(store, "m", model_file, config=config)
    add_onnx(store, "m", model_file)
    store.promote("m", 1, alias="prod")
    canary = start_canary(store, "m", 2, weight=0.1)
    assert canary.alias == "prod"  # the model's own alias is the champion's
    assert store.config("m").labels == {"logits": ("a", "b")}
    promote_canary(store, "m")
    assert store.aliases("m") == {"prod": 2}
    assert store.config("m").version_policy == VersionPolicy(kind="alias", alias="prod")


@pytest.mark.parametrize(
    ("setup", "version", "shares", "message"),
    [
        ("no-stable", 2, (0.2, 0.0), "has no 'stable' version to be the champion"),
        ("", 1, (0.2, 0.0), "version 1 of 'm' is already 'stable'"),
        ("", 7, (0.2, 0.0), "has no version 7"),
        ("", 2, (0.0, 0.0), "sends the candidate nothing"),
        ("", 2, (1.5, 0.0), "canary weight 1.5 must be between 0 and 1"),
        ("canary-3", 2, (0.2, 0.0), "already has a canary of version 3"),
        ("other-inputs", 4, (0.2, 0.0), "differ in their inputs"),
    ],
)
def test_a_canary_that_cannot_work_is_refused(
    store: ModelStore,
    model_file: Path,
    tmp_path: Path,
    setup: str,
    version: int,
    shares: tuple[float, float],
    message: str,
) -> None:
    _three_versions(store, model_file)
    if setup == "no-stable":
        store.set_config("m", ModelConfig())
        store.backend.update_document(
            "m", "aliases.json", lambda _: Aliases().model_dump_json().encode()
        )
    if setup == "canary-3":
        start_canary(store, "m", 3, weight=0.1)
    if setup == "other-inputs":
        add_onnx(store, "m", models.add_model(tmp_path))  # v4 takes x and y
    before = store.config("m")
    with pytest.raises((CanaryError, VersionNotFoundError, ValueError), match=message):
        start_canary(store, "m", version, weight=shares[0], mirror=shares[1])
    assert store.config("m") == before


def test_promote_or_rollback_without_a_canary_is_refused(
    store: ModelStore, model_file: Path
) -> None:
    _three_versions(store, model_file)
    for end in (promote_canary, rollback_canary):
        with pytest.raises(CanaryError, match="has no canary in progress"):
            end(store, "m")


# --- what a polling server may read between the writes ---------------------------------------

Snapshot = tuple[VersionPolicy, dict[str, int]]


def _recording(store: ModelStore) -> list[Snapshot]:
    """The (policy, aliases) the store holds after each document write from now on."""
    snapshots: list[Snapshot] = [(store.config("m").version_policy, store.aliases("m"))]
    backend = store.backend
    original = backend.update_document

    def recorded(name: str, doc: Document, update: Callable[[bytes | None], bytes]) -> None:
        original(name, doc, update)
        snapshots.append((store.config("m").version_policy, store.aliases("m")))

    backend.update_document = recorded  # type: ignore[method-assign]
    return snapshots


def _served_by_any_read(snapshots: list[Snapshot], versions: list[int]) -> set[frozenset[int]]:
    """What a server may select: it reads the config, then the aliases, so its aliases are as
    new as its config or newer (snapshot j >= i)."""
    seen = set()
    for i, (policy, _) in enumerate(snapshots):
        for _, aliases in snapshots[i:]:
            seen.add(frozenset(desired_versions(policy, versions, aliases)))
    return seen


@pytest.mark.parametrize(
    ("step", "allowed"),
    [
        ("start", {frozenset({1}), frozenset({1, 2})}),
        ("promote", {frozenset({1, 2}), frozenset({2})}),
        ("rollback", {frozenset({1, 2}), frozenset({1})}),
    ],
)
def test_every_state_between_the_writes_serves_the_champion_or_the_candidate(
    any_store: ModelStore, model_file: Path, step: str, allowed: set[frozenset[int]]
) -> None:
    _three_versions(any_store, model_file)
    if step != "start":
        start_canary(any_store, "m", 2, weight=0.2)
    snapshots = _recording(any_store)
    {"start": lambda: start_canary(any_store, "m", 2, weight=0.2),
     "promote": lambda: promote_canary(any_store, "m"),
     "rollback": lambda: rollback_canary(any_store, "m")}[step]()  # fmt: skip
    assert len(snapshots) >= 2
    assert _served_by_any_read(snapshots, [1, 2, 3]) <= allowed


# --- retention --------------------------------------------------------------------------------


def test_gc_keeps_aliased_canary_and_policy_selected_versions(
    any_store: ModelStore, model_file: Path
) -> None:
    for _ in range(7):
        add_onnx(any_store, "m", model_file)
    any_store.promote("m", 2)
    any_store.promote("m", 1, alias="old")
    start_canary(any_store, "m", 4, weight=0.1)
    assert any_store.gc("m", keep=1) == [3, 5, 6]  # kept: old, stable, canary, newest
    assert any_store.list_versions("m") == [1, 2, 4, 7]

    rollback_canary(any_store, "m")
    any_store.set_config(
        "m", ModelConfig(version_policy=VersionPolicy(kind="specific", versions=(4,)))
    )
    assert any_store.gc("m", keep=1) == []  # 4 is what the policy serves
    any_store.set_config("m", ModelConfig())
    assert any_store.gc("m", keep=1) == [4]


def test_gc_keeps_what_a_latest_policy_serves(store: ModelStore, model_file: Path) -> None:
    store.set_config("m", ModelConfig(version_policy=VersionPolicy(kind="latest", latest=3)))
    for _ in range(4):
        add_onnx(store, "m", model_file)
    assert store.gc("m", keep=1) == [1]


def test_verify_without_a_name_checks_every_version_of_every_model(
    any_store: ModelStore,
    model_file: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("a", "b", "b"):
        add_onnx(any_store, name, model_file)
    assert main(["--store", any_store.uri, "verify"]) == 0
    if any_store.uri.startswith("s3://"):
        seaweed: SeaweedS3 = request.getfixturevalue("seaweed")
        prefix = any_store.uri.removeprefix("s3://").partition("/")[2]
        seaweed.client().put_object(
            Bucket=seaweed.bucket, Key=f"{prefix}/b/1/model.onnx", Body=b"tampered"
        )
    else:
        (Path(any_store.uri) / "b" / "1" / "model.onnx").write_bytes(b"tampered")
    capsys.readouterr()
    assert main(["--store", any_store.uri, "verify"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[1].startswith("b version 1: FAILED: ")
    assert err == "error: 1 of 3 versions failed verification: b v1\n"
