"""Alibaba Cloud SMS against a local server that checks SendSms as documented (the RPC signature recomputed
independently, the common and action parameters, a nonce used once), then its receipt and reply pushes posted to
the collector: delivered once though Alibaba repeats reports, forged pushes refused and counted, TD recorded."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import urllib.parse
import zoneinfo

import httpx

import motorcade_channels_aliyun_sms as aliyun
from motorcade.activation.channel import ChannelContext, OutboundMessage
from motorcade.activation.testing import ProviderAPI, ProviderHandler
from motorcade.activation.runner import run_once
from motorcade.activation.settings import ActivationContext
from motorcade.project import Project

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
KEY_ID, SECRET, TOKEN = "LTAI5tTestKeyId", "testAccessKeySecret", "push-token-9d8c"
TEMPLATE_TEXT = "【宝悦汽车】您的爱车保养到期，预约：${link}"
REQUIRED = {"AccessKeyId", "Action", "Format", "PhoneNumbers", "RegionId", "SignName", "SignatureMethod",
            "SignatureNonce", "SignatureVersion", "TemplateCode", "Timestamp", "Version", "Signature"}


def documented_signature(secret: str, params: dict[str, str]) -> str:
    def enc(value: str) -> str:
        return urllib.parse.quote(value, safe="").replace("+", "%20").replace("*", "%2A").replace("%7E", "~")
    canonical = "&".join(f"{enc(k)}={enc(params[k])}" for k in sorted(params))
    string_to_sign = "GET&" + enc("/") + "&" + enc(canonical)
    return base64.b64encode(hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()).decode()


class FakeAliyun(ProviderAPI):
    def __init__(self):
        super().__init__(Handler)
        self.nonces: set[str] = set()
        self.delivered: dict[str, tuple[str, str, str]] = {}  # phone -> (BizId, OutId, text)


class Handler(ProviderHandler):
    content_type = "application/json"

    def do_GET(self):
        server: FakeAliyun = self.server
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query, keep_blank_values=True))
        signature = params.pop("Signature", "")
        if REQUIRED - set(params) - {"Signature"}:
            server.problems.append(f"missing {REQUIRED - set(params) - {'Signature'}}")
            return self.answer({"Code": "MissingParameter", "Message": "missing"}, 400)
        if signature != documented_signature(SECRET, params):
            return self.answer({"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched"}, 400)
        if params["SignatureNonce"] in server.nonces:
            return self.answer({"Code": "SignatureNonceUsed", "Message": "nonce used"}, 400)
        server.nonces.add(params["SignatureNonce"])
        if (params["Action"], params["Version"], params["SignatureMethod"], params["SignatureVersion"],
                params["Format"]) != ("SendSms", "2017-05-25", "HMAC-SHA1", "1.0", "JSON") \
                or not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", params["Timestamp"]):
            server.problems.append(f"common parameters {params}")
            return self.answer({"Code": "InvalidParameter", "Message": "bad"}, 400)
        if params["PhoneNumbers"].endswith("0001"):
            return self.answer({"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": "r"})
        if params["PhoneNumbers"].endswith("0002"):
            return self.answer({"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发流控", "RequestId": "r"})
        text = TEMPLATE_TEXT
        for name, value in json.loads(params.get("TemplateParam", "{}")).items():
            text = text.replace("${%s}" % name, value)
        biz = f"9006197469364984{len(server.delivered):02d}^0"
        server.delivered[params["PhoneNumbers"]] = (biz, params.get("OutId", ""), text)
        self.answer({"Code": "OK", "Message": "OK", "BizId": biz, "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990"})


def test_signature_matches_the_documented_worked_example():
    # Alibaba's documentation: AccessKeySecret "testsecret", the listed parameters -> this signature.
    params = {"AccessKeyId": "testid", "Action": "DescribeRegions", "Format": "XML", "SignatureMethod": "HMAC-SHA1",
              "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "SignatureVersion": "1.0",
              "Timestamp": "2016-02-23T12:46:24Z", "Version": "2014-05-26"}
    assert aliyun.rpc_signature("testsecret", params) == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    assert aliyun.rpc_signature("testsecret", params) == documented_signature("testsecret", params)


def test_answers_are_classified(tmp_path):
    server = FakeAliyun().start()
    channel = aliyun.AliyunSmsChannel({"access_key_id": KEY_ID, "access_key_secret": SECRET, "sign_name": "宝悦汽车",
                                       "endpoint": server.base, "templates": {"t": {"code": "SMS_1", "params": ["link"]}}},
                                      ChannelContext(project_dir=tmp_path))

    def message(key, phone, **params):
        return OutboundMessage(key, 1, phone, "t", "body", params=params)

    results = {r.idempotency_key: r for r in channel.send([
        message("ok", "+8613811110000", link="https://go.example.cn/s/Ab3x9QzK2mP"), message("bad", "+8613811110001", link="x"),
        message("busy", "+8613811110002", link="x"), message("noparam", "+8613811110003")])}
    assert results["ok"].status == "sent" and results["ok"].provider_message_id == "900619746936498400^0"
    assert results["bad"].status == "permanent"
    assert results["busy"].status == "transient" and results["busy"].retry_after == 60
    assert results["noparam"].status == "permanent" and "needs parameters" in results["noparam"].detail
    assert server.delivered["13811110000"][1] == "ok"  # OutId carries the key
    assert not server.problems
    server.shutdown()


CONFIG = """
[project]
name = "aliyun"
timezone = "Asia/Shanghai"

[activation]
public_url = "https://go.example.cn"

[channels.aliyun_sms]
access_key_id = "{key_id}"
access_key_secret = "{secret}"
sign_name = "宝悦汽车"
endpoint = "{endpoint}"
receipt_token = "{token}"

[channels.aliyun_sms.templates]
recall = {{ code = "SMS_154950909", params = ["link"] }}
"""
RULES = """
segment owners { where profile.is_owner = true }
campaign recall "保养召回" {
  audience owners
  schedule daily at 10:00
  send to all members
  via aliyun_sms template "recall"
}
"""


def test_send_follow_and_push_receipts_through_the_collector(tmp_path):
    from motorcade.feedback.funnel import FunnelSpec, compute_funnel
    from motorcade.plugins import load_plugins
    from motorcade_sources_segment_http.server import BackgroundServer, running_collector

    server = FakeAliyun().start()
    (tmp_path / "motorcade.toml").write_text(CONFIG.format(key_id=KEY_ID, secret=SECRET, endpoint=server.base,
                                                           token=TOKEN), encoding="utf-8")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.mc").write_text(RULES, encoding="utf-8")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "recall.txt").write_text("保养到期 {{ track('https://dealer.example/b') }}", encoding="utf-8")
    project = Project(tmp_path, plugin_manager=load_plugins())
    store = project.store
    with store.transaction():
        people = [store.create_person({"name": f"客户{i}", "is_owner": True}) for i in range(2)]
        for person, phone in zip(people, ("+8613911112222", "+8613911113333")):
            store.conn.execute("INSERT INTO identifiers (type, value, person_id) VALUES ('phone', ?, ?)", (phone, person))
    at = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SH)
    store.record_segment_run("owners", people, revision="t", as_of=at, computed_at=at, duration_ms=0, plan=None)
    run_once(ActivationContext.for_project(project, clock=lambda: at, worker_id="w1"))
    assert not server.problems and len(server.delivered) == 2
    biz, out_id, text = server.delivered["13911112222"]
    link = re.search(r"https://go\.example\.cn(/s/[0-9A-Za-z]{11})", text).group(1)
    report = [{"phone_number": "13911112222", "send_time": "2026-11-23 10:00:01", "report_time": "2026-11-23 10:00:04",
               "success": True, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1", "biz_id": biz,
               "out_id": out_id}]
    with running_collector(project, idle_seconds=0.01) as collector, BackgroundServer(collector.app) as http_server:
        with httpx.Client(base_url=http_server.url, follow_redirects=False) as client:
            for _ in range(3):  # Alibaba's reports are not idempotent: the same one arrives again
                answer = client.post(f"/r/aliyun_sms?token={TOKEN}", json=report)
                assert answer.status_code == 200 and answer.json() == {"code": 0, "msg": "接收成功"}
            assert client.post("/r/aliyun_sms?token=nope", json=report).status_code == 403
            assert client.post(f"/r/aliyun_sms?token={TOKEN}", json=[{**report[0], "biz_id": "1^0"}]).status_code == 200
            assert client.post(f"/r/aliyun_sms?token={TOKEN}", json=[{**report[0], "success": "yes"}]).status_code == 400
            assert client.get(link, headers={"User-Agent": "Mozilla/5.0 (Linux; Android 14) Mobile Safari/537.36"}
                              ).status_code == 302
            reply = [{"phone_number": "13911113333", "send_time": "2026-11-23 10:05:00", "content": "退订",
                      "sign_name": "宝悦汽车", "dest_code": "1234", "sequence_id": 1234567890}]
            assert client.post(f"/r/aliyun_sms?token={TOKEN}", json=reply).status_code == 200
    funnel = compute_funnel(store, FunnelSpec("f", ("sent", "delivered", "clicked")), campaign="recall")
    assert [s.people for s in funnel.total.steps] == [2, 1, 1]
    assert store.receipt_rejection_counts() == {("aliyun_sms", "signature"): 1, ("aliyun_sms", "unknown_message"): 1,
                                                ("aliyun_sms", "malformed"): 1}
    assert [tuple(r) for r in store.query("SELECT person_id, channel, granted FROM consents")] == [
        (people[1], "aliyun_sms", 0)]
    project.close()
    server.shutdown()
