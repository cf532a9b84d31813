"""Serves the Dash page from a daemon thread with a server that stops cleanly.

``app.run()`` cannot be stopped from another thread; werkzeug's ``make_server``
can (``shutdown()``), and binding happens in ``start()`` so a port clash fails there.
"""

from __future__ import annotations

import logging
import threading

from dash import Dash
from werkzeug.serving import BaseWSGIServer, make_server

log = logging.getLogger("dashboard")


class DashboardServer:
    """The Dash app on ``host:port`` (0 picks a free port; see :attr:`url`)."""

    def __init__(self, app: Dash, host: str = "127.0.0.1", port: int = 8050) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("dashboard server already started")
        self._server = make_server(self.host, self.port, self.app.server, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="dashboard-http", daemon=True)
        self._thread.start()
        log.info("dashboard: serving on %s", self.url)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, finish the request in flight, close the socket."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout)
        self._server = None
        self._thread = None
        log.info("dashboard: stopped")
