"""Browser benchmark: what drawing a frame costs the page's main thread, and whether
the JS heap stays flat. Headless Debian Chromium, all panels on, simulated market.

    python -m dashboard.bench_browser [--minutes 1] [--cadence 1.0] [--fast-minutes 0.5]
    python -m dashboard.bench_browser --against ../other-checkout [--minutes 1] [--runs 3]
    python -m dashboard.bench_browser --history-load [--loads 5]

``history_load()`` waits until the API holds its full 180 s of frames, then opens
the page ``loads`` times (a fresh browser context each) and reports the longest
browser long task from the arrival of the first ``history`` message until the page
has drawn it (PerformanceObserver 'longtask', installed before the page's scripts).

``measure()`` drives one page at one push cadence: the frame handler is timed with
performance.now() inside the page (JSON parse + every panel), long tasks come from a
PerformanceObserver, the heap from performance.memory (--enable-precise-memory-info).

``compare()`` (--against) measures this checkout's page and another checkout's
(its dashboard/app.py and assets) side by side: one stack, one browser, both pages
drawing the same frames over the same minutes, so the load of a shared machine
falls on both alike; runs alternate which page opens first. On a busy machine two
runs of measure() a few minutes apart can differ by more than the change measured.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

from dashboard.harness import launch_chromium, running_dashboard

WARMUP_S = 8.0
DEBUG_JS = "() => window.dash_clientside.liq.debug()"
READY_JS = "() => window.dash_clientside?.liq?.debug().seq != null"


def _heap_mb(page: Any) -> float:
    # a garbage collection first (exposed by --js-flags=--expose-gc) so the figure is live data
    return float(page.evaluate("() => { if (window.gc) window.gc(); return performance.memory.usedJSHeapSize; }")) / 1e6


def _summary(stats: dict[str, Any], seconds: float) -> dict[str, Any]:
    recent = sorted(stats["recent"]) or [0.0]
    panels = {
        name: {"mean_ms": round(p["ms"] / max(p["calls"], 1), 2), "max_ms": round(p["maxMs"], 1), "calls": p["calls"]}
        for name, p in stats["panels"].items()
    }
    return {
        "frames": stats["frames"],
        "frame_ms_mean": round(statistics.fmean(recent), 2),
        "frame_ms_p50": round(recent[len(recent) // 2], 2),
        "frame_ms_p95": round(recent[min(len(recent) - 1, int(len(recent) * 0.95))], 2),
        "frame_ms_max": round(stats["maxMs"], 1),
        "long_tasks": stats["longTasks"],
        "long_task_ms_per_s": round(stats["longTaskMs"] / seconds, 1),
        "surface_redraw_ms_mean": round(stats["surfaceMs"] / max(stats["surfaceDraws"], 1), 1),
        "surface_draws": stats["surfaceDraws"],
        "surface_skipped_offscreen": stats.get("surfaceSkipped", 0),
        # everything the page's JS did, spread over the frames: the handler plus every panel
        # drawn in its own task (heatmap, surface, trailing depth redraws): timed() sums
        # all work done outside the handler in deferredMs
        "main_thread_ms_per_frame": round((stats["totalMs"] + stats["deferredMs"]) / max(stats["frames"], 1), 2),
        "panels": panels,
    }


def measure(
    minutes: float = 1.0, cadence_s: float = 1.0, heap_every_min: float = 1.0, surface_in_view: bool = False
) -> dict[str, Any]:
    """Run the dashboard for ``minutes`` at a push cadence of ``cadence_s``; frame
    cost and JS heap figures (heap sampled every ``heap_every_min`` minutes).

    The 3D surface sits below the fold at 1400x900 and is not redrawn while off screen;
    ``surface_in_view`` scrolls it into view first, so every panel is drawn on schedule."""
    from playwright.sync_api import sync_playwright

    with running_dashboard(push_interval_s=cadence_s) as rd, sync_playwright() as pw:
        browser = launch_chromium(pw, ["--enable-precise-memory-info", "--js-flags=--expose-gc"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(rd.url)
            page.wait_for_function(READY_JS, timeout=30_000)
            if surface_in_view:
                page.evaluate("() => document.getElementById('panel-surface').scrollIntoView({block: 'end'})")
            page.wait_for_timeout(WARMUP_S * 1000)  # benchmark warm-up, not a race guard
            page.evaluate("() => window.dash_clientside.liq.resetStats()")
            heap = [{"minute": 0.0, "mb": round(_heap_mb(page), 2)}]
            started = time.monotonic()
            end = started + minutes * 60
            next_heap = started + heap_every_min * 60
            while (now := time.monotonic()) < end:
                page.wait_for_timeout(min(1.0, end - now) * 1000)
                if time.monotonic() >= next_heap - 0.5:
                    heap.append({"minute": round((time.monotonic() - started) / 60, 2), "mb": round(_heap_mb(page), 2)})
                    next_heap += heap_every_min * 60
            seconds = time.monotonic() - started
            debug = page.evaluate(DEBUG_JS)
        finally:
            browser.close()
    out = {"cadence_s": cadence_s, "minutes": minutes, "surface_in_view": surface_in_view,
           **_summary(debug["stats"], seconds), "heap_mb": heap}
    out["heap_growth_mb"] = round(heap[-1]["mb"] - heap[0]["mb"], 2)
    out["window"] = {k: debug[k] for k in ("columns", "series", "trades", "alerts")}
    return out


# Long tasks of the page, recorded from before its first script runs.
LONG_TASKS_INIT_JS = """
window.__longTasks = [];
try {
  new PerformanceObserver(function (list) {
    for (const e of list.getEntries()) window.__longTasks.push({ start: e.startTime, ms: e.duration });
  }).observe({ type: 'longtask' });
} catch (e) { /* no long task timing in this browser */ }
"""
# The history message arrived (the page marks it) and everything it asked to draw is drawn.
HISTORY_DRAWN_JS = """() => {
  const LIQ = window.dash_clientside && window.dash_clientside.liq;
  if (!LIQ || !performance.getEntriesByName('liq-history').length) return false;
  const d = LIQ.debug();
  return d.stats.historyMs > 0 && d.columns > 0 && !d.surfaceBusy && !d.historyPending
    && Boolean(document.getElementById('heatmap')._fullLayout);
}"""
HISTORY_TASKS_JS = """() => {
  const mark = performance.getEntriesByName('liq-history')[0].startTime;
  const all = window.__longTasks || [];
  const after = all.filter(t => t.start + t.ms >= mark);
  const LIQ = window.dash_clientside.liq;
  return { after: after, all: all, historyMs: LIQ.debug().stats.historyMs, frames: LIQ.debug().series,
           bytes: LIQ.debug().stats.historyBytes || null };
}"""


def history_load(loads: int = 5, settle_s: float = 2.0, url: str | None = None) -> dict[str, Any]:
    """Open the page ``loads`` times once the API's 180 s buffer is full; per load the
    longest long task from the history message's arrival until it is drawn (and
    ``settle_s`` after), and the longest of the whole page load (scripts included).

    ``url``: an already running dashboard whose buffer is full (else one is started
    here and its buffer waited for, 180 s at 1 frame a second)."""
    from playwright.sync_api import sync_playwright

    def run(page_url: str) -> dict[str, Any]:
        rows = []
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                for _ in range(loads):
                    context = browser.new_context(viewport={"width": 1400, "height": 900})
                    context.add_init_script(LONG_TASKS_INIT_JS)
                    page = context.new_page()
                    page.goto(page_url)
                    page.wait_for_function(HISTORY_DRAWN_JS, timeout=120_000)
                    page.wait_for_timeout(settle_s * 1000)  # long tasks drawn just after it, not a race guard
                    got = page.evaluate(HISTORY_TASKS_JS)
                    context.close()
                    rows.append({
                        "frames": got["frames"],
                        "longest_after_history_ms": round(max((t["ms"] for t in got["after"]), default=0.0), 1),
                        "long_tasks_after_history": [round(t["ms"], 1) for t in got["after"]],
                        "longest_whole_load_ms": round(max((t["ms"] for t in got["all"]), default=0.0), 1),
                        "history_handling_ms": round(got["historyMs"], 1),
                    })
            finally:
                browser.close()
        worst = sorted(r["longest_after_history_ms"] for r in rows)
        return {"loads": rows, "longest_after_history_ms_median": worst[len(worst) // 2],
                "longest_after_history_ms_max": worst[-1]}

    if url is not None:
        return run(url)
    with running_dashboard(push_interval_s=1.0) as rd:
        publisher = rd.stack.stack.publisher
        assert publisher is not None
        buffers = publisher.buffers
        deadline = time.monotonic() + 600
        while not all(len(b) >= b.maxlen for b in buffers.values()):
            if time.monotonic() > deadline:
                raise SystemExit("the API's frame buffer did not fill in 10 minutes")
            time.sleep(1.0)
        return run(rd.url)


def _create_app_of(checkout: Path) -> Any:
    """``create_app`` of another checkout's dashboard (its app.py, hence its assets)."""
    spec = importlib.util.spec_from_file_location("other_dashboard_app", checkout / "dashboard" / "app.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"no dashboard/app.py in {checkout}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.create_app


def _side_by_side(browser: Any, urls: dict[str, str], minutes: float) -> dict[str, dict[str, Any]]:
    """One run: a page for each url (in the given order), measured over the same minutes."""
    pages = {}
    for name, url in urls.items():
        pages[name] = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        pages[name].goto(url)
    try:
        for page in pages.values():
            page.wait_for_function(READY_JS, timeout=60_000)
        first = next(iter(pages.values()))
        first.wait_for_timeout(WARMUP_S * 1000)  # benchmark warm-up, not a race guard
        for page in pages.values():
            page.evaluate("() => window.dash_clientside.liq.resetStats()")
        started = time.monotonic()
        end = started + minutes * 60
        while (now := time.monotonic()) < end:
            first.wait_for_timeout(min(1.0, end - now) * 1000)
        seconds = time.monotonic() - started
        return {name: _summary(page.evaluate(DEBUG_JS)["stats"], seconds) for name, page in pages.items()}
    finally:
        for page in pages.values():
            page.context.close()


def compare(other: Path, minutes: float = 1.0, cadence_s: float = 1.0, runs: int = 3) -> dict[str, Any]:
    """This checkout's page ("this") and ``other``'s side by side, ``runs`` times:
    main-thread ms a frame of each and their ratio this / other."""
    from playwright.sync_api import sync_playwright

    from dashboard.app import create_app
    from dashboard.server import DashboardServer

    factories = {"this": create_app, "other": _create_app_of(other)}
    kept = ("frames", "frame_ms_mean", "frame_ms_p95", "main_thread_ms_per_frame", "panels")
    results: list[dict[str, Any]] = []
    servers: dict[str, DashboardServer] = {}
    with running_dashboard(push_interval_s=cadence_s) as rd, sync_playwright() as pw:
        try:
            for name, factory in factories.items():
                app = factory(rd.api_url, list(rd.stack.settings.symbols), rd.stack.stack.source.label)
                servers[name] = DashboardServer(app, "127.0.0.1", 0)
                servers[name].start()
            browser = launch_chromium(pw)
            try:
                for run in range(runs):
                    order = ["this", "other"] if run % 2 == 0 else ["other", "this"]
                    row = _side_by_side(browser, {name: servers[name].url for name in order}, minutes)
                    this, that = row["this"]["main_thread_ms_per_frame"], row["other"]["main_thread_ms_per_frame"]
                    results.append({"first": order[0], "ratio": round(this / max(that, 1e-9), 3),
                                    **{name: {k: row[name][k] for k in kept} for name in row}})
            finally:
                browser.close()
        finally:
            for server in servers.values():
                server.stop()
    ratios = sorted(r["ratio"] for r in results)
    return {"other": str(other), "cadence_s": cadence_s, "minutes": minutes, "runs": results,
            "ratio_median": ratios[len(ratios) // 2]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=1.0, help="run at 1 frame a second for this long")
    parser.add_argument("--cadence", type=float, default=1.0)
    parser.add_argument("--fast-minutes", type=float, default=0.5, help="then at 100 ms cadence for this long")
    parser.add_argument(
        "--surface-in-view", action="store_true", help="scroll the 3D surface into view, so it redraws every 5 s"
    )
    parser.add_argument("--against", type=Path, help="another checkout: measure both pages side by side instead")
    parser.add_argument("--runs", type=int, default=3, help="with --against: side-by-side runs")
    parser.add_argument("--history-load", action="store_true",
                        help="the longest long task on loading the API's 180 s of frames, instead")
    parser.add_argument("--loads", type=int, default=5, help="with --history-load: page loads")
    parser.add_argument("--url", help="with --history-load: a running dashboard whose 180 s buffer is full")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.history_load:
        print(json.dumps(history_load(args.loads, url=args.url), indent=2))
        return
    if args.against is not None:
        print(json.dumps(compare(args.against, args.minutes, args.cadence, args.runs), indent=2))
        return
    results = [measure(args.minutes, args.cadence, surface_in_view=args.surface_in_view)]
    if args.fast_minutes > 0:
        results.append(
            measure(
                args.fast_minutes,
                0.1,
                heap_every_min=max(args.fast_minutes / 2, 0.25),
                surface_in_view=args.surface_in_view,
            )
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
