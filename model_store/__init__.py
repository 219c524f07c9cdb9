"""Inductive's model store: immutable, numbered versions of ONNX models with their manifests.

Layout and guarantees are described in model_store/README.md; the public API is re-exported here.
"""

from model_store.errors import (
    IntegrityError,
    InvalidReferenceError,
    ModelNotFoundError,
    StoreError,
    StoreUnavailableError,
    UnsafeModelError,
    UnsupportedModelError,
    VersionNotFoundError,
)
from model_store.importer import add_onnx
from model_store.onnx_files import check_external_data, onnx_signature
from model_store.schema import (
    Aliases,
    BatchingConfig,
    FileEntry,
    InvalidModelNameError,
    Manifest,
    ModelConfig,
    Producer,
    RaggedInput,
    TensorSpec,
    Variant,
    VersionPolicy,
    validate_model_name,
)
from model_store.store import ModelStore, version_config
from model_store.uri import open_store

__all__ = [
    "Aliases",
    "BatchingConfig",
    "FileEntry",
    "IntegrityError",
    "InvalidModelNameError",
    "InvalidReferenceError",
    "Manifest",
    "ModelConfig",
    "ModelNotFoundError",
    "ModelStore",
    "Producer",
    "RaggedInput",
    "StoreError",
    "StoreUnavailableError",
    "TensorSpec",
    "UnsafeModelError",
    "UnsupportedModelError",
    "Variant",
    "VersionNotFoundError",
    "VersionPolicy",
    "add_onnx",
    "check_external_data",
    "onnx_signature",
    "open_store",
    "validate_model_name",
    "version_config",
]
