"""Bad requests to the Dash endpoints get a 4xx with a short text and one log line.

Dash answers some malformed requests with a 500 and a 2-3 KB traceback in the log:
a callback request whose body is not a JSON object, lacks a field or names an output
with no server callback (every callback of this page runs in the browser), a
component-suite path it does not serve. Those are refused here before Dash sees
them, and every 4xx the page's server answers is a line of plain text, logged in one
line (under a flood, one per interval, saying how many were left out).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dash import Dash
from dash.exceptions import DependencyException
from flask import Response, request
from werkzeug.exceptions import BadRequest, HTTPException, NotFound, UnsupportedMediaType

from dashboard.throttled_log import ThrottledLog

log = logging.getLogger("dashboard")

MAX_BODY_BYTES = 1024 * 1024  # a callback request of this page is a few hundred bytes
LOG_INTERVAL_S = 10.0


def guard_dash_endpoints(app: Dash) -> None:
    """Check callback requests and answer every client error of ``app``'s server briefly."""
    server = app.server
    server.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    update_endpoint = app.config.routes_pathname_prefix + "_dash-update-component"
    refusals = ThrottledLog(log, logging.INFO, LOG_INTERVAL_S)

    def refuse(exc: HTTPException) -> Response:
        code = exc.code or 400
        why = exc.description or exc.name
        refusals.log("dashboard: %d for %s %s from %s: %s", code, request.method, request.path[:200],
                     request.remote_addr, why)
        return Response(f"{code} {exc.name}: {why}\n", status=code, mimetype="text/plain")

    @server.before_request
    def _check_callback_request() -> None:
        if request.endpoint == update_endpoint and request.method == "POST":
            check_callback_request(app.callback_map)

    @server.errorhandler(DependencyException)
    def _unknown_component_file(_exc: DependencyException) -> Response:
        return refuse(NotFound("no such component file"))

    @server.errorhandler(HTTPException)
    def _client_error(exc: HTTPException) -> Response | HTTPException:
        if exc.code is None or not 400 <= exc.code < 500:
            return exc
        return refuse(exc)


def check_callback_request(callback_map: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise the 4xx a callback request deserves, or return when Dash can run it."""
    if not request.is_json:
        raise UnsupportedMediaType("a callback request is application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequest("the body is not valid JSON")
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    output = body.get("output")
    if not isinstance(output, str):
        raise BadRequest("'output' must be a string naming the callback's output")
    if "callback" not in callback_map.get(output, {}):
        raise NotFound(f"no server callback for output {output[:80]!r}")
    if not isinstance(body.get("outputs"), dict | list):
        raise BadRequest("'outputs' must be an object or a list")
    _check_dependencies(body, "inputs", required=True)
    _check_dependencies(body, "state", required=False)
    changed = body.get("changedPropIds", [])
    if not (isinstance(changed, list) and all(isinstance(c, str) for c in changed)):
        raise BadRequest("'changedPropIds' must be a list of strings")


def _check_dependencies(body: dict[str, Any], key: str, required: bool) -> None:
    """``inputs`` and ``state``: lists of {"id", "property", "value"} objects (lists of them
    for pattern-matching dependencies)."""
    if key not in body and not required:
        return
    items = body.get(key)
    if not isinstance(items, list):
        raise BadRequest(f"{key!r} must be a list")
    for item in items:
        for dep in item if isinstance(item, list) else [item]:
            if not (isinstance(dep, dict) and isinstance(dep.get("id"), str | dict)
                    and isinstance(dep.get("property"), str)):
                raise BadRequest(f"every item of {key!r} must be an object with an 'id' and a 'property'")
