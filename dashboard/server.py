"""Serves the Dash page from a sibling thread of the ingestion process, within limits.

The server (:mod:`dashboard.pooled_server`) has a fixed pool of worker threads, a cap
on open connections and a deadline on every request, so a burst of connections on
the dashboard port costs the process a bounded number of threads and descriptors
and leaves the event loop its time. Binding happens in ``start()`` so a port clash
fails there; ``stop()`` returns once every thread of the server has finished.
"""

from __future__ import annotations

import logging

from dash import Dash

from dashboard.pooled_server import PooledWSGIServer, PoolStats, ServerLimits

log = logging.getLogger("dashboard")


class DashboardServer:
    """The Dash app on ``host:port`` (0 picks a free port; see :attr:`url`) within ``limits``."""

    def __init__(self, app: Dash, host: str = "127.0.0.1", port: int = 8050,
                 limits: ServerLimits | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.limits = limits or ServerLimits()
        self._server: PooledWSGIServer | None = None

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    @property
    def stats(self) -> PoolStats | None:
        """Connections accepted, refused, timed out and served; None before start."""
        return self._server.stats if self._server is not None else None

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("dashboard server already started")
        self._server = PooledWSGIServer(self.app.server, self.host, self.port, self.limits)
        self.port = self._server.port
        self._server.start()
        lim = self.limits
        log.info("dashboard: serving on %s (%d workers, at most %d connections, %.0f s a request)", self.url,
                 lim.workers, lim.max_connections, lim.request_timeout_s)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, finish the requests in flight, close every socket."""
        server = self._server
        if server is None:
            return
        server.shutdown(timeout)
        self._server = None
        log.info("dashboard: stopped")
