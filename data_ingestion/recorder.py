"""``--record DIR``: every raw message appended in the recording format.

One gzip file per symbol and UTC day (``btcusdt_20260125.gz``), lines
``<local receive time ns> <raw json>``: the format of ../shared/data/binance-usdm,
which ``--source replay`` and the audit read back. Files are flushed every second
(by :meth:`Recorder.flush`, called from a task) so a crash loses at most a second.
"""

from __future__ import annotations

import gzip
import logging
import time
import zlib
from pathlib import Path
from typing import IO

log = logging.getLogger("recorder")


class Recorder:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, tuple[str, IO[bytes]]] = {}  # symbol -> (day, file)
        self._filters: dict[str, bytes] = {}  # symbol -> its filters line (JSON)
        self.lines = 0
        self.errors = 0

    def set_filters(self, symbol: str, line: bytes) -> None:
        """The symbol's filters line (SymbolFiltersLine), written at the head of every
        file opened for it, so that a replay knows the tick without guessing."""
        self._filters[symbol.lower()] = line

    def path_for(self, symbol: str, ts_ns: int) -> Path:
        day = time.strftime("%Y%m%d", time.gmtime(ts_ns / 1e9))
        return self.directory / f"{symbol.lower()}_{day}.gz"

    def write(self, symbol: str, ts_ns: int, raw: bytes | str) -> None:
        if isinstance(raw, str):
            raw = raw.encode()
        day = time.strftime("%Y%m%d", time.gmtime(ts_ns / 1e9))
        entry = self._files.get(symbol)
        try:
            if entry is None or entry[0] != day:
                if entry is not None:
                    entry[1].close()
                path = self.directory / f"{symbol.lower()}_{day}.gz"
                # A new gzip member per session: gzip readers see one stream.
                fh: IO[bytes] = gzip.open(path, "ab")  # type: ignore[assignment]  # noqa: SIM115 - kept open across writes
                entry = self._files[symbol] = (day, fh)
                log.info("%s: recording to %s", symbol, path)
                filters = self._filters.get(symbol.lower())
                if filters is not None:
                    fh.write(b"%d %s\n" % (ts_ns, filters))
            entry[1].write(b"%d %s\n" % (ts_ns, raw))
            self.lines += 1
        except OSError as exc:
            self.errors += 1
            if self.errors == 1:
                log.error("%s: recording failed: %s", symbol, exc)

    def flush(self) -> None:
        for symbol, (_day, fh) in self._files.items():
            try:
                fh.flush(zlib.Z_SYNC_FLUSH)  # type: ignore[call-arg]
            except OSError as exc:
                self.errors += 1
                log.error("%s: recording flush failed: %s", symbol, exc)

    def close(self) -> None:
        for _day, fh in self._files.values():
            try:
                fh.close()
            except OSError:
                self.errors += 1
        self._files.clear()
