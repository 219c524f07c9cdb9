"""Static files served from memory: the console's pages and the API docs' Swagger UI.

A directory is read once when the app is built (a few hundred kilobytes for the console, 1.7 MB
for Swagger UI), so a request is a dictionary lookup: no file system access, no path from a
client ever reaches `open`, and only names that existed at start-up can be served. Responses
carry an ETag, so a browser revalidates with a 304 instead of downloading again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request, Response

from service.errors import NotFoundError

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

# Every static response: no MIME sniffing, no referrer leaving the page, no framing by another
# site; `no-cache` means "revalidate first", which the ETag makes a cheap 304.
BASE_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-cache",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, name: str) -> Asset:
        """The asset `name` (its suffix gives the content type: an unknown one is an error of
        the package, raised at start-up)."""
        suffix = Path(name).suffix.lower()
        if suffix not in CONTENT_TYPES:
            raise ValueError(f"static file {name} has no known content type")
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        return cls(body, CONTENT_TYPES[suffix], etag)


class StaticFiles:
    """Named files held in memory, answered with their headers plus `headers`."""

    def __init__(self, assets: Mapping[str, Asset], headers: Mapping[str, str]) -> None:
        self._assets = dict(assets)
        self._headers = {**BASE_HEADERS, **headers}

    @classmethod
    def from_paths(
        cls, paths: Iterable[tuple[str, Path]], headers: Mapping[str, str]
    ) -> StaticFiles:
        """`paths`: (name served, file) pairs."""
        return cls({name: Asset.of(path.read_bytes(), path.name) for name, path in paths}, headers)

    @classmethod
    def from_directory(cls, root: Path, headers: Mapping[str, str]) -> StaticFiles:
        """Every file under `root`, named by its path relative to it ('js/main.js')."""
        files = sorted(p for p in root.rglob("*") if p.is_file())
        return cls.from_paths(((p.relative_to(root).as_posix(), p) for p in files), headers)

    @property
    def names(self) -> list[str]:
        return sorted(self._assets)

    def response(self, request: Request, name: str) -> Response:
        asset = self._assets.get(name)
        if asset is None:
            raise NotFoundError(f"no file '{name[:200]}' here")
        headers = {**self._headers, "etag": asset.etag}
        if asset.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.content_type, headers=headers)
