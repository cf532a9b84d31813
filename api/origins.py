"""Which web pages may read the API from a browser.

A browser sends ``Origin`` with every websocket handshake and every cross-origin
request. Without a policy, any page on the internet could read the books (and
``/health``) of a dashboard running on a laptop through the laptop's own browser.
Allowed by default: the dashboard's own origin (registered when it starts, with
its loopback aliases) and same-origin requests (the API's own ``/docs``); more
with ``--allow-origin`` (``*`` allows any). A dashboard bound to every interface
(``--host 0.0.0.0`` or ``::``) has no one name: its origin is its port on the host
name the request came to (the page and the API reached through the same name, as
the page does: it puts its own host name in place of 0.0.0.0). Clients that send
no ``Origin`` (scripts, curl, other programs) are not browsers and are not concerned.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from embedded_server import url_host

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_WILDCARD_HOSTS = ("0.0.0.0", "::")  # as urlsplit gives them: "[::]" is "::"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _scheme_and_port(url: str) -> tuple[str, int | None]:
    """The scheme and port of ``url``, the scheme's default port when none is written."""
    parts = urlsplit(url.strip())
    scheme = (parts.scheme or "http").lower()
    port = parts.port  # ValueError when it is not a port
    return scheme, port if port is not None else _DEFAULT_PORTS.get(scheme)


def normalise(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a trailing slash or path."""
    parts = urlsplit(origin.strip())
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"an origin is scheme://host[:port], got {origin!r}")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class OriginPolicy:
    """The set of allowed origins, growing as servers start (thread-safe enough:
    only the event loop reads it, and additions are single set operations)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.any = False
        self._allowed: set[str] = set()
        # (scheme, port) of allowed origins on a wildcard bind address
        self._any_host: set[tuple[str, int | None]] = set()
        for origin in extra:
            if origin.strip() == "*":
                self.any = True
            elif origin.strip():
                self._allowed.add(normalise(origin))
                self._note_wildcard(origin)
        self.refused = 0

    def _note_wildcard(self, url: str) -> None:
        parts = urlsplit(url.strip())
        if (parts.hostname or "").lower() in _WILDCARD_HOSTS:
            self._any_host.add(_scheme_and_port(url))

    def add(self, url: str) -> None:
        """Allow the origin of ``url``; a loopback one with its aliases (a page opened
        as http://localhost:8050 sends that, not 127.0.0.1)."""
        parts = urlsplit(url)
        scheme = (parts.scheme or "http").lower()
        host = (parts.hostname or "").lower()
        port = f":{parts.port}" if parts.port else ""
        shown = url_host(host)
        self._allowed.add(f"{scheme}://{shown}{port}")
        if _is_loopback(host):
            for alias in _LOOPBACK_NAMES:
                self._allowed.add(f"{scheme}://{alias}{port}")
        self._note_wildcard(url)

    @property
    def allowed(self) -> list[str]:
        return ["*"] if self.any else sorted(self._allowed)

    def allows(self, origin: str | None, host: str | None) -> bool:
        """May a request with this ``Origin`` (None: not a browser) and ``Host`` be served?"""
        if origin is None or self.any:
            return True
        origin = origin.strip().lower()
        if origin in self._allowed:
            return True
        if not host:
            return False
        host = host.strip().lower()
        try:
            page, api = urlsplit(origin), urlsplit(f"//{host}")
            # Same origin: the page was served by this very host:port.
            if page.netloc == host:
                return True
            # A page served on a wildcard address, reached by the same name as this API.
            return (_scheme_and_port(origin) in self._any_host
                    and page.hostname is not None and page.hostname == api.hostname)
        except ValueError:  # not a URL ("http://[x"): nothing allowed looks like it
            return False


class OriginMiddleware:
    """CORS for the API's HTTP side, from an :class:`OriginPolicy`: an allowed origin
    gets ``Access-Control-Allow-Origin`` (GET, and POST /focus; preflights answered), another
    gets no CORS headers (its page cannot read the answer) and its preflight a 403."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = self.policy.allows(origin, headers.get("host"))
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(send, origin, allowed)
            return
        if not allowed:
            self.policy.refused += 1
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, send: Send, origin: str, allowed: bool) -> None:
        if allowed:
            status = 200
            headers = [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-methods", b"GET, POST"),  # POST: /focus/{symbol}
                (b"access-control-allow-headers", b"*"),
                (b"access-control-max-age", b"600"),
                (b"vary", b"Origin"),
            ]
            body = b"OK"
        else:
            self.policy.refused += 1
            status, headers, body = 403, [], b"origin not allowed"
        headers.append((b"content-type", b"text/plain; charset=utf-8"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
