"""Who owns a symbol: a lease in a JetStream key-value bucket.

The bucket keeps each key for ``lease_ttl_s`` after its last write. A node claims a
symbol by creating its key (which fails while another node's lease lives), and
renews it by updating the key at the revision it last wrote (which fails once any
other node has written it). A node that stops renewing (killed, cut off) loses the
key when the bucket expires it; the next node that wants the symbol then creates
it. So at no moment do two nodes hold one symbol, and a node never takes a symbol
from a live owner.

Symbols are claimed in sorted order, holding the ones already claimed while waiting
for the next: two nodes that want overlapping sets cannot wait on each other for
ever. A node that cannot confirm its lease for ``lease_ttl_s`` (renewals failing,
the bus down) counts it as lapsed and stops publishing that symbol until a renewal
or a new claim succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from bus.connection import BusConnection
from bus.messages import Lease, Malformed, decode, encode

log = logging.getLogger("bus.leases")


class Leases:
    """The leases of one node (``node`` and this process's ``instance``)."""

    def __init__(self, bus: BusConnection, node: str, instance: str, api_url: str | None = None,
                 on_change: Callable[[str, bool], None] | None = None) -> None:
        self.bus = bus
        self.node = node
        self.instance = instance
        self.api_url = api_url
        self.on_change = on_change  # (symbol, owned) after each gain or loss
        self.wanted: set[str] = set()
        self._revision: dict[str, int] = {}  # symbol -> revision of our last write, while held
        self._confirmed: dict[str, float] = {}  # symbol -> monotonic time of the last successful write
        self._claimed_at = time.time()
        self._lapsed: set[str] = set()  # held once, lost since: claimed again when free
        self._announced: set[str] = set()  # told to on_change as owned
        self._waiting_logged: dict[str, str] = {}  # symbol -> the holder last named in a log line
        self.malformed = Malformed()
        self.losses = 0

    @property
    def ttl_s(self) -> float:
        return self.bus.lease_ttl_s

    def owns(self, symbol: str) -> bool:
        """Held, and confirmed within the lease time."""
        at = self._confirmed.get(symbol)
        return at is not None and time.monotonic() - at < self.ttl_s

    def owned(self) -> list[str]:
        return sorted(s for s in self._revision if self.owns(s))

    def _value(self) -> bytes:
        return encode(Lease(node=self.node, instance=self.instance, claimed_at=self._claimed_at,
                            api_url=self.api_url))

    def _gained(self, symbol: str, revision: int) -> None:
        self._revision[symbol] = revision
        self._confirmed[symbol] = time.monotonic()
        self._lapsed.discard(symbol)
        self._waiting_logged.pop(symbol, None)
        if symbol not in self._announced:
            self._announced.add(symbol)
            if self.on_change is not None:
                self.on_change(symbol, True)

    def _lost(self, symbol: str) -> None:
        self._revision.pop(symbol, None)
        self._confirmed.pop(symbol, None)
        self._lapsed.add(symbol)
        if symbol in self._announced:
            self._announced.discard(symbol)
            self.losses += 1
            if self.on_change is not None:
                self.on_change(symbol, False)

    async def holder(self, symbol: str) -> tuple[Lease, int] | None:
        """The lease on ``symbol`` as the bucket has it now, and its revision; None
        when there is none."""
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self.bus.leases.get(symbol)
        except KeyNotFoundError:
            return None
        lease = decode(Lease, entry.value or b"", f"lease {symbol}", self.malformed)
        if lease is None:
            return None
        return lease, entry.revision or 0

    async def try_claim(self, symbol: str) -> Lease | None:
        """Create ``symbol``'s key. None once held by this node; else the lease that
        holds it (or an empty Lease when the holder could not be read)."""
        from nats.js.errors import KeyWrongLastSequenceError

        try:
            revision = await self.bus.leases.create(symbol, self._value())
        except KeyWrongLastSequenceError:
            found = await self.holder(symbol)
            if found is None:
                return Lease(node="?", instance="?", claimed_at=0.0)
            lease, revision = found
            if lease.instance != self.instance:
                return lease
            # Our own key, which we stopped counting on while the bus was unreachable.
            revision = await self.bus.leases.update(symbol, self._value(), last=revision)
        self._gained(symbol, revision)
        return None

    async def claim_all(self, symbols: Iterable[str]) -> None:
        """Claim every symbol, in sorted order, waiting (with a log line) for each one
        another node holds until its lease lapses. Renewals of the ones held run
        meanwhile (see :meth:`run`)."""
        self.wanted.update(symbols)
        for symbol in sorted(self.wanted):
            while not self.owns(symbol):
                try:
                    holder = await self.try_claim(symbol)
                except Exception as exc:  # the bus is down: wait for it
                    holder = None
                    log.debug("%s: claim failed (%r); trying again", symbol, exc)
                if holder is not None:
                    self._log_waiting(symbol, holder)
                if not self.owns(symbol):
                    await asyncio.sleep(max(0.1, self.ttl_s / 5))

    def _log_waiting(self, symbol: str, holder: Lease) -> None:
        who = f"{holder.node} (instance {holder.instance})"
        if self._waiting_logged.get(symbol) != who:
            self._waiting_logged[symbol] = who
            log.warning("%s: owned by ingest node %s; waiting until its lease lapses (%g s without renewal) "
                        "before taking it", symbol, who, self.ttl_s)

    async def renew(self) -> None:
        """Renew each lease held; claim again each one lost, once it is free."""
        from nats.js.errors import KeyWrongLastSequenceError

        for symbol in sorted(set(self._revision) | self._lapsed):
            revision = self._revision.get(symbol)
            try:
                if revision is None:
                    holder = await self.try_claim(symbol)
                    if holder is None:
                        log.info("%s: lease claimed again; publishing it", symbol)
                    else:
                        self._log_waiting(symbol, holder)
                    continue
                try:
                    self._gained(symbol, await self.bus.leases.update(symbol, self._value(), last=revision))
                except KeyWrongLastSequenceError:
                    # Written by another node, or gone with a server that lost its store.
                    holder = await self.try_claim(symbol)
                    if holder is not None:
                        self._lost(symbol)
                        log.error("%s: our lease lapsed and ingest node %s holds it now; no longer publishing it",
                                  symbol, holder.node)
                        self._waiting_logged[symbol] = f"{holder.node} (instance {holder.instance})"
            except Exception as exc:  # bus down or slow: the lease lapses by itself if this goes on
                log.debug("%s: lease renewal failed (%r)", symbol, exc)
            if symbol in self._revision and not self.owns(symbol):
                log.warning("%s: lease not confirmed for %g s (the bus is unreachable); not publishing it",
                            symbol, self.ttl_s)
                self._lost(symbol)

    async def run(self) -> None:
        """Renew three times per lease time, for as long as the node runs."""
        while True:
            await asyncio.sleep(max(0.1, self.ttl_s / 3))
            await self.renew()

    async def release_all(self) -> None:
        """Delete our keys (at the revision we wrote): the next owner need not wait."""
        for symbol, revision in list(self._revision.items()):
            try:
                async with asyncio.timeout(1.0):
                    await self.bus.leases.delete(symbol, last=revision)
            except Exception as exc:  # it lapses by itself
                log.debug("%s: lease release failed (%r)", symbol, exc)
            self._lost(symbol)
