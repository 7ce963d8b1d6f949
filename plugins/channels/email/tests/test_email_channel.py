"""The e-mail channel against a real aiosmtpd SMTP server on 127.0.0.1 (plain, STARTTLS, implicit TLS)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import socket
import ssl
import subprocess

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from hypothesis import given, settings, strategies as st

import motorcade_channels_email as email_channel
from motorcade.activation.channel import ChannelContext, OutboundMessage
from motorcade.activation.testing import registered_channels
from motorcade.errors import ConfigError

FIXED_NOW = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordingHandler:
    """Records every accepted message; addresses starting with 'busy' get 450, 'nobody' get 550."""

    def __init__(self):
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.data_answer: str | None = None  # force an answer to DATA

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("busy"):
            return "450 4.2.1 Mailbox busy, try later"
        if address.startswith("nobody"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_answer:
            return self.data_answer
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 Ok: queued as Q%d" % len(self.messages)

    def parsed(self, i):
        return email.message_from_bytes(self.messages[i][2], policy=email.policy.default)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def server_tls_context(certificate):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def smtp_server():
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller
    controller.stop()


def make_channel(port, tmp_path, **extra):
    settings = {"host": "127.0.0.1", "port": port, "security": "plain",
                "from": "东风之星 4S 店 <service@dealer.example>", "reply_to": "advisor@dealer.example",
                "timeout": 5, **extra}
    return email_channel.EmailChannel(settings, ChannelContext(project_dir=tmp_path, clock=lambda: FIXED_NOW))


def message(key, address="zhang.wei@example.com", body="张先生您好：\n您的爱车已到 10000 公里保养。\n"):
    return OutboundMessage(idempotency_key=key, person_id=7, address=address, template="service_due",
                           body=body, subject="【保养提醒】您的爱车该保养了", metadata={"campaign": "c1"})


def test_utf8_message_with_idempotency_headers_reaches_the_server(smtp_server, tmp_path):
    handler, controller = smtp_server
    channel = make_channel(controller.port, tmp_path)
    [result] = channel.send([message("campaign:c1:run:3:person:7:step:1")])
    channel.close()

    assert result.status == "sent"
    assert result.detail == "SMTP 250 2.0.0 Ok: queued as Q1"
    mail_from, rcpt_tos, raw = handler.messages[0]
    assert mail_from == "service@dealer.example" and rcpt_tos == ["zhang.wei@example.com"]
    assert raw.isascii()  # 7-bit transfer encoding end to end
    parsed = handler.parsed(0)
    assert parsed["Subject"] == "【保养提醒】您的爱车该保养了"
    assert parsed["From"] == "东风之星 4S 店 <service@dealer.example>"
    assert parsed["Reply-To"] == "advisor@dealer.example"
    assert parsed["To"] == "zhang.wei@example.com"
    assert parsed["X-Motorcade-Idempotency-Key"] == "campaign:c1:run:3:person:7:step:1"
    digest = hashlib.sha256(b"campaign:c1:run:3:person:7:step:1").hexdigest()[:32]
    assert parsed["Message-ID"] == f"<motorcade.{digest}@dealer.example>" == result.provider_message_id
    assert parsed["Date"] == "Sun, 01 Mar 2026 09:30:00 +0800"
    assert parsed.get_content() == "张先生您好：\r\n您的爱车已到 10000 公里保养。\r\n"  # CRLF on the wire
    assert parsed.get_content_type() == "text/plain" and parsed.get_content_charset() == "utf-8"


def test_a_batch_uses_one_session_and_classifies_each_recipient(smtp_server, tmp_path):
    handler, controller = smtp_server
    channel = make_channel(controller.port, tmp_path)
    batch = [message("k1"), message("k2", "busy@example.com"), message("k3", "nobody@example.com"),
             message("k4", "not an address"), message("k5", "li.na@example.com")]
    results = {r.idempotency_key: r for r in channel.send(batch)}
    channel.close()

    assert len(results) == 5
    assert results["k1"].status == "sent" and results["k5"].status == "sent"
    assert results["k2"].status == "transient"
    assert results["k2"].detail == "SMTP 450 4.2.1 Mailbox busy, try later"
    assert results["k3"].status == "permanent"
    assert "550 5.1.1 <nobody@example.com>: Recipient address rejected" in results["k3"].detail
    assert results["k4"].status == "permanent" and "cannot build e-mail" in results["k4"].detail
    assert [m[1] for m in handler.messages] == [["zhang.wei@example.com"], ["li.na@example.com"]]


@pytest.mark.parametrize("answer, status", [("451 4.3.0 Temporary failure", "transient"),
                                            ("554 5.7.1 Message rejected as spam", "permanent")])
def test_data_answers_are_classified(smtp_server, tmp_path, answer, status):
    handler, controller = smtp_server
    handler.data_answer = answer
    channel = make_channel(controller.port, tmp_path)
    [result] = channel.send([message("k")])
    # the session is still usable after a refusal (RSET)
    handler.data_answer = None
    [again] = channel.send([message("k")])
    channel.close()
    assert result.status == status and result.detail == f"SMTP {answer}"
    assert result.provider_message_id is None
    assert again.status == "sent"


def test_session_is_reused_across_sends_and_reopened_after_server_restart(tmp_path):
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    channel = make_channel(port, tmp_path)
    assert channel.send([message("a")])[0].status == "sent"
    first_session = channel._smtp
    assert channel.send([message("b")])[0].status == "sent"
    assert channel._smtp is first_session
    controller.stop()
    down = channel.send([message("c"), message("d")])
    assert [r.status for r in down] == ["transient", "transient"]
    assert "cannot connect to SMTP server 127.0.0.1" in down[0].detail
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert [r.status for r in channel.send([message("c"), message("d")])] == ["sent", "sent"]
    finally:
        channel.close()
        controller.stop()
    keys = [email.message_from_bytes(m[2])["X-Motorcade-Idempotency-Key"] for m in handler.messages]
    assert keys == ["a", "b", "c", "d"]


def test_starttls_with_login(certificate, tmp_path):
    handler = RecordingHandler()
    seen_logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        seen_logins.append((mechanism, auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"right-password", handled=False)

    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            tls_context=server_tls_context(certificate), require_starttls=True,
                            authenticator=authenticator, auth_require_tls=True,
                            auth_exclude_mechanism=["LOGIN"])  # PLAIN only: smtplib then stops at the 535
    controller.start()
    try:
        good = make_channel(controller.port, tmp_path, security="starttls", ca_file=str(certificate[0]),
                            username="mailer", password="right-password")
        assert good.send([message("tls-1")])[0].status == "sent"
        assert good._smtp.sock.version().startswith("TLS")
        good.close()
        bad = make_channel(controller.port, tmp_path, security="starttls", ca_file=str(certificate[0]),
                           username="mailer", password="wrong")
        [refused] = bad.send([message("tls-2")])
        assert refused.status == "transient"
        assert "refused the session: SMTP 535" in refused.detail and "password_env" in refused.detail
        untrusted = make_channel(controller.port, tmp_path, security="starttls")  # system CAs only
        [unverified] = untrusted.send([message("tls-3")])
        assert unverified.status == "transient" and "CERTIFICATE_VERIFY_FAILED" in unverified.detail
        plain = make_channel(controller.port, tmp_path, security="plain")
        [needs_tls] = plain.send([message("tls-4")])
        assert needs_tls.status == "permanent" and needs_tls.detail.startswith("SMTP 530")
    finally:
        controller.stop()
    assert [email.message_from_bytes(m[2])["X-Motorcade-Idempotency-Key"] for m in handler.messages] == ["tls-1"]
    assert seen_logins[0][1] == b"mailer"


def test_implicit_tls(certificate, tmp_path):
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            ssl_context=server_tls_context(certificate))
    controller.start()
    try:
        channel = make_channel(controller.port, tmp_path, security="ssl", ca_file=str(certificate[0]))
        results = channel.send([message("ssl-1"), message("ssl-2")])
        channel.close()
    finally:
        controller.stop()
    assert [r.status for r in results] == ["sent", "sent"]
    assert len(handler.messages) == 2


def test_starttls_against_a_server_without_it_is_refused_clearly(smtp_server, tmp_path):
    handler, controller = smtp_server
    channel = make_channel(controller.port, tmp_path, security="starttls")
    [result] = channel.send([message("x")])
    assert result.status == "transient" and "does not offer STARTTLS" in result.detail
    assert handler.messages == []


@settings(max_examples=40, deadline=None)
@given(subject=st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=80),
       body=st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")) | st.just("\n"), max_size=300),
       key=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60))
def test_any_unicode_subject_and_body_survive_the_round_trip(tmp_path_factory, subject, body, key):
    channel = make_channel(25, tmp_path_factory.getbasetemp())
    outbound = OutboundMessage(idempotency_key=key, person_id=1, address="a@example.com", template="t",
                               body=body, subject=subject)
    raw = channel.build_message(outbound).as_bytes()
    assert raw.isascii()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert " ".join(str(parsed["Subject"]).split()) == " ".join(subject.split())  # folding may move spaces
    expected_body = body if body.endswith("\n") else body + "\n"
    assert parsed.get_content().replace("\r\n", "\n") == expected_body
    assert parsed["X-Motorcade-Idempotency-Key"] == key


def test_settings_errors_say_what_to_do(tmp_path, monkeypatch):
    context = ChannelContext(project_dir=tmp_path)
    with pytest.raises(ConfigError, match="no from address"):
        email_channel.EmailChannel({}, context)
    with pytest.raises(ConfigError, match="not one of plain, starttls, ssl"):
        email_channel.EmailChannel({"from": "a@b.c", "security": "tls"}, context)
    with pytest.raises(ConfigError, match="no password_env"):
        email_channel.EmailChannel({"from": "a@b.c", "username": "u"}, context)
    monkeypatch.delenv("MC_TEST_SMTP_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="MC_TEST_SMTP_PASSWORD"):
        email_channel.EmailChannel({"from": "a@b.c", "username": "u", "password_env": "MC_TEST_SMTP_PASSWORD"},
                                   context)
    channel = email_channel.EmailChannel({"from": "a@b.c", "security": "ssl", "batch_size": 20}, context)
    assert channel._port == 465 and channel.capabilities.batch_size == 20


def test_mask_address():
    assert email_channel.mask_address("zhang.wei@example.com") == "z***@example.com"
    assert email_channel.mask_address("garbage") == "***"


def test_registers_through_the_hook_and_the_entry_point():
    registered, entry_points = registered_channels(email_channel, "email")
    assert registered == [email_channel.EmailChannel]
    assert entry_points == {"motorcade_channels_email"}
