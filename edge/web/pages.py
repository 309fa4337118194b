"""The HTTP side: the page and its two static files, the token and origin checks, and the security headers
every response carries. Everything here is decided from the request line and headers alone; nothing a
browser sends reaches the node."""

from __future__ import annotations

import http
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from edge.web.auth import token_in, token_matches

PAGE_PATHS = ("/", "/index.html")
WS_PATH = "/ws"
STATIC = {  # path -> (file in edge/web/static, content type); public: they hold no data, only code
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
# Same-origin only, no inline script or style, no plugins, no framing; Trusted Types with no policy make
# any assignment of a string to innerHTML (and eval) throw, so the page can only ever set text.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),  # the token is in the address: never send it on
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)


def respond(status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> Response:
    headers = Headers(SECURITY_HEADERS)
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    headers["Connection"] = "close"
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


def forbidden() -> Response:
    return respond(403, b"403 forbidden: wrong or missing token (open the address qamoe-web printed)\n")


def same_origin(headers: Headers) -> bool:
    """A browser's WebSocket must come from this page (Origin's host:port == Host); tools send no Origin."""
    origin = headers.get("Origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == headers.get("Host", "")


@dataclass(frozen=True)
class Pages:
    """Routes one request: a Response to send, or None to go on with the WebSocket handshake."""

    token: str
    files: dict[str, bytes]

    @classmethod
    def load(cls, token: str) -> Pages:
        root = resources.files("edge.web") / "static"
        names = ["index.html", *(name for name, _ in STATIC.values())]
        return cls(token, {name: (root / name).read_bytes() for name in names})

    def route(self, request: Request, viewers_full: bool) -> Response | None:
        path = urlsplit(request.path).path
        if path in STATIC:
            name, content_type = STATIC[path]
            return respond(200, self.files[name], content_type)
        if path not in PAGE_PATHS and path != WS_PATH:
            return respond(404, b"404 not found\n")
        if not token_matches(token_in(request.path), self.token):
            return forbidden()
        if path != WS_PATH:
            return respond(200, self.files["index.html"], "text/html; charset=utf-8")
        if not same_origin(request.headers):
            return respond(403, b"403 forbidden: cross-origin WebSocket\n")
        if viewers_full:
            return respond(503, b"503 too many viewers: try again later\n")
        return None
