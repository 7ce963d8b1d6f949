"""The WeCom channel against a local server that checks gettoken and add_msg_template as documented."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse

import pytest

import motorcade_channels_wecom as wecom
from motorcade.activation.channel import ChannelContext, OutboundMessage
from motorcade.activation.testing import ProviderAPI, ProviderHandler, registered_channels
from motorcade.errors import ConfigError

CORPID = "ww0123456789abcdef"
SECRET = "customer-contact-secret"
ALLOWED_FIELDS = {"chat_type", "external_userid", "chat_id_list", "tag_filter", "sender", "allow_select",
                  "text", "attachments"}


class FakeWeCom(ProviderAPI):
    def __init__(self):
        super().__init__(FakeWeComHandler)
        self.token_fetches = 0
        self.valid_tokens: set[str] = set()
        self.expired_tokens: set[str] = set()
        self.templates: list[dict] = []
        self.forced: dict | None = None

    def expire_all(self):
        with self.lock:
            self.expired_tokens |= self.valid_tokens
            self.valid_tokens = set()


class FakeWeComHandler(ProviderHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path != "/cgi-bin/gettoken":
            return self.answer({"errcode": 404, "errmsg": "not found"})
        if query.get("corpid") != CORPID:
            return self.answer({"errcode": 40013, "errmsg": "invalid corpid"})
        if query.get("corpsecret") != SECRET:
            return self.answer({"errcode": 40001, "errmsg": "invalid credential"})
        with self.server.lock:
            self.server.token_fetches += 1
            token = f"ACCESS_TOKEN_{self.server.token_fetches}"
            self.server.valid_tokens.add(token)
        self.answer({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        body = json.loads(self.read_body())
        if url.path != "/cgi-bin/externalcontact/add_msg_template":
            return self.answer({"errcode": 404, "errmsg": "not found"})
        token = query.get("access_token")
        if token in self.server.expired_tokens:
            return self.answer({"errcode": 42001, "errmsg": "access_token expired"})
        if token not in self.server.valid_tokens:
            return self.answer({"errcode": 40014, "errmsg": "invalid access_token"})
        problems = []
        if set(body) - ALLOWED_FIELDS:
            problems.append(f"unknown fields {set(body) - ALLOWED_FIELDS}")
        if body.get("chat_type") != "single":
            problems.append("chat_type")
        ids = body.get("external_userid")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 10000 or not all(isinstance(i, str) for i in ids):
            problems.append("external_userid")
        elif len(set(ids)) != len(ids):
            problems.append("duplicate external_userid")
        if not isinstance(body.get("sender"), str) or not body["sender"]:
            problems.append("sender")
        if not isinstance(body.get("text"), dict) or not isinstance(body["text"].get("content"), str):
            problems.append("text.content")
        if problems:
            self.server.problems.extend(problems)
            return self.answer({"errcode": 40058, "errmsg": "invalid parameter: " + ", ".join(problems)})
        if self.server.forced:
            return self.answer(self.server.forced)
        with self.server.lock:
            self.server.templates.append(body)
            msgid = f"msgGCAAAXtWyuj{len(self.server.templates)}"
        self.answer({"errcode": 0, "errmsg": "ok", "fail_list": [i for i in ids if i.startswith("wmbad")],
                     "msgid": msgid})


@pytest.fixture
def server():
    with FakeWeCom() as fake:
        yield fake


class Clock:
    def __init__(self):
        self.now = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.timezone.utc)

    def __call__(self):
        return self.now


def make_channel(server, tmp_path, token_cache=None, clock=None, **extra):
    settings = {"corpid": CORPID, "corpsecret": SECRET, "api_base": server.base, "agentid": "1000002", **extra}
    context = ChannelContext(project_dir=tmp_path, token_cache=token_cache, clock=clock or Clock())
    return wecom.WeComChannel(settings, context)


def msg(key, external_userid, sender="advisor_li", body="李先生您好，您的爱车保养预约已确认。"):
    return OutboundMessage(idempotency_key=key, person_id=3, address=external_userid, template="t", body=body,
                           metadata={"wecom_sender": sender} if sender else {})


def test_messages_from_one_member_with_one_text_share_one_task(server, tmp_path):
    channel = make_channel(server, tmp_path)
    batch = [msg("k1", "wmAAA1"), msg("k2", "wmAAA2"), msg("k3", "wmAAA3", sender="advisor_wang"),
             msg("k4", "wmAAA4", body="另一条")]
    results = {r.idempotency_key: r for r in channel.send(batch)}
    assert server.problems == []
    assert {r.status for r in results.values()} == {"sent"}
    assert server.token_fetches == 1
    first = server.templates[0]
    assert first == {"chat_type": "single", "external_userid": ["wmAAA1", "wmAAA2"], "sender": "advisor_li",
                     "allow_select": False, "text": {"content": "李先生您好，您的爱车保养预约已确认。"}}
    assert len(server.templates) == 3
    assert results["k1"].provider_message_id == results["k2"].provider_message_id == "msgGCAAAXtWyuj1"


def test_token_is_cached_and_shared_between_workers(server, tmp_path):
    shared = wecom.InProcessTokenCache()
    worker_a = make_channel(server, tmp_path, token_cache=shared)
    worker_b = make_channel(server, tmp_path, token_cache=shared)
    assert worker_a.send([msg("a", "wmA")])[0].status == "sent"
    assert worker_b.send([msg("b", "wmB")])[0].status == "sent"
    assert worker_a.send([msg("c", "wmC")])[0].status == "sent"
    assert server.token_fetches == 1


@pytest.mark.parametrize("expire", ["expired", "revoked"])
def test_token_is_refreshed_on_40014_and_42001(server, tmp_path, expire):
    shared = wecom.InProcessTokenCache()
    channel = make_channel(server, tmp_path, token_cache=shared)
    channel.send([msg("a", "wmA")])
    if expire == "expired":
        server.expire_all()  # -> 42001
    else:
        server.valid_tokens.clear()  # -> 40014
    [result] = channel.send([msg("b", "wmB")])
    assert result.status == "sent"
    assert server.token_fetches == 2
    assert shared.get_or_refresh(channel.token_key, lambda: pytest.fail("must be cached")) == "ACCESS_TOKEN_2"


def test_refresh_without_an_invalidate_method_still_recovers(server, tmp_path):
    class MinimalCache:  # only the TokenCache protocol method
        def __init__(self):
            self.token = None

        def get_or_refresh(self, key, fetch):
            if self.token is None:
                self.token = fetch()[0]
            return self.token

    channel = make_channel(server, tmp_path, token_cache=MinimalCache())
    channel.send([msg("a", "wmA")])
    server.expire_all()
    assert channel.send([msg("b", "wmB")])[0].status == "sent"


def test_invalidate_does_not_drop_a_token_another_worker_renewed():
    cache = wecom.InProcessTokenCache()
    cache.get_or_refresh("k", lambda: ("new", 7200))
    cache.invalidate("k", "old")
    assert cache.get_or_refresh("k", lambda: ("newer", 7200)) == "new"


def test_fail_list_is_permanent_for_those_customers(server, tmp_path):
    channel = make_channel(server, tmp_path)
    results = {r.idempotency_key: r for r in channel.send([msg("ok", "wmGOOD"), msg("bad", "wmbad1")])}
    assert results["ok"].status == "sent"
    assert results["bad"].status == "permanent" and '"fail_list": ["wmbad1"]' in results["bad"].detail


def test_thirty_per_minute_per_member(server, tmp_path):
    clock = Clock()
    channel = make_channel(server, tmp_path, clock=clock)
    results = channel.send([msg(f"k{i}", f"wm{i}") for i in range(32)] + [msg("other", "wmX", sender="advisor_wang")])
    by_key = {r.idempotency_key: r for r in results}
    assert [by_key[f"k{i}"].status for i in range(32)] == ["sent"] * 30 + ["transient"] * 2
    assert by_key["k31"].retry_after == 60
    assert by_key["other"].status == "sent"
    assert sum(len(t["external_userid"]) for t in server.templates) == 31
    clock.now += dt.timedelta(seconds=30)
    assert channel.send([msg("later", "wmL")])[0].status == "transient"
    clock.now += dt.timedelta(seconds=31)
    assert channel.send([msg("later", "wmL")])[0].status == "sent"


def test_failed_requests_do_not_use_the_member_budget(server, tmp_path):
    server.forced = {"errcode": -1, "errmsg": "system busy"}
    channel = make_channel(server, tmp_path, member_limit_per_minute=2)
    assert [r.status for r in channel.send([msg("a", "wmA"), msg("b", "wmB")])] == ["transient", "transient"]
    server.forced = None
    assert [r.status for r in channel.send([msg("a", "wmA"), msg("b", "wmB")])] == ["sent", "sent"]


def test_errcodes_and_failures_are_classified(server, tmp_path):
    server.forced = {"errcode": 41048, "errmsg": "invalid external userid"}
    channel = make_channel(server, tmp_path)
    [result] = channel.send([msg("a", "wmA")])
    assert result.status == "permanent" and json.loads(result.detail)["errcode"] == 41048
    server.forced = None
    wrong = make_channel(server, tmp_path, corpsecret="wrong")
    [refused] = wrong.send([msg("b", "wmB")])
    assert refused.status == "transient" and "40001" in refused.detail and "corpsecret_env" in refused.detail
    nobody = make_channel(server, tmp_path)
    [no_sender] = nobody.send([msg("c", "wmC", sender=None)])
    assert no_sender.status == "permanent" and "wecom_sender" in no_sender.detail
    fallback = make_channel(server, tmp_path, default_sender="advisor_zhao")
    assert fallback.send([msg("d", "wmD", sender=None)])[0].status == "sent"
    assert server.templates[-1]["sender"] == "advisor_zhao"


def test_unreachable_api_is_transient(tmp_path):
    class Dead:
        base = "http://127.0.0.1:9"
    [result] = make_channel(Dead, tmp_path).send([msg("a", "wmA")])
    assert result.status == "transient"


def test_settings_errors(tmp_path, monkeypatch):
    context = ChannelContext(project_dir=tmp_path)
    with pytest.raises(ConfigError, match="corpid"):
        wecom.WeComChannel({}, context)
    monkeypatch.delenv("MC_TEST_WECOM", raising=False)
    with pytest.raises(ConfigError, match="MC_TEST_WECOM"):
        wecom.WeComChannel({"corpid": "x", "corpsecret_env": "MC_TEST_WECOM"}, context)


def test_registers_through_the_hook_and_the_entry_point():
    registered, entry_points = registered_channels(wecom, "wecom")
    assert registered == [wecom.WeComChannel]
    assert entry_points == {"motorcade_channels_wecom"}
