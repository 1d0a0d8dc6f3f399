"""Rate limits answered 429 with Retry-After, counted with the `limits` library in this process's memory.

Each instance of a service counts on its own (two instances behind one address let twice the rate through): the
limits protect an instance from a burst and an account from password guessing, they are not a quota.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Mapping

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from shared.errors import TooMany

__all__ = ["RateLimit", "check_rules", "vouch_for_client", "client_address"]

# A front end that calls an API for its users (the portal) says whose request it is: the address, signed with the
# platform's token key, which only the platform's services hold. Without a valid signature the header is ignored.
CLIENT_HEADER = "X-Alliance-Client"
SIGNATURE_HEADER = "X-Alliance-Client-Signature"


def _signature(key: str, address: str) -> str:
    return hmac.new(key.encode(), f"client|{address}".encode(), hashlib.sha256).hexdigest()


def vouch_for_client(key: str, address: str) -> dict[str, str]:
    """The headers by which a platform service forwards its own client's address."""
    return {CLIENT_HEADER: address, SIGNATURE_HEADER: _signature(key, address)}


def client_address(headers: Mapping[str, str], peer: str | None, key: str) -> str:
    """The address a per-client limit counts: the one a platform front end vouched for, else the peer's."""
    address, signature = headers.get(CLIENT_HEADER), headers.get(SIGNATURE_HEADER)
    if address and signature and len(address) <= 64 and hmac.compare_digest(signature, _signature(key, address)):
        return address
    return peer or "unknown"


def check_rules(rules: str) -> str:
    """`rules` if the `limits` notation can read them ("20/second;600/minute", "10 per 15 minutes"); for
    settings validators."""
    if not parse_many(rules):
        raise ValueError(f"no rate limit in {rules!r}")
    return rules


class RateLimit:
    """One or more rules counted per key (a terminal, a client address, an account) over a moving window."""

    def __init__(self, rules: str, what: str) -> None:
        self.items: list[RateLimitItem] = parse_many(rules)
        self.what = what
        self._limiter: MovingWindowRateLimiter | None = None

    @property
    def limiter(self) -> MovingWindowRateLimiter:
        # Made on first use, inside the running event loop (the storage keeps an expiry task there).
        if self._limiter is None:
            self._limiter = MovingWindowRateLimiter(MemoryStorage())
        return self._limiter

    async def _refusal(self, item: RateLimitItem, key: str) -> TooMany:
        stats = await self.limiter.get_window_stats(item, key)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        return TooMany(f"too many {self.what} (at most {item}); retry in {wait} s", retry_after=wait)

    async def hit(self, key: str) -> None:
        """Count one for `key`; TooMany if a rule is exhausted (then nothing more is counted)."""
        for item in self.items:
            if not await self.limiter.hit(item, key):
                raise await self._refusal(item, key)

    async def check(self, key: str) -> None:
        """TooMany if one more would be past a rule, without counting anything."""
        for item in self.items:
            if not await self.limiter.test(item, key):
                raise await self._refusal(item, key)

    async def count(self, key: str) -> None:
        """Count one for `key` whatever the rules say (a failure to remember, not a request to refuse)."""
        for item in self.items:
            await self.limiter.hit(item, key)

    async def clear(self, key: str) -> None:
        for item in self.items:
            await self.limiter.clear(item, key)
