"""Motorcade channel ``fcm``: app push through Firebase Cloud Messaging, HTTP v1 API.

Built from Google's documentation ("Send a message using FCM HTTP v1 API", "Using OAuth 2.0 for Server to
Server Applications", the FCM error codes) and tested against a local server that checks every request as
documented; it has never contacted Google.

* Access token: a JWT signed RS256 with the service account's private key (``iss`` = client_email, ``scope`` =
  ``https://www.googleapis.com/auth/firebase.messaging``, ``aud`` = token_uri, ``iat``, ``exp`` one hour later)
  exchanged at ``token_uri`` (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``) for a bearer token,
  cached in ``ChannelContext.token_cache`` under ``fcm:<client_email>`` and renewed on a 401.
* ``POST /v1/projects/<project_id>/messages:send`` with ``{"message": {"token", "notification": {"title",
  "body"}, "data": {...strings}}}``; 200 ``{"name": "projects/.../messages/<id>"}`` is sent.
* Errors by ``FcmError.errorCode`` (or the status): UNREGISTERED, INVALID_ARGUMENT, SENDER_ID_MISMATCH permanent;
  QUOTA_EXCEEDED (429, ``Retry-After``), UNAVAILABLE, INTERNAL transient; THIRD_PARTY_AUTH_ERROR transient (the
  operator fixes the APNs or web-push credentials).
"""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.parse
from pathlib import Path
from typing import Any

import attrs

import motorcade
from motorcade.activation.channel import (
    Channel,
    ChannelCapabilities,
    ChannelContext,
    DeliveryResult,
    InProcessTokenCache,
    OutboundMessage,
)
from motorcade.config_schema import PATH, TEXT, Setting, number
from motorcade.errors import ConfigError

__version__ = "0.1.0"

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PERMANENT_ERRORS = {"UNREGISTERED": "the registration token is no longer valid (app uninstalled)",
                    "INVALID_ARGUMENT": "the request is invalid (a bad token or field)",
                    "SENDER_ID_MISMATCH": "the token belongs to another Firebase project"}
TRANSIENT_ERRORS = {"QUOTA_EXCEEDED": "sending rate exceeded", "UNAVAILABLE": "FCM is overloaded",
                    "INTERNAL": "FCM internal error",
                    "THIRD_PARTY_AUTH_ERROR": "APNs or web-push credentials were rejected: fix them in the console"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def service_account_jwt(account: dict[str, Any], *, now: int) -> str:
    """The signed assertion of Google's server-to-server OAuth 2 flow (RS256)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    header = {"alg": "RS256", "typ": "JWT", "kid": account.get("private_key_id", "")}
    claims = {"iss": account["client_email"], "scope": SCOPE, "aud": account["token_uri"], "iat": now,
              "exp": now + 3600}
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    key = serialization.load_pem_private_key(account["private_key"].encode("utf-8"), password=None)
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


class TokenError(Exception):
    """The token endpoint refused the assertion; the detail is its answer."""


def _request(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, dict[str, str], bytes]:
    parts = urllib.parse.urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = connection_class(parts.netloc, timeout=timeout)
    try:
        conn.request("POST", parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


class FcmChannel(Channel):
    name = "fcm"
    description = "App push through Firebase Cloud Messaging HTTP v1 (OAuth 2 service account)"
    capabilities = ChannelCapabilities(address_type="fcm_token", batch_size=1, rate_limit_per_second=100)
    settings_schema = (
        Setting("service_account_file", PATH, "the service account's JSON key file (keep it out of the repository)",
                required=True),
        Setting("endpoint", TEXT, "API base URL", "https://fcm.googleapis.com"),
        Setting("requests_per_second", number(above=0), "most send requests per second", 100),
        Setting("timeout", number(above=0), "seconds to wait for the API", 10),
    )

    def __init__(self, settings: dict[str, Any], context: ChannelContext):
        super().__init__(settings, context)
        if not settings.get("service_account_file"):
            raise ConfigError("channel fcm: [channels.fcm] has no service_account_file",
                              hint="download a key in the Firebase console (Project settings > Service accounts)")
        path = Path(context.project_dir) / str(settings["service_account_file"])
        try:
            account = json.loads(path.read_text(encoding="utf-8"))
            missing = [k for k in ("project_id", "client_email", "private_key", "token_uri") if not account.get(k)]
        except (OSError, ValueError) as exc:
            raise ConfigError(f"channel fcm: service_account_file {str(path)!r} cannot be read: {exc}") from None
        if missing:
            raise ConfigError(f"channel fcm: service_account_file {str(path)!r} lacks {', '.join(missing)}",
                              hint="use the JSON key file exactly as the Firebase console gives it")
        self._account = account
        self._endpoint = str(settings.get("endpoint", "https://fcm.googleapis.com")).rstrip("/")
        self._timeout = float(settings.get("timeout", 10))
        self._tokens = context.token_cache or InProcessTokenCache()
        self.token_key = f"fcm:{account['client_email']}"
        self.capabilities = attrs.evolve(type(self).capabilities,
                                         rate_limit_per_second=float(settings.get("requests_per_second", 100)))

    # -- the OAuth 2 token ------------------------------------------------------------------------------

    def _fetch_token(self) -> tuple[str, float]:
        assertion = service_account_jwt(self._account, now=int(self.context.clock().timestamp()))
        body = urllib.parse.urlencode({"grant_type": GRANT_TYPE, "assertion": assertion}).encode("ascii")
        status, _, data = _request(self._account["token_uri"], body=body, timeout=self._timeout,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            answer = json.loads(data)
        except ValueError:
            answer = {}
        if status != 200 or not answer.get("access_token"):
            raise TokenError(f"the token endpoint answered HTTP {status}: {data.decode('utf-8', 'replace')[:500]}; "
                             "check the service account key and that it may use Firebase Cloud Messaging")
        return str(answer["access_token"]), float(answer.get("expires_in", 3600))

    def _token(self) -> str:
        return self._tokens.get_or_refresh(self.token_key, self._fetch_token)

    # -- sending ----------------------------------------------------------------------------------------

    def build_request(self, message: OutboundMessage) -> dict[str, Any]:
        data = {"idempotency_key": message.idempotency_key}
        if message.params.get("link"):
            data["url"] = str(message.params["link"])
        notification = {"body": message.body}
        if message.subject:
            notification["title"] = message.subject
        return {"message": {"token": message.address, "notification": notification, "data": data}}

    def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        return [self._send_one(message) for message in batch]

    def _post(self, body: bytes, token: str) -> tuple[int, dict[str, str], bytes]:
        url = f"{self._endpoint}/v1/projects/{urllib.parse.quote(self._account['project_id'])}/messages:send"
        return _request(url, body=body, timeout=self._timeout, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json; charset=utf-8"})

    def _send_one(self, message: OutboundMessage) -> DeliveryResult:
        key = message.idempotency_key
        body = json.dumps(self.build_request(message), ensure_ascii=False).encode("utf-8")
        try:
            token = self._token()
            status, headers, data = self._post(body, token)
            if status == 401:  # the token expired or was revoked: once more with a new one
                invalidate = getattr(self._tokens, "invalidate", None)
                if invalidate is not None:
                    invalidate(self.token_key, token)
                status, headers, data = self._post(body, self._token())
        except TokenError as exc:
            return DeliveryResult(key, "transient", detail=str(exc))
        except (OSError, http.client.HTTPException) as exc:
            return DeliveryResult(key, "transient", detail=f"FCM request failed: {type(exc).__name__}: {exc}")
        detail = data.decode("utf-8", "replace")[:2000]
        try:
            answer = json.loads(data) if data else {}
        except ValueError:
            answer = {}
        if status == 200 and isinstance(answer, dict) and answer.get("name"):
            return DeliveryResult(key, "sent", provider_message_id=str(answer["name"]).rsplit("/", 1)[-1],
                                  detail=detail)
        error = answer.get("error", {}) if isinstance(answer, dict) else {}
        code = next((d.get("errorCode") for d in error.get("details", []) if isinstance(d, dict)
                     and d.get("errorCode")), None) or error.get("status")
        if code in PERMANENT_ERRORS:
            return DeliveryResult(key, "permanent", detail=f"HTTP {status}: {detail} ({PERMANENT_ERRORS[code]})")
        retry_after = headers.get("retry-after")
        wait = float(retry_after) if retry_after and retry_after.isdigit() else None
        if code in TRANSIENT_ERRORS or status in (429, 500, 502, 503, 504, 401):
            hint = TRANSIENT_ERRORS.get(code, "")
            return DeliveryResult(key, "transient", detail=f"HTTP {status}: {detail}" + (f" ({hint})" if hint else ""),
                                  retry_after=wait if wait is not None else (60.0 if status == 429 else None))
        return DeliveryResult(key, "permanent", detail=f"HTTP {status}: {detail}")


@motorcade.hookimpl
def register_channels(register):
    register(FcmChannel)
