"""A store in S3-compatible object storage (AWS S3, SeaweedFS, MinIO, …), same layout as local.

    <prefix>/<model>/config.json, aliases.json     model-level documents
    <prefix>/<model>/<N>/<files>, <N>/manifest.json a version; the manifest is written last
    <prefix>/<model>/.claims/<N>                   who claimed version N (never deleted)

Object storage has no rename, so a publisher first claims a number with a conditional PutObject
(`If-None-Match: *`) of a small claim object: exactly one writer wins each number. It then
uploads the files (each with its SHA-256, which the server checks) and the manifest last. A
claimed number without a manifest is skipped by later publishers and invisible to readers.
Documents are updated with `If-Match: <etag>`, retried on conflict, so no update is lost.

Connection failures and 5xx answers become `StoreUnavailableError`: the service keeps serving
what it has loaded while the store is down.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_store.backends.base import CHANGES, Backend, Document
from model_store.errors import (
    IntegrityError,
    StoreError,
    StoreUnavailableError,
    UnsafeModelError,
)
from model_store.hashing import fsync_dir
from model_store.integrity import compare_listing, verify_dir
from model_store.keys import MANIFEST_FILE, validate_file_key, version_dir_name
from model_store.schema import MODEL_NAME_PATTERN, Manifest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

CLAIMS = ".claims"
_CHUNK = 1 << 20
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_DOCUMENT_ATTEMPTS = 50
# A claimed version still without a manifest after this long belongs to a dead publisher.
ABANDONED_AFTER = timedelta(hours=24)


@dataclass
class _Scan:
    complete: set[int] = field(default_factory=set)  # manifest present
    with_objects: set[int] = field(default_factory=set)  # any object under <N>/
    claims: dict[int, datetime] = field(default_factory=dict)  # claim time


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket[/prefix]` → (bucket, prefix)."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise StoreError(f"{uri}: expected s3://bucket[/prefix]")
    return bucket, prefix.strip("/")


def s3_client(uri: str, endpoint_url: str | None = None) -> S3Client:
    """A client for `uri`'s bucket; endpoint, region and credentials from the AWS environment
    unless `endpoint_url` is given."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise StoreError(f"{uri}: S3 needs boto3: pip install 'inductive[s3]'") from exc
    config = Config(
        connect_timeout=3,
        read_timeout=60,
        # Few retries: an unreachable store should be reported in seconds, not minutes.
        retries={"mode": "standard", "total_max_attempts": 3},
    )
    # endpoint_url=None lets boto3 read AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 itself.
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)


def _code(exc: Exception) -> str:
    response: dict[str, Any] = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _status(exc: Exception) -> int:
    response: dict[str, Any] = getattr(exc, "response", {}) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


class S3Backend(Backend):
    def __init__(self, client: S3Client, bucket: str, prefix: str) -> None:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            HTTPClientError,
            IncompleteReadError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from urllib3.exceptions import ProtocolError

        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._root = f"{self.prefix}/" if self.prefix else ""
        self._client_error = ClientError
        # A store that goes away mid-download cuts the body short: an incomplete read or a
        # protocol error is the store being unavailable, not a bad object.
        self._unreachable = (
            BotoConnectionError,
            HTTPClientError,
            IncompleteReadError,
            ProtocolError,
        )
        self._botocore_error = BotoCoreError

    @classmethod
    def from_uri(cls, uri: str, *, endpoint_url: str | None = None) -> S3Backend:
        """`s3://bucket[/prefix]`; endpoint, region and credentials from the AWS environment
        (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION…)."""
        bucket, prefix = split_uri(uri)
        return cls(s3_client(uri, endpoint_url), bucket, prefix)

    # -- plumbing -----------------------------------------------------------------------------

    def _key(self, name: str, *parts: str) -> str:
        return self._root + "/".join((name, *parts))

    @contextlib.contextmanager
    def _calls(self, what: str) -> Iterator[None]:
        """botocore errors → StoreUnavailableError (unreachable, 5xx) or StoreError (the rest)."""
        try:
            yield
        except self._client_error as exc:
            if _status(exc) >= 500 or _code(exc) in {"SlowDown", "ServiceUnavailable"}:
                raise StoreUnavailableError(f"{self.uri}: {what}: {exc}") from exc
            raise StoreError(f"{self.uri}: {what}: {exc}") from exc
        except self._unreachable as exc:
            raise StoreUnavailableError(f"{self.uri} unreachable ({what}): {exc}") from exc
        except self._botocore_error as exc:
            raise StoreError(f"{self.uri}: {what}: {exc}") from exc

    def _list(self, prefix: str, delimiter: str = "") -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter=delimiter)
        for page in pages:
            yield dict(page)

    def _get(self, key: str) -> tuple[bytes, str] | None:
        """(body, etag) of an object, None when it does not exist."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except self._client_error as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise
        return response["Body"].read(), response["ETag"]

    def _put_if_absent(self, key: str, body: bytes) -> bool:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
        except self._client_error as exc:
            if _code(exc) in _CONFLICT:
                return False
            raise
        return True

    def _delete_prefix(self, prefix: str, first: str | None = None) -> None:
        if first is not None:
            self.client.delete_object(Bucket=self.bucket, Key=first)
        keys = [obj["Key"] for page in self._list(prefix) for obj in page.get("Contents", [])]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": batch, "Quiet": True},  # type: ignore[typeddict-item]
            )

    # -- reading ------------------------------------------------------------------------------

    def model_names(self) -> list[str]:
        with self._calls("listing models"):
            prefixes = [
                p["Prefix"]
                for page in self._list(self._root, "/")
                for p in page.get("CommonPrefixes", [])
            ]
        names = (p[len(self._root) :].rstrip("/") for p in prefixes)
        return sorted(n for n in names if MODEL_NAME_PATTERN.fullmatch(n))

    def _scan(self, name: str) -> _Scan:
        """What the objects of one model say about its versions, from one listing."""
        base = self._key(name) + "/"
        scan = _Scan()
        with self._calls(f"listing {name}"):
            for page in self._list(base):
                for obj in page.get("Contents", []):
                    first, _, rest = obj["Key"][len(base) :].partition("/")
                    if first == CLAIMS and (v := version_dir_name(rest)) is not None:
                        scan.claims[v] = obj["LastModified"]
                    elif (v := version_dir_name(first)) is not None:
                        scan.with_objects.add(v)
                        if rest == MANIFEST_FILE:
                            scan.complete.add(v)
        return scan

    def versions(self, name: str) -> list[int]:
        return sorted(self._scan(name).complete)

    def read_manifest(self, name: str, version: int) -> bytes | None:
        with self._calls(f"reading {name} v{version} manifest"):
            found = self._get(self._key(name, str(version), MANIFEST_FILE))
        return None if found is None else found[0]

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, name: str, files: Mapping[str, Path], manifest: Manifest) -> int:
        with self._calls(f"publishing {name}"):
            version = self._claim(name)
            try:
                for key, source in files.items():
                    entry = manifest.file(key)
                    checksum = base64.b64encode(bytes.fromhex(entry.sha256)).decode()
                    with source.open("rb") as body:
                        # The server recomputes the SHA-256 and refuses a mismatch (BadDigest),
                        # so a file that changed since it was hashed never lands in a version.
                        self.client.put_object(
                            Bucket=self.bucket,
                            Key=self._key(name, str(version), key),
                            Body=body,
                            ContentLength=entry.size,
                            ChecksumSHA256=checksum,
                        )
                numbered = manifest.model_copy(update={"version": version})
                if not self._put_if_absent(
                    self._key(name, str(version), MANIFEST_FILE),
                    numbered.model_dump_json(indent=2).encode(),
                ):
                    raise StoreError(f"{name} v{version}: manifest appeared under our claim")
            except BaseException:
                # Best effort: the claim keeps the number burnt; leftovers are invisible anyway.
                with contextlib.suppress(Exception):
                    self._delete_prefix(self._key(name, str(version)) + "/")
                raise
        log.info("published %s version %d to %s", name, version, self.uri)
        return version

    def _claim(self, name: str) -> int:
        scan = self._scan(name)
        version = max(scan.complete | scan.with_objects | scan.claims.keys(), default=0) + 1
        claim = json.dumps({"token": uuid.uuid4().hex, "at": datetime.now(UTC).isoformat()})
        while not self._put_if_absent(self._key(name, CLAIMS, str(version)), claim.encode()):
            version += 1  # claimed by a concurrent publisher
        return version

    def clean_leftovers(self, name: str) -> int:
        scan = self._scan(name)
        now = datetime.now(UTC)
        abandoned = [
            v
            for v in scan.with_objects - scan.complete
            if v not in scan.claims or now - scan.claims[v] > ABANDONED_AFTER
        ]
        with self._calls(f"cleaning {name}"):
            for version in abandoned:
                self._delete_prefix(self._key(name, str(version)) + "/")
        return len(abandoned)

    # -- model-level documents ----------------------------------------------------------------

    def read_document(self, name: str, doc: Document) -> bytes | None:
        with self._calls(f"reading {name}/{doc}"):
            found = self._get(self._key(name, doc))
        return None if found is None else found[0]

    def update_document(
        self, name: str, doc: Document, update: Callable[[bytes | None], bytes]
    ) -> None:
        key = self._key(name, doc)
        with self._calls(f"updating {name}/{doc}"):
            for attempt in range(_DOCUMENT_ATTEMPTS):
                found = self._get(key)
                body = update(None if found is None else found[0])
                if found is None:
                    if self._put_if_absent(key, body):
                        return
                else:
                    try:
                        self.client.put_object(
                            Bucket=self.bucket, Key=key, Body=body, IfMatch=found[1]
                        )
                        return
                    except self._client_error as exc:
                        if _code(exc) not in _CONFLICT:
                            raise
                # Someone else wrote in between: read again and reapply, after a short backoff.
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # noqa: S311
        raise StoreError(
            f"{self.uri}: {name}/{doc} kept changing; gave up after {attempt + 1} tries"
        )

    def read_changes(self) -> bytes | None:
        with self._calls("reading the change marker"):
            found = self._get(self._root + CHANGES)
        return None if found is None else found[0]

    def write_changes(self, token: bytes) -> None:
        with self._calls("writing the change marker"):
            self.client.put_object(Bucket=self.bucket, Key=self._root + CHANGES, Body=token)

    # -- maintenance and reading --------------------------------------------------------------

    def delete_version(self, name: str, version: int) -> None:
        with self._calls(f"deleting {name} v{version}"):
            # The manifest goes first: from then on readers no longer see the version.
            prefix = self._key(name, str(version)) + "/"
            self._delete_prefix(prefix, first=prefix + MANIFEST_FILE)

    def _stream(self, key: str) -> Iterator[bytes]:
        response = self.client.get_object(Bucket=self.bucket, Key=key)
        yield from response["Body"].iter_chunks(_CHUNK)

    def verify(self, name: str, version: int, manifest: Manifest) -> None:
        prefix = self._key(name, str(version)) + "/"
        with self._calls(f"verifying {name} v{version}"):
            listing = {
                obj["Key"][len(prefix) :]: obj["Size"]
                for page in self._list(prefix)
                for obj in page.get("Contents", [])
                if obj["Key"] != prefix + MANIFEST_FILE
            }
            compare_listing(listing, manifest)
            for entry in manifest.files:
                digest = hashlib.sha256()
                for chunk in self._stream(prefix + entry.path):
                    digest.update(chunk)
                if digest.hexdigest() != entry.sha256:
                    raise IntegrityError(
                        f"{name} v{version}: file {entry.path!r} has sha256 "
                        f"{digest.hexdigest()[:12]}…, manifest says {entry.sha256[:12]}…"
                    )

    def materialize(self, name: str, version: int, manifest: Manifest, cache_dir: Path) -> Path:
        """Sync the version into `cache_dir/<model>/<version>/`, verified; reuse a good copy."""
        target = cache_dir / name / str(version)
        if target.is_dir():
            try:
                verify_dir(target, manifest)
                return target
            except (IntegrityError, UnsafeModelError) as exc:
                log.warning(
                    "cached copy of %s v%d is damaged, fetching again: %s", name, version, exc
                )
                shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.parent / f".partial-{version}-{uuid.uuid4().hex}"
        partial.mkdir()
        try:
            self._download(name, version, manifest, partial)
            verify_dir(partial, manifest, checksums=False)  # checksummed while downloading
            try:
                os.rename(partial, target)
            except OSError:
                if not target.is_dir():
                    raise
                # A concurrent materialize got there first; its copy is as good as ours.
            fsync_dir(target.parent)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return target

    def _download(self, name: str, version: int, manifest: Manifest, into: Path) -> None:
        prefix = self._key(name, str(version)) + "/"
        with self._calls(f"downloading {name} v{version}"):
            for entry in manifest.files:
                path = into / validate_file_key(entry.path)
                path.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with path.open("xb") as f:
                    for chunk in self._stream(prefix + entry.path):
                        digest.update(chunk)
                        f.write(chunk)
                if digest.hexdigest() != entry.sha256:
                    raise IntegrityError(
                        f"{name} v{version}: downloaded {entry.path!r} does not match its sha256"
                    )
        (into / MANIFEST_FILE).write_bytes(manifest.model_dump_json(indent=2).encode())
