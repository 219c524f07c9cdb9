"""`open_store(uri)`: a directory path, or `s3://bucket/prefix` for S3-compatible storage."""

from __future__ import annotations

from pathlib import Path

from model_store.store import ModelStore


def open_store(uri: str | Path, *, endpoint_url: str | None = None) -> ModelStore:
    """Open the store at `uri`. For `s3://`, the endpoint, region and credentials come from the
    standard AWS environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, …) unless `endpoint_url` is
    given; that backend needs `pip install 'inductive[s3]'`."""
    text = str(uri)
    if text.startswith("s3://"):
        from model_store.backends.s3 import S3Backend  # imports boto3 only when asked for

        return ModelStore(S3Backend.from_uri(text, endpoint_url=endpoint_url))
    from model_store.backends.local import LocalBackend

    return ModelStore(LocalBackend(Path(text).expanduser()))
