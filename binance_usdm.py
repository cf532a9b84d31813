"""Facts of Binance's USDT-M futures API that both sides of this project rely on:
the client (data_ingestion/) and the simulated exchange (exchange_sim/) read them
from here, so the two cannot drift apart. Source: Binance's USDT-M futures API docs.
"""

from __future__ import annotations

# Request weight of GET /fapi/v1/depth by ``limit``; no other limit is accepted.
DEPTH_WEIGHT: dict[int, int] = {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}
