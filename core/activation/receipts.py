"""Provider receipts over HTTP: delivery reports, unsubscribes and unfollows, verified, deduplicated, counted.

The collector's HTTP server hands every request on ``/r/<channel>`` to :func:`handle_receipt`, which asks
the channel (:meth:`motorcade.activation.channel.Channel.receipts`) to verify the request the way its
provider documents (a signature, an encrypted body, a shared token in the callback address) and to read
the receipts in it. Then, per receipt:

* a receipt handled before (providers redeliver; Aliyun's are not idempotent) is skipped: ``receipts_seen``;
* the send is found by our idempotency key or the provider's message id; a receipt naming no send we made
  is refused as ``unknown_message`` (a forgery or a stray), counted, and changes nothing;
* otherwise the outcome is recorded as a feedback event (``delivered``, ``failed``, ``unsubscribed``, ...);
  an ``unsubscribed`` one records a consent refusal for the channel.

A request the channel refuses (bad signature: ``signature``; an old time stamp or a nonce seen before:
``replayed``; a body it cannot read: ``malformed``) is answered 403/400, counted in ``receipt_rejections``
(``motorcade sends tracking`` shows the counts) and changes nothing. Nothing a request carries can crash the
server: any other error of a channel's parser is a ``malformed`` rejection.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

import attrs

from motorcade.errors import MotorcadeError
from motorcade.model import Consent

from .feedback import write_feedback

REJECTION_REASONS = ("signature", "replayed", "unknown_message", "malformed")


@attrs.frozen
class ReceiptRequest:
    """One HTTP request on a channel's receipt address, as the channel's parser sees it."""

    method: str  # "GET" (URL verification of WeChat/WeCom) or "POST"
    query: Mapping[str, str]  # query parameters (the last value of a repeated one)
    headers: Mapping[str, str]  # header names in lower case
    body: bytes  # the raw body


@attrs.frozen
class Receipt:
    """One thing a provider reports: an outcome for a send, or a person's refusal (unfollow, a TD reply)."""

    outcome: str  # delivered, failed, unsubscribed, opened, clicked
    dedupe_key: str  # the same for every redelivery of this receipt
    provider_message_id: str | None = None  # the provider's id of the send (the send result's id)
    idempotency_key: str | None = None  # our key, for providers that echo it
    address: str | None = None  # refusals not tied to one send: the channel's address of the person
    at: dt.datetime | None = None  # when it happened (None: when it arrived)
    detail: str = ""  # the provider's status text
    scope: str | None = None  # "all": an unsubscribe from every channel


@attrs.frozen
class ReceiptAnswer:
    """What the channel read from a verified request, and what the provider expects to hear back."""

    receipts: tuple[Receipt, ...] = ()
    body: bytes = b""  # the answer the provider's documentation asks for (e.g. {"result":0,"errmsg":"OK"})
    content_type: str = "text/plain; charset=utf-8"
    nonce: str | None = None  # a one-time value of a signed request: seen twice, the request is a replay


class ReceiptRejected(Exception):
    """The channel refuses a receipt request: ``reason`` is signature, replayed or malformed."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@attrs.define
class ReceiptResult:
    """What :func:`handle_receipt` did; ``status``/``body``/``content_type`` go back to the provider."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    recorded: int = 0
    duplicates: int = 0
    unknown: int = 0
    rejected: str | None = None


def handle_receipt(store, channel_name: str, channel: Any, request: ReceiptRequest, *, now: dt.datetime) -> ReceiptResult:
    """Verify and record one receipt request for ``channel`` (an instance; None: not configured)."""
    if channel is None:
        return ReceiptResult(404, b"no such receipt address\n")
    try:
        answer = channel.receipts(request)
    except NotImplementedError:
        return ReceiptResult(404, f"channel {channel_name} takes no receipts\n".encode())
    except MotorcadeError as exc:  # the channel's receipt settings are missing: the operator's to fix
        return ReceiptResult(503, f"receipts of channel {channel_name} are not configured: {exc.message}\n".encode())
    except ReceiptRejected as exc:
        store.add_receipt_rejection(channel_name, exc.reason, exc.detail, at=now)
        status = 400 if exc.reason == "malformed" else 403
        return ReceiptResult(status, f"refused: {exc.reason}\n".encode(), rejected=exc.reason)
    except Exception as exc:  # noqa: BLE001 - a parser tripping on a hostile body is a malformed request
        store.add_receipt_rejection(channel_name, "malformed", f"{type(exc).__name__}: {exc}", at=now)
        return ReceiptResult(400, b"refused: malformed\n", rejected="malformed")
    result = ReceiptResult(200, answer.body, answer.content_type)
    with store.transaction():
        if answer.nonce is not None and store.receipt_seen(f"{channel_name}:nonce", answer.nonce, at=now):
            store.add_receipt_rejection(channel_name, "replayed", "a nonce seen before", at=now)
            return ReceiptResult(403, b"refused: replayed\n", rejected="replayed")
        address_type = channel.capabilities.address_type
        for receipt in answer.receipts:
            if store.receipt_seen(channel_name, receipt.dedupe_key, at=now):
                result.duplicates += 1
                continue
            if _record(store, channel_name, address_type, receipt, now):
                result.recorded += 1
            else:
                result.unknown += 1
                store.add_receipt_rejection(channel_name, "unknown_message", _describe(receipt), at=now)
    return result


def _describe(receipt: Receipt) -> str:
    return (f"{receipt.outcome} for " + (f"message id {receipt.provider_message_id}" if receipt.provider_message_id
                                         else f"key {receipt.idempotency_key}" if receipt.idempotency_key
                                         else "an address we do not know"))


def _record(store, channel_name: str, address_type: str, receipt: Receipt, now: dt.datetime) -> bool:
    at = receipt.at or now
    send = None
    if receipt.idempotency_key:
        send = store.get_send(receipt.idempotency_key)
        if send is not None and send["channel"] != channel_name and not _used_channel(send, channel_name):
            send = None  # a key of another channel's send: not this provider's to report
    elif receipt.provider_message_id:
        send = store.send_by_provider_message_id(channel_name, receipt.provider_message_id)
    if send is not None:
        write_feedback(store, [(send, receipt.outcome, at, {"detail": receipt.detail or None, "scope": receipt.scope})])
        if receipt.outcome == "unsubscribed":
            _refuse(store, send["person_id"], channel_name, receipt.scope, at)
        return True
    if receipt.address and receipt.outcome == "unsubscribed":
        person_id = store.person_of_identifier(address_type, receipt.address)
        if person_id is None:
            return False
        _refuse(store, person_id, channel_name, receipt.scope, at)
        return True
    return False


def _used_channel(send: dict[str, Any], channel_name: str) -> bool:
    steps = (send.get("payload") or {}).get("steps") or []
    chosen = (send.get("payload") or {}).get("chosen")
    return isinstance(chosen, int) and chosen < len(steps) and steps[chosen].get("channel") == channel_name


def _refuse(store, person_id: int, channel_name: str, scope: str | None, at: dt.datetime) -> None:
    store.set_consent(Consent(person_id, "*" if scope == "all" else channel_name, False, at, source="unsubscribe_event"))


# Replies that refuse further messages (Chinese carriers require honouring 退订 / TD / T / N).
UNSUBSCRIBE_REPLIES = frozenset({"td", "t", "n", "退订", "退", "unsubscribe", "stop", "0000"})


def is_unsubscribe_reply(text: str) -> bool:
    """An SMS or chat reply that asks for no more messages: ``TD``, ``退订``, ``T``, ``N``, ``STOP``, ...
    (case, spaces and trailing punctuation ignored)."""
    return text.strip().strip("。.!！").strip().lower() in UNSUBSCRIBE_REPLIES
