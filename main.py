"""Order book liquidity dashboard for Binance USDT-M futures: one process.

Ingestion and the API run in one asyncio event loop (uvicorn), the Dash server in a
sibling thread; with ``--source sim`` the simulated exchange runs in the same
process on a free loopback port. This file only parses the command line and wires
the parts together.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from api.assembly import Stack
from api.limits import raise_open_files_limit
from api.server import bind_api_socket
from api.services import SourceInfo
from bus.errors import BusUnavailable
from config import ENV_PREFIX, Settings, load_settings, parse_duration_s, parse_size_bytes
from data_ingestion.recorder import Recorder, RecorderError, format_duration, format_size, open_recorder
from data_ingestion.rest import RestrictedLocation
from data_ingestion.tasks import install_loop_error_log
from embedded_server import bind_socket, url_host

log = logging.getLogger("main")

SOURCES = ("auto", "binance", "sim", "replay")
ROLES = ("all", "ingest", "api")  # all: one process, no bus; ingest and api: bus/ (NATS JetStream)


def _env(name: str) -> str:
    return f"{ENV_PREFIX}{name}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python main.py",
        description="Live L2 order book liquidity dashboard for Binance USDT-M futures. Every flag can also "
        "be set by an environment variable (shown in brackets, with the default); flags win over variables.",
        # Not ArgumentDefaultsHelpFormatter: every default here is None (meaning "not given",
        # so the variable or config.py decides) and each help text states the real default.
    )
    d = Settings()
    p.add_argument("--source", choices=SOURCES, default=None,
                   help=f"where the books come from: auto tries Binance, else the simulated market "
                        f"[{_env('SOURCE')}, default {d.source}]")
    p.add_argument("--symbols", default=None,
                   help=f"comma-separated USDT-M symbols [{_env('SYMBOLS')}, default {','.join(d.symbols)}]")
    p.add_argument("--replay", nargs="+", default=None, metavar="FILE",
                   help=f"recordings to play with --source replay (several files of one symbol in order) "
                        f"[{_env('REPLAY_FILES')}, separated by commas]")
    p.add_argument("--speed", type=float, default=None,
                   help=f"replay speed: 1 real time, 0 as fast as possible "
                        f"[{_env('REPLAY_SPEED')}, default {d.replay_speed:g}]")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help=f"where history is recorded: every raw message, in DIR/raw/<symbol>/ "
                        f"[{_env('DATA_DIR')}, default {d.data_dir}]")
    p.add_argument("--no-history", action="store_true", default=None,
                   help=f"record nothing [{_env('HISTORY')}=0]")
    p.add_argument("--retain", default=None, metavar="DURATION",
                   help=f"remove recorded segments last written longer ago than this: 24h, 90m, 3600s, 2d "
                        f"[{_env('RETAIN_S')} in seconds, default {format_duration(d.retain_s)}]")
    p.add_argument("--max-disk", default=None, metavar="SIZE",
                   help=f"remove the oldest recorded segments while the data directory (segments, indexes, "
                        f"history.sqlite) holds more: 2GB, "
                        f"500MB [{_env('MAX_DISK_BYTES')} in bytes, default {format_size(d.max_disk_bytes)}]")
    p.add_argument("--record", default=None, metavar="DIR",
                   help=f"record into DIR (as --data-dir DIR, even with --no-history) [{_env('RECORD_DIR')}]")
    p.add_argument("--host", default=None,
                   help=f"address the API and dashboard listen on [{_env('HOST')}, default {d.host}]")
    p.add_argument("--api-port", type=int, default=None, help=f"API port [{_env('API_PORT')}, default {d.api_port}]")
    p.add_argument("--dash-port", type=int, default=None,
                   help=f"dashboard port [{_env('DASH_PORT')}, default {d.dash_port}]")
    p.add_argument("--no-dashboard", action="store_true", default=None,
                   help=f"run the API only [{_env('DASHBOARD')}=0]")
    p.add_argument("--cadence", type=float, default=None,
                   help=f"seconds between frames, 0.1 to 10 [{_env('PUSH_INTERVAL_S')}, default {d.push_interval_s}]")
    p.add_argument("--open-interest-poll", type=float, default=None, metavar="SECONDS",
                   help=f"seconds between open interest polls (GET /fapi/v1/openInterest, weight 1, never ahead "
                        f"of a snapshot), 0 = never [{_env('OPEN_INTEREST_POLL_S')}, default "
                        f"{d.open_interest_poll_s:g}]")
    p.add_argument("--no-derivatives", action="store_true", default=None,
                   help=f"do not subscribe the liquidation and mark price streams [{_env('DERIVATIVES_STREAMS')}=0]")
    p.add_argument("--screener", dest="screener", action="store_true", default=None,
                   help=f"watch the whole market on the light streams (GET /screener, /ws/screener); on by "
                        f"default for live and simulated sources, never for a replay [{_env('SCREENER')}]")
    p.add_argument("--no-screener", dest="screener", action="store_false",
                   help=f"do not watch the whole market [{_env('SCREENER')}=0]")
    p.add_argument("--focus-max", type=int, default=None, metavar="N",
                   help=f"symbols with a full-depth book at once, start symbols included (POST /focus/<symbol> "
                        f"promotes one of the screener) [{_env('FOCUS_MAX')}, default {d.focus_max}]")
    p.add_argument("--focus-idle", type=float, default=None, metavar="SECONDS",
                   help=f"a promoted symbol without any /ws/<symbol> client this long is released "
                        f"[{_env('FOCUS_IDLE_S')}, default {d.focus_idle_s:g}]")
    p.add_argument("--sim-url", default=None,
                   help=f"REST base of a simulated exchange running elsewhere (its websockets on port + 1) "
                        f"[{_env('SIM_URL')}]")
    p.add_argument("--sim-speed", type=float, default=None,
                   help=f"in-process simulated market speed [{_env('SIM_SPEED')}, default {d.sim_speed:g}]")
    p.add_argument("--sim-market", default=None, metavar="N|SYMBOLS",
                   help=f"the in-process simulated exchange also serves a market of N symbols (its most active "
                        f"contracts) or of these symbols, with their exchangeInfo, all-market and partial-book "
                        f"streams [{_env('SIM_MARKET')}]")
    p.add_argument("--seed", type=int, default=None,
                   help=f"simulated market seed [{_env('SIM_SEED')}, default {d.sim_seed}]")
    p.add_argument("--allow-origin", action="append", default=None, metavar="ORIGIN",
                   help=f"a browser origin (scheme://host:port) allowed to read the API besides the dashboard's "
                        f"own and same origin; repeat for several, '*' for any page "
                        f"[{_env('ALLOW_ORIGINS')}, separated by commas]")
    p.add_argument("--forwarded-allow-ips", default=None, metavar="IPS",
                   help=f"proxies whose X-Forwarded-For is believed (comma-separated, '*' any); by default "
                        f"none: each client counts as its own address [{_env('FORWARDED_ALLOW_IPS')}]")
    p.add_argument("--alerts", default=None, metavar="FILE",
                   help=f"alert rules and their destinations, JSON or TOML (README, \"Alert rules and "
                        f"notifications\"); PUT /alerts/rules saves into it [{_env('ALERTS_FILE')}]")
    p.add_argument("--alerts-link", default=None, metavar="URL",
                   help=f"the dashboard address the alerts link to [{_env('ALERTS_DASHBOARD_URL')}, default "
                        f"the dashboard's own, http://<host>:<dash-port>]")
    p.add_argument("--log-level", default=None, choices=("debug", "info", "warning", "error"),
                   help=f"log verbosity [{_env('LOG_LEVEL')}, default {d.log_level}]")
    p.add_argument("--log-file", default=None, help=f"also write the log to this file [{_env('LOG_FILE')}]")
    p.add_argument("--role", choices=ROLES, default=None,
                   help=f"all: everything in this process; ingest: read the exchange for some symbols and "
                        f"publish on the bus; api: serve the API and dashboard from the bus "
                        f"[{_env('ROLE')}, default {d.role}]")
    p.add_argument("--bus", default=None, metavar="URL",
                   help=f"the NATS server (JetStream on) of --role ingest and api, nats://HOST:PORT "
                        f"[{_env('BUS_URL')}]")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help=f"--role ingest: take every N-th of the sorted --symbols, from the I-th (1-based) "
                        f"[{_env('SHARD')}]")
    p.add_argument("--node", default=None, metavar="NAME",
                   help=f"this node's name on the bus [{_env('NODE_NAME')}, default <role>-<host>-<pid>]")
    p.add_argument("--api-urls", default=None, metavar="URLS",
                   help=f"--role api: other API nodes (comma-separated) the dashboard page moves to when its "
                        f"connection drops [{_env('API_URLS')}]")
    return p


def settings_from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    cli: dict[str, Any] = {
        "source": args.source,
        "symbols": tuple(s.strip() for s in args.symbols.split(",") if s.strip()) if args.symbols else None,
        "replay_files": tuple(args.replay) if args.replay else None,
        "replay_speed": args.speed,
        "record_dir": args.record,
        "data_dir": args.data_dir,
        "history": False if args.no_history else None,
        "retain_s": parse_duration_s(args.retain) if args.retain is not None else None,
        "max_disk_bytes": parse_size_bytes(args.max_disk) if args.max_disk is not None else None,
        "host": args.host,
        "api_port": args.api_port,
        "dash_port": args.dash_port,
        "dashboard": False if args.no_dashboard else None,
        "push_interval_s": args.cadence,
        "open_interest_poll_s": args.open_interest_poll,
        "derivatives_streams": False if args.no_derivatives else None,
        "sim_url": args.sim_url,
        "screener": args.screener,
        "focus_max": args.focus_max,
        "focus_idle_s": args.focus_idle,
        "sim_speed": args.sim_speed,
        "sim_market": args.sim_market,
        "sim_seed": args.seed,
        "alerts_file": args.alerts,
        "alerts_dashboard_url": args.alerts_link,
        "log_level": args.log_level,
        "log_file": args.log_file,
        "allow_origins": tuple(o.strip() for a in args.allow_origin for o in a.split(",") if o.strip())
        if args.allow_origin else None,
        "forwarded_allow_ips": args.forwarded_allow_ips,
        "role": args.role,
        "bus_url": args.bus,
        "shard": args.shard,
        "node_name": args.node,
        "api_urls": tuple(u.strip() for u in args.api_urls.split(",") if u.strip()) if args.api_urls else None,
    }
    return load_settings(environ, **cli)


class UsageError(Exception):
    """A problem with the command line or the machine, said in one line."""


def check_settings(s: Settings) -> None:
    if s.source not in SOURCES:
        raise UsageError(f"--source must be one of {', '.join(SOURCES)}, got {s.source!r}")
    if not s.symbols and s.source != "replay":
        raise UsageError("--symbols: give at least one symbol")
    if not 0.1 <= s.push_interval_s <= 10:
        raise UsageError(f"--cadence must be between 0.1 and 10 seconds, got {s.push_interval_s}")
    if s.open_interest_poll_s != 0 and not 1 <= s.open_interest_poll_s <= 3600:
        raise UsageError(f"--open-interest-poll must be 0 (never) or between 1 and 3600 seconds, got "
                         f"{s.open_interest_poll_s:g}")
    if s.focus_max < 1 or not s.focus_idle_s > 0:
        raise UsageError(f"--focus-max must be at least 1 and --focus-idle positive, got {s.focus_max} and "
                         f"{s.focus_idle_s:g}")
    if s.source == "replay":
        if not s.replay_files:
            raise UsageError("--source replay needs --replay FILE [FILE ...]")
        for f in s.replay_files:
            if not Path(f).is_file():
                raise UsageError(f"--replay: no such file: {f}")
    if s.replay_speed < 0:
        raise UsageError("--speed must be >= 0")
    if not s.retain_s > 0:
        raise UsageError(f"--retain must be a positive duration, got {s.retain_s:g} s")
    if s.max_disk_bytes <= 0:
        raise UsageError(f"--max-disk must be a positive size, got {s.max_disk_bytes} bytes")
    if s.recorder_retry_s <= 0 or s.retention_interval_s <= 0:
        raise UsageError("the recorder's retry and retention intervals must be positive")
    if s.dash_workers < 1 or s.dash_max_connections < 1 or not s.dash_request_timeout_s > 0:
        raise UsageError(f"{ENV_PREFIX}DASH_WORKERS and {ENV_PREFIX}DASH_MAX_CONNECTIONS must be at least 1 and "
                         f"{ENV_PREFIX}DASH_REQUEST_TIMEOUT_S positive")
    if s.alerts_file:
        from alerting.rules import RulesError, load_file

        if Path(s.alerts_file).exists():
            try:
                load_file(s.alerts_file)
            except RulesError as exc:
                raise UsageError(f"--alerts: {exc}") from None
        elif not Path(s.alerts_file).parent.is_dir():
            raise UsageError(f"--alerts: no directory for {s.alerts_file}")
    if s.alerts_dashboard_url and not s.alerts_dashboard_url.startswith(("http://", "https://")):
        raise UsageError(f"--alerts-link must be an http:// or https:// URL, got {s.alerts_dashboard_url!r}")
    if s.role not in ROLES:
        raise UsageError(f"--role must be one of {', '.join(ROLES)}, got {s.role!r}")
    if s.role == "all" and (s.bus_url or s.shard):
        raise UsageError("--bus and --shard are for --role ingest or api (the default role uses no bus)")


def open_history(s: Settings) -> Recorder | None:
    """The recorder, its data directory checked and locked before anything starts: a
    file, an unwritable path or a directory another process records into is a
    one-line error."""
    try:
        return open_recorder(s)
    except RecorderError as exc:
        flag = "--record" if s.record_dir else "--data-dir"
        hint = "" if s.record_dir else ", or --no-history to record nothing"
        raise UsageError(f"{exc} ({flag} chooses another{hint})") from None


def setup_logging(s: Settings) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if s.log_file:
        handlers.append(logging.FileHandler(s.log_file))
    logging.basicConfig(
        level=getattr(logging, s.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    for noisy in ("httpx", "websockets", "uvicorn.error", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def reserve_port(
    host: str, port: int, what: str, flag: str, bind: Callable[[str, int], socket.socket] = bind_socket
) -> socket.socket:
    try:
        return bind(host, port)
    except OSError as exc:
        raise UsageError(f"{what} port {port} on {host} is not available ({exc.strerror}); choose another "
                         f"with {flag}") from None


async def probe_binance(s: Settings) -> tuple[bool, str]:
    """Does Binance's REST ping answer within the probe timeout?"""
    url = s.rest_base_url.rstrip("/") + "/fapi/v1/ping"
    t0 = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=s.auto_probe_timeout_s) as client:
            resp = await client.get(url)
    except httpx.HTTPError as exc:
        return False, f"Binance did not answer ({type(exc).__name__}) within {s.auto_probe_timeout_s:.0f} s"
    if resp.status_code == 451:
        return False, "Binance refuses this location (HTTP 451)"
    if resp.status_code != 200:
        return False, f"Binance answered HTTP {resp.status_code} to ping"
    return True, f"Binance answered ping in {1000 * (time.monotonic() - t0):.0f} ms"


def sim_urls_from(rest_url: str) -> dict[str, str]:
    """A standalone simulated exchange serves websockets on its REST port + 1."""
    parts = urlsplit(rest_url)
    host = parts.hostname or "127.0.0.1"
    port = (parts.port or 80) + 1
    shown = url_host(host)
    return {
        "rest_base_url": rest_url.rstrip("/"),
        "ws_public_url": f"ws://{shown}:{port}/public",
        "ws_market_url": f"ws://{shown}:{port}/market",
    }


def expected_depth_rate(suffix: str) -> float:
    """Depth events a second of a diff-depth stream: @depth@100ms 10, @depth 4, @depth@500ms 2."""
    if suffix.endswith("ms"):
        try:
            return 1000.0 / float(suffix.rsplit("@", 1)[1][:-2])
        except (ValueError, ZeroDivisionError):
            return 10.0
    return 4.0


class App:
    """The running process: the simulated exchange (if any), the stack, the dashboard."""

    def __init__(self, settings: Settings, recorder: Recorder | None = None) -> None:
        self.settings = settings
        self.recorder = recorder
        self.sim: Any = None
        self.stack: Stack | None = None
        self.hub: Any = None  # an ingest node's hub (bus/ingest_node.py); None: the stack's own
        self.dashboard: Any = None

    async def choose_source(self) -> SourceInfo:
        s = self.settings
        if s.source == "replay":
            names = ", ".join(Path(f).name for f in s.replay_files)
            why = f"chosen with --source replay at speed {s.replay_speed:g}"
            return SourceInfo("replay", f"REPLAY of {names}", why)
        if s.source == "binance":
            return SourceInfo("binance", "LIVE Binance", "chosen with --source binance")
        if s.source == "auto":
            ok, why = await probe_binance(s)
            log.info("source auto: %s", why)
            if ok:
                return SourceInfo("binance", "LIVE Binance", f"auto: {why}")
            reason = f"auto: {why}; showing the SIMULATED market instead"
            log.warning("%s", reason)
            return await self.start_sim(reason)
        return await self.start_sim("chosen with --source sim")

    async def start_sim(self, reason: str) -> SourceInfo:
        s = self.settings
        if s.sim_url:
            self.settings = s.replace(**sim_urls_from(s.sim_url))
            return SourceInfo("sim", "SIMULATED market", f"{reason} (simulated exchange at {s.sim_url})")
        from sim_stack import start_sim_exchange

        self.sim, self.settings = await start_sim_exchange(s)
        return SourceInfo("sim", "SIMULATED market", f"{reason} (in-process simulated exchange)")

    async def start(self, api_sock: socket.socket, dash_sock: socket.socket | None) -> None:
        source = await self.choose_source()
        s = self.settings
        self.stack = Stack(s, source, api_socket=api_sock, replay_files=s.replay_files, recorder=self.recorder,
                           hub=self.hub)
        await self.stack.start()
        if dash_sock is not None:
            from dashboard.app import create_app
            from dashboard.pooled_server import ServerLimits
            from dashboard.server import DashboardServer

            dash_sock.close()  # released just before the dashboard binds it
            app = create_app(self.stack.api_url, list(self.stack.runtime.feeds), source.label)
            limits = ServerLimits(s.dash_workers, s.dash_max_connections, s.dash_request_timeout_s)
            self.dashboard = DashboardServer(app, s.host, s.dash_port, limits)
            self.dashboard.start()
            self.stack.allow_origin(self.dashboard.url)
        shown = f"[{s.host}]" if ":" in s.host else s.host
        log.info("source: %s (%s)", source.label, source.reason)
        if self.dashboard is not None:
            log.info("dashboard: http://%s:%d/", shown, s.dash_port)
        log.info("API: %s  (docs %s/docs, health %s/health)", self.stack.api_url, self.stack.api_url,
                 self.stack.api_url)
        if self.recorder is not None:
            log.info("history: recording into %s (kept %s, at most %s)", self.recorder.directory,
                     format_duration(self.recorder.retain_s), format_size(self.recorder.max_disk_bytes))
        elif source.kind != "replay":
            log.info("history: off")
        self.stack.tasks.supervise(self.minute_report, name="minute-report")

    async def minute_report(self) -> None:
        """One log line a minute per symbol: state, rates, gaps, alerts; a warning when
        the depth rate is far from the stream's (about 10/s at 100 ms) or memory grew."""
        assert self.stack is not None
        last_alerts: dict[str, int] = {}
        expected = expected_depth_rate(self.settings.depth_stream_suffix)
        while True:
            await asyncio.sleep(60.0)
            self.stack.runtime.process.summary()  # logs a warning past +50 % of the baseline RSS
            for sym, feed in self.stack.runtime.feeds.items():
                info = feed.feed_info()
                rate = info["depth_events_per_s"]
                if self.stack.source.kind != "replay" and not expected / 2 <= rate <= expected * 2:
                    log.warning("%s: %.1f depth events/s, expected about %.0f/s on %s", sym, rate, expected,
                                self.settings.depth_stream_suffix)
                features = self.stack.features.get(sym)
                alerts = len(features.alert_history) if features is not None else 0
                log.info("%s: %s, %.1f msgs/s, %.1f depth/s, gaps %d, resyncs %d, alerts in 180 s: %d (%+d)",
                         sym, feed.display_state(), info["messages_per_s"], info["depth_events_per_s"],
                         info["gaps"], info["resyncs"], alerts, alerts - last_alerts.get(sym, 0))
                last_alerts[sym] = alerts

    async def stop(self) -> None:
        if self.dashboard is not None:
            await asyncio.to_thread(self.dashboard.stop)
        if self.stack is not None:
            await self.stack.stop()
        if self.sim is not None:
            await self.sim.stop()


async def until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run ``work`` (start-up) unless ``stop`` is set first: start-up may wait (an
    ingest node for a lease another node holds). True when ``work`` finished."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    task.result()
    return True


async def run(settings: Settings) -> int:
    s = settings
    if not is_loopback(s.host):
        log.warning("listening on %s: the API and dashboard are reachable from other machines", s.host)
    api_sock = reserve_port(s.host, s.api_port, "API", "--api-port", bind_api_socket)
    dash_sock = reserve_port(s.host, s.dash_port, "dashboard", "--dash-port") if s.dashboard else None
    # An API node records nothing (it has no exchange connections): history is the ingest nodes'.
    app: Any = App(s, open_history(s) if s.role != "api" else None)
    if s.role != "all":
        from bus.roles import node_for

        app = node_for(s, app)
    loop = asyncio.get_running_loop()
    install_loop_error_log(loop)
    stop = asyncio.Event()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(130)
        log.info("%s: shutting down", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        if await until_stopped(app.start(api_sock, dash_sock), stop):
            await stop.wait()
    finally:
        try:
            async with asyncio.timeout(4.5):
                await app.stop()
        except TimeoutError:
            log.warning("shutdown took too long; exiting anyway")
    log.info("stopped cleanly")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        check_settings(settings)
        if settings.role != "all":
            from bus.roles import prepare

            settings = prepare(settings)
    except (UsageError, ValueError, BusUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings)
    soft, hard = raise_open_files_limit()
    log.debug("open files limit: %d (hard %d)", soft, hard)
    try:
        return asyncio.run(run(settings))
    except (UsageError, RestrictedLocation, BusUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # start-up problems said in one line (exchangeInfo, files)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        raise SystemExit(main())
