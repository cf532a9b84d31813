"""A log line of one kind at most once per interval.

A flood of bad requests or refused connections must not become a flood of log
lines: the first event of a kind is logged at once, the next ones within the
interval are counted and their number is added to the next line that is logged.
"""

from __future__ import annotations

import logging
import threading
import time


class ThrottledLog:
    """Lines of one kind on ``logger`` at ``level``, at most one per ``interval_s``."""

    def __init__(self, logger: logging.Logger, level: int = logging.WARNING, interval_s: float = 10.0) -> None:
        self.logger = logger
        self.level = level
        self.interval_s = interval_s
        self.suppressed = 0  # events not logged since the last line
        self._last: float | None = None
        self._lock = threading.Lock()

    def log(self, message: str, *args: object) -> bool:
        """Log ``message % args`` unless a line went out less than an interval ago;
        returns whether it was logged."""
        now = time.monotonic()
        with self._lock:
            if self._last is not None and now - self._last < self.interval_s:
                self.suppressed += 1
                return False
            self._last = now
            suppressed, self.suppressed = self.suppressed, 0
        if suppressed:
            message += " (and %d more like it since the last such line)"
            args = (*args, suppressed)
        self.logger.log(self.level, message, *args)
        return True
