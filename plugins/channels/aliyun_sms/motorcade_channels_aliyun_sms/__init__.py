"""Motorcade channel ``aliyun_sms``: Alibaba Cloud SMS (阿里云短信), ``SendSms`` of API version 2017-05-25.

Built from Alibaba Cloud's documentation (SendSms, the RPC signature "HMAC-SHA1, SignatureVersion 1.0", the
error codes, and the HTTP batch push of SmsReport and SmsUp) and tested against a local server that checks every
request as documented; it has never contacted the real provider.

* One request per message (``PhoneNumbers`` one number, ``TemplateParam`` this person's values), ``OutId`` = the
  idempotency key (Alibaba echoes it in receipts; it does not deduplicate on it).
* Receipts (``/r/aliyun_sms`` of ``motorcade collect``): SmsReport pushes a JSON array of reports (``biz_id``,
  ``success``, ``err_code``, ...), SmsUp a JSON array of replies (``content``); Alibaba signs neither, so the
  push address carries a token. Reports are not idempotent (the same report can arrive again): each is
  recorded once. A reply of TD / 退订 / T / N is an unsubscribe.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import urllib.parse
import uuid
import zoneinfo
from typing import Any

import motorcade
from motorcade.activation.channel import (
    Channel,
    ChannelCapabilities,
    ChannelContext,
    DeliveryResult,
    OutboundMessage,
    secret_setting,
)
from motorcade.config_schema import NAME, SECRET, TEXT, Setting, any_of, list_of, map_of, number, table_kind
from motorcade.errors import ConfigError

__version__ = "0.1.0"

BEIJING = zoneinfo.ZoneInfo("Asia/Shanghai")
TRANSIENT_CODES = {"isv.BUSINESS_LIMIT_CONTROL": 60, "isv.AMOUNT_NOT_ENOUGH": 3600, "isp.SYSTEM_ERROR": None,
                   "isv.OUT_OF_SERVICE": 3600, "Throttling.User": 1, "isp.RAM_PERMISSION_DENY": None,
                   "SignatureDoesNotMatch": None, "InvalidAccessKeyId.NotFound": None,
                   "InvalidTimeStamp.Expired": None, "SignatureNonceUsed": None}
RECEIPT_ACK = {"code": 0, "msg": "接收成功"}


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as Alibaba's RPC signature requires (space %20, * %2A, ~ kept)."""
    return urllib.parse.quote(str(value), safe="~")


def rpc_signature(secret: str, params: dict[str, str], method: str = "GET") -> str:
    """``Signature`` of an RPC request: base64 HMAC-SHA1 with key ``secret + "&"`` over
    ``METHOD&%2F&percent(canonical query)``, the query sorted by name and percent-encoded."""
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))
    string_to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class AliyunSmsChannel(Channel):
    name = "aliyun_sms"
    description = "Alibaba Cloud SMS (SendSms 2017-05-25, HMAC-SHA1 RPC signature) with receipts"
    capabilities = ChannelCapabilities(address_type="phone", batch_size=1, rate_limit_per_second=100,
                                       max_length=500)
    settings_schema = (
        Setting("access_key_id_env", TEXT, "environment variable holding the AccessKey ID"),
        Setting("access_key_id", SECRET, "the AccessKey ID itself (prefer access_key_id_env)"),
        Setting("access_key_secret_env", TEXT, "environment variable holding the AccessKey secret"),
        Setting("access_key_secret", SECRET, "the AccessKey secret itself (prefer access_key_secret_env)"),
        Setting("sign_name", NAME, "the approved signature (签名)", required=True),
        Setting("templates", map_of(table_kind(
            Setting("code", TEXT, "TemplateCode (SMS_...)", required=True),
            Setting("params", list_of(TEXT), "template variables, filled from the message's parameters (link, ...)"),
            label="{ code = ..., params = [...] }"), "template name"), "rule template name = its TemplateCode", {}),
        Setting("endpoint", TEXT, "API endpoint", "https://dysmsapi.aliyuncs.com"),
        Setting("region", TEXT, "RegionId", "cn-hangzhou"),
        Setting("requests_per_second", number(above=0), "most SendSms requests per second", 100),
        Setting("timeout", number(above=0), "seconds to wait for the API", 10),
        Setting("receipt_token_env", TEXT, "environment variable holding the token of the push address "
                "(`<public_url>/r/aliyun_sms?token=...`): Alibaba does not sign its pushes"),
        Setting("receipt_token", SECRET, "the push token itself (prefer receipt_token_env)"),
    )

    def __init__(self, settings: dict[str, Any], context: ChannelContext):
        super().__init__(settings, context)
        self._key_id = secret_setting(settings, channel="aliyun_sms", name="access_key_id", what="AccessKey ID",
                                      example_env="ALIBABA_CLOUD_ACCESS_KEY_ID")
        self._secret = secret_setting(settings, channel="aliyun_sms", name="access_key_secret",
                                      what="AccessKey secret", example_env="ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        if not settings.get("sign_name"):
            raise ConfigError("channel aliyun_sms: [channels.aliyun_sms] has no sign_name",
                              hint="copy the approved signature from the SMS console (国内消息 > 签名管理)")
        self._sign_name = str(settings["sign_name"])
        self._templates = {str(k): dict(v) for k, v in (settings.get("templates") or {}).items()}
        endpoint = str(settings.get("endpoint", "https://dysmsapi.aliyuncs.com"))
        parts = urllib.parse.urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        self._scheme, self._host = parts.scheme, parts.netloc
        self._region = str(settings.get("region", "cn-hangzhou"))
        self._timeout = float(settings.get("timeout", 10))

    def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        return [self._send_one(message) for message in batch]

    def request_params(self, message: OutboundMessage, *, now: dt.datetime, nonce: str) -> dict[str, str]:
        spec = self._templates.get(message.template)
        if spec is None:
            raise ValueError(f"template {message.template!r} has no TemplateCode: add it under "
                             "[channels.aliyun_sms.templates]")
        missing = [name for name in spec.get("params", []) if name not in message.params]
        if missing:
            raise ValueError(f"template {message.template!r} needs parameters {missing}")
        params = {"AccessKeyId": self._key_id, "Action": "SendSms", "Format": "JSON",
                  "PhoneNumbers": message.address.removeprefix("+86"), "RegionId": self._region,
                  "SignName": self._sign_name, "SignatureMethod": "HMAC-SHA1", "SignatureNonce": nonce,
                  "SignatureVersion": "1.0", "TemplateCode": str(spec["code"]),
                  "Timestamp": now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "Version": "2017-05-25", "OutId": message.idempotency_key}
        if spec.get("params"):
            params["TemplateParam"] = json.dumps({name: str(message.params[name]) for name in spec["params"]},
                                                 ensure_ascii=False, separators=(",", ":"))
        params["Signature"] = rpc_signature(self._secret, params)
        return params

    def _send_one(self, message: OutboundMessage) -> DeliveryResult:
        key = message.idempotency_key
        try:
            params = self.request_params(message, now=self.context.clock(), nonce=uuid.uuid4().hex)
        except ValueError as exc:
            return DeliveryResult(key, "permanent", detail=f"not sent: {exc}")
        query = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in params.items())
        connection_class = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        conn = connection_class(self._host, timeout=self._timeout)
        try:
            conn.request("GET", f"/?{query}")
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return DeliveryResult(key, "transient", detail=f"SendSms request failed: {type(exc).__name__}: {exc}")
        finally:
            conn.close()
        detail = data.decode("utf-8", "replace")[:2000]
        try:
            answer = json.loads(data)
        except ValueError:
            return DeliveryResult(key, "transient", detail=f"HTTP {response.status}: {detail}")
        code = str(answer.get("Code", ""))
        if code == "OK" and answer.get("BizId"):
            return DeliveryResult(key, "sent", provider_message_id=str(answer["BizId"]), detail=detail)
        if code in TRANSIENT_CODES or response.status >= 500:
            wait = TRANSIENT_CODES.get(code)
            return DeliveryResult(key, "transient", detail=detail, retry_after=None if wait is None else float(wait))
        return DeliveryResult(key, "permanent", detail=detail)

    # -- receipts -------------------------------------------------------------------------------------

    def receipts(self, request):
        """SmsReport (delivery reports) and SmsUp (replies) as Alibaba's HTTP batch push sends them: a JSON
        array. Alibaba does not sign the pushes: the push address carries a token (``?token=``), checked in
        constant time. Answered ``{"code": 0, "msg": "接收成功"}``."""
        from motorcade.activation.receipts import Receipt, ReceiptAnswer, ReceiptRejected, is_unsubscribe_reply

        token = secret_setting(self.settings, channel="aliyun_sms", name="receipt_token", what="push token",
                               example_env="ALIYUN_SMS_RECEIPT_TOKEN")
        if not hmac.compare_digest(str(request.query.get("token", "")).encode(), token.encode()):
            raise ReceiptRejected("signature", "the push address's token is missing or wrong")
        if request.method != "POST":
            raise ReceiptRejected("malformed", "Alibaba posts its pushes")
        try:
            items = json.loads(request.body)
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise ValueError("a push is a JSON array of objects")
            receipts = []
            for item in items:
                phone = str(item["phone_number"])
                phone = phone if phone.startswith("+") else f"+86{phone}"
                if "content" in item:  # SmsUp: a reply
                    if is_unsubscribe_reply(str(item["content"])):
                        receipts.append(Receipt("unsubscribed", f"up|{phone}|{item.get('sequence_id')}|{item['send_time']}",
                                                address=phone, at=_beijing(item.get("send_time")),
                                                detail=f"replied {item['content']!r}"))
                    continue
                success = item["success"]
                if not isinstance(success, bool):
                    raise ValueError("success must be true or false")
                receipts.append(Receipt(
                    "delivered" if success else "failed",
                    f"report|{item['biz_id']}|{phone}|{success}|{item.get('err_code')}",
                    provider_message_id=str(item["biz_id"]), at=_beijing(item.get("report_time")),
                    detail=f"{item.get('err_code', '')} {item.get('err_msg', '')}".strip()))
        except (ValueError, TypeError, KeyError) as exc:
            raise ReceiptRejected("malformed", f"{type(exc).__name__}: {exc}") from None
        return ReceiptAnswer(tuple(receipts), body=json.dumps(RECEIPT_ACK, ensure_ascii=False).encode("utf-8"),
                             content_type="application/json")


def _beijing(text: Any) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.strptime(str(text), "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)


@motorcade.hookimpl
def register_channels(register):
    register(AliyunSmsChannel)
