"""``make bench``: every benchmark of the project, one table, also written as JSON.

    python -m bench [--only NAME[,NAME]] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import fanout, ingest

Benchmark = Callable[[], dict[str, Any]]


def _browser_1s() -> dict[str, Any]:
    from dashboard.bench_browser import measure

    return _flat(measure(1.0, 1.0, heap_every_min=0.5))


def _browser_fast() -> dict[str, Any]:
    from dashboard.bench_browser import measure

    return _flat(measure(1.0, 0.1, heap_every_min=0.5))


def _detectors() -> dict[str, Any]:
    from bench.detector_score import score

    res = score(minutes=30.0)
    out: dict[str, Any] = {}
    for kind, k in res["kinds"].items():
        for fig in ("labels", "alerts", "recall", "precision", "precision_truth", "agreement"):
            if fig in k:
                out[f"{kind}.{fig}"] = k[fig]
    return out


def _sim_cost() -> dict[str, Any]:
    from bench.sim_cost import bench_sim_cost

    return bench_sim_cost()


def _replay_memory() -> dict[str, Any]:
    from bench.replay_memory import bench_replay_memory

    return bench_replay_memory()


def _recorder() -> dict[str, Any]:
    from bench.recorder import bench_recorder

    return bench_recorder()


def _seek() -> dict[str, Any]:
    import tempfile

    from bench.seek import run

    with tempfile.TemporaryDirectory(prefix="liq-bench-seek-") as tmp:
        return run(Path(tmp), hours=1.0, seeks=100, checks=5, seed=1, member_s=60.0)


def _flat(result: dict[str, Any]) -> dict[str, Any]:
    """Scalars only, for the table (the heap series stays in the JSON as a string)."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items() if isinstance(v, int | float)})
        elif isinstance(value, list):
            out[key] = " ".join(f"{p['minute']}:{p['mb']}" for p in value if isinstance(p, dict))
        else:
            out[key] = value
    return out


def registry() -> dict[str, tuple[str, Benchmark]]:
    """name -> (what it measures, function)."""
    benches: dict[str, tuple[str, Benchmark]] = {
        "bare_loop": ("reference: orjson decode + SortedDict writes, no sync rules", ingest.bench_bare_loop),
        "ingest": ("decode + sync + apply per depth message (BTCUSDT recording)", ingest.bench_ingest),
        "pipeline": ("ingest + per-event features (top-N metrics, OFI)", ingest.bench_pipeline),
        "ratio": ("pipeline / bare loop, alternated in one run (target >= 1.0)", ingest.bench_ratio),
        "replay_memory": ("replay RSS of a 50,000-priced and a 0.001-priced symbol vs BTCUSDT",
                          _replay_memory),
        "recorder": ("recorder: disk per symbol-hour and CPU per message at the real recordings' rate",
                     _recorder),
        "seek": ("history: the book at 100 random moments of 1 simulated hour, 5 checked against a full rebuild",
                 _seek),
        "frame": ("one frame: whole-book features, detectors, heatmap, encoding", ingest.bench_frame),
        "fanout": ("200 websocket clients on two symbols at 1 s for 60 s", fanout.bench_fanout),
        "sim_cost": ("the simulated exchange alone: CPU and RSS at 2 symbols and at a market of 300",
                     _sim_cost),
        "detectors": ("detector recall/precision vs labelled episodes, 30 simulated minutes", _detectors),
        "browser": ("dashboard in headless Chromium, 1 frame/s for 1 min: main-thread cost, JS heap", _browser_1s),
        "browser_fast": ("the same at 10 frames/s for 1 min", _browser_fast),
    }
    return benches


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "latest.json"))
    args = parser.parse_args(argv)
    benches = registry()
    wanted = [n for n in args.only.split(",") if n] or list(benches)
    unknown = [n for n in wanted if n not in benches]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(benches)}", file=sys.stderr)
        return 2
    results: dict[str, Any] = {"machine": machine(), "results": {}}
    print(f"{'benchmark':<14} {'figure':<24} value")
    for name in wanted:
        what, fn = benches[name]
        res = fn()
        results["results"][name] = {"what": what, **res}
        for key, value in res.items():
            shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
            print(f"{name:<14} {key:<24} {shown}", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
