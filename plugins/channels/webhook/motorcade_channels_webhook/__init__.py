"""Motorcade channel ``webhook``: signed JSON POSTs to an HTTP(S) endpoint.

Wire format (also in README.md):

* ``POST <url>`` with ``Content-Type: application/json; charset=utf-8``.
* ``batch_size = 1`` (default): one POST per message, the body is the message object.
  ``batch_size > 1``: one POST per batch, the body is ``{"messages": [message, ...]}``.
* ``Idempotency-Key``: the message's key (single mode) or ``batch-<sha256 of the keys>`` (batch mode;
  every message object also carries its own ``idempotency_key`` -- receivers deduplicate on that).
* ``X-Motorcade-Signature: t=<unix seconds>,v1=<hex>`` where
  ``hex = HMAC-SHA256(secret, "<t>." + raw body bytes)``.
* 2xx = sent; 408, 429 and 5xx = transient (``Retry-After`` honoured); any other status = permanent.
  A 2xx batch answer may carry ``{"results": [{"idempotency_key", "status", "detail"}]}`` to report
  per message; without it the HTTP status applies to every message of the batch.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import http.client
import json
import queue
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any

import attrs

from motorcade.config_schema import PATH, SECRET, TEXT, Setting, map_of, number, whole
import motorcade
from motorcade.activation.channel import (
    secret_setting,
    Channel,
    ChannelCapabilities,
    ChannelContext,
    DeliveryResult,
    OutboundMessage,
)
from motorcade.errors import ConfigError
from motorcade.masking import mask_url

__version__ = "0.1.0"

SIGNATURE_HEADER = "X-Motorcade-Signature"
DETAIL_LIMIT = 4000  # characters of the receiver's answer kept in DeliveryResult.detail
TRANSIENT_STATUSES = {408, 429}
RECEIPT_TOLERANCE_SECONDS = 300  # a signed receipt older (or newer) than this is a replay
RECEIPT_STATUSES = ("delivered", "failed", "opened", "clicked", "unsubscribed")


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Motorcade-Signature`` header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(secret: bytes, header: str, body: bytes, *, tolerance: float = 300,
                     now: float | None = None) -> bool:
    """Receiver side: check a ``X-Motorcade-Signature`` header (constant-time, with a replay window)."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, candidate) for candidate in fields.get("v1", []))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _resolve_secret(settings: dict[str, Any]) -> bytes:
    return secret_setting(settings, channel="webhook", name="secret", what="signing secret",
                          example_env="WEBHOOK_SECRET").encode("utf-8")
def message_payload(message: OutboundMessage) -> dict[str, Any]:
    """The JSON object sent for one message."""
    return {
        "idempotency_key": message.idempotency_key,
        "person_id": message.person_id,
        "address": message.address,
        "template": message.template,
        "subject": message.subject,
        "body": message.body,
        "params": message.params,
        "metadata": message.metadata,
    }


class WebhookChannel(Channel):
    name = "webhook"
    description = "Signed JSON POST (HMAC-SHA256) to an HTTP endpoint, with the idempotency key"
    capabilities = ChannelCapabilities(
        address_type="webhook",
        batch_size=1,
        supports_idempotency_key=True,
    )
    settings_schema = (
        Setting("url", TEXT, "the endpoint (http or https)", required=True),
        Setting("secret_env", TEXT, "environment variable holding the HMAC-SHA256 signing secret"),
        Setting("secret", SECRET, "the signing secret itself (prefer secret_env)"),
        Setting("timeout", number(above=0), "seconds to wait for the endpoint", 10),
        Setting("headers", map_of(TEXT, "header"), "extra HTTP headers", {}),
        Setting("batch_size", whole(1), "messages per POST (1: one request per message)", 1),
        Setting("rate_limit_per_second", number(above=0), "most requests per second"),
        Setting("ca_file", PATH, "CA bundle to verify the endpoint's certificate"),
    )

    def __init__(self, settings: dict[str, Any], context: ChannelContext):
        super().__init__(settings, context)
        url = settings.get("url")
        if not url:
            raise ConfigError("channel webhook: [channels.webhook] has no url",
                              hint='add url = "https://example.com/motorcade" to motorcade.toml')
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(f"channel webhook: url {mask_url(url)!r} is not an http(s) URL",
                              hint='use a full URL such as "https://host/path"')
        self._scheme = parsed.scheme
        # for messages: no user:password@ and no query (either may hold a token)
        self._where = f"{parsed.scheme}://{parsed.netloc.rpartition('@')[2]}{parsed.path or '/'}"
        self._host = parsed.hostname
        self._port = parsed.port
        self._path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        self._secret = _resolve_secret(settings)
        self._timeout = float(settings.get("timeout", 10))
        self._extra_headers = {str(k): str(v) for k, v in (settings.get("headers") or {}).items()}
        batch_size = int(settings.get("batch_size", 1))
        if batch_size < 1:
            raise ConfigError(f"channel webhook: batch_size must be >= 1, got {batch_size}")
        rate = settings.get("rate_limit_per_second")
        self.capabilities = attrs.evolve(
            type(self).capabilities,
            batch_size=batch_size,
            rate_limit_per_second=float(rate) if rate is not None else None,
        )
        self._ssl_context = None
        if self._scheme == "https":
            self._ssl_context = ssl.create_default_context(cafile=settings.get("ca_file"))
        self._pool: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()
        self._closed = threading.Event()

    # -- connections (kept alive and reused; one per concurrent caller) --------------------------------

    def _new_connection(self) -> http.client.HTTPConnection:
        if self._scheme == "https":
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout,
                                               context=self._ssl_context)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small requests, no Nagle delay
        return conn

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, dict[str, str], bytes]:
        """POST once; a kept-alive connection the server already closed is retried once on a new one."""
        for attempt in (1, 2):
            try:
                conn, reused = self._pool.get_nowait(), True
            except queue.Empty:
                conn, reused = self._new_connection(), False
            try:
                conn.request("POST", self._path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.BadStatusLine):
                conn.close()
                if reused and attempt == 1:
                    continue  # stale keep-alive connection; the request never reached the handler
                raise
            except BaseException:
                conn.close()
                raise
            if response.will_close or self._closed.is_set():
                conn.close()
            else:
                self._pool.put(conn)
            return response.status, response.reason, {k.lower(): v for k, v in response.getheaders()}, data
        raise AssertionError("unreachable")

    # -- sending ------------------------------------------------------------------------------------

    def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        results: list[DeliveryResult] = []
        if self.capabilities.batch_size == 1:
            for message in batch:
                results.extend(self._send_group([message], message_payload(message),
                                                message.idempotency_key))
            return results
        for start in range(0, len(batch), self.capabilities.batch_size):
            group = batch[start:start + self.capabilities.batch_size]
            keys = "\n".join(m.idempotency_key for m in group)
            batch_key = "batch-" + hashlib.sha256(keys.encode("utf-8")).hexdigest()
            results.extend(self._send_group(group, {"messages": [message_payload(m) for m in group]},
                                            batch_key))
        return results

    def _send_group(self, group: list[OutboundMessage], payload: dict[str, Any],
                    idempotency_key: str) -> list[DeliveryResult]:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": f"motorcade-webhook/{__version__}",
            "Idempotency-Key": idempotency_key,
            SIGNATURE_HEADER: sign(self._secret, int(time.time()), body),
            **self._extra_headers,
        }
        try:
            status, reason, response_headers, data = self._post(body, headers)
        except (OSError, http.client.HTTPException) as exc:
            detail = f"{type(exc).__name__}: {exc} (POST {self._where})"
            return [DeliveryResult(m.idempotency_key, "transient", detail=detail) for m in group]
        text = data.decode("utf-8", errors="replace")
        detail = f"HTTP {status} {reason}: {text}"[:DETAIL_LIMIT]
        if 200 <= status < 300:
            per_message = self._per_message_results(group, text) if len(group) > 1 or text else None
            if per_message is not None:
                return per_message
            return [DeliveryResult(m.idempotency_key, "sent", detail=detail) for m in group]
        if status in TRANSIENT_STATUSES or status >= 500:
            retry_after = parse_retry_after(response_headers.get("retry-after"))
            return [DeliveryResult(m.idempotency_key, "transient", detail=detail, retry_after=retry_after)
                    for m in group]
        return [DeliveryResult(m.idempotency_key, "permanent", detail=detail) for m in group]

    @staticmethod
    def _per_message_results(group: list[OutboundMessage], text: str) -> list[DeliveryResult] | None:
        """Honour ``{"results": [...]}`` in a 2xx answer; None when the answer has no such list."""
        try:
            answer = json.loads(text)
        except ValueError:
            return None
        if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
            return None
        by_key = {}
        for item in answer["results"]:
            if isinstance(item, dict) and isinstance(item.get("idempotency_key"), str):
                by_key[item["idempotency_key"]] = item
        results = []
        for message in group:
            item = by_key.get(message.idempotency_key)
            if item is None:  # the receiver accepted the request and said nothing against this one
                results.append(DeliveryResult(message.idempotency_key, "sent", detail=text[:DETAIL_LIMIT]))
                continue
            status = item.get("status", "sent")
            if status not in ("sent", "transient", "permanent"):
                status = "permanent"
            results.append(DeliveryResult(
                message.idempotency_key,
                status,
                provider_message_id=str(item["id"]) if item.get("id") is not None else None,
                detail=json.dumps(item, ensure_ascii=False)[:DETAIL_LIMIT],
                retry_after=float(item["retry_after"]) if status == "transient"
                and isinstance(item.get("retry_after"), (int, float)) else None,
            ))
        return results

    def receipts(self, request):
        """Receipts the receiver posts back to ``/r/webhook``: ``{"receipts": [{"idempotency_key", "status",
        "at", "detail", "id"}]}`` signed like our requests (``X-Motorcade-Signature``, the same secret, a
        time stamp within 300 s). ``status``: delivered, failed, opened, clicked or unsubscribed. A signature
        is good once: the same signed request again is a replay."""
        from motorcade.activation.receipts import Receipt, ReceiptAnswer, ReceiptRejected

        header = request.headers.get(SIGNATURE_HEADER.lower(), "")
        fields: dict[str, list[str]] = {}
        for part in header.split(","):
            name, _, value = part.strip().partition("=")
            fields.setdefault(name, []).append(value)
        try:
            timestamp = int(fields["t"][0])
        except (KeyError, ValueError):
            raise ReceiptRejected("signature", f"no {SIGNATURE_HEADER} header with t= and v1=") from None
        if not verify_signature(self._secret, header, request.body, tolerance=float("inf")):
            raise ReceiptRejected("signature", f"{SIGNATURE_HEADER} does not match the body")
        now = self.context.clock().timestamp()
        if abs(now - timestamp) > RECEIPT_TOLERANCE_SECONDS:
            raise ReceiptRejected("replayed", f"signed {int(now - timestamp)} s ago (more than "
                                              f"{RECEIPT_TOLERANCE_SECONDS} s)")
        try:
            document = json.loads(request.body)
            items = document["receipts"]
            if not isinstance(items, list):
                raise TypeError("receipts is not a list")
            receipts = []
            for item in items:
                status = str(item["status"])
                if status not in RECEIPT_STATUSES:
                    raise ValueError(f"status {status!r} is not one of {', '.join(RECEIPT_STATUSES)}")
                at = None
                if item.get("at"):
                    import datetime as dt

                    at = dt.datetime.fromisoformat(str(item["at"]))
                    if at.tzinfo is None:
                        raise ValueError("at needs a UTC offset")
                key = str(item["idempotency_key"])
                receipts.append(Receipt(status, f"{key}|{status}|{item.get('id') or ''}", idempotency_key=key,
                                        at=at, detail=str(item.get("detail") or "")[:500],
                                        scope="all" if item.get("scope") == "all" else None))
        except (ValueError, TypeError, KeyError) as exc:
            raise ReceiptRejected("malformed", f"{type(exc).__name__}: {exc}") from None
        return ReceiptAnswer(tuple(receipts), body=b'{"ok":true}', content_type="application/json",
                             nonce=fields.get("v1", [""])[0])

    def close(self) -> None:
        self._closed.set()
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                break


@motorcade.hookimpl
def register_channels(register):
    register(WebhookChannel)
