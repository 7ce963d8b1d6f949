"""Motorcade channel ``sms``: Tencent Cloud SMS, API 3.0 ``SendSms`` (version 2021-01-11).

Built from Tencent Cloud's documentation (SendSms, "Signature v3", the SMS error codes and the "SMS
sending status notification" callback); tested against a local server that checks every request as
documented. It has never contacted the real provider.

* One request carries up to 200 numbers that share a template, its parameters and the sign name; numbers
  in mainland China and abroad are never mixed in one request (the API refuses that).
* Each number's answer in ``SendStatusSet`` is classified on its own (partial failure is normal).
* ``SessionContext`` carries the idempotency key when a request holds one message, otherwise
  ``batch:<sha256 of the keys>`` (the field is limited to 512 bytes). Tencent does not deduplicate on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import json
import logging
import threading
import time
import urllib.parse
import zoneinfo
from typing import Any, Iterable

import attrs

from motorcade.config_schema import FLAG, NAME, SECRET, TEXT, Setting, any_of, list_of, map_of, number, table_kind, whole
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

__version__ = "0.1.0"

log = logging.getLogger(__name__)

ACTION = "SendSms"
VERSION = "2021-01-11"
SERVICE = "sms"
ALGORITHM = "TC3-HMAC-SHA256"
CONTENT_TYPE = "application/json; charset=utf-8"
MAX_NUMBERS_PER_REQUEST = 200
SESSION_CONTEXT_LIMIT = 511  # "长度需小于512字节"
BEIJING = zoneinfo.ZoneInfo("Asia/Shanghai")
MARKETING_WINDOW = ("08:00", "22:00")

# Per-number and request-level codes that are worth retrying, with how long to wait first (seconds;
# "midnight" = until the next Beijing day, "window" = until 08:00 Beijing time).
TRANSIENT_CODES: dict[str, float | str | None] = {
    "LimitExceeded.PhoneNumberThirtySecondLimit": 30,
    "LimitExceeded.PhoneNumberOneHourLimit": 3600,
    "LimitExceeded.PhoneNumberDailyLimit": "midnight",
    "LimitExceeded.PhoneNumberSameContentDailyLimit": "midnight",
    "LimitExceeded.DeliveryFrequencyLimit": 60,
    "LimitExceeded.AppDailyLimit": "midnight",
    "LimitExceeded.AppMainlandChinaDailyLimit": "midnight",
    "LimitExceeded.AppGlobalDailyLimit": "midnight",
    "LimitExceeded.AppCountryOrRegionDailyLimit": "midnight",
    "LimitExceeded.DailyLimit": "midnight",
    "FailedOperation.InsufficientBalanceInSmsPackage": 3600,
    "FailedOperation.MarketingSendTimeConstraint": "window",
    "UnauthorizedOperation.ServiceSuspendDueToArrears": 3600,
    "RequestLimitExceeded": 1,
    "InternalError.Timeout": None,
    "InternalError.SendAndRecvFail": None,
    "InternalError.RequestTimeException": None,
}
# Whole families that are transient: Tencent's own failures and authentication problems (a wrong or
# expired key is fixed by the operator; the message itself is fine).
TRANSIENT_PREFIXES = ("InternalError.", "AuthFailure.", "ResourceUnavailable.", "RequestLimitExceeded.")


def mask_phone(phone: str) -> str:
    """``+8613811112222`` -> ``+86138****2222`` (for log lines)."""
    digits = phone.strip()
    if len(digits) <= 7:
        return "***"
    return f"{digits[:-8]}****{digits[-4:]}"


# -- TC3-HMAC-SHA256 ---------------------------------------------------------------------------------

def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def tc3_authorization(*, secret_id: str, secret_key: str, service: str, timestamp: int, payload: bytes,
                      signed_headers: dict[str, str], method: str = "POST", uri: str = "/",
                      query: str = "") -> str:
    """The ``Authorization`` header of Tencent Cloud signature v3.

    ``signed_headers`` maps lower-case header names to the values sent (for SendSms: content-type,
    host and x-tc-action, the action in lower case). Canonical request::

        POST\\n/\\n<query>\\n<name:value\\n for each header, sorted>\\n<names joined by ;>\\n<hex sha256(payload)>

    String to sign: ``TC3-HMAC-SHA256\\n<timestamp>\\n<date>/<service>/tc3_request\\n<hex sha256(canonical)>``
    with ``date`` the UTC date of ``timestamp``; the key is derived HMAC("TC3"+key, date) -> service ->
    "tc3_request".
    """
    names = sorted(signed_headers)
    canonical_headers = "".join(f"{name}:{signed_headers[name].strip()}\n" for name in names)
    signed_names = ";".join(names)
    canonical_request = "\n".join([method, uri, query, canonical_headers, signed_names,
                                   hashlib.sha256(payload).hexdigest()])
    date = dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join([ALGORITHM, str(timestamp), scope,
                                hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()])
    signing_key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode("utf-8"), date), service), "tc3_request")
    signature = hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={signed_names}, Signature={signature}"


# -- delivery receipts -------------------------------------------------------------------------------

@attrs.frozen
class SmsReceipt:
    """One delivery receipt from Tencent's "SMS sending status notification" callback."""

    serial_no: str  # "sid": the SerialNo SendSms returned (our provider_message_id)
    phone: str  # E.164
    status: str  # "delivered" or "failed"
    received_at: dt.datetime | None  # user_receive_time, Beijing time
    error_code: str  # errmsg, e.g. "DELIVRD"
    description: str
    dedupe_key: str  # stable across redeliveries of the same receipt


RECEIPT_ACK = {"result": 0, "errmsg": "OK"}  # what the callback endpoint answers


def parse_delivery_receipts(payload: bytes | str | list[dict[str, Any]],
                            seen: set[str] | None = None) -> list[SmsReceipt]:
    """Receipts in a callback body, without duplicates.

    A callback may carry many receipts and the same receipt may arrive more than once (in one body or
    in several); each distinct receipt is returned once. Pass a ``seen`` set (kept by the caller, e.g.
    loaded from the store) to drop receipts already handled; it is updated in place.
    """
    if isinstance(payload, (bytes, str)):
        payload = json.loads(payload)
    if isinstance(payload, dict):
        payload = [payload]
    seen = set() if seen is None else seen
    receipts = []
    for item in payload:
        nation = str(item.get("nationcode", "86")).lstrip("+")
        mobile = str(item["mobile"])
        phone = mobile if mobile.startswith("+") else f"+{nation}{mobile}"
        report_status = str(item["report_status"]).upper()
        dedupe_key = "|".join(["tencent", str(item["sid"]), phone, report_status])
        if dedupe_key in seen:
            continue
        seen.add(dedupe_key)
        received_at = None
        if item.get("user_receive_time"):
            received_at = dt.datetime.strptime(item["user_receive_time"], "%Y-%m-%d %H:%M:%S").replace(
                tzinfo=BEIJING)
        receipts.append(SmsReceipt(
            serial_no=str(item["sid"]),
            phone=phone,
            status="delivered" if report_status == "SUCCESS" else "failed",
            received_at=received_at,
            error_code=str(item.get("errmsg", "")),
            description=str(item.get("description", "")),
            dedupe_key=dedupe_key,
        ))
    return receipts


# -- the channel -------------------------------------------------------------------------------------

class _RequestRateLimiter:
    """At most ``rate`` requests per second across threads (Tencent: 3000 SendSms requests/s)."""

    def __init__(self, rate: float):
        self._interval = 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            time.sleep(start - now)


def _setting_or_env(settings: dict[str, Any], name: str) -> str:
    return secret_setting(settings, channel="sms", name=name, what=name, example_env=f"TENCENTCLOUD_{name.upper()}")
class TencentSmsChannel(Channel):
    name = "sms"
    description = "Tencent Cloud SMS (SendSms 2021-01-11, TC3-HMAC-SHA256), up to 200 numbers a request"
    capabilities = ChannelCapabilities(
        address_type="phone",
        batch_size=MAX_NUMBERS_PER_REQUEST,
        rate_limit_per_second=3000,  # documented default request-rate limit of SendSms
        supports_idempotency_key=False,  # SessionContext is echoed, not deduplicated
        max_length=500,  # Tencent's longest long-SMS body (characters incl. the sign)
        send_window=MARKETING_WINDOW,
    )
    settings_schema = (
        Setting("secret_id_env", TEXT, "environment variable holding the Tencent Cloud SecretId"),
        Setting("secret_id", SECRET, "the SecretId itself (prefer secret_id_env)"),
        Setting("secret_key_env", TEXT, "environment variable holding the Tencent Cloud SecretKey"),
        Setting("secret_key", SECRET, "the SecretKey itself (prefer secret_key_env)"),
        Setting("sdk_app_id", any_of(NAME, whole(1)), "SmsSdkAppId from the SMS console", required=True),
        Setting("sign_name", NAME, "the approved signature (签名)", required=True),
        Setting("region", TEXT, "API region", "ap-guangzhou"),
        Setting("endpoint", TEXT, "API endpoint", "https://sms.tencentcloudapi.com"),
        Setting("timeout", number(above=0), "seconds to wait for the API", 10),
        Setting("templates", map_of(any_of(TEXT, whole(0), table_kind(
            Setting("id", any_of(TEXT, whole(0)), "TemplateId", required=True),
            Setting("params", list_of(TEXT), "template parameters, in order"),
            label="{ id = ..., params = [...] }")), "template name"),
                "rule template name = TemplateId (or { id, params })", {}),
        Setting("marketing", FLAG, "the SDK app is approved for marketing SMS", True),
        Setting("default_country", TEXT, "region of numbers without a country code", "CN"),
        Setting("batch_size", whole(1, 200), "numbers per SendSms request", 200),
        Setting("requests_per_second", number(above=0), "most SendSms requests per second", 3000),
        Setting("receipt_token_env", TEXT, "environment variable holding the token of the callback address "
                "(`<public_url>/r/sms?token=...`, set in the SMS console): Tencent does not sign its callbacks"),
        Setting("receipt_token", SECRET, "the callback token itself (prefer receipt_token_env)"),
    )

    def __init__(self, settings: dict[str, Any], context: ChannelContext):
        super().__init__(settings, context)
        self._secret_id = _setting_or_env(settings, "secret_id")
        self._secret_key = _setting_or_env(settings, "secret_key")
        for required in ("sdk_app_id", "sign_name"):
            if not settings.get(required):
                raise ConfigError(f"channel sms: [channels.sms] has no {required}",
                                  hint="copy it from the Tencent Cloud SMS console (应用管理 / 签名管理)")
        self._app_id = str(settings["sdk_app_id"])
        self._sign_name = str(settings["sign_name"])
        self._region = str(settings.get("region", "ap-guangzhou"))
        endpoint = str(settings.get("endpoint", "https://sms.tencentcloudapi.com"))
        if "://" not in endpoint:
            endpoint = "https://" + endpoint
        parsed = urllib.parse.urlsplit(endpoint)
        self._scheme, self._host = parsed.scheme, parsed.netloc
        self._timeout = float(settings.get("timeout", 10))
        self._templates: dict[str, dict[str, Any]] = {
            name: ({"id": str(spec)} if isinstance(spec, (str, int)) else dict(spec))
            for name, spec in (settings.get("templates") or {}).items()
        }
        self._marketing = bool(settings.get("marketing", True))
        self._default_region = str(settings.get("default_country", "CN"))
        batch_size = min(int(settings.get("batch_size", MAX_NUMBERS_PER_REQUEST)), MAX_NUMBERS_PER_REQUEST)
        rate = float(settings.get("requests_per_second", 3000))
        self.capabilities = attrs.evolve(
            type(self).capabilities, batch_size=batch_size, rate_limit_per_second=rate,
            send_window=MARKETING_WINDOW if self._marketing else None,
        )
        self._limiter = _RequestRateLimiter(rate)

    # -- preparing -----------------------------------------------------------------------------------

    def _e164(self, address: str) -> str:
        import phonenumbers  # on first send: plugins keep `motorcade --help` fast

        try:
            number = phonenumbers.parse(address, None if address.startswith("+") else self._default_region)
        except phonenumbers.NumberParseException as exc:
            raise ValueError(str(exc)) from None
        if not phonenumbers.is_valid_number(number):
            raise ValueError("not a valid phone number")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def _template(self, message: OutboundMessage) -> tuple[str, list[str]]:
        spec = self._templates.get(message.template)
        if spec is None:
            if not message.template.isdigit():
                raise ValueError(f"template {message.template!r} has no id: add it under "
                                 f"[channels.sms.templates]")
            spec = {"id": message.template}
        if "params" in spec:
            missing = [name for name in spec["params"] if name not in message.params]
            if missing:
                raise ValueError(f"template {message.template!r} needs parameters {missing}")
            values = [str(message.params[name]) for name in spec["params"]]
        else:
            values = [str(v) for v in message.params.get("template_params", [])]
        return str(spec["id"]), values

    def _window_wait(self) -> float | None:
        """Seconds until 08:00 Beijing time when now is outside the marketing window, else None."""
        now = self.context.clock().astimezone(BEIJING)
        if dt.time(8) <= now.time() < dt.time(22):
            return None
        opens = now.replace(hour=8, minute=0, second=0, microsecond=0)
        if now.time() >= dt.time(22):
            opens += dt.timedelta(days=1)
        return (opens - now).total_seconds()

    def _retry_after(self, code: str) -> float | None:
        wait = TRANSIENT_CODES.get(code)
        if wait == "window":
            return self._window_wait() or 60.0
        if wait == "midnight":
            now = self.context.clock().astimezone(BEIJING)
            tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=5, second=0, microsecond=0)
            return (tomorrow - now).total_seconds()
        return wait if isinstance(wait, (int, float)) else None

    @staticmethod
    def is_transient(code: str) -> bool:
        return code in TRANSIENT_CODES or code.startswith(TRANSIENT_PREFIXES)

    # -- sending -------------------------------------------------------------------------------------

    def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        results: list[DeliveryResult] = []
        if self._marketing and batch:
            wait = self._window_wait()
            if wait is not None:
                detail = ("outside Tencent Cloud's marketing SMS hours 08:00-22:00 Beijing time; "
                          "not sent (the provider would answer FailedOperation.MarketingSendTimeConstraint)")
                return [DeliveryResult(m.idempotency_key, "transient", detail=detail, retry_after=wait)
                        for m in batch]
        groups: dict[tuple[str, tuple[str, ...], bool], list[tuple[str, OutboundMessage]]] = {}
        for message in batch:
            try:
                phone = self._e164(message.address)
                template_id, values = self._template(message)
            except ValueError as exc:
                results.append(DeliveryResult(message.idempotency_key, "permanent",
                                              detail=f"not sent: {exc}"))
                continue
            domestic = phone.startswith("+86")
            groups.setdefault((template_id, tuple(values), domestic), []).append((phone, message))
        for (template_id, values, _), members in groups.items():
            for request in self._requests(members):
                results.extend(self._send_request(template_id, list(values), request))
        return results

    @staticmethod
    def _requests(members: list[tuple[str, OutboundMessage]]) -> Iterable[list[tuple[str, OutboundMessage]]]:
        """Split into requests of at most 200 distinct numbers (answers are matched back by number)."""
        pending = list(members)
        while pending:
            request, numbers, later = [], set(), []
            for phone, message in pending:
                if phone in numbers or len(request) >= MAX_NUMBERS_PER_REQUEST:
                    later.append((phone, message))
                else:
                    numbers.add(phone)
                    request.append((phone, message))
            yield request
            pending = later

    def _send_request(self, template_id: str, values: list[str],
                      request: list[tuple[str, OutboundMessage]]) -> list[DeliveryResult]:
        keys = [m.idempotency_key for _, m in request]
        session = keys[0] if len(keys) == 1 else "batch:" + hashlib.sha256("\n".join(keys).encode()).hexdigest()
        if len(session.encode("utf-8")) > SESSION_CONTEXT_LIMIT:
            session = "key:" + hashlib.sha256(session.encode("utf-8")).hexdigest()
        body = {
            "PhoneNumberSet": [phone for phone, _ in request],
            "SmsSdkAppId": self._app_id,
            "SignName": self._sign_name,
            "TemplateId": template_id,
            "TemplateParamSet": values,
            "SessionContext": session,
        }
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self._limiter.wait()
        try:
            answer = self._post(payload)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            detail = f"SendSms request failed: {type(exc).__name__}: {exc} ({self._scheme}://{self._host}/)"
            return [DeliveryResult(k, "transient", detail=detail) for k in keys]
        response = answer.get("Response", {}) if isinstance(answer, dict) else {}
        if "Error" in response:
            code = str(response["Error"].get("Code", ""))
            detail = json.dumps(response, ensure_ascii=False)
            status = "transient" if self.is_transient(code) else "permanent"
            return [DeliveryResult(k, status, detail=detail,
                                   retry_after=self._retry_after(code) if status == "transient" else None)
                    for k in keys]
        by_phone = {str(item.get("PhoneNumber")): item for item in response.get("SendStatusSet") or []}
        results = []
        for phone, message in request:
            item = by_phone.get(phone)
            if item is None:
                results.append(DeliveryResult(
                    message.idempotency_key, "transient",
                    detail=f"SendSms answer has no SendStatusSet entry for this number "
                           f"(RequestId {response.get('RequestId')})"))
                continue
            code = str(item.get("Code", ""))
            detail = json.dumps(item, ensure_ascii=False)
            if code == "Ok":
                status = "sent"
            else:
                status = "transient" if self.is_transient(code) else "permanent"
            log.debug("sms %s to %s: %s", message.idempotency_key, mask_phone(phone), code)
            results.append(DeliveryResult(
                message.idempotency_key, status,
                provider_message_id=str(item["SerialNo"]) if status == "sent" and item.get("SerialNo") else None,
                detail=detail,
                retry_after=self._retry_after(code) if status == "transient" else None,
            ))
        return results

    # -- receipts ------------------------------------------------------------------------------------

    def receipts(self, request):
        """Tencent's "SMS sending status notification" (a JSON array of reports) and "SMS reply
        notification" (one JSON object with ``text``) callbacks.

        Tencent does not sign its callbacks; the callback address configured in the console carries a token
        (``?token=``) that is checked here in constant time. Status reports name the send by ``sid`` (our
        provider message id); a reply of TD / 退订 / T / N is an unsubscribe of the number that sent it.
        """
        from motorcade.activation.receipts import (
            Receipt, ReceiptAnswer, ReceiptRejected, is_unsubscribe_reply)

        token = secret_setting(self.settings, channel="sms", name="receipt_token", what="callback token",
                               example_env="SMS_RECEIPT_TOKEN")
        given = str(request.query.get("token", ""))
        if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
            raise ReceiptRejected("signature", "the callback address's token is missing or wrong")
        if request.method != "POST":
            raise ReceiptRejected("malformed", "Tencent posts its callbacks")
        try:
            document = json.loads(request.body)
        except ValueError as exc:
            raise ReceiptRejected("malformed", f"not JSON: {exc}") from None
        ack = json.dumps(RECEIPT_ACK).encode("utf-8")
        if isinstance(document, dict) and "text" in document:  # a reply
            nation = str(document.get("nationcode", "86")).lstrip("+")
            mobile = str(document.get("mobile", ""))
            phone = mobile if mobile.startswith("+") else f"+{nation}{mobile}"
            receipts = []
            if is_unsubscribe_reply(str(document["text"])):
                at = dt.datetime.fromtimestamp(int(document["time"]), dt.timezone.utc) if document.get("time") else None
                receipts.append(Receipt("unsubscribed", f"reply|{phone}|{document.get('time')}|{document['text']}",
                                        address=phone, at=at, detail=f"replied {document['text']!r}"))
            return ReceiptAnswer(tuple(receipts), body=ack, content_type="application/json")
        if not isinstance(document, list) or not all(isinstance(item, dict) for item in document):
            raise ReceiptRejected("malformed", "a status callback is a JSON array of reports")
        receipts = tuple(Receipt(r.status, r.dedupe_key, provider_message_id=r.serial_no, at=r.received_at,
                                 detail=f"{r.error_code} {r.description}".strip())
                         for r in parse_delivery_receipts(document))
        return ReceiptAnswer(receipts, body=ack, content_type="application/json")

    def _post(self, payload: bytes) -> Any:
        timestamp = int(time.time())
        host_header = self._host
        authorization = tc3_authorization(
            secret_id=self._secret_id, secret_key=self._secret_key, service=SERVICE, timestamp=timestamp,
            payload=payload,
            signed_headers={"content-type": CONTENT_TYPE, "host": host_header, "x-tc-action": ACTION.lower()},
        )
        headers = {
            "Authorization": authorization,
            "Content-Type": CONTENT_TYPE,
            "Host": host_header,
            "X-TC-Action": ACTION,
            "X-TC-Version": VERSION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": self._region,
        }
        connection_class = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        conn = connection_class(self._host, timeout=self._timeout)
        try:
            conn.request("POST", "/", body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise ValueError(f"HTTP {response.status} {response.reason}: "
                             f"{data.decode('utf-8', errors='replace')[:2000]}")
        return json.loads(data)


@motorcade.hookimpl
def register_channels(register):
    register(TencentSmsChannel)
