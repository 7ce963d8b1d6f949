"""Motorcade channel ``wecom``: messages to customers (external contacts) through WeCom (企业微信).

Built from WeCom's server API documentation and tested against a local server that checks every request
as documented; it has never contacted the real WeCom.

The documented way for a company to message its customers is the *enterprise mass-send*
(``POST /cgi-bin/externalcontact/add_msg_template``, "创建企业群发"): the API creates a task for the
member (the advisor, ``sender``) who confirms it in the WeCom client, and WeCom delivers it to the listed
``external_userid`` s. ``message/send`` only reaches a company's own members, not customers.

* Access token: ``GET /cgi-bin/gettoken?corpid=..&corpsecret=..`` (``expires_in`` 7200 s), kept in the
  shared ``ChannelContext.token_cache`` under ``wecom:<corpid>:<agent>`` (one owner per app), refreshed
  when WeCom answers errcode 40014 (invalid token) or 42001 (expired).
* At most ``member_limit_per_minute`` (default 30) messages per member per rolling minute: WeCom drops the
  excess silently, so the channel answers ``transient`` with ``retry_after`` instead of sending them.
"""

from __future__ import annotations

import collections
import hashlib
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

import attrs

from motorcade.config_schema import NAME, SECRET, TEXT, Setting, any_of, number, whole
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

TOKEN_ERRCODES = {40014, 42001}  # invalid / expired access_token: refresh and retry once
TRANSIENT_ERRCODES = {-1, 45009, 45033, 45035}  # system busy, API frequency / concurrency limits
MAX_EXTERNAL_USERIDS = 10000


class TokenError(Exception):
    """gettoken failed; the detail is WeCom's answer."""


class MemberWindow:
    """Rolling one-minute send counts per member (thread-safe)."""

    def __init__(self, limit: int, clock: Callable[[], float], window: float = 60.0):
        self.limit = limit
        self._clock = clock
        self._window = window
        self._sent: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def take(self, member: str) -> float | None:
        """Reserve one send for ``member``; None if allowed, else seconds until a slot frees."""
        with self._lock:
            now = self._clock()
            times = self._sent[member]
            while times and times[0] <= now - self._window:
                times.popleft()
            if len(times) >= self.limit:
                return times[0] + self._window - now
            times.append(now)
            return None

    def give_back(self, member: str) -> None:
        with self._lock:
            if self._sent[member]:
                self._sent[member].pop()


def _secret(settings: dict[str, Any]) -> str:
    return secret_setting(settings, channel="wecom", name="corpsecret", what="客户联系 secret",
                          example_env="WECOM_SECRET")
class WeComChannel(Channel):
    name = "wecom"
    description = "WeCom (企业微信) messages to customers via externalcontact/add_msg_template"
    capabilities = ChannelCapabilities(
        address_type="wecom_external_userid",
        batch_size=100,
        supports_idempotency_key=False,
        max_length=4000,  # text.content limit of 企业群发
    )
    settings_schema = (
        Setting("corpid", NAME, "the WeCom corp id", required=True),
        Setting("corpsecret_env", TEXT, "environment variable holding the 客户联系 secret"),
        Setting("corpsecret", SECRET, "the secret itself (prefer corpsecret_env)"),
        Setting("agentid", any_of(TEXT, whole(0)), "names the token-cache entry", "a hash of the secret"),
        Setting("default_sender", TEXT, "member userid used when a message names no wecom_sender"),
        Setting("member_limit_per_minute", whole(1), "most messages per member per minute (WeCom drops more)", 30),
        Setting("batch_size", whole(1), "messages per dispatch batch", 100),
        Setting("api_base", TEXT, "API base URL", "https://qyapi.weixin.qq.com"),
        Setting("timeout", number(above=0), "seconds to wait for the API", 10),
        Setting("callback_token_env", TEXT, "environment variable holding the callback Token (接收事件服务器 > Token)"),
        Setting("callback_token", SECRET, "the callback Token itself (prefer callback_token_env)"),
        Setting("encoding_aes_key_env", TEXT, "environment variable holding the callback EncodingAESKey"),
        Setting("encoding_aes_key", SECRET, "the EncodingAESKey itself (prefer encoding_aes_key_env)"),
    )

    def __init__(self, settings: dict[str, Any], context: ChannelContext):
        super().__init__(settings, context)
        if not settings.get("corpid"):
            raise ConfigError("channel wecom: [channels.wecom] has no corpid",
                              hint="copy the 企业ID from the WeCom admin console (我的企业)")
        self._corpid = str(settings["corpid"])
        self._secret = _secret(settings)
        self._api = str(settings.get("api_base", "https://qyapi.weixin.qq.com")).rstrip("/")
        self._timeout = float(settings.get("timeout", 10))
        self._default_sender = settings.get("default_sender")
        agent = settings.get("agentid") or hashlib.sha256(self._secret.encode()).hexdigest()[:12]
        self.token_key = f"wecom:{self._corpid}:{agent}"
        self._tokens = context.token_cache or InProcessTokenCache()
        self._window = MemberWindow(int(settings.get("member_limit_per_minute", 30)),
                                    clock=lambda: context.clock().timestamp())
        self.capabilities = attrs.evolve(type(self).capabilities,
                                         batch_size=int(settings.get("batch_size", 100)))

    # -- HTTP ----------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, query: dict[str, str], body: dict | None = None) -> dict:
        url = f"{self._api}{path}?{urllib.parse.urlencode(query)}"
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json; charset=utf-8"})
        with urllib.request.urlopen(request, timeout=self._timeout) as response:
            return json.loads(response.read())

    def _fetch_token(self) -> tuple[str, float]:
        answer = self._call("GET", "/cgi-bin/gettoken", {"corpid": self._corpid, "corpsecret": self._secret})
        if answer.get("errcode", 0) != 0 or not answer.get("access_token"):
            raise TokenError(f"gettoken failed: {json.dumps(answer, ensure_ascii=False)}; check corpid and "
                             "corpsecret_env in [channels.wecom]")
        return answer["access_token"], float(answer.get("expires_in", 7200))

    def _token(self) -> str:
        return self._tokens.get_or_refresh(self.token_key, self._fetch_token)

    def _renew(self, stale: str) -> str:
        invalidate = getattr(self._tokens, "invalidate", None)
        if invalidate is not None:
            invalidate(self.token_key, stale)
            return self._token()
        return self._fetch_token()[0]  # cache without invalidate(): use a fresh token for this call

    def _post_with_token(self, path: str, body: dict) -> dict:
        token = self._token()
        answer = self._call("POST", path, {"access_token": token}, body)
        if answer.get("errcode") in TOKEN_ERRCODES:
            answer = self._call("POST", path, {"access_token": self._renew(token)}, body)
        return answer

    # -- sending -------------------------------------------------------------------------------------

    def _sender(self, message: OutboundMessage) -> str | None:
        return message.metadata.get("wecom_sender") or self._default_sender

    def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        results: list[DeliveryResult] = []
        groups: dict[tuple[str, str], list[OutboundMessage]] = {}
        for message in batch:
            sender = self._sender(message)
            if not sender:
                results.append(DeliveryResult(
                    message.idempotency_key, "permanent",
                    detail="no WeCom sender: set metadata wecom_sender (the advisor's WeCom userid) or "
                           "default_sender in [channels.wecom]"))
                continue
            wait = self._window.take(sender)
            if wait is not None:
                results.append(DeliveryResult(
                    message.idempotency_key, "transient", retry_after=round(wait, 3),
                    detail=f"member {sender} reached {self._window.limit} messages per minute; WeCom drops "
                           "the excess silently, so this one waits"))
                continue
            groups.setdefault((sender, message.body), []).append(message)
        for (sender, content), members in groups.items():
            for start in range(0, len(members), MAX_EXTERNAL_USERIDS):
                results.extend(self._send_group(sender, content, members[start:start + MAX_EXTERNAL_USERIDS]))
        return results

    def _send_group(self, sender: str, content: str, members: list[OutboundMessage]) -> list[DeliveryResult]:
        body = {
            "chat_type": "single",
            "external_userid": list(dict.fromkeys(m.address for m in members)),
            "sender": sender,
            "allow_select": False,
            "text": {"content": content},
        }
        try:
            answer = self._post_with_token("/cgi-bin/externalcontact/add_msg_template", body)
        except TokenError as exc:
            self._give_back(sender, members)
            return [DeliveryResult(m.idempotency_key, "transient", detail=str(exc)) for m in members]
        except (OSError, ValueError) as exc:
            self._give_back(sender, members)
            detail = f"add_msg_template request failed: {type(exc).__name__}: {exc} ({self._api})"
            return [DeliveryResult(m.idempotency_key, "transient", detail=detail) for m in members]
        detail = json.dumps(answer, ensure_ascii=False)
        errcode = answer.get("errcode", 0)
        if errcode != 0:
            self._give_back(sender, members)
            status = "transient" if errcode in TRANSIENT_ERRCODES | TOKEN_ERRCODES else "permanent"
            return [DeliveryResult(m.idempotency_key, status, detail=detail) for m in members]
        failed = set(answer.get("fail_list") or [])
        msgid = answer.get("msgid")
        return [
            DeliveryResult(m.idempotency_key, "permanent", detail=detail) if m.address in failed
            else DeliveryResult(m.idempotency_key, "sent", provider_message_id=msgid, detail=detail)
            for m in members
        ]

    def _give_back(self, sender: str, members: list[OutboundMessage]) -> None:
        for _ in members:  # nothing reached WeCom: the per-minute budget is not used
            self._window.give_back(sender)


    # -- receipts: WeCom's event callbacks (/r/wecom) --------------------------------------------------

    def receipts(self, request):
        """WeCom's callbacks, verified as WeCom documents them (motorcade.activation.wechat_crypto):
        ``msg_signature`` = sha1 of the sorted Token, timestamp, nonce and the encrypted text; the URL check
        (``GET`` with an encrypted ``echostr``) is answered with the decrypted echostr; a ``POST`` body's
        ``Encrypt`` is decrypted with the EncodingAESKey and must name this corp id. A timestamp more than
        300 s away is a replay. Read: ``change_external_contact`` / ``del_follow_user`` (the customer deleted
        the advisor: an unsubscribe of that external contact). Answered ``success``."""
        import xml.etree.ElementTree as ElementTree

        from motorcade.activation import wechat_crypto
        from motorcade.activation.receipts import Receipt, ReceiptAnswer, ReceiptRejected

        token = secret_setting(self.settings, channel="wecom", name="callback_token", what="callback Token",
                               example_env="WECOM_CALLBACK_TOKEN")
        key = secret_setting(self.settings, channel="wecom", name="encoding_aes_key", what="EncodingAESKey",
                             example_env="WECOM_AES_KEY")
        query = request.query
        timestamp, nonce = str(query.get("timestamp", "")), str(query.get("nonce", ""))
        signature = str(query.get("msg_signature", ""))
        if not timestamp.isdigit():
            raise ReceiptRejected("signature", "no timestamp in the query")
        if request.method == "GET":
            echostr = str(query.get("echostr", ""))
            try:
                wechat_crypto.check_signature(signature, token, timestamp, nonce, echostr)
                return ReceiptAnswer((), body=wechat_crypto.decrypt(key, echostr, self._corpid))
            except wechat_crypto.CryptoError as exc:
                raise ReceiptRejected("signature", f"URL check: {exc}") from None
        if abs(self.context.clock().timestamp() - int(timestamp)) > 300:
            raise ReceiptRejected("replayed", "the callback's timestamp is more than 300 s away")
        if b"<!DOCTYPE" in request.body.upper() or b"<!ENTITY" in request.body.upper():
            raise ReceiptRejected("malformed", "XML with a DOCTYPE or entities")
        try:
            encrypted = ElementTree.fromstring(request.body).findtext("Encrypt") or ""
        except ElementTree.ParseError as exc:
            raise ReceiptRejected("malformed", f"not XML: {exc}") from None
        try:
            wechat_crypto.check_signature(signature, token, timestamp, nonce, encrypted)
            plain = wechat_crypto.decrypt(key, encrypted, self._corpid)
        except wechat_crypto.CryptoError as exc:
            raise ReceiptRejected("signature", str(exc)) from None
        if b"<!DOCTYPE" in plain.upper() or b"<!ENTITY" in plain.upper():
            raise ReceiptRejected("malformed", "XML with a DOCTYPE or entities")
        try:
            root = ElementTree.fromstring(plain)
        except ElementTree.ParseError as exc:
            raise ReceiptRejected("malformed", f"decrypted text is not XML: {exc}") from None

        def text(tag: str) -> str:
            return (root.findtext(tag) or "").strip()

        receipts = []
        if (text("MsgType"), text("Event"), text("ChangeType")) == ("event", "change_external_contact",
                                                                     "del_follow_user"):
            import datetime as dt

            created = text("CreateTime")
            receipts.append(Receipt(
                "unsubscribed", f"del_follow_user|{text('ExternalUserID')}|{text('UserID')}|{created}",
                address=text("ExternalUserID"),
                at=dt.datetime.fromtimestamp(int(created), dt.timezone.utc) if created.isdigit() else None,
                detail=f"deleted advisor {text('UserID')}"))
        return ReceiptAnswer(tuple(receipts), body=b"success")

@motorcade.hookimpl
def register_channels(register):
    register(WeComChannel)
