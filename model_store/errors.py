"""Errors raised by the model store. Everything the store raises on purpose is a `StoreError`."""

from __future__ import annotations


class StoreError(Exception):
    """Base class: a store operation that could not be done as asked."""


class ModelNotFoundError(StoreError, LookupError):
    """The model has no complete version in the store."""


class VersionNotFoundError(StoreError, LookupError):
    """The version (or the alias naming one) does not exist."""


class InvalidReferenceError(StoreError, ValueError):
    """A version reference, alias name or file key that is malformed (never used as a path)."""


class IntegrityError(StoreError):
    """A version's files do not match its manifest (missing, extra, wrong size or checksum)."""


class UnsafeModelError(StoreError):
    """A file that would reach outside its version directory: symlinks, `..`, absolute paths."""


class UnsupportedModelError(StoreError):
    """An ONNX model the store cannot describe (e.g. an input type with no V2 datatype)."""


class StoreUnavailableError(StoreError):
    """The store could not be reached (object storage down, connection refused, timeouts)."""
