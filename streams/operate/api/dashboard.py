"""The live dashboard: ``GET /ml-monitoring`` (the page) and its assets under
``/ml-monitoring/static/``.

The page is static HTML plus the project's own JavaScript and CSS (no CDN, no third-party code);
the browser reads every number from the JSON API, so the page shows exactly what the API says.
Only bounded API calls are made (``limit``, ``window``, ``days``): the page stays fast however
large the history grows. The Content-Security-Policy allows nothing but this origin's own files,
and the page never puts the API token in a URL or in its source (it lives in sessionStorage).
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE = "index.html"
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(include_in_schema=False)


def _assets() -> dict[str, Path]:
    """The files the page may load, by name: an allow-list, so no path can escape the folder."""
    return {
        path.name: path
        for path in STATIC_DIR.iterdir()
        if path.is_file() and path.suffix in _MEDIA_TYPES
    }


@router.get("/ml-monitoring", response_class=HTMLResponse)
def dashboard_page(request: Request) -> HTMLResponse:
    root = html.escape(str(request.scope.get("root_path", "")).rstrip("/"), quote=True)
    text = (STATIC_DIR / PAGE).read_text(encoding="utf-8").replace("__ROOT__", root)
    return HTMLResponse(text, headers={**_SECURITY_HEADERS, "Cache-Control": "no-store"})


@router.get("/ml-monitoring/static/{name}")
def dashboard_asset(name: str) -> FileResponse:
    path = _assets().get(name)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no dashboard asset named {name!r}")
    return FileResponse(
        path,
        media_type=_MEDIA_TYPES[path.suffix],
        headers={**_SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )
