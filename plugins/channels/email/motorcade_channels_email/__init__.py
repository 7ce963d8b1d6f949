"""Motorcade channel ``email``: one e-mail per message over SMTP (plain, STARTTLS or implicit TLS).

Each message gets a ``Message-ID`` derived from its idempotency key (a retry of the same outbox row
carries the same Message-ID) and an ``X-Motorcade-Idempotency-Key`` header with the key verbatim.
Answers: SMTP 2xx = sent, 4xx = transient, 5xx = permanent; connection, TLS and login failures are
transient (the message is fine, the session is not) with a detail saying what to fix.
"""

from __future__ import annotations

import email.headerregistry
import email.policy
import email.utils
import hashlib
import logging
import os
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

import attrs

from motorcade.config_schema import FLAG, PATH, SECRET, TEXT, Setting, choice, number, whole
import motorcade
from motorcade.activation.channel import (
    Channel,
    ChannelCapabilities,
    ChannelContext,
    DeliveryResult,
    OutboundMessage,
)
from motorcade.errors import ConfigError

__version__ = "0.1.0"

log = logging.getLogger(__name__)

SECURITY_MODES = {"plain": 25, "starttls": 587, "ssl": 465}
SEVEN_BIT_POLICY = email.policy.SMTP.clone(cte_type="7bit")


def mask_address(address: str) -> str:
    """``zhang.wei@example.com`` -> ``z***@example.com`` for log lines."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def message_id_for(idempotency_key: str, domain: str) -> str:
    """A stable, RFC 5322-safe Message-ID for an idempotency key."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    return f"<motorcade.{digest}@{domain}>"


def _smtp_detail(code: int, response: bytes | str) -> str:
    if isinstance(response, bytes):
        response = response.decode("utf-8", errors="replace")
    return f"SMTP {code} {response}"


def _status_for_code(code: int) -> str:
    if 200 <= code < 400:
        return "sent"
    if 500 <= code < 600:
        return "permanent"
    return "transient"  # 4xx, and smtplib's -1 for an unreadable reply


class SessionError(Exception):
    """The SMTP session could not be set up (connect, TLS, login): every message in it is transient."""


class EmailChannel(Channel):
    name = "email"
    description = "E-mail over SMTP (plain, STARTTLS or SSL), Message-ID derived from the idempotency key"
    capabilities = ChannelCapabilities(address_type="email", batch_size=50)
    settings_schema = (
        Setting("host", TEXT, "SMTP server", "localhost"),
        Setting("port", whole(1, 65535), "SMTP port", "25 / 587 / 465 by security"),
        Setting("security", choice("plain", "starttls", "ssl"), "how the connection is protected", "starttls"),
        Setting("from", TEXT, "sender address (From:)", required=True),
        Setting("envelope_from", TEXT, "bounce address (MAIL FROM)", "the From address"),
        Setting("reply_to", TEXT, "Reply-To address"),
        Setting("message_id_domain", TEXT, "domain of the Message-ID derived from the idempotency key",
                "the sender's domain"),
        Setting("content_type", choice("plain", "html"), "body type", "plain"),
        Setting("username", TEXT, "SMTP login"),
        Setting("password_env", TEXT, "environment variable holding the SMTP password"),
        Setting("password", SECRET, "the SMTP password itself (prefer password_env)"),
        Setting("local_hostname", TEXT, "name sent in EHLO", "this host's name"),
        Setting("ca_file", PATH, "CA bundle to verify the server's certificate"),
        Setting("verify_tls", FLAG, "verify the server's certificate", True),
        Setting("timeout", number(above=0), "seconds to wait for the server", 30),
        Setting("batch_size", whole(1), "messages per SMTP session", 50),
        Setting("rate_limit_per_second", number(above=0), "most messages per second"),
    )

    def __init__(self, settings: dict[str, Any], context: ChannelContext):
        super().__init__(settings, context)
        self._security = str(settings.get("security", "starttls")).lower()
        if self._security not in SECURITY_MODES:
            raise ConfigError(
                f"channel email: security = {settings.get('security')!r} is not one of plain, starttls, ssl",
                hint='use security = "starttls" (port 587), "ssl" (port 465) or "plain" (trusted networks only)',
            )
        self._host = str(settings.get("host", "localhost"))
        self._port = int(settings.get("port", SECURITY_MODES[self._security]))
        self._timeout = float(settings.get("timeout", 30))
        sender = settings.get("from")
        if not sender:
            raise ConfigError("channel email: [channels.email] has no from address",
                              hint='add from = "Dealer Service <service@dealer.example>"')
        self._from = str(sender)
        self._envelope_from = str(settings.get("envelope_from") or email.utils.parseaddr(self._from)[1])
        if "@" not in self._envelope_from:
            raise ConfigError(f"channel email: from = {self._from!r} has no e-mail address in it",
                              hint='write it as "Name <user@domain>" or "user@domain"')
        self._reply_to = settings.get("reply_to")
        self._domain = str(settings.get("message_id_domain") or self._envelope_from.rpartition("@")[2])
        self._subtype = str(settings.get("content_type", "plain"))
        if self._subtype not in ("plain", "html"):
            raise ConfigError(f"channel email: content_type = {self._subtype!r} is not plain or html")
        self._username = settings.get("username")
        self._password = self._resolve_password(settings)
        self._local_hostname = settings.get("local_hostname")
        self._tls_context = None
        if self._security != "plain":
            self._tls_context = ssl.create_default_context(cafile=settings.get("ca_file"))
            if settings.get("verify_tls", True) is False:
                self._tls_context.check_hostname = False
                self._tls_context.verify_mode = ssl.CERT_NONE
        rate = settings.get("rate_limit_per_second")
        self.capabilities = attrs.evolve(
            type(self).capabilities,
            batch_size=int(settings.get("batch_size", type(self).capabilities.batch_size)),
            rate_limit_per_second=float(rate) if rate is not None else None,
        )
        self._smtp: smtplib.SMTP | None = None

    @staticmethod
    def _resolve_password(settings: dict[str, Any]) -> str | None:
        if settings.get("password_env"):
            name = settings["password_env"]
            value = os.environ.get(name)
            if value is None:
                raise ConfigError(
                    f"channel email: [channels.email] password_env names {name!r}, which is not set",
                    hint=f"export {name}=<SMTP password> before running",
                )
            return value
        if settings.get("password") is not None:
            return str(settings["password"])
        if settings.get("username"):
            raise ConfigError("channel email: username is set but no password_env (or password)",
                              hint='add password_env = "SMTP_PASSWORD" and export that variable')
        return None

    # -- building ------------------------------------------------------------------------------------

    def build_message(self, message: OutboundMessage) -> EmailMessage:
        """The RFC 5322 message for one outbound message (raises ValueError for a bad address)."""
        email.headerregistry.Address(addr_spec=message.address)  # validates; raises on junk or CR/LF
        # 7-bit transfer encodings (base64/quoted-printable) pass every relay; UTF-8 headers only when the
        # address itself needs SMTPUTF8.
        ascii_only = message.address.isascii() and self._envelope_from.isascii()
        mail = EmailMessage(policy=SEVEN_BIT_POLICY if ascii_only else email.policy.SMTPUTF8)
        mail["From"] = self._from
        mail["To"] = message.address
        if self._reply_to:
            mail["Reply-To"] = self._reply_to
        mail["Subject"] = message.subject or ""
        mail["Date"] = email.utils.format_datetime(self.context.clock())
        mail["Message-ID"] = message_id_for(message.idempotency_key, self._domain)
        mail["X-Motorcade-Idempotency-Key"] = message.idempotency_key
        mail.set_content(message.body, subtype=self._subtype, charset="utf-8")
        return mail

    # -- session -------------------------------------------------------------------------------------

    def _open(self) -> smtplib.SMTP:
        where = f"{self._host}:{self._port} ({self._security})"
        try:
            if self._security == "ssl":
                smtp = smtplib.SMTP_SSL(self._host, self._port, local_hostname=self._local_hostname,
                                        timeout=self._timeout, context=self._tls_context)
            else:
                smtp = smtplib.SMTP(self._host, self._port, local_hostname=self._local_hostname,
                                    timeout=self._timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise SessionError(f"cannot connect to SMTP server {where}: {type(exc).__name__}: {exc}") from exc
        try:
            smtp.ehlo()
            if self._security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise SessionError(
                        f"SMTP server {where} does not offer STARTTLS; use security = \"ssl\" if it speaks "
                        "implicit TLS, or \"plain\" only on a trusted network")
                smtp.starttls(context=self._tls_context)
                smtp.ehlo()
            if self._username:
                smtp.login(str(self._username), self._password or "")
        except SessionError:
            smtp.close()
            raise
        except smtplib.SMTPResponseException as exc:
            smtp.close()
            raise SessionError(f"SMTP server {where} refused the session: "
                               f"{_smtp_detail(exc.smtp_code, exc.smtp_error)}; check username and "
                               "password_env") from exc
        except (OSError, smtplib.SMTPException) as exc:
            smtp.close()
            raise SessionError(f"SMTP session with {where} failed: {type(exc).__name__}: {exc}") from exc
        return smtp

    def _session(self) -> smtplib.SMTP:
        if self._smtp is not None:
            try:
                if self._smtp.noop()[0] == 250:
                    return self._smtp
            except (OSError, smtplib.SMTPException):
                pass
            self._drop()
        self._smtp = self._open()
        return self._smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    # -- sending -------------------------------------------------------------------------------------

    def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        results: list[DeliveryResult] = []
        reconnects_left = 1
        session_error: str | None = None  # once the session cannot be opened, do not retry per message
        for message in batch:
            if session_error is not None:
                results.append(DeliveryResult(message.idempotency_key, "transient", detail=session_error))
                continue
            try:
                mail = self.build_message(message)
            except (ValueError, TypeError, IndexError) as exc:
                results.append(DeliveryResult(message.idempotency_key, "permanent",
                                              detail=f"cannot build e-mail: {type(exc).__name__}: {exc}"))
                continue
            while True:
                try:
                    smtp = self._session()
                except SessionError as exc:
                    session_error = str(exc)
                    results.append(DeliveryResult(message.idempotency_key, "transient", detail=session_error))
                    break
                try:
                    results.append(self._transact(smtp, message, mail))
                    break
                except (OSError, smtplib.SMTPServerDisconnected) as exc:
                    self._drop()
                    if reconnects_left:
                        reconnects_left -= 1
                        continue  # one fresh session per batch; the Message-ID makes a re-send detectable
                    results.append(DeliveryResult(
                        message.idempotency_key, "transient",
                        detail=f"SMTP connection lost: {type(exc).__name__}: {exc}"))
                    break
        return results

    def _transact(self, smtp: smtplib.SMTP, message: OutboundMessage, mail: EmailMessage) -> DeliveryResult:
        key = message.idempotency_key
        provider_id = message_id_for(key, self._domain)
        options = []
        payload = mail.as_bytes()
        if not message.address.isascii() or not self._envelope_from.isascii():
            if not smtp.has_extn("smtputf8"):
                return DeliveryResult(key, "permanent", detail="the address is not ASCII and the SMTP server "
                                      "does not offer SMTPUTF8")
            options = ["SMTPUTF8", "BODY=8BITMIME"]
        code, response = smtp.mail(self._envelope_from, options)
        if code != 250:
            self._reset(smtp, code)
            return DeliveryResult(key, _status_for_code(code), detail=_smtp_detail(code, response))
        code, response = smtp.rcpt(message.address)
        if code not in (250, 251):
            self._reset(smtp, code)
            return DeliveryResult(key, _status_for_code(code), detail=_smtp_detail(code, response))
        try:
            code, response = smtp.data(payload)
        except smtplib.SMTPDataError as exc:  # the DATA command itself was refused
            self._reset(smtp, exc.smtp_code)
            return DeliveryResult(key, _status_for_code(exc.smtp_code),
                                  detail=_smtp_detail(exc.smtp_code, exc.smtp_error))
        status = _status_for_code(code)
        log.debug("email %s to %s: %s", key, mask_address(message.address), code)
        return DeliveryResult(key, status, provider_message_id=provider_id if status == "sent" else None,
                              detail=_smtp_detail(code, response))

    def _reset(self, smtp: smtplib.SMTP, code: int) -> None:
        if code == 421 or code < 0:  # the server is closing the session
            self._drop()
            return
        try:
            smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self._drop()


@motorcade.hookimpl
def register_channels(register):
    register(EmailChannel)
