"""Screenshot of the running dashboard on the simulated market.

    python -m dashboard.screenshot docs/dashboard.png [--wait 40] [--symbol btcusdt]

Starts the whole stack (simulated exchange, ingestion, API) and the Dash server on
loopback, lets the heatmap fill for ``--wait`` seconds, captures 1400x900.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from dashboard.harness import launch_chromium, running_dashboard

log = logging.getLogger("dashboard.screenshot")


def capture(out: Path, wait_s: float = 40.0, symbol: str = "btcusdt", width: int = 1400, height: int = 900) -> Path:
    from playwright.sync_api import sync_playwright

    stack = running_dashboard(push_interval_s=1.0, source_reason="chosen with --source sim")
    with stack as rd, sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(rd.url)
            page.wait_for_function("() => window.dash_clientside?.liq?.debug().seq != null", timeout=30_000)
            if symbol != rd.stack.settings.symbols[0]:
                page.click(f"label:has-text('{symbol.upper()}')")
            deadline = time.monotonic() + wait_s
            log.info("letting the heatmap fill for %.0f s", wait_s)
            while time.monotonic() < deadline:
                page.wait_for_timeout(min(1.0, deadline - time.monotonic()) * 1000)
            page.wait_for_function("() => !window.dash_clientside.liq.debug().surfaceBusy", timeout=10_000)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
        finally:
            browser.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--wait", type=float, default=40.0, help="seconds of data before the capture")
    parser.add_argument("--symbol", default="btcusdt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    path = capture(args.out, args.wait, args.symbol.lower())
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
