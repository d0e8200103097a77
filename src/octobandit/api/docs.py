"""``/docs``: Swagger UI served from the package, so that it works offline.

The Swagger UI files (5.x, which renders OpenAPI 3.1) come from the
``fastapi-offline`` distribution (MIT; the Swagger UI files it ships are
Apache-2.0); only its static files are used. The page references only URLs of
this service.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

ASSETS = "/docs/assets"
STATIC = Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """Serve the Swagger UI page at ``/docs`` and its files under ``/docs/assets``."""
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )
