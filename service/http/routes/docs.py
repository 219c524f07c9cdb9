"""`GET /docs`: the API's Swagger UI, served whole from this process.

FastAPI's own page loads Swagger UI's script and stylesheet from a public CDN, so it is blank in
an air-gapped cluster. Here they come from the `swagger-ui-bundle-v2` package (Swagger UI 5,
which reads the OpenAPI 3.1 document FastAPI writes) and the page starts it with a script file
of ours instead of an inline one, so that the page runs under a Content-Security-Policy that
allows this origin only.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from swagger_ui_bundle import swagger_ui_path

from service.console import DOCS_SCRIPT
from service.http.static_files import Asset, StaticFiles

# Swagger UI styles some elements from script and draws icons as data: images.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'; object-src 'none'"
)
_SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")

_PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Inductive API docs</title>
<link rel="icon" type="image/png" href="docs/favicon-32x32.png">
<link rel="stylesheet" href="docs/swagger-ui.css">
<script src="docs/swagger-ui-bundle.js" defer></script>
<script src="docs/api-docs.js" defer></script>
</head>
<body>
<div id="swagger-ui"></div>
</body>
</html>
"""


def router() -> APIRouter:
    bundle = Path(str(swagger_ui_path))  # an installed package is a directory of files
    assets = {name: Asset.of((bundle / name).read_bytes(), name) for name in _SWAGGER_FILES}
    assets["api-docs.js"] = Asset.of(DOCS_SCRIPT.read_bytes(), DOCS_SCRIPT.name)
    assets["index.html"] = Asset.of(_PAGE, "index.html")
    files = StaticFiles(assets, {"content-security-policy": CONTENT_SECURITY_POLICY})
    api = APIRouter(include_in_schema=False)

    @api.get("/docs")
    async def docs_page(request: Request) -> Response:
        return files.response(request, "index.html")

    @api.get("/docs/{name}")
    async def docs_file(name: str, request: Request) -> Response:
        return files.response(request, name)

    return api
