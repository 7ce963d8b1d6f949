"""The WeChat official-account template channel against a local server that checks requests as documented."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse

import pytest

import motorcade_channels_wechat_oa as wechat
from motorcade.activation.channel import ChannelContext, OutboundMessage
from motorcade.activation.testing import ProviderAPI, ProviderHandler, registered_channels
from motorcade.errors import ConfigError

APPID = "wx1234567890abcdef"
SECRET = "app-secret"
TEMPLATE_FIELDS = {"touser", "template_id", "url", "miniprogram", "client_msg_id", "data"}


class FakeWeChat(ProviderAPI):
    def __init__(self):
        super().__init__(FakeWeChatHandler)
        self.current_token: str | None = None
        self.token_calls: list[bool] = []  # force_refresh of each stable_token call
        self.sent: list[dict] = []
        self.seen_client_ids: set[tuple[str, str]] = set()
        self.errcode_for: dict[str, dict] = {}  # openid -> forced answer
        self.revoked_tokens: set[str] = set()  # refused by template/send although stable_token returns them


class FakeWeChatHandler(ProviderHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16
    content_type = "application/json; encoding=utf-8"

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        body = json.loads(self.read_body())
        server: FakeWeChat = self.server
        if url.path == "/cgi-bin/stable_token":
            if set(body) - {"grant_type", "appid", "secret", "force_refresh"} or body.get(
                    "grant_type") != "client_credential" or not isinstance(body.get("force_refresh", False), bool):
                return self.answer({"errcode": 40002, "errmsg": "invalid grant_type"})
            if body.get("appid") != APPID or body.get("secret") != SECRET:
                return self.answer({"errcode": 40125, "errmsg": "invalid appsecret"})
            with server.lock:
                server.token_calls.append(body.get("force_refresh", False))
                if server.current_token is None or body.get("force_refresh"):
                    server.current_token = f"STABLE_TOKEN_{len(server.token_calls)}"
                token = server.current_token
            return self.answer({"access_token": token, "expires_in": 7200})
        if url.path != "/cgi-bin/message/template/send":
            return self.answer({"errcode": 404, "errmsg": "not found"})
        if query.get("access_token") in server.revoked_tokens:
            return self.answer({"errcode": 42001, "errmsg": "access_token expired"})
        if query.get("access_token") != server.current_token:
            return self.answer({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"})
        problems = []
        if set(body) - TEMPLATE_FIELDS:
            problems.append(f"unknown fields {set(body) - TEMPLATE_FIELDS}")
        for field in ("touser", "template_id"):
            if not isinstance(body.get(field), str) or not body[field]:
                problems.append(field)
        data = body.get("data")
        if not isinstance(data, dict) or not data or not all(
                isinstance(v, dict) and set(v) == {"value"} and isinstance(v["value"], str) for v in data.values()):
            problems.append("data must be {key: {value: str}}")
        if "client_msg_id" in body and (not isinstance(body["client_msg_id"], str) or len(body["client_msg_id"]) > 32):
            problems.append("client_msg_id")
        if problems:
            server.problems.extend(problems)
            return self.answer({"errcode": 47001, "errmsg": "data format error: " + ", ".join(problems)})
        forced = server.errcode_for.get(body["touser"])
        if forced:
            return self.answer(forced)
        with server.lock:
            dedupe = (body["touser"], body.get("client_msg_id", ""))
            if dedupe not in server.seen_client_ids:  # WeChat sends one message per openid + client_msg_id
                server.seen_client_ids.add(dedupe)
                server.sent.append(body)
            msgid = 200228332 + len(server.sent)
        self.answer({"errcode": 0, "errmsg": "ok", "msgid": msgid})


@pytest.fixture
def server():
    with FakeWeChat() as fake:
        yield fake


NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def make_channel(server, tmp_path, token_cache=None, **extra):
    settings = {"appid": APPID, "secret": SECRET, "api_base": server.base,
                "templates": {"service_done": "TPL_ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY"}, **extra}
    return wechat.WeChatTemplateChannel(settings, ChannelContext(project_dir=tmp_path, token_cache=token_cache,
                                                                 clock=lambda: NOW))


def msg(key, openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", **metadata):
    return OutboundMessage(idempotency_key=key, person_id=5, address=openid, template="service_done",
                           body="unused: WeChat renders the template", metadata=metadata,
                           params={"first": "您的爱车保养已完成", "keyword1": "粤B12345", "keyword2": "2026-03-02",
                                   "remark": "感谢您的信任"})


def test_template_message_fields_and_capabilities(server, tmp_path):
    channel = make_channel(server, tmp_path)
    assert channel.capabilities.marketing_allowed is False
    [result] = channel.send([msg("trigger:service_done:event:77:person:5:step:1", url="https://dealer.example/r/1")])
    assert server.problems == []
    assert result.status == "sent" and result.provider_message_id == "200228333"
    assert server.sent == [{
        "touser": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "template_id": "TPL_ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
        "client_msg_id": wechat.client_msg_id("trigger:service_done:event:77:person:5:step:1"),
        "data": {"first": {"value": "您的爱车保养已完成"}, "keyword1": {"value": "粤B12345"},
                 "keyword2": {"value": "2026-03-02"}, "remark": {"value": "感谢您的信任"}},
        "url": "https://dealer.example/r/1",
    }]
    assert server.token_calls == [False]


def test_a_resend_of_the_same_key_is_deduplicated_by_client_msg_id(server, tmp_path):
    channel = make_channel(server, tmp_path)
    channel.send([msg("k1")])
    channel.send([msg("k1")])
    channel.send([msg("k2")])
    assert len(server.sent) == 2 and server.token_calls == [False]


def test_token_shared_and_refreshed_after_40001_without_needless_force(server, tmp_path):
    shared = wechat.InProcessTokenCache()
    a = make_channel(server, tmp_path, token_cache=shared)
    b = make_channel(server, tmp_path, token_cache=shared)
    a.send([msg("a")])
    b.send([msg("b")])
    assert server.token_calls == [False]  # two workers, one token
    # Another system renewed the stable token: a normal fetch (force_refresh=false) returns the new one.
    server.current_token = "ROTATED_ELSEWHERE"
    assert a.send([msg("c")])[0].status == "sent"
    assert server.token_calls == [False, False]
    # WeChat now refuses the current token, and a normal fetch still hands out that same token:
    # only then does the channel force a refresh.
    server.revoked_tokens.add("ROTATED_ELSEWHERE")
    assert b.send([msg("d")])[0].status == "sent"
    assert server.token_calls == [False, False, False, True]
    assert shared.get_or_refresh(a.token_key, lambda: pytest.fail("must be cached")) == server.current_token
    assert a.send([msg("e")])[0].status == "sent" and len(server.token_calls) == 4


@pytest.mark.parametrize("answer, status", [
    ({"errcode": 43004, "errmsg": "require subscribe"}, "permanent"),
    ({"errcode": 40003, "errmsg": "invalid openid"}, "permanent"),
    ({"errcode": 45009, "errmsg": "reach max api daily quota limit"}, "transient"),
    ({"errcode": -1, "errmsg": "system error"}, "transient"),
])
def test_errcodes(server, tmp_path, answer, status):
    server.errcode_for = {"oBAD": answer}
    channel = make_channel(server, tmp_path)
    [result] = channel.send([msg("k", openid="oBAD")])
    assert result.status == status and json.loads(result.detail) == answer
    if answer["errcode"] == 45009:
        assert result.retry_after == 14 * 3600 + 300  # until 00:05 Beijing time


def test_bad_secret_and_unreachable_are_transient_and_empty_data_is_permanent(server, tmp_path):
    [refused] = make_channel(server, tmp_path, secret="wrong").send([msg("k")])
    assert refused.status == "transient" and "40125" in refused.detail and "secret_env" in refused.detail

    class Dead:
        base = "http://127.0.0.1:9"
    assert make_channel(Dead, tmp_path).send([msg("k")])[0].status == "transient"
    empty = OutboundMessage(idempotency_key="e", person_id=1, address="o1", template="service_done", body="")
    assert make_channel(server, tmp_path).send([empty])[0].status == "permanent"


EVENT = """<xml>
<ToUserName><![CDATA[gh_7f083739789a]]></ToUserName>
<FromUserName><![CDATA[oia2TjuEGTNoeX76QEjQNrcURxG8]]></FromUserName>
<CreateTime>1395658920</CreateTime>
<MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>
<MsgID>200163836</MsgID>
<Status><![CDATA[{status}]]></Status>
</xml>"""


def test_template_send_job_finish_event_is_parsed_once():
    seen: set[str] = set()
    ok = wechat.parse_template_send_event(EVENT.format(status="success"), seen)
    assert ok.status == "delivered" and ok.msgid == "200163836" and ok.openid == "oia2TjuEGTNoeX76QEjQNrcURxG8"
    assert ok.created_at == dt.datetime(2014, 3, 24, 11, 2, tzinfo=dt.timezone.utc)
    assert wechat.parse_template_send_event(EVENT.format(status="success"), seen) is None  # WeChat's retry
    blocked = wechat.parse_template_send_event(EVENT.format(status="failed:user block"))
    assert blocked.status == "failed" and blocked.reason == "failed:user block"
    other = EVENT.format(status="x").replace("TEMPLATESENDJOBFINISH", "subscribe")
    assert wechat.parse_template_send_event(other) is None


def test_settings_errors(tmp_path, monkeypatch):
    context = ChannelContext(project_dir=tmp_path)
    with pytest.raises(ConfigError, match="appid"):
        wechat.WeChatTemplateChannel({}, context)
    monkeypatch.delenv("MC_TEST_OA", raising=False)
    with pytest.raises(ConfigError, match="MC_TEST_OA"):
        wechat.WeChatTemplateChannel({"appid": "x", "secret_env": "MC_TEST_OA"}, context)


def test_registers_through_the_hook_and_the_entry_point():
    registered, entry_points = registered_channels(wechat, "wechat_oa")
    assert registered == [wechat.WeChatTemplateChannel]
    assert entry_points == {"motorcade_channels_wechat_oa"}
