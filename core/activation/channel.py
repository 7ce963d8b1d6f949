"""The contract between a channel-sender plugin and the core's dispatcher.

The dispatcher claims outbox rows, renders each into an :class:`OutboundMessage`, groups them into
batches no larger than the channel's ``capabilities.batch_size`` and calls :meth:`Channel.send`.
The channel answers one :class:`DeliveryResult` per message: ``sent``, ``transient`` (retry with
backoff) or ``permanent`` (dead letter, with the provider's answer).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol

import attrs

if TYPE_CHECKING:
    from .receipts import ReceiptAnswer, ReceiptRequest

RESULT_STATES = ("sent", "transient", "permanent")


@attrs.frozen
class ChannelCapabilities:
    """What a channel can do and the limits its provider documents."""

    address_type: str  # identifier type the channel sends to: "phone", "email", "wecom_external_userid", ...
    batch_size: int = 1  # most messages per send() call (Tencent SMS: 200 numbers a request)
    rate_limit_per_second: float | None = None  # provider's request-rate limit (None = none known)
    supports_idempotency_key: bool = False  # provider deduplicates on a key we pass
    max_length: int | None = None  # longest body the provider accepts, in characters
    send_window: tuple[str, str] | None = None  # provider-enforced local sending hours, e.g. ("08:00", "22:00")
    marketing_allowed: bool = True  # False for service-notification-only channels (WeChat OA templates)
    send_window_timezone: str | None = None  # IANA zone of send_window (None = the recipient's time zone)


@attrs.frozen
class OutboundMessage:
    """One rendered message for one person."""

    idempotency_key: str  # the outbox row's key; pass it to providers that accept one
    person_id: int  # recipient person
    address: str  # where to send: phone, e-mail, openid, external userid, advisor id
    template: str  # template name (some providers take a template id plus parameters)
    body: str  # rendered text
    subject: str | None = None  # e-mail subject or card title
    params: dict[str, Any] = attrs.field(factory=dict)  # template parameters (for provider-side templates)
    metadata: dict[str, Any] = attrs.field(factory=dict)  # origin, run id, revision, step


@attrs.frozen
class DeliveryResult:
    """The channel's answer for one message."""

    idempotency_key: str  # which message
    # one of RESULT_STATES; anything else is refused where the plugin builds it (a crash of its batch, retried
    # and reported), never guessed at by the dispatcher
    status: str = attrs.field(validator=attrs.validators.in_(RESULT_STATES))
    provider_message_id: str | None = None  # provider's id (for receipts)
    detail: str = ""  # the provider's answer, verbatim where possible
    retry_after: float | None = None  # seconds the provider asked us to wait (transient only)


class TokenCache(Protocol):
    """Shared access-token cache kept in the store, so two workers never invalidate each other's token."""

    def get_or_refresh(self, key: str, fetch: Callable[[], tuple[str, float]]) -> str:
        """Return a valid token for ``key``; call ``fetch() -> (token, expires_in_seconds)`` if none."""

    def invalidate(self, key: str, token: str) -> bool:
        """The provider rejected ``token`` (e.g. WeCom errcode 40014/42001): forget it so the next
        ``get_or_refresh`` fetches a new one -- unless another worker already replaced it. True if dropped."""


class InProcessTokenCache:
    """A :class:`TokenCache` for one process, for a channel the core passes no shared cache (tests, scripts).

    ``margin``: renew this many seconds before the provider's stated expiry.
    """

    def __init__(self, clock: Callable[[], float] = time.time, margin: float = 300):
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._margin = margin

    def get_or_refresh(self, key: str, fetch: Callable[[], tuple[str, float]]) -> str:
        with self._lock:
            token, expires_at = self._tokens.get(key, ("", 0.0))
            if token and self._clock() < expires_at:
                return token
            token, expires_in = fetch()
            self._tokens[key] = (token, self._clock() + max(0.0, float(expires_in) - self._margin))
            return token

    def invalidate(self, key: str, stale_token: str) -> bool:
        """Forget ``stale_token`` -- only if it is still the cached one (another worker may have renewed).
        True if it was dropped."""
        with self._lock:
            if self._tokens.get(key, ("",))[0] == stale_token:
                del self._tokens[key]
                return True
            return False


@attrs.frozen
class ChannelContext:
    """What a channel instance gets from the core."""

    project_dir: Path  # the project directory (for files a channel writes)
    token_cache: TokenCache | None = None  # shared token cache (WeCom, WeChat OA)
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)  # injectable for tests
    store: Any = None  # the Store, for channels that write their own records (advisor tasks)


def secret_setting(settings: dict[str, Any], *, channel: str, name: str, what: str, example_env: str) -> str:
    """A credential from a channel's settings: ``NAME_env`` names an environment variable (recommended,
    keeps it out of motorcade.toml), else ``NAME`` holds it. Missing or unset is a ConfigError saying
    what to add."""
    from ..errors import ConfigError

    env_name = settings.get(f"{name}_env")
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise ConfigError(f"channel {channel}: [channels.{channel}] {name}_env names {env_name!r}, which is not set",
                              hint=f"export {env_name}=<{what}> before running, or point {name}_env at another variable")
        return value
    if settings.get(name):
        return str(settings[name])
    raise ConfigError(f"channel {channel}: [channels.{channel}] has no {what} ({name}_env or {name})",
                      hint=f'add {name}_env = "{example_env}" and export that variable')


class Channel:
    """Base class of a channel sender."""

    name: ClassVar[str] = ""  # channel name used in rules: `via sms template "..."`
    description: ClassVar[str] = ""  # one line for `motorcade plugins`
    capabilities: ClassVar[ChannelCapabilities]
    # The keys of `[channels.NAME]` (motorcade.config_schema.Setting objects); None: not declared,
    # the table is not checked at load.
    settings_schema: ClassVar[tuple | None] = None

    def __init__(self, settings: dict[str, Any], context: ChannelContext):
        self.settings = settings
        self.context = context

    def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        """Deliver a batch; return exactly one result per message, in any order."""
        raise NotImplementedError

    def receipts(self, request: "ReceiptRequest") -> "ReceiptAnswer":
        """Verify a request on the channel's receipt address (``/r/<channel>`` of `motorcade collect`) as the
        provider documents it and read the receipts in it. Raise ``ReceiptRejected("signature" | "replayed"
        | "malformed", detail)`` for a request that fails verification; the default raises
        NotImplementedError (the channel takes no receipts: 404). See motorcade.activation.receipts."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections. Called once when the dispatcher is done with the channel."""
