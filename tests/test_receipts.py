"""Receipts of the webhook (our own HMAC) and WeChat official-account (signature, safe-mode AES) channels:
genuine ones recorded once; bad signatures, replays, unknown message ids and hostile bodies refused and
counted, never a crash (hypothesis)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from motorcade.activation import wechat_crypto
from motorcade.activation.channel import ChannelContext
from motorcade.activation.receipts import ReceiptRequest, handle_receipt
from motorcade.store.sqlite import SQLiteStore

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.timezone.utc)
OA_TOKEN = "oaServerToken"
AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")  # 43 characters, as WeChat shows it
APPID = "wx1234567890abcdef"
WEBHOOK_SECRET = "whsec_test"


@pytest.fixture
def store(tmp_path):
    store = SQLiteStore(tmp_path / "m.db")
    with store.transaction():
        person = store.create_person({"name": "客户"})
        store.conn.execute("INSERT INTO identifiers (type, value, person_id) VALUES ('wechat_openid', 'oOPENID1', ?)",
                           (person,))
        for key, channel, message_id in (("campaign:c:s:p1:s0", "webhook", None),
                                         ("campaign:c:s:p2:s0", "wechat_oa", "200163836")):
            store.enqueue_sends([{
                "idempotency_key": key, "origin_kind": "campaign", "origin": "c", "run_id": "r1",
                "person_id": person, "step": 0, "channel": channel, "template": "t", "revision": "rev",
                "status": "sent", "payload": {"steps": [{"channel": channel}], "chosen": 0, "arm": "treatment"}}],
                at=NOW)
            if message_id:
                store.update_send(key, now=NOW, provider_message_id=message_id)
    yield store
    store.close()


def webhook_channel():
    from motorcade_channels_webhook import WebhookChannel

    return WebhookChannel({"url": "http://127.0.0.1:9/", "secret": WEBHOOK_SECRET},
                          ChannelContext(project_dir=".", clock=lambda: NOW))


def oa_channel(**extra):
    from motorcade_channels_wechat_oa import WeChatTemplateChannel

    return WeChatTemplateChannel({"appid": APPID, "secret": "s", "callback_token": OA_TOKEN,
                                  "encoding_aes_key": AES_KEY, **extra},
                                 ChannelContext(project_dir=".", clock=lambda: NOW))


def events(store, name):
    return [json.loads(r[0]) for r in store.query("SELECT properties FROM events WHERE name = ?", (name,))]


def signed_webhook(body: dict, *, at: dt.datetime = NOW, secret: str = WEBHOOK_SECRET) -> ReceiptRequest:
    from motorcade_channels_webhook import sign

    raw = json.dumps(body).encode()
    return ReceiptRequest("POST", {}, {"x-motorcade-signature": sign(secret.encode(), int(at.timestamp()), raw)}, raw)


def test_webhook_receipts(store):
    channel = webhook_channel()
    body = {"receipts": [{"idempotency_key": "campaign:c:s:p1:s0", "status": "delivered", "id": "r1"}]}
    request = signed_webhook(body)
    result = handle_receipt(store, "webhook", channel, request, now=NOW)
    assert (result.status, result.recorded) == (200, 1)
    assert [e["idempotency_key"] for e in events(store, "delivered")] == ["campaign:c:s:p1:s0"]
    # the same signed request again: a replay
    assert handle_receipt(store, "webhook", channel, request, now=NOW).rejected == "replayed"
    # signed ten minutes ago
    old = signed_webhook({"receipts": [{"idempotency_key": "campaign:c:s:p1:s0", "status": "clicked"}]},
                         at=NOW - dt.timedelta(minutes=10))
    assert handle_receipt(store, "webhook", channel, old, now=NOW).rejected == "replayed"
    # another secret, a tampered body
    assert handle_receipt(store, "webhook", channel, signed_webhook(body, secret="guess"), now=NOW).rejected == "signature"
    tampered = ReceiptRequest("POST", {}, dict(request.headers), request.body.replace(b"delivered", b"failed"))
    assert handle_receipt(store, "webhook", channel, tampered, now=NOW).rejected == "signature"
    # a key that is no send of ours; a send of another channel
    for key in ("campaign:nope:s:p9:s0", "campaign:c:s:p2:s0"):
        unknown = signed_webhook({"receipts": [{"idempotency_key": key, "status": "delivered"}]},
                                 at=NOW - dt.timedelta(seconds=len(key)))
        assert handle_receipt(store, "webhook", channel, unknown, now=NOW).unknown == 1
    unsubscribe = signed_webhook({"receipts": [{"idempotency_key": "campaign:c:s:p1:s0", "status": "unsubscribed",
                                                "scope": "all"}]}, at=NOW - dt.timedelta(seconds=1))
    assert handle_receipt(store, "webhook", channel, unsubscribe, now=NOW).recorded == 1
    assert [tuple(r) for r in store.query("SELECT channel, granted FROM consents")] == [("*", 0)]
    assert store.receipt_rejection_counts() == {("webhook", "replayed"): 2, ("webhook", "signature"): 2,
                                                ("webhook", "unknown_message"): 2}
    assert len(events(store, "delivered")) == 1


def oa_query(*, encrypted: str | None = None, timestamp: int | None = None, nonce: str = "n1",
             token: str = OA_TOKEN) -> dict:
    stamp = str(timestamp if timestamp is not None else int(NOW.timestamp()))
    query = {"timestamp": stamp, "nonce": nonce, "signature": wechat_crypto.signature(token, stamp, nonce),
             "openid": "oOPENID1"}
    if encrypted is not None:
        query.update(encrypt_type="aes", msg_signature=wechat_crypto.signature(token, stamp, nonce, encrypted))
    return query


JOB_FINISHED = ("<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName><FromUserName><![CDATA[oOPENID1]]>"
                "</FromUserName><CreateTime>1795399200</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID>"
                "<Status><![CDATA[{status}]]></Status></xml>")
UNFOLLOW = ("<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName><FromUserName><![CDATA[oOPENID1]]>"
            "</FromUserName><CreateTime>1795399300</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[unsubscribe]]></Event></xml>")


def test_wechat_oa_url_check_plain_and_safe_mode(store):
    channel = oa_channel()
    check = handle_receipt(store, "wechat_oa", channel,
                           ReceiptRequest("GET", {**oa_query(), "echostr": "5837397520665"}, {}, b""), now=NOW)
    assert (check.status, check.body) == (200, b"5837397520665")
    bad = ReceiptRequest("GET", {**oa_query(token="guess"), "echostr": "x"}, {}, b"")
    assert handle_receipt(store, "wechat_oa", channel, bad, now=NOW).rejected == "signature"
    # plain mode, signed
    plain = JOB_FINISHED.format(status="success").encode()
    result = handle_receipt(store, "wechat_oa", channel, ReceiptRequest("POST", oa_query(), {}, plain), now=NOW)
    assert (result.status, result.body, result.recorded) == (200, b"success", 1)
    assert [e["idempotency_key"] for e in events(store, "delivered")] == ["campaign:c:s:p2:s0"]
    # WeChat retries an event it heard no answer for: recorded once
    again = handle_receipt(store, "wechat_oa", channel, ReceiptRequest("POST", oa_query(nonce="n2"), {}, plain), now=NOW)
    assert (again.status, again.duplicates) == (200, 1)
    # safe mode: encrypted for this AppID and signed over the ciphertext
    encrypted = wechat_crypto.encrypt(AES_KEY, UNFOLLOW.encode(), APPID)
    body = f"<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    safe = handle_receipt(store, "wechat_oa", channel,
                          ReceiptRequest("POST", oa_query(encrypted=encrypted), {}, body.encode()), now=NOW)
    assert (safe.status, safe.recorded) == (200, 1)
    assert [tuple(r) for r in store.query("SELECT channel, granted FROM consents")] == [("wechat_oa", 0)]
    # encrypted for another account, or a signature over other ciphertext: refused
    other = wechat_crypto.encrypt(AES_KEY, UNFOLLOW.encode(), "wx_other_account")
    forged = f"<xml><Encrypt><![CDATA[{other}]]></Encrypt></xml>".encode()
    assert handle_receipt(store, "wechat_oa", channel, ReceiptRequest("POST", oa_query(encrypted=other), {}, forged),
                          now=NOW).rejected == "signature"
    assert handle_receipt(store, "wechat_oa", channel, ReceiptRequest("POST", oa_query(encrypted=encrypted), {}, forged),
                          now=NOW).rejected == "signature"
    # an old push
    stale = oa_query(timestamp=int(NOW.timestamp()) - 3600)
    assert handle_receipt(store, "wechat_oa", channel, ReceiptRequest("POST", stale, {}, plain),
                          now=NOW).rejected == "replayed"
    # a msgid we never sent
    unknown = JOB_FINISHED.format(status="success").replace("200163836", "999").encode()
    assert handle_receipt(store, "wechat_oa", channel, ReceiptRequest("POST", oa_query(), {}, unknown), now=NOW).unknown == 1
    assert store.receipt_rejection_counts() == {("wechat_oa", "signature"): 3, ("wechat_oa", "replayed"): 1,
                                                ("wechat_oa", "unknown_message"): 1}


def test_wechat_oa_user_block_and_td_reply_are_refusals(store):
    channel = oa_channel()
    blocked = JOB_FINISHED.format(status="failed:user block").encode()
    assert handle_receipt(store, "wechat_oa", channel, ReceiptRequest("POST", oa_query(), {}, blocked), now=NOW).recorded == 1
    assert [e["detail"] for e in events(store, "unsubscribed")] == ["failed:user block"]
    store.conn.execute("DELETE FROM consents")
    reply = ("<xml><ToUserName>gh</ToUserName><FromUserName>oOPENID1</FromUserName><CreateTime>1795399400</CreateTime>"
             "<MsgType>text</MsgType><Content>退订</Content><MsgId>23637352235060880</MsgId></xml>").encode()
    assert handle_receipt(store, "wechat_oa", channel, ReceiptRequest("POST", oa_query(), {}, reply), now=NOW).recorded == 1
    assert [tuple(r) for r in store.query("SELECT channel, granted FROM consents")] == [("wechat_oa", 0)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(channel_name=st.sampled_from(["webhook", "wechat_oa", "wecom"]), method=st.sampled_from(["GET", "POST"]),
       query=st.dictionaries(st.sampled_from(["timestamp", "nonce", "signature", "msg_signature", "encrypt_type",
                                              "echostr"]), st.text(max_size=30)),
       headers=st.dictionaries(st.just("x-motorcade-signature"), st.text(max_size=80)),
       body=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                      st.sampled_from([b"<xml><Encrypt>AAAA</Encrypt></xml>", b'{"receipts": [{}]}',
                                       b'<!DOCTYPE x [<!ENTITY a "a">]><xml>&a;</xml>'])))
def test_hostile_receipt_requests_are_refused_never_recorded(store, channel_name, method, query, headers, body):
    channel = {"webhook": webhook_channel, "wechat_oa": oa_channel, "wecom": wecom_channel}[channel_name]()
    result = handle_receipt(store, channel_name, channel, ReceiptRequest(method, query, headers, body), now=NOW)
    assert result.status in (200, 400, 403)
    assert result.recorded == 0
    if result.status != 200:
        assert result.rejected in ("signature", "replayed", "malformed")
    assert store.query("SELECT count(*) FROM events WHERE name IN ('delivered', 'failed', 'unsubscribed')")[0][0] == 0


CORPID = "wwcorp0123456789"
WECOM_TOKEN = "weComToken"


def wecom_channel():
    from motorcade_channels_wecom import WeComChannel

    return WeComChannel({"corpid": CORPID, "corpsecret": "s", "default_sender": "adv1",
                         "callback_token": WECOM_TOKEN, "encoding_aes_key": AES_KEY},
                        ChannelContext(project_dir=".", clock=lambda: NOW))


def wecom_request(xml: str, *, receiver: str = CORPID, token: str = WECOM_TOKEN, timestamp: int | None = None):
    encrypted = wechat_crypto.encrypt(AES_KEY, xml.encode(), receiver)
    stamp = str(timestamp if timestamp is not None else int(NOW.timestamp()))
    query = {"msg_signature": wechat_crypto.signature(token, stamp, "n1", encrypted), "timestamp": stamp, "nonce": "n1"}
    body = f"<xml><ToUserName><![CDATA[{CORPID}]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID>" \
           f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    return ReceiptRequest("POST", query, {}, body.encode())


DEL_FOLLOW_USER = ("<xml><ToUserName><![CDATA[wwcorp0123456789]]></ToUserName><FromUserName><![CDATA[sys]]>"
                   "</FromUserName><CreateTime>1795399200</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                   "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[del_follow_user]]>"
                   "</ChangeType><UserID><![CDATA[adv1]]></UserID><ExternalUserID><![CDATA[{who}]]></ExternalUserID>"
                   "</xml>")


def test_wecom_url_check_and_a_deleted_advisor(store):
    store.conn.execute("INSERT INTO identifiers (type, value, person_id) VALUES ('wecom_external_userid', "
                       "'wmEXTERNAL1', 1)")
    channel = wecom_channel()
    echostr = wechat_crypto.encrypt(AES_KEY, b"1616140317555161061", CORPID)
    stamp = str(int(NOW.timestamp()))
    check = ReceiptRequest("GET", {"msg_signature": wechat_crypto.signature(WECOM_TOKEN, stamp, "n", echostr),
                                   "timestamp": stamp, "nonce": "n", "echostr": echostr}, {}, b"")
    assert handle_receipt(store, "wecom", channel, check, now=NOW).body == b"1616140317555161061"
    result = handle_receipt(store, "wecom", channel, wecom_request(DEL_FOLLOW_USER.replace("{who}", "wmEXTERNAL1")),
                            now=NOW)
    assert (result.status, result.body, result.recorded) == (200, b"success", 1)
    assert [tuple(r) for r in store.query("SELECT person_id, channel, granted FROM consents")] == [(1, "wecom", 0)]
    # for another corp, with another token, old, about a contact nobody has
    for request, reason in (
            (wecom_request(DEL_FOLLOW_USER.replace("{who}", "wmEXTERNAL1"), receiver="wwother"), "signature"),
            (wecom_request(DEL_FOLLOW_USER.replace("{who}", "wmEXTERNAL1"), token="guess"), "signature"),
            (wecom_request(DEL_FOLLOW_USER.replace("{who}", "wmEXTERNAL1"), timestamp=1), "replayed")):
        assert handle_receipt(store, "wecom", channel, request, now=NOW).rejected == reason
    assert handle_receipt(store, "wecom", channel, wecom_request(DEL_FOLLOW_USER.replace("{who}", "wmNOBODY")),
                          now=NOW).unknown == 1
    assert store.receipt_rejection_counts() == {("wecom", "signature"): 2, ("wecom", "replayed"): 1,
                                                ("wecom", "unknown_message"): 1}
