"""Screenshots of the running dashboard on the simulated market, one per layout.

    python -m dashboard.screenshot docs/dashboard.png [--wait 40] [--symbol btcusdt] [--sizes desktop,tablet,phone]
    python -m dashboard.screenshot docs/screener.png --screener [--market 100] [--wait 40]

Starts the whole stack (simulated exchange, ingestion, API) and the Dash server on
loopback, lets the heatmap fill for ``--wait`` seconds, then opens the page at each
size and captures it: desktop (1400x900) to OUT, tablet (1024x768) to OUT-tablet.png,
phone (390 wide, the whole page: its one column is the design) to OUT-phone.png. Each
size is a fresh load with that size's default panels; the API's history fills the
heatmap at once.

With ``--screener`` the simulated exchange also serves a market of ``--market``
symbols (``main.py --sim-market N``), the API watches all of them next to the focus
symbols btcusdt and ethusdt, and the capture is the screener page (``/screener``)
once its sparklines hold ``--wait`` seconds: desktop (1400x900) to OUT, phone
(390x844, the screen as seen) to OUT-phone.png.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from dashboard.harness import launch_chromium, running_dashboard

log = logging.getLogger("dashboard.screenshot")

# name: (width, height, whole page)
SIZES: dict[str, tuple[int, int, bool]] = {
    "desktop": (1400, 900, False),
    "tablet": (1024, 768, False),
    "phone": (390, 844, True),
}
READY_JS = """() => { const liq = window.dash_clientside?.liq; const d = liq?.debug();
  return d && d.seq != null && d.columns > 0 && !d.surfaceBusy
    && document.getElementById('heatmap')?._fullLayout !== undefined; }"""


def out_path(out: Path, size: str) -> Path:
    """Where ``size``'s capture goes: OUT for the desktop, OUT-<size>.png beside it."""
    return out if size == "desktop" else out.with_name(f"{out.stem}-{size}{out.suffix}")


def capture(
    out: Path, wait_s: float = 40.0, symbol: str = "btcusdt", sizes: Sequence[str] = tuple(SIZES)
) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written: list[Path] = []
    stack = running_dashboard(push_interval_s=1.0, source_reason="chosen with --source sim")
    with stack as rd, sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            address = f"{rd.url}/?symbol={symbol}"
            page.goto(address)
            page.wait_for_function("() => window.dash_clientside?.liq?.debug().seq != null", timeout=30_000)
            deadline = time.monotonic() + wait_s
            log.info("letting the heatmap fill for %.0f s", wait_s)
            while time.monotonic() < deadline:
                page.wait_for_timeout(min(1.0, deadline - time.monotonic()) * 1000)
            for size in sizes:
                width, height, whole = SIZES[size]
                page.set_viewport_size({"width": width, "height": height})
                page.goto(address)  # no panels in the address: the size's defaults
                page.wait_for_function(READY_JS, timeout=30_000)
                path = out_path(out, size)
                path.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(path), full_page=whole)
                log.info("%s (%dx%d): %s", size, width, height, path)
                written.append(path)
        finally:
            browser.close()
    return written


def capture_screener(out: Path, wait_s: float = 40.0, market: int = 100) -> list[Path]:
    """The screener page on the real stack watching a simulated market of ``market``
    symbols (liquidation bursts on, as ``main.py --source sim``); see the module docstring."""
    from playwright.sync_api import sync_playwright

    written: list[Path] = []
    stack = running_dashboard(("btcusdt", "ethusdt"), push_interval_s=1.0, source_reason="chosen with --source sim",
                              screener=True, sim_market=str(market), sim_liquidation_bursts=True,
                              sim_config={"warmup_s": 5.0})
    with stack as rd, sync_playwright() as pw:
        log.info("letting %d symbols' sparklines fill for %.0f s", market, wait_s)
        time.sleep(wait_s)
        browser = launch_chromium(pw)
        try:
            for size, (width, height) in (("desktop", (1400, 900)), ("phone", (390, 844))):
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(rd.url + "/screener")
                page.wait_for_function(f"() => window.SCREENER?.debug().rows >= {market} "
                                       "&& SCREENER.debug().stats.updates >= 3", timeout=60_000)
                path = out_path(out, size)
                path.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(path))
                page.close()
                log.info("screener, %s (%dx%d): %s", size, width, height, path)
                written.append(path)
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="PNG file of the desktop capture; the others are written beside it")
    parser.add_argument("--wait", type=float, default=40.0, help="seconds of data before the captures")
    parser.add_argument("--symbol", default="btcusdt")
    parser.add_argument("--sizes", default=",".join(SIZES), help="which layouts, comma-separated: " + ", ".join(SIZES))
    parser.add_argument("--screener", action="store_true",
                        help="capture the screener page on a simulated market of --market symbols instead")
    parser.add_argument("--market", type=int, default=100, help="symbols of the simulated market with --screener")
    args = parser.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size {', '.join(unknown)}; known: {', '.join(SIZES)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if args.screener:
        capture_screener(args.out, args.wait, args.market)
    else:
        capture(args.out, args.wait, args.symbol.lower(), sizes)


if __name__ == "__main__":
    main()
