"""The shared access-token cache (WeCom, WeChat official accounts) kept in the store's channel_tokens table.

Providers such as WeCom issue a token that lives 7200 s, and fetching a new one can invalidate the old
one: every worker must use the same cached token, and only one may refresh it at a time. Refreshing
takes the lease ``token:<key>``; a worker that finds the lease taken waits for the holder's token
instead of fetching its own.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Callable

from motorcade.errors import MotorcadeError

from .settings import default_worker_id


class TokenCacheError(MotorcadeError):
    """No token could be obtained (the refresh failed or another worker holds the refresh too long)."""


class StoreTokenCache:
    """:class:`motorcade.activation.channel.TokenCache` backed by the ``channel_tokens`` table."""

    def __init__(self, store, *, clock: Callable[[], dt.datetime] | None = None, margin_seconds: float = 300,
                 wait_seconds: float = 30, holder: str | None = None):
        self.store = store
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.margin = dt.timedelta(seconds=margin_seconds)  # refresh this long before the provider's expiry
        self.wait_seconds = wait_seconds
        self.holder = holder or default_worker_id()

    def get(self, key: str) -> str | None:
        hit = self.store.get_channel_token(key, valid_at=self.clock())
        return None if hit is None else hit[0]

    def get_or_refresh(self, key: str, fetch: Callable[[], tuple[str, float]]) -> str:
        token = self.get(key)
        if token is not None:
            return token
        lease = f"token:{key}"
        deadline = time.monotonic() + self.wait_seconds
        while True:
            if self.store.acquire_lease(lease, self.holder, ttl_seconds=self.wait_seconds, now=self.clock()):
                try:
                    token = self.get(key)  # another worker may have refreshed while we waited
                    if token is not None:
                        return token
                    token, expires_in = fetch()
                    if not token:
                        raise TokenCacheError(f"token refresh for {key!r} returned no token",
                                              hint="check the channel's app id and secret in motorcade.toml")
                    # stored expiry = the provider's, less a safety margin (at most a tenth of the lifetime)
                    lifetime = dt.timedelta(seconds=float(expires_in))
                    expires_at = self.clock() + lifetime - min(self.margin, lifetime / 10)
                    with self.store.transaction():
                        self.store.put_channel_token(key, token, expires_at)
                    return token
                finally:
                    self.store.release_lease(lease, self.holder)
            token = self.get(key)
            if token is not None:
                return token
            if time.monotonic() > deadline:
                raise TokenCacheError(
                    f"token {key!r}: another worker ({self.store.lease_holder(lease)}) has been refreshing it for "
                    f"over {self.wait_seconds:.0f} s", hint="check that worker; its lease expires on its own")
            time.sleep(0.05)

    def invalidate(self, key: str, token: str) -> bool:
        """The provider rejected ``token`` (expired early, revoked): forget it unless already replaced."""
        with self.store.transaction():
            return self.store.drop_channel_token(key, token)
