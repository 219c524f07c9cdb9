"""The two documents of the store: a version's `manifest.json` and a model's `config.json`.

The manifest describes one immutable version (its files, signature and provenance); the config
describes how a model is served (batching, version policy, ragged inputs, labels) and may change
between versions. Both carry a `schema_version` so that readers can refuse what they do not know.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from model_store.errors import StoreError

SCHEMA_VERSION: Final = 1

MODEL_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")

# Open Inference Protocol tensor datatypes, in the spec's spelling.
Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]


class InvalidModelNameError(StoreError, ValueError):
    """A model name that would not be safe as a directory or object-key component."""


def validate_model_name(name: str) -> str:
    if not isinstance(name, str) or not MODEL_NAME_PATTERN.fullmatch(name):
        shown = name if isinstance(name, str) and len(name) <= 80 else f"{str(name)[:80]}…"
        raise InvalidModelNameError(
            f"invalid model name {shown!r}: names must match {MODEL_NAME_PATTERN.pattern}"
        )
    # '.' and '..' cannot match (they start with '.'), but a name like 'a..b' is harmless.
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    """One input or output of a model. `-1` marks a dynamic axis (the batch axis among them)."""

    name: str = Field(min_length=1)
    datatype: Datatype
    shape: tuple[int, ...]

    @field_validator("shape")
    @classmethod
    def _dims_are_sizes_or_dynamic(cls, shape: tuple[int, ...]) -> tuple[int, ...]:
        if any(d < -1 or d == 0 for d in shape):
            raise ValueError(f"shape {list(shape)}: dimensions are positive or -1 (dynamic)")
        return shape


class FileEntry(_Strict):
    """A file of a version, relative to the version directory."""

    path: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)

    @field_validator("path")
    @classmethod
    def _stays_inside_version(cls, path: str) -> str:
        parts = path.split("/")
        if path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"file path {path!r} must be relative and stay inside the version")
        return path


class Producer(_Strict):
    """What wrote the version. Models imported with `add` name their own producer."""

    package: str
    package_version: str | None = None
    torch: str | None = None
    onnx: str | None = None
    opset: int | None = None


class Variant(_Strict):
    """An alternative encoding of the same model (fp16 for GPUs, int8 for CPUs)."""

    file: str
    precision: Literal["fp32", "fp16", "int8"]
    metrics: dict[str, float] = Field(default_factory=dict)
    accuracy_delta: float | None = None


class Manifest(_Strict):
    """`<store>/<model>/<version>/manifest.json`: written last, its presence completes a version.

    `version` is 0 until `publish` assigns the real number.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str
    version: int = Field(default=0, ge=0)
    model_file: str = "model.onnx"
    files: tuple[FileEntry, ...] = ()
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    producer: Producer
    dataset: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    parity: dict[str, float] = Field(default_factory=dict)
    variants: dict[str, Variant] = Field(default_factory=dict)
    labels: tuple[str, ...] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        return validate_model_name(name)

    @model_validator(mode="after")
    def _model_file_is_listed(self) -> Manifest:
        if self.files and self.model_file not in {f.path for f in self.files}:
            raise ValueError(f"model_file {self.model_file!r} is not among the listed files")
        return self

    def file(self, path: str) -> FileEntry:
        for entry in self.files:
            if entry.path == path:
                return entry
        raise KeyError(path)


class RaggedInput(_Strict):
    """An input whose `axis` varies per request; the batcher pads it to the longest in a batch.

    `lengths_input` names the model input (INT64, shape [-1]) that receives each sample's true
    length; `mask_input` names one (BOOL, shape [-1, -1], True = padding) that receives the
    key-padding mask. A client may omit both: the server derives them from the shapes it got.

    `max_length` is the longest the variable axis may be in a request (a 400 above it); without
    it the server's INDUCTIVE_MAX_SEQUENCE_LENGTH, when set, and its element limit bound it. A
    model whose cost grows faster than its input needs one: self-attention is quadratic in the
    length, so a single 2 MB sequence of 40,000 steps would otherwise hold the model for
    minutes and ask for tens of GB.
    """

    input: str
    axis: int = Field(default=1, ge=1)
    pad_value: float = 0.0
    lengths_input: str | None = None
    mask_input: str | None = None
    max_length: int | None = Field(default=None, ge=1)


class VersionPolicy(_Strict):
    """Which versions a server loads (Triton's version policies, plus a store alias and a canary).

    latest: the newest `latest` versions; specific: exactly `versions`; all: every version;
    alias: the version an alias such as `stable` points to (promote/rollback move it);
    canary: the alias's version (the champion) and `candidate`. A request that names no version
    is answered by the candidate with probability `weight`, else by the champion; of the requests
    the champion answers, a share `mirror` is also run on the candidate, whose outputs are only
    compared with the champion's, never sent (a shadow: `weight` 0, `mirror` > 0).
    """

    kind: Literal["latest", "specific", "all", "alias", "canary"] = "latest"
    latest: int = Field(default=1, ge=1)
    versions: tuple[int, ...] = ()
    alias: str = "stable"
    candidate: int | None = Field(default=None, ge=1)
    weight: float = Field(default=0.0, ge=0.0, le=1.0)
    mirror: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _fields_fit_the_kind(self) -> VersionPolicy:
        if self.kind == "specific" and not self.versions:
            raise ValueError("version_policy kind 'specific' needs a non-empty 'versions' list")
        if any(v < 1 for v in self.versions):
            raise ValueError(f"version_policy versions {list(self.versions)} must be positive")
        if self.kind == "canary" and self.candidate is None:
            raise ValueError("version_policy kind 'canary' needs a 'candidate' version")
        if self.kind != "canary" and (self.candidate is not None or self.weight or self.mirror):
            raise ValueError(
                f"'candidate', 'weight' and 'mirror' belong to kind 'canary', not {self.kind!r}"
            )
        return self


class BatchingConfig(_Strict):
    max_batch_size: int = Field(default=64, ge=1)
    # 0 (Triton's default too): a batch starts as soon as the worker is free. Batches still
    # grow under load, from the requests that queue while the previous batch computes, and a
    # lone request never waits for company that is not coming (the c=1 latency target).
    max_queue_delay_ms: float = Field(default=0.0, ge=0)
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = Field(default=1024, ge=1)
    default_timeout_ms: float | None = Field(default=None, gt=0)


class ModelConfig(_Strict):
    """`<store>/<model>/config.json`: how the model is served. Absent means all defaults."""

    schema_version: Literal[1] = SCHEMA_VERSION
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    version_policy: VersionPolicy = Field(default_factory=VersionPolicy)
    ragged_inputs: tuple[RaggedInput, ...] = ()
    # Class labels per output name, used by the classification extension.
    labels: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # Outputs for which NaN/Inf in inputs are refused (None = allowed).
    reject_non_finite_inputs: bool = False
    # Under a server's memory budget: loaded at start-up and never unloaded to make room.
    pinned: bool = False

    @model_serializer(mode="wrap")
    def _unpinned_is_not_written(self, write: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A config that pins nothing is written without the field, so that servers from
        before pinning (which refuse unknown fields) still read what newer tools write."""
        data: dict[str, Any] = write(self)
        if not self.pinned:
            data.pop("pinned", None)
        return data


class Aliases(_Strict):
    """`<store>/<model>/aliases.json`: alias → version, with each alias's earlier targets."""

    schema_version: Literal[1] = SCHEMA_VERSION
    current: dict[str, int] = Field(default_factory=dict)
    history: dict[str, tuple[int, ...]] = Field(default_factory=dict)


AliasName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
