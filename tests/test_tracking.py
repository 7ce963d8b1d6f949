"""Closing the loop over HTTP (issue 23): a campaign goes out through the Tencent SMS plugin to a local server
that checks SendSms as documented; the short link in the delivered text is followed with an HTTP client through
the collector's server; Tencent's documented status callback is posted to the receipt address; the funnel shows
delivered and clicked. Bots, unknown codes, forged and replayed receipts are refused and counted."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.server
import json
import re
import threading
import zoneinfo

import httpx
import pytest
from hypothesis import given, settings, strategies as st

from motorcade.activation.runner import run_once
from motorcade.activation.settings import ActivationContext
from motorcade.activation.tracking import CODE_LENGTH, bot_rule
from motorcade.feedback.funnel import FunnelSpec, compute_funnel
from motorcade.project import Project

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Mobile/15E148 MicroMessenger/8.0.49(0x18003129) NetType/WIFI Language/zh_CN")
TOKEN = "cb-token-5f1e2d"
# The approved Tencent template the short link is a parameter of ({1}).
TEMPLATE_TEXT = "【东风之星】您的爱车保养到期，点击预约 {1} 回TD退订"


def documented_signature(secret_key: str, date: str, string_to_sign: str) -> str:
    def h(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()
    signing = h(h(h(("TC3" + secret_key).encode("utf-8"), date), "sms"), "tc3_request")
    return hmac.new(signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


class FakeTencent(http.server.ThreadingHTTPServer):
    """SendSms as documented: TC3 signature recomputed, action and version headers, body fields; it keeps
    the text each number would receive (the approved template with the parameters put in)."""

    daemon_threads = True

    def __init__(self, secret_key: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.secret_key = secret_key
        self.delivered: dict[str, tuple[str, str]] = {}  # phone -> (SerialNo, text)
        self.problems: list[str] = []
        self.serial = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        server: FakeTencent = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        timestamp = int(self.headers["X-TC-Timestamp"])
        date = dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d")
        canonical = "\n".join(["POST", "/", "", f"content-type:{self.headers['Content-Type']}\n"
                               f"host:{self.headers['Host']}\nx-tc-action:sendsms\n",
                               "content-type;host;x-tc-action", hashlib.sha256(body).hexdigest()])
        to_sign = "\n".join(["TC3-HMAC-SHA256", str(timestamp), f"{date}/sms/tc3_request",
                             hashlib.sha256(canonical.encode()).hexdigest()])
        signature = re.search(r"Signature=([0-9a-f]+)", self.headers["Authorization"]).group(1)
        if (self.headers["X-TC-Action"] != "SendSms" or self.headers["X-TC-Version"] != "2021-01-11"
                or signature != documented_signature(server.secret_key, date, to_sign)):
            server.problems.append("bad request headers or signature")
        request = json.loads(body)
        statuses = []
        for phone in request["PhoneNumberSet"]:
            server.serial += 1
            serial = f"2433:{server.serial:08d}"
            text = TEMPLATE_TEXT
            for index, value in enumerate(request["TemplateParamSet"], start=1):
                text = text.replace("{%d}" % index, value)
            server.delivered[phone] = (serial, text)
            statuses.append({"SerialNo": serial, "PhoneNumber": phone, "Fee": 1, "SessionContext": "",
                             "Code": "Ok", "Message": "send success", "IsoCode": "CN"})
        answer = json.dumps({"Response": {"SendStatusSet": statuses, "RequestId": "req-1"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


CONFIG = """
[project]
name = "links"
timezone = "Asia/Shanghai"

[activation]
public_url = "https://go.example.cn"
utm_source = "motorcade"

[channels.sms]
secret_id = "AKIDtest"
secret_key = "testSecretKey"
sdk_app_id = "1400006666"
sign_name = "东风之星"
endpoint = "{endpoint}"
marketing = false
receipt_token = "{token}"

[channels.sms.templates]
recall = {{ id = "1110", params = ["link"] }}
"""
RULES = """
segment owners { where profile.is_owner = true }
campaign recall "保养召回" {
  audience owners
  schedule daily at 10:00
  send to all members
  via sms template "recall"
}
"""


@pytest.fixture
def loop(tmp_path, monkeypatch):
    """A project whose campaign `recall` sends an SMS with a tracked link, the fake Tencent, and the collector's
    HTTP server (short links and receipts only: no segment_http source)."""
    from motorcade.plugins import load_plugins
    from motorcade_sources_segment_http.server import BackgroundServer, running_collector

    tencent = FakeTencent("testSecretKey")
    threading.Thread(target=tencent.serve_forever, daemon=True).start()
    (tmp_path / "motorcade.toml").write_text(CONFIG.format(endpoint=f"http://127.0.0.1:{tencent.server_address[1]}",
                                                           token=TOKEN), encoding="utf-8")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.mc").write_text(RULES, encoding="utf-8")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "recall.txt").write_text(
        '您的爱车保养到期，点击预约 {{ track("https://dealer.example/booking?store=S1") }} 回TD退订', encoding="utf-8")
    project = Project(tmp_path, plugin_manager=load_plugins())
    store = project.store
    with store.transaction():
        people = [store.create_person({"name": f"客户{i}", "is_owner": True}) for i in range(2)]
        for person, phone in zip(people, ("+8613811112222", "+8613911113333")):
            store.conn.execute("INSERT INTO identifiers (type, value, person_id) VALUES ('phone', ?, ?)",
                               (phone, person))
    at = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SH)
    store.record_segment_run("owners", people, revision="test", as_of=at, computed_at=at, duration_ms=0, plan=None)
    ctx = ActivationContext.for_project(project, clock=lambda: at, worker_id="w1")
    with running_collector(project, idle_seconds=0.01) as collector:
        with BackgroundServer(collector.app) as server:
            yield project, ctx, tencent, server.url
    tencent.shutdown()
    project.close()


def local(link: str, base: str) -> str:
    """The public short link as the test reaches it (the public address fronts the collector)."""
    return link.replace("https://go.example.cn", base)


def funnel(store, *steps):
    report = compute_funnel(store, FunnelSpec("f", steps), campaign="recall")
    return [s.people for s in report.total.steps]


def test_sms_send_click_and_receipt_reach_the_funnel(loop):
    project, ctx, tencent, base = loop
    store = project.store
    report = run_once(ctx)
    assert not tencent.problems
    assert len(tencent.delivered) == 2
    serial, text = tencent.delivered["+8613811112222"]
    link = re.search(r"https://go\.example\.cn/s/([0-9A-Za-z]+)", text)
    assert link and len(link.group(1)) == CODE_LENGTH
    assert text == f"【东风之星】您的爱车保养到期，点击预约 {link.group(0)} 回TD退订"
    other_link = re.search(r"https://go\.example\.cn/s/\S+", tencent.delivered["+8613911113333"][1]).group(0)
    assert other_link != link.group(0)  # unique per send

    with httpx.Client(follow_redirects=False) as client:
        # a link scanner (an HTTP library) gets the redirect but is recorded as a bot, not a click
        scanned = client.get(local(link.group(0), base))
        assert scanned.status_code == 302
        assert funnel(store, "sent", "clicked") == [2, 0]
        assert store.link_hit_counts("campaign", "recall") == {"click": 0, "open": 0, "bot": 1}
        # a person on a phone
        followed = client.get(local(link.group(0), base), headers={"User-Agent": IPHONE})
        assert followed.status_code == 302
        assert followed.headers["location"] == ("https://dealer.example/booking?store=S1&utm_source=motorcade"
                                                "&utm_medium=sms&utm_campaign=recall&utm_content=recall")
        # Tencent's documented status callback for the first number
        callback = [{"user_receive_time": "2026-11-23 10:00:05", "nationcode": "86", "mobile": "13811112222",
                     "report_status": "SUCCESS", "errmsg": "DELIVRD", "description": "用户短信送达成功",
                     "sid": serial}]
        answer = client.post(f"{base}/r/sms?token={TOKEN}", json=callback)
        assert answer.status_code == 200 and answer.json() == {"result": 0, "errmsg": "OK"}
        # redelivered: stored once
        assert client.post(f"{base}/r/sms?token={TOKEN}", json=callback).status_code == 200

    assert funnel(store, "sent", "delivered", "clicked") == [2, 1, 1]
    delivered = store.query("SELECT properties FROM events WHERE name = 'delivered'")
    assert len(delivered) == 1 and json.loads(delivered[0][0])["campaign"] == "recall"
    clicked = json.loads(store.query("SELECT properties FROM events WHERE name = 'clicked'")[0][0])
    assert clicked["detail"] == "https://dealer.example/booking?store=S1"
    assert report is not None


def test_unknown_and_malformed_codes_are_plain_404s(loop):
    project, ctx, tencent, base = loop
    run_once(ctx)
    with httpx.Client(follow_redirects=False) as client:
        for path in ("/s/AAAAAAAAAAA", "/s/short", "/s/" + "A" * 40, "/s/..%2F..%2Fetc", "/o/AAAAAAAAAAA.gif"):
            answer = client.get(base + path, headers={"User-Agent": IPHONE})
            assert answer.status_code == 404, path
            assert "location" not in answer.headers
        # a link's code is not an open pixel's
        code = re.search(r"/s/(\w+)", next(iter(tencent.delivered.values()))[1]).group(1)
        assert client.get(f"{base}/o/{code}.gif", headers={"User-Agent": IPHONE}).status_code == 404
    assert funnel(project.store, "sent", "clicked", "opened") == [2, 0, 0]


def test_forged_replayed_and_unknown_receipts_are_refused_and_counted(loop, capsys):
    project, ctx, tencent, base = loop
    store = project.store
    run_once(ctx)
    serial = tencent.delivered["+8613811112222"][0]
    good = [{"user_receive_time": "2026-11-23 10:00:05", "nationcode": "86", "mobile": "13811112222",
             "report_status": "SUCCESS", "errmsg": "DELIVRD", "description": "ok", "sid": serial}]
    with httpx.Client() as client:
        assert client.post(f"{base}/r/sms", json=good).status_code == 403  # no token
        assert client.post(f"{base}/r/sms?token=guess", json=good).status_code == 403  # wrong token
        unknown = [{**good[0], "sid": "2433:99999999"}]
        assert client.post(f"{base}/r/sms?token={TOKEN}", json=unknown).status_code == 200  # answered, not recorded
        for hostile in (b"not json", b"{}", b"[1, 2]", b'[{"sid": "x"}]', b"\xff\xfe", json.dumps([{}] * 3).encode()):
            assert client.post(f"{base}/r/sms?token={TOKEN}", content=hostile).status_code == 400, hostile
        assert client.post(f"{base}/r/nosuchchannel", json=good).status_code == 404
        assert client.get(f"{base}/health").status_code == 200  # nothing crashed
    assert funnel(store, "sent", "delivered") == [2, 0]
    from motorcade.cli import main

    assert main(["--project", str(project.directory), "sends", "tracking", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {(r["reason"], r["count"]) for r in shown["receipts_refused"]} == {
        ("signature", 2), ("unknown_message", 1), ("malformed", 6)}
    counts = store.receipt_rejection_counts()
    assert counts[("sms", "signature")] == 2
    assert counts[("sms", "unknown_message")] == 1
    assert counts[("sms", "malformed")] == 6


def test_a_td_reply_records_the_refusal_in_consent(loop):
    project, ctx, tencent, base = loop
    store = project.store
    run_once(ctx)
    reply = {"extend": "", "mobile": "13911113333", "nationcode": "86", "sign": "东风之星", "text": "TD",
             "time": 1795400000}
    with httpx.Client() as client:
        answer = client.post(f"{base}/r/sms?token={TOKEN}", json=reply)
        assert answer.status_code == 200 and answer.json() == {"result": 0, "errmsg": "OK"}
        other = {**reply, "mobile": "13811112222", "text": "好的，谢谢"}
        assert client.post(f"{base}/r/sms?token={TOKEN}", json=other).status_code == 200
    person = store.person_of_identifier("phone", "+8613911113333")
    refusals = store.query("SELECT person_id, channel, granted FROM consents")
    assert [tuple(r) for r in refusals] == [(person, "sms", 0)]


@pytest.mark.parametrize("agent, rule", [
    (None, "no user agent"), ("", "no user agent"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "crawler"),
    ("facebookexternalhit/1.1", "link preview"), ("WhatsApp/2.23.20.0", "link preview"),
    ("Mozilla/5.0 (Windows NT 10.0) ... BingPreview/1.0b", "link preview"),
    ("curl/8.5.0", "HTTP library"), ("python-requests/2.32.3", "HTTP library"),
    ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0 Safari/537.36", "headless browser"),
    (IPHONE, None),
    ("Mozilla/5.0 (Linux; Android 14; V2309A) AppleWebKit/537.36 Chrome/116.0 Mobile Safari/537.36", None),
])
def test_bot_rules(agent, rule):
    assert bot_rule(agent) == rule
    assert bot_rule(IPHONE, "HEAD") == "HEAD request"


def test_check_warns_when_an_sms_needs_several_segments(tmp_path):
    from motorcade.activation.templates import check_template, sms_segments
    from motorcade.activation.tracking import link_length

    assert link_length("https://go.example.cn") == 35
    assert [sms_segments("中" * n) for n in (70, 71, 134, 135)] == [1, 2, 2, 3]
    assert [sms_segments("a" * n) for n in (160, 161, 306, 307)] == [1, 2, 2, 3]
    assert sms_segments("€" * 80) == 1 and sms_segments("€" * 81) == 2  # an extended character counts twice
    fits = "您的爱车保养到期，点击预约 {{ track('https://dealer.example/b') }} 回TD退订"  # 20 + 35 characters
    assert check_template("t", tmp_path / "t.txt", fits, sms_link_length=35) == []
    two = "尊敬的车主，您的爱车保养到期，本店本周六推出免费检测与工时八折，点击预约 {{ track('https://dealer.example/b') }} 回TD退订"
    problems = check_template("t", tmp_path / "t.txt", two, sms_link_length=35)
    assert [(p.severity, p.message.split(":")[0]) for p in problems] == [
        ("warning", "an SMS of at least 78 characters (43 of fixed text, 1 short link(s) of 35)")]
    assert "2 segments" in problems[0].message
    # not an SMS channel: no segment warning
    assert check_template("t", tmp_path / "t.txt", two) == []


def test_check_command_reports_the_segment_warning_and_passes(loop, capsys):
    from motorcade.cli import main

    project, ctx, tencent, base = loop
    (project.directory / "templates" / "recall.txt").write_text(
        "尊敬的车主，您的爱车保养到期，本店本周六推出免费检测与工时八折，点击预约 "
        "{{ track('https://dealer.example/b') }} 回TD退订", encoding="utf-8")
    code = main(["--project", str(project.directory), "check"])
    output = capsys.readouterr().out
    assert code == 0, output
    assert "warning" in output and "2 segments" in output
    assert ": 0 errors, 1 warning" in output


EMAIL_CONFIG = """
[project]
name = "opens"
timezone = "Asia/Shanghai"

[activation]
public_url = "https://go.example.cn"

[channels.email]
host = "127.0.0.1"
port = {port}
security = "plain"
from = "service@dealer.example"
content_type = "html"
"""
EMAIL_RULES = """
segment owners { where profile.is_owner = true }
campaign newsletter "十一月通讯" {
  audience owners
  schedule daily at 10:00
  send to all members
  via email template "newsletter"
}
"""
MAIL_APP = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"


def test_email_open_pixel_and_link_through_a_real_smtp_server(tmp_path):
    import email
    import email.policy
    import socket

    from aiosmtpd.controller import Controller

    from motorcade.plugins import load_plugins
    from motorcade_sources_segment_http.server import BackgroundServer, running_collector

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))
            return "250 2.0.0 Ok"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        (tmp_path / "motorcade.toml").write_text(EMAIL_CONFIG.format(port=port), encoding="utf-8")
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "main.mc").write_text(EMAIL_RULES, encoding="utf-8")
        (tmp_path / "templates").mkdir()
        (tmp_path / "templates" / "newsletter.html").write_text(
            "Subject: 十一月保养优惠\n\n<p>{{ person.name }}您好，<a href=\"{{ track('https://dealer.example/offer') }}\">"
            "查看优惠</a></p>{{ open_pixel() }}", encoding="utf-8")
        project = Project(tmp_path, plugin_manager=load_plugins())
        store = project.store
        with store.transaction():
            people = [store.create_person({"name": f"客户{i}", "is_owner": True}) for i in range(3)]
            for person in people:
                store.conn.execute("INSERT INTO identifiers (type, value, person_id) VALUES ('email', ?, ?)",
                                   (f"c{person}@example.com", person))
        at = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SH)
        store.record_segment_run("owners", people, revision="t", as_of=at, computed_at=at, duration_ms=0, plan=None)
        run_once(ActivationContext.for_project(project, clock=lambda: at, worker_id="w1"))
        assert len(inbox.messages) == 3
        html = inbox.messages[0].get_body(("html",)).get_content()
        pixel = re.search(r'<img src="https://go\.example\.cn(/o/[0-9A-Za-z]{11}\.gif)" width="1" height="1"', html)
        link = re.search(r'href="https://go\.example\.cn(/s/[0-9A-Za-z]{11})"', html)
        assert pixel and link, html
        second = re.search(r'(/o/[0-9A-Za-z]{11}\.gif)', inbox.messages[1].get_body(("html",)).get_content()).group(1)
        with running_collector(project, idle_seconds=0.01) as collector, BackgroundServer(collector.app) as server:
            minutes = iter(range(1, 100))
            collector.tracking.clock = lambda: at + dt.timedelta(minutes=next(minutes))  # each hit a minute later
            with httpx.Client(base_url=server.url, follow_redirects=False) as client:
                opened = client.get(pixel.group(1), headers={"User-Agent": MAIL_APP})
                assert opened.status_code == 200 and opened.headers["content-type"] == "image/gif"
                assert opened.content.startswith(b"GIF89a")
                assert client.get(pixel.group(1), headers={"User-Agent": MAIL_APP}).status_code == 200  # opened twice
                assert client.get(second, headers={"User-Agent": "Barracuda Sentinel (EE)"}).status_code == 200  # a scanner
                assert client.get(link.group(1), headers={"User-Agent": MAIL_APP}).status_code == 302
        report = compute_funnel(store, FunnelSpec("f", ("sent", "opened", "clicked")), campaign="newsletter")
        assert [s.people for s in report.total.steps] == [3, 1, 1]
        assert store.link_hit_counts("campaign", "newsletter") == {"click": 1, "open": 2, "bot": 1}
        project.close()
    finally:
        smtp.stop()


def test_the_new_channel_plugins_are_listed(capsys):
    from motorcade.cli import main

    assert main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)["plugins"]}
    for name, distribution in (("jpush", "motorcade-channel-jpush"), ("fcm", "motorcade-channel-fcm"),
                               ("aliyun_sms", "motorcade-channel-aliyun-sms"),
                               ("wechat_mp", "motorcade-channel-wechat-mp")):
        assert (listed[name]["kinds"], listed[name]["distribution"], listed[name]["provides"]) == (
            ["channel"], distribution, [name])


def test_track_without_a_public_url_is_a_check_error_and_the_rule_is_not_planned(loop, capsys):
    from motorcade.cli import main

    project, ctx, tencent, base = loop
    toml = project.directory / "motorcade.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('public_url = "https://go.example.cn"\n', ""),
                    encoding="utf-8")
    assert main(["--project", str(project.directory), "check"]) != 0
    output = capsys.readouterr().out
    assert "calls track() but [activation] public_url is not set" in output
    fresh = Project(project.directory, plugin_manager=project.plugins)
    fresh.__dict__["store"] = project.store
    at = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SH)
    report = run_once(ActivationContext.for_project(fresh, clock=lambda: at, worker_id="w2"))
    assert project.store.list_sends(limit=10) == [] and not tencent.delivered
    assert report is not None


@settings(max_examples=200, deadline=None)
@given(code=st.text(max_size=40), target_query=st.dictionaries(
    st.text("abcdefghij_", min_size=1, max_size=8), st.text(max_size=10), max_size=4))
def test_codes_utm_and_unknown_codes(tmp_path_factory, code, target_query):
    import urllib.parse

    from motorcade.activation.tracking import CODE_PATTERN, follow, new_code, with_utm
    from motorcade.store.sqlite import SQLiteStore

    assert CODE_PATTERN.fullmatch(new_code())
    target = "https://dealer.example/b?" + urllib.parse.urlencode(target_query)
    tagged = urllib.parse.parse_qs(urllib.parse.urlsplit(with_utm(target, source="s", medium="sms", campaign="c")).query,
                                   keep_blank_values=True)
    for name, value in target_query.items():  # the target's own parameters are kept, never overwritten
        assert tagged[name] == [value]
    for name, value in (("utm_source", "s"), ("utm_medium", "sms"), ("utm_campaign", "c")):
        assert tagged[name] == [target_query.get(name, value)]
    store = getattr(test_codes_utm_and_unknown_codes, "store", None)
    if store is None:
        store = test_codes_utm_and_unknown_codes.store = SQLiteStore(tmp_path_factory.mktemp("codes") / "m.db")
    at = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)
    hit = follow(store, code, kind="link", at=at, user_agent=IPHONE)
    assert (hit.status, hit.location) == (404, None)  # no link is stored: every code is unknown
