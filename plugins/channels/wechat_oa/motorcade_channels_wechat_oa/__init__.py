"""Motorcade channel ``wechat_oa``: WeChat official-account template messages (service notifications).

Built from the WeChat official-account documentation (``cgi-bin/stable_token``,
``cgi-bin/message/template/send``, the ``TEMPLATESENDJOBFINISH`` event) and tested against a local server
that checks every request as documented; it has never contacted the real WeChat API.

Template messages are service notifications only (WeChat forbids marketing in them), so the channel
declares ``marketing_allowed=False``. Sending is synchronous only up to "accepted"; the outcome arrives
later as a ``TEMPLATESENDJOBFINISH`` event, parsed by :func:`parse_template_send_event`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
import zoneinfo
from typing import Any, Callable

import attrs

from motorcade.config_schema import NAME, SECRET, TEXT, Setting, map_of, number, whole
import motorcade
from motorcade.activation.channel import (
    InProcessTokenCache,
    secret_setting,
    Channel,
    ChannelCapabilities,
    ChannelContext,
    DeliveryResult,
    OutboundMessage,
)
from motorcade.errors import ConfigError

__version__ = "0.1.0"

BEIJING = zoneinfo.ZoneInfo("Asia/Shanghai")
TOKEN_ERRCODES = {40001, 40014, 42001}  # invalid credential / invalid token / expired token
PERMANENT_ERRCODES = {
    43004: "the user has not followed (or has unfollowed) the official account",
    40003: "invalid openid",
    40037: "invalid template_id",
    47003: "template data does not match the template's fields",
    43101: "the user refused this subscription",
}
TRANSIENT_ERRCODES = {-1: "system busy", 45009: "daily API quota reached", 45047: "too many messages to the user"}


class TokenError(Exception):
    """stable_token failed; the detail is WeChat's answer."""


# -- the asynchronous result event -------------------------------------------------------------------

@attrs.frozen
class TemplateSendOutcome:
    """A ``TEMPLATESENDJOBFINISH`` event: the final outcome of one template message."""

    msgid: str  # the msgid template/send returned (our provider_message_id)
    openid: str  # FromUserName: the recipient
    official_account: str  # ToUserName
    status: str  # "delivered" or "failed"
    reason: str  # WeChat's Status verbatim: "success", "failed:user block", "failed: system failed"
    created_at: dt.datetime
    dedupe_key: str  # WeChat retries an event it got no answer for; handle each key once


def parse_template_send_event(xml_body: bytes | str, seen: set[str] | None = None) -> TemplateSendOutcome | None:
    """Parse the pushed event XML; None for another event type or one already in ``seen``."""
    root = ElementTree.fromstring(xml_body)

    def text(tag: str) -> str:
        node = root.find(tag)
        return (node.text or "").strip() if node is not None else ""

    if text("MsgType") != "event" or text("Event") != "TEMPLATESENDJOBFINISH":
        return None
    msgid = text("MsgID") or text("MsgId")
    reason = text("Status")
    dedupe_key = f"wechat_oa|{msgid}|{reason}"
    if seen is not None:
        if dedupe_key in seen:
            return None
        seen.add(dedupe_key)
    return TemplateSendOutcome(
        msgid=msgid,
        openid=text("FromUserName"),
        official_account=text("ToUserName"),
        status="delivered" if reason == "success" else "failed",
        reason=reason,
        created_at=dt.datetime.fromtimestamp(int(text("CreateTime") or 0), dt.timezone.utc),
        dedupe_key=dedupe_key,
    )


def client_msg_id(idempotency_key: str) -> str:
    """WeChat deduplicates openid + client_msg_id for 10 minutes; keys are hashed to a fixed 32 chars."""
    return hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]


def _secret(settings: dict[str, Any]) -> str:
    return secret_setting(settings, channel="wechat_oa", name="secret", what="AppSecret", example_env="WECHAT_OA_SECRET")
class WeChatTemplateChannel(Channel):
    name = "wechat_oa"
    description = "WeChat official-account template messages (service notifications only)"
    capabilities = ChannelCapabilities(
        address_type="wechat_openid",
        batch_size=20,
        supports_idempotency_key=True,  # client_msg_id: deduplicated per openid for 10 minutes
        marketing_allowed=False,
    )
    settings_schema = (
        Setting("appid", NAME, "the official account's AppID", required=True),
        Setting("secret_env", TEXT, "environment variable holding the AppSecret"),
        Setting("secret", SECRET, "the AppSecret itself (prefer secret_env)"),
        Setting("templates", map_of(TEXT, "template name"), "rule template name = WeChat template_id", {}),
        Setting("api_base", TEXT, "API base URL", "https://api.weixin.qq.com"),
        Setting("timeout", number(above=0), "seconds to wait for the API", 10),
        Setting("batch_size", whole(1), "messages per dispatch batch", 20),
        Setting("callback_token_env", TEXT, "environment variable holding the server Token (服务器配置 > Token) "
                "that signs WeChat's pushes to /r/wechat_oa"),
        Setting("callback_token", SECRET, "the server Token itself (prefer callback_token_env)"),
        Setting("encoding_aes_key_env", TEXT, "environment variable holding the EncodingAESKey (safe mode: "
                "pushes are encrypted)"),
        Setting("encoding_aes_key", SECRET, "the EncodingAESKey itself (prefer encoding_aes_key_env)"),
    )

    def __init__(self, settings: dict[str, Any], context: ChannelContext):
        super().__init__(settings, context)
        if not settings.get("appid"):
            raise ConfigError("channel wechat_oa: [channels.wechat_oa] has no appid",
                              hint="copy the AppID from the official account's 开发 > 基本配置 page")
        self._appid = str(settings["appid"])
        self._secret = _secret(settings)
        self._api = str(settings.get("api_base", "https://api.weixin.qq.com")).rstrip("/")
        self._timeout = float(settings.get("timeout", 10))
        self._templates = {str(k): str(v) for k, v in (settings.get("templates") or {}).items()}
        self.token_key = f"wechat_oa:{self._appid}"
        self._tokens = context.token_cache or InProcessTokenCache()
        self.capabilities = attrs.evolve(type(self).capabilities, batch_size=int(settings.get("batch_size", 20)))

    # -- receipts: WeChat's pushes to the server URL (/r/wechat_oa) -------------------------------------

    def receipts(self, request):
        """The account's message pushes, verified as WeChat documents them (see motorcade.activation.wechat_crypto):
        ``GET`` with ``signature, timestamp, nonce, echostr`` (the server URL check) answers ``echostr``;
        ``POST`` in plain mode is signed by ``signature``, in safe mode (``encrypt_type=aes``) by
        ``msg_signature`` over the ``Encrypt`` text, which is decrypted with the EncodingAESKey and must name
        this AppID. A time stamp more than 300 s away is a replay. Read: ``TEMPLATESENDJOBFINISH``
        (``success`` -> delivered, ``failed:user block`` -> unsubscribed, else failed), ``unsubscribe``
        (unfollow) and a text reply of TD / 退订 (unsubscribed). Answered ``success``."""
        from motorcade.activation import wechat_crypto
        from motorcade.activation.receipts import Receipt, ReceiptAnswer, ReceiptRejected, is_unsubscribe_reply

        token = secret_setting(self.settings, channel="wechat_oa", name="callback_token", what="server Token",
                               example_env="WECHAT_OA_CALLBACK_TOKEN")
        query = request.query
        timestamp, nonce = str(query.get("timestamp", "")), str(query.get("nonce", ""))
        if not timestamp.isdigit():
            raise ReceiptRejected("signature", "no timestamp in the query")
        try:
            wechat_crypto.check_signature(str(query.get("signature", "")), token, timestamp, nonce)
            plain_signed = True
        except wechat_crypto.CryptoError:
            plain_signed = False
        if request.method == "GET":
            if not plain_signed:
                raise ReceiptRejected("signature", "signature does not match the server Token")
            return ReceiptAnswer((), body=str(query.get("echostr", "")).encode("utf-8"))
        if abs(self.context.clock().timestamp() - int(timestamp)) > 300:
            raise ReceiptRejected("replayed", "the push's timestamp is more than 300 s away")
        body = request.body
        if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
            raise ReceiptRejected("malformed", "XML with a DOCTYPE or entities")
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError as exc:
            raise ReceiptRejected("malformed", f"not XML: {exc}") from None
        encrypted = root.findtext("Encrypt")
        if query.get("encrypt_type") == "aes" or encrypted is not None:
            key = secret_setting(self.settings, channel="wechat_oa", name="encoding_aes_key", what="EncodingAESKey",
                                 example_env="WECHAT_OA_AES_KEY")
            try:
                wechat_crypto.check_signature(str(query.get("msg_signature", "")), token, timestamp, nonce,
                                              encrypted or "")
                body = wechat_crypto.decrypt(key, encrypted or "", self._appid)
                root = ElementTree.fromstring(body)
            except wechat_crypto.CryptoError as exc:
                raise ReceiptRejected("signature", f"safe mode: {exc}") from None
            except ElementTree.ParseError as exc:
                raise ReceiptRejected("malformed", f"decrypted text is not XML: {exc}") from None
        elif not plain_signed:
            raise ReceiptRejected("signature", "signature does not match the server Token")

        def text(tag: str) -> str:
            return (root.findtext(tag) or "").strip()

        openid, created = text("FromUserName"), text("CreateTime")
        at = dt.datetime.fromtimestamp(int(created), dt.timezone.utc) if created.isdigit() else None
        receipts = []
        if text("MsgType") == "event" and text("Event") == "TEMPLATESENDJOBFINISH":
            status = text("Status")
            outcome = ("delivered" if status == "success" else
                       "unsubscribed" if status.replace(" ", "") == "failed:userblock" else "failed")
            msgid = text("MsgID") or text("MsgId")
            receipts.append(Receipt(outcome, f"wechat_oa|{msgid}|{status}", provider_message_id=msgid, at=at,
                                    detail=status))
        elif text("MsgType") == "event" and text("Event") == "unsubscribe":
            receipts.append(Receipt("unsubscribed", f"unfollow|{openid}|{created}", address=openid, at=at,
                                    detail="unfollowed the official account"))
        elif text("MsgType") == "text" and is_unsubscribe_reply(text("Content")):
            receipts.append(Receipt("unsubscribed", f"reply|{text('MsgId') or openid + created}", address=openid,
                                    at=at, detail=f"replied {text('Content')!r}"))
        return ReceiptAnswer(tuple(receipts), body=b"success")

    # -- HTTP and token ------------------------------------------------------------------------------

    def _post(self, path: str, body: dict, query: dict[str, str] | None = None) -> dict:
        url = f"{self._api}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(
            url, data=json.dumps(body, ensure_ascii=False).encode("utf-8"), method="POST",
            headers={"Content-Type": "application/json; charset=utf-8"})
        with urllib.request.urlopen(request, timeout=self._timeout) as response:
            return json.loads(response.read())

    def _stable_token(self, force_refresh: bool) -> tuple[str, float]:
        answer = self._post("/cgi-bin/stable_token", {"grant_type": "client_credential", "appid": self._appid,
                                                      "secret": self._secret, "force_refresh": force_refresh})
        if not answer.get("access_token"):
            raise TokenError(f"stable_token failed: {json.dumps(answer, ensure_ascii=False)}; check appid, "
                             "secret_env and the IP allow-list in [channels.wechat_oa] / the account console")
        return answer["access_token"], float(answer.get("expires_in", 7200))

    def _token(self) -> str:
        return self._tokens.get_or_refresh(self.token_key, lambda: self._stable_token(False))

    def _renew(self, stale: str) -> str:
        """A token WeChat refused: take the current stable token, forcing a new one only if it is the same."""
        invalidate = getattr(self._tokens, "invalidate", None)
        if invalidate is not None:
            invalidate(self.token_key, stale)
            token = self._token()
        else:
            token = self._stable_token(False)[0]
        if token == stale:
            token = self._stable_token(True)[0]
            if invalidate is not None:
                invalidate(self.token_key, stale)
                token = self._tokens.get_or_refresh(self.token_key, lambda: (token, 7200))
        return token

    # -- sending -------------------------------------------------------------------------------------

    def build_request(self, message: OutboundMessage) -> dict[str, Any]:
        template_id = self._templates.get(message.template, message.template)
        body: dict[str, Any] = {
            "touser": message.address,
            "template_id": template_id,
            "client_msg_id": client_msg_id(message.idempotency_key),
            "data": {str(k): {"value": str(v)} for k, v in message.params.items()},
        }
        if message.metadata.get("url"):
            body["url"] = str(message.metadata["url"])
        if message.metadata.get("miniprogram"):
            body["miniprogram"] = dict(message.metadata["miniprogram"])
        return body

    def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        results = []
        for message in batch:
            if not message.params:
                results.append(DeliveryResult(message.idempotency_key, "permanent",
                                              detail="template message without data: message.params is empty"))
                continue
            results.append(self._send_one(message))
        return results

    def _send_one(self, message: OutboundMessage) -> DeliveryResult:
        key = message.idempotency_key
        body = self.build_request(message)
        path = "/cgi-bin/message/template/send"
        try:
            token = self._token()
            answer = self._post(path, body, {"access_token": token})
            if answer.get("errcode") in TOKEN_ERRCODES:
                answer = self._post(path, body, {"access_token": self._renew(token)})
        except TokenError as exc:
            return DeliveryResult(key, "transient", detail=str(exc))
        except (OSError, ValueError) as exc:
            return DeliveryResult(key, "transient",
                                  detail=f"template/send request failed: {type(exc).__name__}: {exc} ({self._api})")
        detail = json.dumps(answer, ensure_ascii=False)
        errcode = answer.get("errcode", 0)
        if errcode == 0:
            return DeliveryResult(key, "sent", provider_message_id=str(answer.get("msgid")), detail=detail)
        if errcode in TRANSIENT_ERRCODES or errcode in TOKEN_ERRCODES:
            retry_after = self._until_tomorrow() if errcode == 45009 else None
            return DeliveryResult(key, "transient", detail=detail, retry_after=retry_after)
        return DeliveryResult(key, "permanent", detail=detail)

    def _until_tomorrow(self) -> float:
        """The daily quota resets at midnight Beijing time."""
        now = self.context.clock().astimezone(BEIJING)
        tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=5, second=0, microsecond=0)
        return (tomorrow - now).total_seconds()


@motorcade.hookimpl
def register_channels(register):
    register(WeChatTemplateChannel)
