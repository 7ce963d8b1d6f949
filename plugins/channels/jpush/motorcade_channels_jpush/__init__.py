"""Motorcade channel ``jpush``: app push notifications through JPush (极光推送), REST API v3 ``POST /v3/push``.

Built from JPush's documentation (REST API v3 Push, HTTP Basic authentication, the HTTP status and error
codes) and tested against a local server that checks every request as documented; it has never contacted the
real JPush.

* ``Authorization: Basic base64(appKey:masterSecret)``; ``Content-Type: application/json``.
* One request per message: ``{"platform": "all", "audience": {"registration_id": [id]}, "notification":
  {"alert": body, "android": {"alert", "title", "extras"}, "ios": {"alert", "extras"}}, "options": {"sendno",
  "time_to_live", "apns_production"}}``; ``extras`` carries the idempotency key and, when the message has a
  tracked link, ``url``.
* 200 ``{"sendno", "msg_id"}``: sent, ``provider_message_id`` = ``msg_id``. Errors ``{"error": {"code",
  "message"}}``: 1000/1030 and HTTP 5xx transient; 2002 (and HTTP 429, with ``X-Rate-Limit-Reset``) transient;
  1004 (bad appKey/masterSecret) transient (the operator fixes the key); 1011 (no device for the audience) and
  the other parameter errors permanent.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.parse
import zlib
from typing import Any

import attrs

import motorcade
from motorcade.activation.channel import (
    Channel,
    ChannelCapabilities,
    ChannelContext,
    DeliveryResult,
    OutboundMessage,
    secret_setting,
)
from motorcade.config_schema import FLAG, NAME, SECRET, TEXT, Setting, number, whole
from motorcade.errors import ConfigError

__version__ = "0.1.0"

TRANSIENT_CODES = {1000: "JPush internal error", 1030: "JPush internal service timeout",
                   2002: "API call frequency exceeded", 1004: "authentication failed: check app_key and master_secret"}
PERMANENT_CODES = {1011: "no device for this registration id (the app was uninstalled or the id is wrong)",
                   1002: "a required field is missing", 1003: "a field's value is invalid", 1005: "the body is too long",
                   1008: "the app_key is invalid", 1009: "an unknown platform"}
MAX_ALERT = 2000  # characters kept of the alert ...
MAX_NOTIFICATION_BYTES = 4000  # ... and JPush limits the whole notification to 4000 bytes


def _notification(message: OutboundMessage, alert: str, extras: dict[str, Any]) -> dict[str, Any]:
    android: dict[str, Any] = {"alert": alert, "extras": extras}
    if message.subject:
        android["title"] = message.subject
    ios: dict[str, Any] = {"alert": {"title": message.subject, "body": alert} if message.subject else alert,
                           "sound": "default", "extras": extras}
    return {"alert": alert, "android": android, "ios": ios}


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def jpush_body(message: OutboundMessage, *, sendno: int, time_to_live: int, apns_production: bool) -> dict[str, Any]:
    """The documented ``/v3/push`` object for one message to one registration id (the alert cut so that the
    notification stays within JPush's 4000 bytes)."""
    extras: dict[str, Any] = {"idempotency_key": message.idempotency_key}
    if message.params.get("link"):
        extras["url"] = message.params["link"]
    alert = message.body[:MAX_ALERT]
    while alert and _size(_notification(message, alert, extras)) > MAX_NOTIFICATION_BYTES:
        alert = alert[:max(1, len(alert) * 9 // 10 - 1)]
    return {"platform": "all", "audience": {"registration_id": [message.address]},
            "notification": _notification(message, alert, extras),
            "options": {"sendno": sendno, "time_to_live": time_to_live, "apns_production": apns_production}}


def sendno(idempotency_key: str) -> int:
    """A stable ``sendno`` for a key (JPush echoes it; a positive 31-bit integer)."""
    return zlib.crc32(idempotency_key.encode("utf-8")) & 0x7FFFFFFF


class JPushChannel(Channel):
    name = "jpush"
    description = "App push through JPush (极光推送) REST API v3, HTTP Basic auth"
    capabilities = ChannelCapabilities(address_type="jpush_registration_id", batch_size=1,
                                       rate_limit_per_second=10)
    settings_schema = (
        Setting("app_key", NAME, "the app's AppKey from the JPush console", required=True),
        Setting("master_secret_env", TEXT, "environment variable holding the Master Secret"),
        Setting("master_secret", SECRET, "the Master Secret itself (prefer master_secret_env)"),
        Setting("endpoint", TEXT, "API base URL", "https://api.jpush.cn"),
        Setting("time_to_live", whole(0, 864000), "seconds JPush keeps the message for an offline device", 86400),
        Setting("apns_production", FLAG, "send to the APNs production environment (false: development)", True),
        Setting("requests_per_second", number(above=0), "most push requests per second (JPush's limit is per "
                "minute and depends on the plan)", 10),
        Setting("timeout", number(above=0), "seconds to wait for the API", 10),
    )

    def __init__(self, settings: dict[str, Any], context: ChannelContext):
        super().__init__(settings, context)
        if not settings.get("app_key"):
            raise ConfigError("channel jpush: [channels.jpush] has no app_key",
                              hint="copy the AppKey from the JPush console (应用设置)")
        secret = secret_setting(settings, channel="jpush", name="master_secret", what="Master Secret",
                                example_env="JPUSH_MASTER_SECRET")
        self._auth = "Basic " + base64.b64encode(f"{settings['app_key']}:{secret}".encode()).decode("ascii")
        endpoint = str(settings.get("endpoint", "https://api.jpush.cn"))
        parsed = urllib.parse.urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        self._scheme, self._host, self._base = parsed.scheme, parsed.netloc, parsed.path.rstrip("/")
        self._ttl = int(settings.get("time_to_live", 86400))
        self._apns_production = bool(settings.get("apns_production", True))
        self._timeout = float(settings.get("timeout", 10))
        self.capabilities = attrs.evolve(type(self).capabilities,
                                         rate_limit_per_second=float(settings.get("requests_per_second", 10)))

    def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        return [self._send_one(message) for message in batch]

    def _send_one(self, message: OutboundMessage) -> DeliveryResult:
        key = message.idempotency_key
        body = json.dumps(jpush_body(message, sendno=sendno(key), time_to_live=self._ttl,
                                     apns_production=self._apns_production), ensure_ascii=False).encode("utf-8")
        connection_class = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        conn = connection_class(self._host, timeout=self._timeout)
        try:
            conn.request("POST", f"{self._base}/v3/push", body=body, headers={
                "Authorization": self._auth, "Content-Type": "application/json", "Accept": "application/json"})
            response = conn.getresponse()
            status, data, reset = response.status, response.read(), response.getheader("X-Rate-Limit-Reset")
        except (OSError, http.client.HTTPException) as exc:
            return DeliveryResult(key, "transient", detail=f"JPush request failed: {type(exc).__name__}: {exc}")
        finally:
            conn.close()
        detail = data.decode("utf-8", "replace")[:2000]
        try:
            answer = json.loads(data) if data else {}
        except ValueError:
            answer = {}
        if status == 200 and answer.get("msg_id") is not None:
            return DeliveryResult(key, "sent", provider_message_id=str(answer["msg_id"]), detail=detail)
        code = (answer.get("error") or {}).get("code") if isinstance(answer, dict) else None
        if status == 429 or code == 2002:
            wait = float(reset) - time.time() if reset and reset.isdigit() else 60.0
            return DeliveryResult(key, "transient", detail=f"HTTP {status}: {detail}", retry_after=max(1.0, wait))
        if status >= 500 or code in TRANSIENT_CODES:
            hint = f" ({TRANSIENT_CODES[code]})" if code in TRANSIENT_CODES else ""
            return DeliveryResult(key, "transient", detail=f"HTTP {status}: {detail}{hint}")
        hint = f" ({PERMANENT_CODES[code]})" if code in PERMANENT_CODES else ""
        return DeliveryResult(key, "permanent", detail=f"HTTP {status}: {detail}{hint}")


@motorcade.hookimpl
def register_channels(register):
    register(JPushChannel)
