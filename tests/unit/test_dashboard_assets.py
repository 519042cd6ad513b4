"""The dashboard's page and assets as served: only its own files, an allow-list, a strict CSP."""

from __future__ import annotations

import re

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from streams.operate.api import dashboard

OWN_ASSETS = {"dashboard.js", "charts.js", "dom.js", "closed_loop.js", "dashboard.css"}


def page(root_path: str = "") -> tuple[str, dict[str, str]]:
    request = Request({"type": "http", "method": "GET", "root_path": root_path, "headers": []})
    response = dashboard.dashboard_page(request)
    return bytes(response.body).decode(), dict(response.headers)


def test_the_page_loads_only_its_own_assets_and_nothing_from_elsewhere() -> None:
    html, _ = page()
    references = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert references
    names = set()
    for reference in references:
        if reference == "data:,":  # the empty favicon, so the browser asks for none
            continue
        assert reference.startswith("/ml-monitoring/static/"), reference
        names.add(reference.rsplit("/", 1)[1])
    assert names <= set(dashboard._assets())
    for name in OWN_ASSETS:
        # The SVG namespace is a name, not a place anything is loaded from.
        text = (dashboard.STATIC_DIR / name).read_text().replace("http://www.w3.org/2000/svg", "")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
        for imported in re.findall(r"from '\./([^']+)'", text):
            assert imported in dashboard._assets(), f"{name} imports a missing {imported}"


def test_the_page_carries_the_root_path_and_a_strict_content_security_policy() -> None:
    html, headers = page('/mon"itor/')
    assert "__ROOT__" not in html
    assert 'data-root="/mon&quot;itor"' in html
    assert 'src="/mon&quot;itor/ml-monitoring/static/dashboard.js"' in html
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe" not in policy
    assert headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "no-referrer"


def test_each_asset_is_served_with_its_type() -> None:
    types = {}
    for name in OWN_ASSETS:
        response = dashboard.dashboard_asset(name)
        types[name] = response.media_type
        assert response.headers["x-content-type-options"] == "nosniff"
    assert types == {
        "dashboard.js": "text/javascript",
        "charts.js": "text/javascript",
        "dom.js": "text/javascript",
        "closed_loop.js": "text/javascript",
        "dashboard.css": "text/css",
    }


@pytest.mark.parametrize(
    "name", ["index.html", "../dashboard.py", "..%2Fdashboard.py", "missing.js", ""]
)
def test_anything_else_is_not_found(name: str) -> None:
    with pytest.raises(HTTPException) as caught:
        dashboard.dashboard_asset(name)
    assert caught.value.status_code == 404
    assert "no dashboard asset named" in str(caught.value.detail)
