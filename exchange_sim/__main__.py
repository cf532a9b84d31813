"""``python -m exchange_sim``: run the simulated exchange standalone and print its URLs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import sys
from collections.abc import Sequence

from exchange_sim.contracts import CONTRACTS, with_market
from exchange_sim.exchange import SimExchange
from exchange_sim.regimes import MODES
from exchange_sim.settings import SimConfig


def _range(text: str) -> tuple[float, float]:
    """'60-120' -> (60.0, 120.0); '90' -> (90.0, 90.0)."""
    lo, _, hi = text.partition("-")
    try:
        pair = (float(lo), float(hi or lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX seconds, got {text!r}") from None
    if pair[0] <= 0 or pair[1] < pair[0]:
        raise argparse.ArgumentTypeError(f"expected 0 < MIN <= MAX, got {text!r}")
    return pair


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    d = SimConfig()
    p = argparse.ArgumentParser(
        prog="python -m exchange_sim",
        description="Simulated Binance USDT-M futures exchange (REST + websockets) on loopback.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9100, help="REST port (default 9100; 0 = a free port)")
    p.add_argument("--ws-port", type=int, default=None,
                   help="websocket port (default: REST port + 1, or a free port when --port is 0)")
    p.add_argument("--symbols", default=None,
                   help="comma-separated symbols (default btcusdt,ethusdt, or none with --market)")
    p.add_argument("--market", default="", metavar="N|SYMBOLS",
                   help=f"also serve a market: the N most active contracts of a table of plausible USDT-M "
                        f"perpetuals (1-{len(CONTRACTS)}), or these comma-separated symbols, each with its own "
                        f"tick, lot and activity")
    p.add_argument("--regime", default=d.regime, choices=MODES,
                   help="calm and volatile periods: auto alternates them (default), calm or volatile holds one")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed: same seed, same market (default 1)")
    p.add_argument("--speed", type=float, default=d.speed, help="simulated seconds per wall second (default 1)")
    p.add_argument("--weight-budget", type=int, default=d.weight_budget_1m,
                   help="REST request weight budget per minute and IP (default 2400)")
    p.add_argument("--ping-interval", type=float, default=d.ping_interval_s,
                   help="seconds between server ping frames (default 180)")
    p.add_argument("--pong-timeout", type=float, default=d.pong_timeout_s,
                   help="seconds without a pong before a connection is dropped (default 600)")
    p.add_argument("--lifetime", type=float, default=d.lifetime_s,
                   help="connection lifetime in seconds before the server closes it (default 86400)")
    p.add_argument("--no-episodes", action="store_true", help="no scripted episodes (plain random market)")
    p.add_argument("--wall-every", type=_range, default=d.wall_every_s, metavar="MIN-MAX",
                   help="seconds between two wall episodes of a symbol (default 60-120)")
    p.add_argument("--layering-every", type=_range, default=d.layering_every_s, metavar="MIN-MAX",
                   help="seconds between two layering episodes (default 60-120)")
    p.add_argument("--withdrawal-every", type=_range, default=d.withdrawal_every_s, metavar="MIN-MAX",
                   help="seconds between two liquidity withdrawals (default 60-120)")
    p.add_argument("--first-episode-after", type=_range, default=d.first_episode_after_s, metavar="MIN-MAX",
                   help="seconds after start before the first episode of each kind (default 20-60)")
    p.add_argument("--warmup", type=float, default=d.warmup_s,
                   help="simulated seconds run before serving (default 60)")
    p.add_argument("--restricted-location", action="store_true",
                   help="answer every REST request and websocket handshake with HTTP 451, as Binance does "
                        "from a restricted location")
    p.add_argument("--allow-remote", action="store_true", help="allow listening on a non-loopback address")
    p.add_argument("--log-level", default="info", help="logging level (default info)")
    return p.parse_args(argv)


async def _serve(cfg: SimConfig, host: str, port: int, ws_port: int | None) -> None:
    sim = SimExchange(cfg)
    urls = await sim.start(host=host, port=port, ws_port=ws_port)
    print(f"rest_base_url {urls.rest_base_url}", flush=True)
    print(f"ws_public_url {urls.ws_public_url}", flush=True)
    print(f"ws_market_url {urls.ws_market_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not _is_loopback(args.host) and not args.allow_remote:
        sys.stderr.write(f"refusing to listen on non-loopback address {args.host}; add --allow-remote\n")
        return 2
    focus = args.symbols if args.symbols is not None else ("" if args.market else "btcusdt,ethusdt")
    try:
        symbols = with_market(tuple(s.strip() for s in focus.split(",") if s.strip()), args.market)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    if not symbols:
        sys.stderr.write("no symbols: give --symbols or --market\n")
        return 2
    cfg = SimConfig(
        symbols=symbols, seed=args.seed, speed=args.speed, weight_budget_1m=args.weight_budget,
        ping_interval_s=args.ping_interval, pong_timeout_s=args.pong_timeout, lifetime_s=args.lifetime,
        episodes=not args.no_episodes, wall_every_s=args.wall_every, layering_every_s=args.layering_every,
        withdrawal_every_s=args.withdrawal_every, first_episode_after_s=args.first_episode_after,
        warmup_s=args.warmup, restricted_location=args.restricted_location, regime=args.regime,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(cfg, args.host, args.port, args.ws_port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
