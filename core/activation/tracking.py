"""Tracked short links and e-mail open pixels: made while a send is rendered, followed over HTTP.

A template writes ``{{ track("https://dealer.example/booking") }}``: the planner gives the link a random
code (11 characters of [0-9A-Za-z], 65 bits: not guessable) and the message carries
``<[activation] public_url>/s/<code>``, e.g. ``https://go.example.cn/s/Ab3x9QzK2mP`` (35 characters). The code
is stored with the send's idempotency key when the send is planned. ``GET /s/<code>`` (the collector's HTTP
server) records a ``clicked`` feedback event and answers 302 to the target (with UTM parameters when
``[activation] utm_source`` is set); an unknown code gets a plain 404, never a redirect.

``{{ open_pixel() }}`` in an HTML e-mail writes a 1x1 image ``<public_url>/o/<code>.gif``; fetching it
records ``opened``. Opens are approximate: image proxies (Gmail, Apple Mail Privacy Protection) fetch
every image whether the mail is read or not, and clients that block images never fetch it.

Bots and link scanners (mail security gateways, chat link previews, HTTP libraries) are recognised by
the rules in :data:`BOT_RULES` (documented in docs/activation.md#tracked-links); their hits are kept as bot hits,
not clicks or opens.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import string
import urllib.parse
from typing import Any

import attrs

from motorcade.errors import MotorcadeError

from .feedback import record_receipt

CODE_ALPHABET = string.digits + string.ascii_letters
CODE_LENGTH = 11  # 62**11 = 2**65.5 codes
CODE_PATTERN = re.compile(rf"[0-9A-Za-z]{{{CODE_LENGTH}}}")
LINK_PATH = "/s/"
OPEN_PATH = "/o/"

# (rule name, pattern on the User-Agent header). A hit is a bot's when its User-Agent is empty, matches one
# of these, or the request is a HEAD (link checkers probe with HEAD).
BOT_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(pattern, re.IGNORECASE)) for name, pattern in (
    ("crawler", r"bot\b|bot/|crawler|spider|slurp|archiver"),
    ("link preview", r"facebookexternalhit|whatsapp|telegrambot|slackbot|twitterbot|discordbot|skypeuripreview|"
                     r"linkedinbot|bingpreview|embedly|vkshare|preview"),
    ("mail security scanner", r"barracuda|proofpoint|mimecast|safelinks|ms-office|microsoft office|"
                              r"trendmicro|symantec|forcepoint|sophos|urldefense"),
    ("HTTP library", r"^(curl|wget|python-requests|python-httpx|python-urllib|aiohttp|go-http-client|"
                     r"java/|apache-httpclient|libwww-perl|okhttp)"),
    ("headless browser", r"headlesschrome|phantomjs|puppeteer|playwright"),
))


class TrackingError(MotorcadeError):
    """A template asks for a tracked link but the project cannot make one."""


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def link_length(public_url: str) -> int:
    """Characters of a short link on ``public_url`` (what a template's ``track(...)`` adds to a message)."""
    return len(public_url.rstrip("/")) + len(LINK_PATH) + CODE_LENGTH


def bot_rule(user_agent: str | None, method: str = "GET") -> str | None:
    """The rule that takes this hit for a bot or a link scanner, or None (a person)."""
    if method.upper() == "HEAD":
        return "HEAD request"
    agent = (user_agent or "").strip()
    if not agent:
        return "no user agent"
    for name, pattern in BOT_RULES:
        if pattern.search(agent):
            return name
    return None


@attrs.define
class LinkMaker:
    """The ``track()`` and ``open_pixel()`` of one rendering of one step: the codes it handed out."""

    public_url: str
    links: list[dict[str, Any]] = attrs.field(factory=list)  # {"code", "kind", "target"}

    def _base(self) -> str:
        if not self.public_url:
            raise TrackingError("track() needs the project's public address: [activation] public_url is not set",
                                hint='add public_url = "https://go.example.cn" under [activation] '
                                     '(where `motorcade collect` is reachable)')
        return self.public_url.rstrip("/")

    def track(self, url: Any) -> str:
        target = str(url)
        parts = urllib.parse.urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TrackingError(f"track({target!r}): only http(s) addresses can be tracked")
        code = new_code()
        self.links.append({"code": code, "kind": "link", "target": target})
        return f"{self._base()}{LINK_PATH}{code}"

    def open_pixel(self) -> Any:
        from markupsafe import Markup

        code = new_code()
        self.links.append({"code": code, "kind": "open", "target": None})
        return Markup(f'<img src="{self._base()}{OPEN_PATH}{code}.gif" width="1" height="1" alt="" '
                      'style="display:none">')

    def params(self) -> dict[str, str]:
        """Template parameters for providers that send a pre-approved template (Tencent SMS): ``link``
        (the first tracked link), ``link_code`` (its code), ``link2``, ``link2_code``, ..."""
        out: dict[str, str] = {}
        for number, link in enumerate((x for x in self.links if x["kind"] == "link"), start=1):
            suffix = "" if number == 1 else str(number)
            out[f"link{suffix}"] = f"{self._base()}{LINK_PATH}{link['code']}"
            out[f"link{suffix}_code"] = link["code"]
        return out


def store_links(store, sends: list[dict[str, Any]], inserted: set[str], *, at: dt.datetime) -> int:
    """Keep the codes the sends' rendered steps carry, for the sends just inserted (a send planned
    again inserts nothing, and its codes were never shown to anybody)."""
    rows = []
    for send in sends:
        if send["idempotency_key"] not in inserted:
            continue
        for index, step in enumerate(send["payload"].get("steps") or []):
            for link in step.get("links") or []:
                rows.append((link["code"], send["idempotency_key"], index, link["kind"], link["target"]))
    return store.add_links(rows, at=at) if rows else 0


def with_utm(target: str, *, source: str, medium: str, campaign: str, content: str | None = None) -> str:
    """``target`` with utm_source/medium/campaign(/content) added; parameters it already has are kept."""
    parts = urllib.parse.urlsplit(target)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    present = {name for name, _ in query}
    for name, value in (("utm_source", source), ("utm_medium", medium), ("utm_campaign", campaign),
                        ("utm_content", content)):
        if value and name not in present:
            query.append((name, value))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


@attrs.frozen
class Hit:
    """What a short link or pixel request gets: ``status`` 302 (``location``), 200 (the pixel) or 404."""

    status: int
    location: str | None = None
    recorded: str | None = None  # "clicked", "opened", "bot" or None


def follow(store, code: str, *, kind: str, at: dt.datetime, user_agent: str | None, method: str = "GET",
           utm_source: str | None = None) -> Hit:
    """A request for short link (``kind="link"``) or open pixel (``kind="open"``) ``code``.

    Unknown codes (and a code of the other kind) are 404. A person's hit records ``clicked``/``opened``
    for the send (once per send: the feedback event's dedup key) and a hit row; a bot's records only the
    hit row, with the rule that recognised it.
    """
    if not CODE_PATTERN.fullmatch(code or ""):
        return Hit(404)
    link = store.link(code)
    if link is None or link["kind"] != kind:
        return Hit(404)
    bot = bot_rule(user_agent, method)
    store.add_link_hit(code, at=at, user_agent=user_agent, bot=bot)
    outcome = "clicked" if kind == "link" else "opened"
    if bot is None:
        record_receipt(store, link["idempotency_key"], outcome, at=at,
                       detail=link["target"] if kind == "link" else None)
    if kind == "open":
        return Hit(200, recorded=bot and "bot" or outcome)
    target = link["target"]
    if utm_source:
        send = store.get_send(link["idempotency_key"]) or {}
        step = (send.get("payload") or {}).get("steps", [{}])
        channel = step[link["step"]]["channel"] if link["step"] < len(step) else send.get("channel", "")
        target = with_utm(target, source=utm_source, medium=channel, campaign=send.get("origin", ""),
                          content=send.get("template"))
    return Hit(302, location=target, recorded=bot and "bot" or outcome)


# A transparent 1x1 GIF (the open pixel's answer).
PIXEL_GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
