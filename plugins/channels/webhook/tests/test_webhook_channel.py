"""The webhook channel against a real HTTP/1.1 server on 127.0.0.1 that checks every signature."""

from __future__ import annotations

import collections
import email.utils
import hashlib
import hmac
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import motorcade_channels_webhook as webhook
from motorcade.activation.channel import ChannelContext, OutboundMessage
from motorcade.activation.testing import ProviderAPI, ProviderHandler, registered_channels
from motorcade.errors import ConfigError

SECRET = "s3cret-分享"


class Receiver(ProviderAPI):
    """Verifies the signature on its own (not with the plugin's helper), counts idempotency keys."""

    def __init__(self):
        super().__init__(ReceiverHandler)
        self.requests: list[dict] = []  # parsed bodies of accepted requests
        self.header_keys: collections.Counter[str] = collections.Counter()
        self.message_keys: collections.Counter[str] = collections.Counter()
        self.client_ports: set[int] = set()
        self.bad_signatures = 0
        self.script: list[tuple[int, dict[str, str], bytes]] = []  # canned answers, used first-in first-out
        self.close_after_each = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/motorcade?src=test"


class ReceiverHandler(ProviderHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    wbufsize = 1 << 16  # one write per answer (headers + body), so Nagle/delayed-ACK adds no 40 ms stall

    def do_POST(self):
        server: Receiver = self.server
        body = self.read_body()
        with server.lock:
            server.client_ports.add(self.client_address[1])
        assert self.path == "/hooks/motorcade?src=test"
        assert self.headers["Content-Type"] == "application/json; charset=utf-8"
        parts = dict(p.split("=", 1) for p in self.headers["X-Motorcade-Signature"].split(","))
        expected = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts["v1"]) or abs(time.time() - int(parts["t"])) > 60:
            with server.lock:
                server.bad_signatures += 1
            return self._answer(401, {}, b'{"error":"bad signature"}')
        with server.lock:
            if server.script:
                status, headers, answer = server.script.pop(0)
                return self._answer(status, headers, answer)
            payload = json.loads(body)
            server.requests.append(payload)
            server.header_keys[self.headers["Idempotency-Key"]] += 1
            for item in payload["messages"] if "messages" in payload else [payload]:
                server.message_keys[item["idempotency_key"]] += 1
        self._answer(200, {}, b'{"ok":true}')

    def _answer(self, status, headers, body):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.server.close_after_each:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


def make_channel(url, tmp_path, **extra):
    settings = {"url": url, "secret": SECRET, "timeout": 5, **extra}
    return webhook.WebhookChannel(settings, ChannelContext(project_dir=Path(tmp_path)))


def messages(n, prefix="k"):
    return [
        OutboundMessage(
            idempotency_key=f"{prefix}:{i}",
            person_id=100 + i,
            address="https://crm.example/people/%d" % i,
            template="service_due",
            body=f"尊敬的车主，您的爱车已到保养时间 #{i}",
            subject="保养提醒",
            params={"plate": "粤B12345", "n": i},
            metadata={"campaign": "service_due", "step": 1},
        )
        for i in range(n)
    ]


def test_one_post_per_message_signed_with_key_over_one_kept_alive_connection(receiver, tmp_path):
    channel = make_channel(receiver.url, tmp_path)
    batch = messages(5)
    results = channel.send(batch)
    channel.close()

    assert sorted(r.idempotency_key for r in results) == sorted(m.idempotency_key for m in batch)
    assert {r.status for r in results} == {"sent"}
    assert receiver.bad_signatures == 0
    assert receiver.header_keys == {m.idempotency_key: 1 for m in batch}
    assert receiver.message_keys == {m.idempotency_key: 1 for m in batch}
    assert len(receiver.client_ports) == 1  # keep-alive: all five POSTs on one connection
    first = receiver.requests[0]
    assert first == {
        "idempotency_key": "k:0", "person_id": 100, "address": "https://crm.example/people/0",
        "template": "service_due", "subject": "保养提醒", "body": "尊敬的车主，您的爱车已到保养时间 #0",
        "params": {"plate": "粤B12345", "n": 0}, "metadata": {"campaign": "service_due", "step": 1},
    }


def test_batch_mode_posts_one_list_per_batch(receiver, tmp_path):
    channel = make_channel(receiver.url, tmp_path, batch_size=3)
    assert channel.capabilities.batch_size == 3
    batch = messages(7)
    results = channel.send(batch)
    channel.close()

    assert [r.status for r in results] == ["sent"] * 7
    assert [len(r["messages"]) for r in receiver.requests] == [3, 3, 1]
    assert receiver.message_keys == {m.idempotency_key: 1 for m in batch}
    assert all(key.startswith("batch-") for key in receiver.header_keys)
    assert len(receiver.header_keys) == 3


def test_resending_a_batch_reuses_the_same_batch_key(receiver, tmp_path):
    channel = make_channel(receiver.url, tmp_path, batch_size=10)
    channel.send(messages(4))
    channel.send(messages(4))
    channel.close()
    assert list(receiver.header_keys.values()) == [2]  # the receiver can deduplicate the whole retry


def test_statuses_are_classified_with_the_answer_verbatim(receiver, tmp_path):
    http_date = email.utils.formatdate(time.time() + 120, usegmt=True)
    receiver.script = [
        (503, {"Retry-After": "7"}, b"maintenance"),
        (429, {"Retry-After": http_date}, b'{"error":"slow down"}'),
        (400, {}, '{"error":"地址无效"}'.encode()),
        (500, {}, b"boom"),
        (301, {"Location": "https://elsewhere"}, b""),
        (408, {}, b"timeout"),
    ]
    channel = make_channel(receiver.url, tmp_path)
    results = channel.send(messages(6))
    channel.close()

    assert [r.status for r in results] == ["transient", "transient", "permanent", "transient",
                                          "permanent", "transient"]
    assert results[0].retry_after == 7
    assert 100 < results[1].retry_after <= 120
    assert results[2].detail == 'HTTP 400 Bad Request: {"error":"地址无效"}'
    assert results[3].retry_after is None
    assert results[0].detail == "HTTP 503 Service Unavailable: maintenance"


def test_per_message_results_in_a_batch_answer_are_honoured(receiver, tmp_path):
    answer = {"results": [
        {"idempotency_key": "k:0", "status": "sent", "id": "r-0"},
        {"idempotency_key": "k:1", "status": "permanent", "detail": "unknown person"},
        {"idempotency_key": "k:2", "status": "transient", "retry_after": 30},
    ]}
    receiver.script = [(200, {}, json.dumps(answer).encode())]
    channel = make_channel(receiver.url, tmp_path, batch_size=4)
    results = {r.idempotency_key: r for r in channel.send(messages(4))}
    channel.close()
    assert results["k:0"].status == "sent" and results["k:0"].provider_message_id == "r-0"
    assert results["k:1"].status == "permanent" and "unknown person" in results["k:1"].detail
    assert results["k:2"].status == "transient" and results["k:2"].retry_after == 30
    assert results["k:3"].status == "sent"


def test_a_wrong_secret_is_rejected_by_the_receiver_and_is_permanent(receiver, tmp_path):
    channel = webhook.WebhookChannel({"url": receiver.url, "secret": "wrong"},
                                     ChannelContext(project_dir=tmp_path))
    [result] = channel.send(messages(1))
    channel.close()
    assert receiver.bad_signatures == 1
    assert result.status == "permanent"
    assert "bad signature" in result.detail


def test_server_closing_connections_still_delivers_each_message_once(receiver, tmp_path):
    receiver.close_after_each = True
    channel = make_channel(receiver.url, tmp_path)
    batch = messages(4)
    assert {r.status for r in channel.send(batch)} == {"sent"}
    channel.close()
    assert receiver.message_keys == {m.idempotency_key: 1 for m in batch}
    assert len(receiver.client_ports) == 4


def test_stale_kept_alive_connection_is_replaced(receiver, tmp_path):
    channel = make_channel(receiver.url, tmp_path)
    channel.send(messages(1, "a"))
    # The server drops the idle connection (as a load balancer would); the next send must reconnect.
    for conn in list(channel._pool.queue):
        conn.sock.shutdown(socket.SHUT_RDWR)
    assert [r.status for r in channel.send(messages(2, "b"))] == ["sent", "sent"]
    channel.close()
    assert receiver.message_keys == {"a:0": 1, "b:0": 1, "b:1": 1}


def test_unreachable_receiver_is_transient(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    channel = make_channel(f"http://127.0.0.1:{port}/x", tmp_path)
    results = channel.send(messages(2))
    assert [r.status for r in results] == ["transient", "transient"]
    assert "ConnectionRefusedError" in results[0].detail and f"127.0.0.1:{port}" in results[0].detail


def test_concurrent_senders_share_the_channel(receiver, tmp_path):
    channel = make_channel(receiver.url, tmp_path)
    outcomes = []

    def worker(prefix):
        outcomes.extend(channel.send(messages(20, prefix)))

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    channel.close()
    assert len(outcomes) == 80 and {r.status for r in outcomes} == {"sent"}
    assert sum(receiver.message_keys.values()) == 80 and len(receiver.message_keys) == 80
    assert len(receiver.client_ports) <= 4


@settings(max_examples=60, deadline=None)
@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=512),
       timestamp=st.integers(min_value=1_500_000_000, max_value=2_500_000_000))
def test_signature_round_trip_and_tamper_detection(secret, body, timestamp):
    header = webhook.sign(secret, timestamp, body)
    assert webhook.verify_signature(secret, header, body, now=timestamp)
    assert not webhook.verify_signature(secret, header, body + b"x", now=timestamp)
    assert not webhook.verify_signature(secret + b"x", header, body, now=timestamp)
    assert not webhook.verify_signature(secret, header, body, now=timestamp + 301)


def test_retry_after_parsing():
    assert webhook.parse_retry_after("12") == 12
    assert webhook.parse_retry_after(None) is None
    assert webhook.parse_retry_after("soon") is None
    now = 1_700_000_000
    assert webhook.parse_retry_after(email.utils.formatdate(now + 60, usegmt=True), now=now) == 60
    assert webhook.parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0


def test_settings_errors_say_what_to_do(tmp_path, monkeypatch):
    context = ChannelContext(project_dir=tmp_path)
    with pytest.raises(ConfigError, match="no url"):
        webhook.WebhookChannel({"secret": "x"}, context)
    with pytest.raises(ConfigError, match="not an http"):
        webhook.WebhookChannel({"url": "ftp://x/y", "secret": "x"}, context)
    with pytest.raises(ConfigError, match="no signing secret"):
        webhook.WebhookChannel({"url": "http://x/y"}, context)
    monkeypatch.delenv("MC_TEST_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ConfigError, match="MC_TEST_WEBHOOK_SECRET"):
        webhook.WebhookChannel({"url": "http://x/y", "secret_env": "MC_TEST_WEBHOOK_SECRET"}, context)
    monkeypatch.setenv("MC_TEST_WEBHOOK_SECRET", "abc")
    channel = webhook.WebhookChannel({"url": "http://x/y", "secret_env": "MC_TEST_WEBHOOK_SECRET"}, context)
    assert channel._secret == b"abc"


def test_registers_through_the_hook_and_the_entry_point():
    registered, entry_points = registered_channels(webhook, "webhook")
    assert registered == [webhook.WebhookChannel]
    assert entry_points == {"motorcade_channels_webhook"}
