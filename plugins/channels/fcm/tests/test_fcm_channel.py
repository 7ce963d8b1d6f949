"""The FCM channel against a local server that checks requests as Google documents them: the service-account
JWT (RS256 signature verified with the key's public half, iss/scope/aud/iat/exp), the token exchange, then
messages:send with the bearer token, the project in the path and the v1 message fields."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import motorcade_channels_fcm as fcm
from motorcade.activation.channel import ChannelContext, OutboundMessage
from motorcade.activation.testing import ProviderAPI, ProviderHandler
from motorcade.errors import ConfigError

PROJECT = "dealer-app-12345"
EMAIL = "motorcade@dealer-app-12345.iam.gserviceaccount.com"


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FakeGoogle(ProviderAPI):
    def __init__(self, public_key):
        super().__init__(Handler)
        self.public_key = public_key
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.messages: list[dict] = []
        self.revoke_next = False


def fcm_error(status: int, name: str, code: str | None) -> dict:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}] if code else []
    return {"error": {"code": status, "message": f"{name} error", "status": name, "details": details}}


class Handler(ProviderHandler):
    def do_POST(self):
        server: FakeGoogle = self.server
        raw = self.read_body()
        if self.path == "/token":
            return self.token(server, raw)
        if self.path != f"/v1/projects/{PROJECT}/messages:send":
            server.problems.append(f"path {self.path}")
            return self.answer(fcm_error(404, "NOT_FOUND", None), 404)
        bearer = self.headers.get("Authorization", "")
        if not bearer.startswith("Bearer ") or bearer[7:] not in server.tokens:
            return self.answer(fcm_error(401, "UNAUTHENTICATED", None), 401)
        if server.revoke_next:
            server.revoke_next = False
            server.tokens.discard(bearer[7:])
            return self.answer(fcm_error(401, "UNAUTHENTICATED", None), 401)
        body = json.loads(raw)
        message = body.get("message", {})
        targets = [k for k in ("token", "topic", "condition") if k in message]
        data = message.get("data", {})
        if set(body) != {"message"} or targets != ["token"] or not all(isinstance(v, str) for v in data.values()) \
                or not isinstance(message.get("notification", {}).get("body"), str):
            server.problems.append(f"bad message {body}")
            return self.answer(fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), 400)
        server.messages.append(message)
        scripted = {"tok-gone": (404, fcm_error(404, "NOT_FOUND", "UNREGISTERED"), {}),
                    "tok-quota": (429, fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), {"Retry-After": "17"}),
                    "tok-down": (503, fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"), {}),
                    "tok-other": (403, fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), {})}
        if message["token"] in scripted:
            status, body, *headers = scripted[message["token"]]
            return self.answer(body, status, *headers)
        self.answer({"name": f"projects/{PROJECT}/messages/0:{1500000000 + len(server.messages)}%31bd1c96"}, 200)

    def token(self, server, raw):
        server.token_requests += 1
        form = dict(urllib.parse.parse_qsl(raw.decode()))
        problems = []
        if self.headers.get("Content-Type") != "application/x-www-form-urlencoded":
            problems.append("content type")
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            problems.append("grant_type")
        try:
            head, claims, signature = form["assertion"].split(".")
            server.public_key.verify(unb64(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
            header, claims = json.loads(unb64(head)), json.loads(unb64(claims))
        except Exception as exc:  # noqa: BLE001
            server.problems.append(f"assertion: {exc!r}")
            return self.answer({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, 400)
        if header.get("alg") != "RS256" or claims.get("iss") != EMAIL or claims.get("scope") != fcm.SCOPE \
                or claims.get("aud") != server.base + "/token" or not 0 < claims["exp"] - claims["iat"] <= 3600 \
                or abs(claims["iat"] - time.time()) > 300:
            problems.append(f"claims {header} {claims}")
        if problems:
            server.problems.extend(problems)
            return self.answer({"error": "invalid_grant"}, 400)
        token = f"ya29.test-{server.token_requests}"
        server.tokens.add(token)
        self.answer({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}, 200)


@pytest.fixture
def google(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = FakeGoogle(key.public_key()).start()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    (tmp_path / "sa.json").write_text(json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "abc123", "private_key": pem,
        "client_email": EMAIL, "token_uri": server.base + "/token"}), encoding="utf-8")
    yield server, tmp_path
    server.shutdown()


def channel(google):
    server, directory = google
    return fcm.FcmChannel({"service_account_file": "sa.json", "endpoint": server.base},
                          ChannelContext(project_dir=directory))


def message(key, token, **params):
    return OutboundMessage(idempotency_key=key, person_id=1, address=token, template="t", body="您的爱车保养到期",
                           subject="保养提醒", params=params)


def test_token_then_send_as_documented(google):
    server, _ = google
    sender = channel(google)
    results = sender.send([message("k1", "fcm-device-1", link="https://go.example.cn/s/Ab3x9QzK2mP"),
                           message("k2", "fcm-device-2")])
    assert not server.problems
    assert [r.status for r in results] == ["sent", "sent"]
    assert results[0].provider_message_id == "0:1500000001%31bd1c96"
    assert server.token_requests == 1  # one token for both
    assert server.messages[0] == {"token": "fcm-device-1", "notification": {"body": "您的爱车保养到期", "title": "保养提醒"},
                                  "data": {"idempotency_key": "k1", "url": "https://go.example.cn/s/Ab3x9QzK2mP"}}


def test_a_revoked_token_is_renewed_once(google):
    server, _ = google
    sender = channel(google)
    sender.send([message("k1", "fcm-device-1")])
    server.revoke_next = True
    [result] = sender.send([message("k2", "fcm-device-1")])
    assert result.status == "sent" and server.token_requests == 2


def test_errors_are_classified(google):
    server, _ = google
    results = {r.idempotency_key: r for r in channel(google).send(
        [message("gone", "tok-gone"), message("quota", "tok-quota"), message("down", "tok-down"),
         message("other", "tok-other")])}
    assert results["gone"].status == "permanent" and "uninstalled" in results["gone"].detail
    assert (results["quota"].status, results["quota"].retry_after) == ("transient", 17.0)
    assert results["down"].status == "transient"
    assert results["other"].status == "permanent"
    assert not server.problems


def test_a_key_the_token_endpoint_refuses_is_transient_with_a_hint(google, tmp_path):
    server, directory = google
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    account = json.loads((directory / "sa.json").read_text())
    account["private_key"] = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()).decode()
    (directory / "sa.json").write_text(json.dumps(account))
    [result] = channel(google).send([message("k", "fcm-device-1")])
    assert result.status == "transient" and "service account key" in result.detail
    server.problems.clear()


def test_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="service_account_file"):
        fcm.FcmChannel({}, ChannelContext(project_dir=tmp_path))
    (tmp_path / "bad.json").write_text('{"project_id": "p"}')
    with pytest.raises(ConfigError, match="lacks client_email, private_key, token_uri"):
        fcm.FcmChannel({"service_account_file": "bad.json"}, ChannelContext(project_dir=tmp_path))
