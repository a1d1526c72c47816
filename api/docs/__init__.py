"""Interactive API docs (Swagger UI) served from this process, never from a CDN (issue 10 §10).

The Swagger UI files come from the `swagger-ui-bundle` package (PyPI, Apache-2.0); the page and its
start script are ours (a file, so the Content-Security-Policy needs no inline script).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"

_PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>宜居 Yiju API · 接口文档</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{docs}/start.js"></script>
</body>
</html>
"""

_START = """// Start Swagger UI on this server's OpenAPI document (served by api/docs).
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "%s",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""


def install_docs(app: FastAPI) -> None:
    """`/docs` (the page), `/docs/start.js` and `/docs/assets/*` (Swagger UI's own files)."""
    page = _PAGE.format(assets=ASSETS_PATH, docs=DOCS_PATH)
    start = _START % (app.openapi_url or "/openapi.json")
    app.mount(ASSETS_PATH, StaticFiles(directory=Path(str(swagger_ui_path))), name="swagger-ui")

    @app.get(DOCS_PATH, include_in_schema=False)
    def _docs() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get(f"{DOCS_PATH}/start.js", include_in_schema=False)
    def _start() -> Response:
        return Response(start, media_type="text/javascript")
