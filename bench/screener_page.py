"""Browser benchmark of the screener page: what applying one /ws/screener update costs
the page's main thread with hundreds of rows changing every second.

    python -m bench.screener_page [--rows 320] [--seconds 30] [--phone]

Serves the screener contract from the test stand-in (tests/dashboard/screener_standin.py:
``--rows`` symbols, about half of them changed each second, one update a second), the
dashboard beside it, and opens /screener in headless Debian Chromium at 1400x900 (390x844
with ``--phone``). Once three updates are in, the page's counters are reset; then, over
``--seconds`` updates, it prints: the time to apply each update inside the page
(performance.now() around parse-free applying: rows, cells, order, sparklines), p50 /
p99 / max; long tasks (PerformanceObserver, > 50 ms) and their total; per update the
rows applied, cells written, rows moved and sparklines drawn (only the rows on screen
draw theirs); and the first GET /screener's table build.
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

from dashboard.app import create_app
from dashboard.harness import launch_chromium
from dashboard.server import DashboardServer


def measure(rows: int, seconds: int, phone: bool = False) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from tests.dashboard.screener_standin import running_standin

    with running_standin(rows) as rs:
        app = create_app(rs.url, rs.standin.start_symbols, "SIMULATED (screener stand-in)")
        server = DashboardServer(app, "127.0.0.1", 0)
        server.start()
        try:
            with sync_playwright() as pw:
                browser = launch_chromium(pw)
                try:
                    size = {"width": 390, "height": 844} if phone else {"width": 1400, "height": 900}
                    page = browser.new_page(viewport=size)
                    page.set_default_timeout(120_000)
                    page.goto(server.url + "/screener")
                    page.wait_for_function("() => window.SCREENER?.debug().stats.updates >= 3")
                    first = page.evaluate("() => SCREENER.debug().stats")
                    page.evaluate("() => SCREENER.resetStats()")
                    page.wait_for_function(f"() => SCREENER.debug().stats.updates >= {seconds}",
                                           timeout=(seconds * 3 + 60) * 1000)
                    d = page.evaluate("() => SCREENER.debug()")
                finally:
                    browser.close()
        finally:
            server.stop()
    st = d["stats"]
    applies = sorted(st["applies"])
    n = max(1, st["updates"])
    return {
        "rows": d["rows"], "viewport": "390x844" if phone else "1400x900", "updates": st["updates"],
        "apply_ms_p50": round(statistics.median(applies), 2),
        "apply_ms_p99": round(applies[min(len(applies) - 1, int(0.99 * len(applies)))], 2),
        "apply_ms_max": round(applies[-1], 2),
        "long_tasks": st["longTasks"], "long_task_ms": round(st["longTaskMs"], 1),
        "rows_applied_per_update": round(st["rowsApplied"] / n, 1),
        "cells_written_per_update": round(st["cellWrites"] / n, 1),
        "rows_moved_per_update": round(st["moves"] / n, 1),
        "sparklines_drawn_per_update": round(st["sparksDrawn"] / n, 1),
        "rows_on_screen": d["inView"],
        "first_get_build_ms": round(first["firstGetMs"] or 0, 1),
        "long_tasks_while_loading": first["longTasks"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=320)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--phone", action="store_true")
    args = parser.parse_args()
    print(json.dumps(measure(args.rows, args.seconds, args.phone), indent=1))


if __name__ == "__main__":
    main()
