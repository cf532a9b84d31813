"""Bad requests to the Dash endpoints, over a real socket: a 4xx with a short text and
one log line, never a 500 or a traceback; a good callback request still runs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import httpx
import pytest
from dash import Dash, Input, Output, dcc, html

from dashboard.app import create_app
from dashboard.request_guard import MAX_BODY_BYTES, guard_dash_endpoints
from dashboard.server import DashboardServer
from tests.waiting import CEILING_S

UPDATE = "/_dash-update-component"
JSON = {"Content-Type": "application/json"}

BAD_REQUESTS = [
    pytest.param("POST", UPDATE, b"{not json", JSON, 400, id="malformed-json"),
    pytest.param("POST", UPDATE, b"", JSON, 400, id="empty-body"),
    pytest.param("POST", UPDATE, b"[]", JSON, 400, id="not-an-object"),
    pytest.param("POST", UPDATE, b"null", JSON, 400, id="null"),
    pytest.param("POST", UPDATE, b"{}", JSON, 400, id="no-output"),
    pytest.param("POST", UPDATE, b'{"output": 1}', JSON, 400, id="output-not-a-string"),
    pytest.param("POST", UPDATE, b'{"output": "x=1"}', {"Content-Type": "text/plain"}, 415, id="wrong-content-type"),
    pytest.param("POST", UPDATE, b'{"output": "liq-active.data", "outputs": {}, "inputs": []}', JSON, 404,
                 id="clientside-output"),
    pytest.param("POST", UPDATE, b'{"output": "nope.data", "inputs": []}', JSON, 404, id="unknown-output"),
    pytest.param("POST", UPDATE, b'{"output": "' + b"a" * (MAX_BODY_BYTES + 1) + b'"}', JSON, 413, id="huge-body"),
    pytest.param("GET", "/_dash-component-suites/dash/nothere.js", b"", {}, 404, id="unknown-component-file"),
    pytest.param("GET", "/_dash-component-suites/nopkg/x.js", b"", {}, 404, id="unknown-component-package"),
    pytest.param("GET", "/_dash-component-suites/dash/..%2F..%2Fetc/passwd", b"", {}, 404, id="path-escape"),
]


@contextlib.contextmanager
def serving(app: Dash) -> Iterator[httpx.Client]:
    server = DashboardServer(app, "127.0.0.1", 0)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=CEILING_S) as client:
            yield client
    finally:
        server.stop()


@pytest.mark.parametrize(("method", "path", "body", "headers", "code"), BAD_REQUESTS)
def test_a_bad_dash_request_gets_a_short_4xx_and_one_log_line(
    method: str, path: str, body: bytes, headers: dict[str, str], code: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with serving(create_app("http://127.0.0.1:9999", ["btcusdt"])) as client:
        resp = client.request(method, path, content=body, headers=headers)
        assert resp.status_code == code, resp.text
        assert len(resp.content) < 200 and resp.headers["content-type"].startswith("text/plain")
        assert client.get("/").status_code == 200  # the page is still served
    records = [r for r in caplog.records if r.name.startswith(("dashboard", "werkzeug", "flask"))]
    assert not any(r.exc_info for r in records)
    assert "Traceback" not in caplog.text
    refusals = [r for r in records if f"{code} for {method}" in r.getMessage()]
    assert len(refusals) == 1 and "\n" not in refusals[0].getMessage()


def test_a_flood_of_bad_requests_logs_a_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with serving(create_app("http://127.0.0.1:9999", ["btcusdt"])) as client:
        for _ in range(20):
            assert client.post(UPDATE, content=b"{not json", headers=JSON).status_code == 400
    assert len([r for r in caplog.records if "400 for POST" in r.getMessage()]) == 1


def _app_with_a_server_callback() -> Dash:
    app = Dash(__name__)
    app.layout = html.Div([dcc.Input(id="x", value="a"), html.Div(id="y")])
    guard_dash_endpoints(app)

    @app.callback(Output("y", "children"), Input("x", "value"))
    def echo(value: str) -> str:
        return f"got {value}"

    return app


def test_a_good_callback_request_still_runs_and_a_bad_one_is_refused() -> None:
    good = {"output": "y.children", "outputs": {"id": "y", "property": "children"},
            "inputs": [{"id": "x", "property": "value", "value": "b"}], "changedPropIds": ["x.value"]}
    with serving(_app_with_a_server_callback()) as client:
        resp = client.post(UPDATE, json=good)
        assert resp.status_code == 200 and "got b" in resp.text
        for broken in ({**good, "inputs": "x"}, {**good, "inputs": [{"id": "x"}]}, {**good, "inputs": [["x"]]},
                       {**good, "state": {}}, {**good, "changedPropIds": [1]}, {**good, "outputs": 3},
                       {key: value for key, value in good.items() if key != "inputs"}):
            resp = client.post(UPDATE, json=broken)
            assert resp.status_code == 400, (broken, resp.text)
