"""The page server's HTTP routing (edge.web.pages) and the page's own code: token on the page and the
WebSocket, public static files, origin check, viewer cap, security headers, and no HTML sink in the JS."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from websockets.datastructures import Headers
from websockets.http11 import Request

from edge.web.pages import CSP, Pages

TOKEN = "t0k3n_" + "x" * 20
PAGES = Pages.load(TOKEN)


def get(path: str, full: bool = False, **headers: str):
    return PAGES.route(Request(path, Headers({"Host": "127.0.0.1:8765", **headers})), full)


def test_page_needs_the_token() -> None:
    ok = get(f"/?token={TOKEN}")
    assert ok is not None and ok.status_code == 200 and b'<canvas id="trace"' in ok.body
    assert ok.headers["Content-Type"] == "text/html; charset=utf-8"
    for path in (
        "/",
        "/?token=",
        f"/?token={TOKEN[:-1]}",
        f"/?token={TOKEN}x",
        f"/?token={TOKEN}&token={TOKEN}",
        f"/index.html?TOKEN={TOKEN}",
    ):
        r = get(path)
        assert r is not None and r.status_code == 403, path
        assert TOKEN.encode() not in r.body


def test_websocket_needs_the_token_a_same_origin_and_a_free_place() -> None:
    assert get(f"/ws?token={TOKEN}") is None  # go on with the handshake
    assert get(f"/ws?token={TOKEN}", Origin="http://127.0.0.1:8765") is None
    assert get("/ws?token=nope").status_code == 403
    assert get(f"/ws?token={TOKEN}", Origin="http://evil.example").status_code == 403
    assert get(f"/ws?token={TOKEN}", Origin="null").status_code == 403
    assert get(f"/ws?token={TOKEN}", full=True).status_code == 503


def test_static_files_are_public_and_nothing_else_is_served() -> None:
    js = get("/static/app.js")
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")
    assert get("/static/style.css").status_code == 200
    for path in (
        "/static/../config.py",
        "/static/",
        "/static/index.html",
        "/edge/web/server.py",
        "/favicon.ico",
        "/static/app.js/",
        "/%2e%2e/etc/passwd",
    ):
        assert get(path).status_code == 404, path


def test_every_response_carries_the_security_headers() -> None:
    for r in (get(f"/?token={TOKEN}"), get("/"), get("/static/app.js"), get("/nope")):
        assert r.headers["Content-Security-Policy"] == CSP
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert r.headers["X-Frame-Options"] == "DENY"
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP and "*" not in CSP
    assert "script-src 'self'" in CSP and "connect-src 'self'" in CSP and "require-trusted-types-for" in CSP


def _static(name: str) -> str:
    return (resources.files("edge.web") / "static" / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "sink",
    [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        'setAttribute("on',
        "srcdoc",
        "http://",
        "https://",
    ],
)
def test_page_code_has_no_html_sink_and_no_remote_resource(sink: str) -> None:
    for name in ("app.js", "index.html", "style.css"):
        assert sink not in _static(name), f"{sink} in {name}"


def test_page_has_no_inline_script_or_style() -> None:
    html = _static("index.html")
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/app.js" defer>']
    assert "<style" not in html and " style=" not in html and not re.search(r"\son\w+=", html)
