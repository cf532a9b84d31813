"""``GET /alerts/rules`` and ``PUT /alerts/rules``: the rules in force and their
destinations (by name, URLs reduced to scheme and host), and replacing them.

A bad rule set is answered 422 with one line naming the field, and the rules in
force stay as they were; a rule set that cannot be saved to the rules file is
answered 503, and nothing changes either. Registered before ``/alerts/{symbol}``,
which would otherwise take ``rules`` for a symbol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

from alerting.rules import RulesError
from alerting.service import Alerting
from api.errors import ApiError

MAX_BODY_BYTES = 256 * 1024


def add_alert_rule_routes(app: FastAPI, alerting: Alerting) -> None:
    @app.get("/alerts/rules", summary="The alert rules in force and their destinations (secrets never shown)")
    async def get_rules() -> dict[str, Any]:
        return alerting.document()

    @app.put("/alerts/rules", summary="Replace the alert rules (and destinations, when given); saved to --alerts FILE")
    async def put_rules(request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise ApiError(413, f"a rule set is at most {MAX_BODY_BYTES} bytes, got {declared}")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                raise ApiError(413, f"a rule set is at most {MAX_BODY_BYTES} bytes")
        try:
            return await alerting.replace(raw)
        except RulesError as exc:
            raise ApiError(422, f"{exc}; the rules in force are unchanged") from None
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise ApiError(503, f"could not save the rules to {Path(alerting.path or '').name} ({why}); the rules "
                                f"in force are unchanged") from None
