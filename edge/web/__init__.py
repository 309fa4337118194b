"""The live web view (`qamoe-web`): one page over a node's ZeroMQ stream, pushed to browsers over a WebSocket.

    from edge.web import WebConfig, WebServer
    asyncio.run(WebServer(WebConfig(token=t), SubscriberConfig(endpoint=e)).run(stop, on_listening=print))

Read-only and safe by default: loopback unless told otherwise, an access token on the page and the WebSocket,
untrusted text shown only as text, a strict Content-Security-Policy. README.md, "Watching in a browser".
"""

from edge.web.config import DEFAULT_HOST, DEFAULT_PORT, WebConfig
from edge.web.errors import ViewError, WebBindError, WebConfigError
from edge.web.server import WebServer, page_url

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ViewError",
    "WebBindError",
    "WebConfig",
    "WebConfigError",
    "WebServer",
    "page_url",
]
