"""A place for data files beside the store: a local directory or an S3 prefix.

Shards to train on (`python -m training retrain --data`) and the traffic a server captures
(`INDUCTIVE_CAPTURE_URI`) are plain files in one flat place, written whole and never changed:
`open_prefix(uri)` lists, reads and writes them the same way on both. A file appears whole or not
at all (a local file is renamed into place; an S3 object is one PUT).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from model_store.errors import InvalidReferenceError, StoreError, StoreUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+=@,-]{0,254}$")


def _checked(name: str) -> str:
    if not _FILE_NAME.fullmatch(name):
        raise InvalidReferenceError(
            f"data file name {name!r} must be a plain file name (letters, digits, '_.+=@,-')"
        )
    return name


class DataPrefix(ABC):
    uri: str

    @abstractmethod
    def names(self, suffix: str = "") -> list[str]:
        """The files directly under the prefix whose names end with `suffix`, sorted."""

    @abstractmethod
    def read(self, name: str) -> bytes: ...

    @abstractmethod
    def write(self, name: str, data: bytes) -> None:
        """Creates or replaces `name` whole."""


class LocalPrefix(DataPrefix):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = str(root)

    def names(self, suffix: str = "") -> list[str]:
        if not self.root.is_dir():
            raise StoreError(f"{self.root} is not a directory")
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_file() and not p.is_symlink() and p.name.endswith(suffix)
            and _FILE_NAME.fullmatch(p.name)
        )  # fmt: skip

    def read(self, name: str) -> bytes:
        path = self.root / _checked(name)
        if path.is_symlink():
            raise StoreError(f"{path} is a symlink; data files must be regular files")
        return path.read_bytes()

    def write(self, name: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / _checked(name)
        fd, scratch = tempfile.mkstemp(dir=self.root, prefix=".writing-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(scratch, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(scratch)
            raise


class S3Prefix(DataPrefix):
    def __init__(self, client: S3Client, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._root = f"{self.prefix}/" if self.prefix else ""

    @contextlib.contextmanager
    def _calls(self, what: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        try:
            yield
        except BotoConnectionError as exc:
            raise StoreUnavailableError(f"{self.uri} unreachable ({what}): {exc}") from exc
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"{self.uri}: {what}: {exc}") from exc

    def names(self, suffix: str = "") -> list[str]:
        found = []
        with self._calls("listing"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._root, Delimiter="/"
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(self._root) :]
                    if name.endswith(suffix) and _FILE_NAME.fullmatch(name):
                        found.append(name)
        return sorted(found)

    def read(self, name: str) -> bytes:
        with self._calls(f"reading {name}"):
            response = self.client.get_object(Bucket=self.bucket, Key=self._root + _checked(name))
            return response["Body"].read()

    def write(self, name: str, data: bytes) -> None:
        with self._calls(f"writing {name}"):
            self.client.put_object(Bucket=self.bucket, Key=self._root + _checked(name), Body=data)


def open_prefix(uri: str | Path) -> DataPrefix:
    """A directory path, or `s3://bucket/prefix` (endpoint and credentials as for the store)."""
    text = str(uri)
    if text.startswith("s3://"):
        from model_store.backends.s3 import s3_client, split_uri

        bucket, prefix = split_uri(text)
        return S3Prefix(s3_client(text), bucket, prefix)
    return LocalPrefix(Path(text).expanduser())
