"""The Tencent Cloud SMS channel against a local server that checks requests as Tencent documents them.

The server recomputes the TC3-HMAC-SHA256 signature with its own implementation (written from the
documentation, not imported from the plugin) and checks headers and body fields exactly.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import hmac
import json
import re
import time

import pytest
from hypothesis import given, settings, strategies as st

import motorcade_channels_sms as sms
from motorcade.activation.channel import ChannelContext, OutboundMessage
from motorcade.activation.testing import ProviderAPI, ProviderHandler, registered_channels
from motorcade.errors import ConfigError

SECRET_ID = "AKIDtestSecretId000000000000"
SECRET_KEY = "testSecretKey0000000000000000"
APP_ID = "1400006666"
BEIJING = dt.timezone(dt.timedelta(hours=8))
DAYTIME = dt.datetime(2026, 3, 2, 10, 0, tzinfo=BEIJING)

# Per-number answers scripted by the number's last four digits.
SCRIPTED = {
    "0001": ("InvalidParameterValue.IncorrectPhoneNumber", "incorrect number format"),
    "0002": ("LimitExceeded.PhoneNumberThirtySecondLimit", "30s limit"),
    "0003": ("FailedOperation.PhoneNumberInBlacklist", "number in blacklist"),
    "0004": ("LimitExceeded.PhoneNumberDailyLimit", "daily limit"),
}
DOCUMENTED_FIELDS = {"PhoneNumberSet", "SmsSdkAppId", "TemplateId", "SignName", "TemplateParamSet",
                     "ExtendCode", "SessionContext", "SenderId"}


def documented_signature(secret_key, date, service, string_to_sign):
    def h(key, msg):
        return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()
    secret_date = h(("TC3" + secret_key).encode("utf-8"), date)
    secret_service = h(secret_date, service)
    secret_signing = h(secret_service, "tc3_request")
    return hmac.new(secret_signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


class FakeTencent(ProviderAPI):
    def __init__(self):
        super().__init__(FakeTencentHandler)
        self.requests: list[dict] = []
        self.rejections: list[str] = []
        self.numbers = collections.Counter()
        self.forced_error: dict | None = None


class FakeTencentHandler(ProviderHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16
    content_type = "application/json"

    def reject(self, code, message):
        self.server.rejections.append(f"{code}: {message}")
        self.answer({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": "req-err"}})

    def do_POST(self):
        payload = self.read_body()
        h = self.headers
        if self.path != "/":
            return self.reject("InvalidParameter", "path must be /")
        checks = [
            (h["Content-Type"] == "application/json; charset=utf-8", "content-type"),
            (h["Host"] == f"127.0.0.1:{self.server.server_address[1]}", "host"),
            (h["X-TC-Action"] == "SendSms", "action"),
            (h["X-TC-Version"] == "2021-01-11", "version"),
            (h["X-TC-Region"] == "ap-guangzhou", "region"),
            (h["X-TC-Timestamp"] is not None and abs(int(h["X-TC-Timestamp"]) - time.time()) < 300, "timestamp"),
        ]
        for ok, what in checks:
            if not ok:
                return self.reject("InvalidParameter", f"bad header {what}")
        match = re.fullmatch(
            r"TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z]+)/tc3_request, "
            r"SignedHeaders=(?P<signed>[a-z;-]+), Signature=(?P<sig>[0-9a-f]{64})", h["Authorization"] or "")
        if not match:
            return self.reject("AuthFailure.InvalidAuthorization", "Authorization malformed")
        timestamp = h["X-TC-Timestamp"]
        date = dt.datetime.fromtimestamp(int(timestamp), dt.timezone.utc).strftime("%Y-%m-%d")
        if match["id"] != SECRET_ID:
            return self.reject("AuthFailure.SecretIdNotFound", "unknown SecretId")
        if match["date"] != date or match["service"] != "sms":
            return self.reject("AuthFailure.InvalidAuthorization", "credential scope")
        signed = match["signed"].split(";")
        if signed != sorted(signed) or "content-type" not in signed or "host" not in signed:
            return self.reject("AuthFailure.InvalidAuthorization", "SignedHeaders")
        canonical_headers = "".join(
            f"{name}:{(h[name] or '').strip().lower() if name == 'x-tc-action' else (h[name] or '').strip()}\n"
            for name in signed)
        canonical_request = (f"POST\n/\n\n{canonical_headers}\n{match['signed']}\n"
                             f"{hashlib.sha256(payload).hexdigest()}")
        string_to_sign = (f"TC3-HMAC-SHA256\n{timestamp}\n{date}/sms/tc3_request\n"
                          f"{hashlib.sha256(canonical_request.encode()).hexdigest()}")
        if not hmac.compare_digest(documented_signature(SECRET_KEY, date, "sms", string_to_sign), match["sig"]):
            return self.reject("AuthFailure.SignatureFailure",
                               "The provided credentials could not be validated. Please check your signature is correct.")
        body = json.loads(payload)
        problems = []
        if set(body) - DOCUMENTED_FIELDS:
            problems.append(f"unknown fields {set(body) - DOCUMENTED_FIELDS}")
        numbers = body.get("PhoneNumberSet")
        if not isinstance(numbers, list) or not 1 <= len(numbers) <= 200:
            problems.append("PhoneNumberSet must hold 1-200 numbers")
        elif not all(isinstance(n, str) and re.fullmatch(r"\+\d{6,15}", n) for n in numbers):
            problems.append("PhoneNumberSet must be E.164 strings")
        elif len({n.startswith("+86") for n in numbers}) > 1:
            return self.reject("UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber", "mixed")
        elif len(set(numbers)) != len(numbers):
            problems.append("duplicate numbers")
        if body.get("SmsSdkAppId") != APP_ID:
            problems.append("SmsSdkAppId")
        if not isinstance(body.get("TemplateId"), str) or not body["TemplateId"].isdigit():
            problems.append("TemplateId must be a string of digits")
        if body.get("SignName") != "东风之星":
            problems.append("SignName")
        if not isinstance(body.get("TemplateParamSet"), list) or not all(
                isinstance(p, str) for p in body["TemplateParamSet"]):
            problems.append("TemplateParamSet must be a list of strings")
        if len(body.get("SessionContext", "").encode()) >= 512:
            problems.append("SessionContext must be shorter than 512 bytes")
        if problems:
            return self.reject("InvalidParameter", "; ".join(problems))
        if self.server.forced_error:
            return self.answer({"Response": {"Error": self.server.forced_error, "RequestId": "req-forced"}})
        self.server.requests.append(body)
        statuses = []
        for number in numbers:
            self.server.numbers[number] += 1
            code, message = SCRIPTED.get(number[-4:], ("Ok", "send success"))
            statuses.append({"SerialNo": f"2028:{number[-4:]}:{len(self.server.requests)}", "PhoneNumber": number,
                             "Fee": 1 if code == "Ok" else 0, "SessionContext": body.get("SessionContext", ""),
                             "Code": code, "Message": message, "IsoCode": "CN"})
        self.answer({"Response": {"SendStatusSet": statuses, "RequestId": f"req-{len(self.server.requests)}"}})


@pytest.fixture
def tencent():
    with FakeTencent() as server:
        yield server


def make_channel(endpoint, tmp_path, now=DAYTIME, **extra):
    settings = {"secret_id": SECRET_ID, "secret_key": SECRET_KEY, "sdk_app_id": APP_ID, "sign_name": "东风之星",
                "endpoint": endpoint,
                "templates": {"service_due": {"id": "1110", "params": ["name", "date"]}, "recall": "2220"},
                **extra}
    return sms.TencentSmsChannel(settings, ChannelContext(project_dir=tmp_path, clock=lambda: now))


def msg(key, phone, template="service_due", **params):
    params = params or {"name": "张先生", "date": "3月5日"}
    return OutboundMessage(idempotency_key=key, person_id=1, address=phone, template=template,
                           body="rendered locally, unused by provider templates", params=params)


def test_documented_signature_example():
    # The worked example of Tencent Cloud's "Signature v3" page (CVM DescribeInstances).
    authorization = sms.tc3_authorization(
        secret_id="AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******", secret_key="Gu5t9xGARNpq86cd98joQYCN3*******",
        service="cvm", timestamp=1551113065,
        payload=b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}',
        signed_headers={"content-type": "application/json; charset=utf-8", "host": "cvm.tencentcloudapi.com"},
    )
    assert authorization == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/tc3_request, "
        "SignedHeaders=content-type;host, "
        "Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c")


def test_one_request_classifies_each_number(tencent, tmp_path):
    channel = make_channel(tencent.base, tmp_path)
    batch = [msg("k-ok", "13811110000"), msg("k-bad", "+8613811110001"), msg("k-30s", "13811110002"),
             msg("k-black", "13811110003"), msg("k-daily", "13811110004"), msg("k-ok2", "0086 138 1111 0005")]
    results = {r.idempotency_key: r for r in channel.send(batch)}
    assert tencent.rejections == []
    [request] = tencent.requests
    assert request["PhoneNumberSet"] == ["+8613811110000", "+8613811110001", "+8613811110002",
                                         "+8613811110003", "+8613811110004", "+8613811110005"]
    assert request["TemplateId"] == "1110" and request["TemplateParamSet"] == ["张先生", "3月5日"]
    expected_session = "batch:" + hashlib.sha256("\n".join(m.idempotency_key for m in batch).encode()).hexdigest()
    assert request["SessionContext"] == expected_session
    assert results["k-ok"].status == "sent" and results["k-ok"].provider_message_id == "2028:0000:1"
    assert results["k-ok2"].status == "sent"
    assert results["k-bad"].status == "permanent"
    assert json.loads(results["k-bad"].detail)["Code"] == "InvalidParameterValue.IncorrectPhoneNumber"
    assert results["k-30s"].status == "transient" and results["k-30s"].retry_after == 30
    assert results["k-black"].status == "permanent"
    daily = results["k-daily"]
    assert daily.status == "transient" and daily.retry_after == (14 * 3600 + 5 * 60)  # 10:00 -> 00:05 Beijing


def test_single_message_carries_its_key_in_session_context(tencent, tmp_path):
    channel = make_channel(tencent.base, tmp_path)
    [result] = channel.send([msg("campaign:lapsed:run:9:person:4:step:1", "13900000009", template="recall",
                                 template_params=["王女士"])])
    assert result.status == "sent"
    assert tencent.requests[0]["SessionContext"] == "campaign:lapsed:run:9:person:4:step:1"
    assert tencent.requests[0]["TemplateId"] == "2220"
    assert tencent.requests[0]["TemplateParamSet"] == ["王女士"]


def test_at_most_200_numbers_per_request(tencent, tmp_path):
    channel = make_channel(tencent.base, tmp_path)
    assert channel.capabilities.batch_size == 200
    batch = [msg(f"k{i}", f"139{i:08d}") for i in range(450) if f"{i:08d}"[-4:] not in SCRIPTED]
    results = []
    for start in range(0, len(batch), 200):
        results += channel.send(batch[start:start + 200])
    results += channel.send(batch[:0])
    assert [len(r["PhoneNumberSet"]) for r in tencent.requests] == [200, 200, len(batch) - 400]
    assert len(results) == len(batch) and {r.status for r in results} == {"sent"}
    assert all(count == 1 for count in tencent.numbers.values()) and len(tencent.numbers) == len(batch)


def test_requests_split_by_template_parameters_region_and_repeated_numbers(tencent, tmp_path):
    channel = make_channel(tencent.base, tmp_path)
    batch = [msg("a", "13800000010"), msg("b", "13800000011", name="李女士", date="3月6日"),
             msg("c", "+85291234567"), msg("d", "13800000010")]
    results = channel.send(batch)
    assert tencent.rejections == []
    assert {r.status for r in results} == {"sent"} and len(results) == 4
    sets = sorted(tuple(r["PhoneNumberSet"]) for r in tencent.requests)
    assert sets == [("+85291234567",), ("+8613800000010",), ("+8613800000010",), ("+8613800000011",)]


def test_local_refusals_are_permanent_and_not_sent(tencent, tmp_path):
    channel = make_channel(tencent.base, tmp_path)
    results = {r.idempotency_key: r for r in channel.send([
        msg("bad-number", "12345"), msg("no-template", "13800000020", template="unknown_tpl"),
        msg("missing-param", "13800000021", name="只有名字")])}
    assert {r.status for r in results.values()} == {"permanent"}
    assert "not a valid phone number" in results["bad-number"].detail
    assert "[channels.sms.templates]" in results["no-template"].detail
    assert "['date']" in results["missing-param"].detail
    assert tencent.requests == []


def test_wrong_key_is_refused_by_the_server_and_transient(tencent, tmp_path):
    channel = make_channel(tencent.base, tmp_path, secret_key="not-the-key")
    [result] = channel.send([msg("k", "13800000030")])
    assert result.status == "transient"
    assert "AuthFailure.SignatureFailure" in result.detail
    assert tencent.rejections and tencent.requests == []


@pytest.mark.parametrize("code, status", [("FailedOperation.TemplateIncorrectOrUnapproved", "permanent"),
                                          ("RequestLimitExceeded", "transient"),
                                          ("InternalError.OtherError", "transient"),
                                          ("FailedOperation.InsufficientBalanceInSmsPackage", "transient")])
def test_request_level_errors(tencent, tmp_path, code, status):
    tencent.forced_error = {"Code": code, "Message": "scripted"}
    channel = make_channel(tencent.base, tmp_path)
    results = channel.send([msg("x", "13800000040"), msg("y", "13800000041")])
    assert [r.status for r in results] == [status, status]
    assert json.loads(results[0].detail)["Error"]["Code"] == code


def test_marketing_window_defers_without_a_request(tencent, tmp_path):
    night = dt.datetime(2026, 3, 2, 23, 30, tzinfo=BEIJING)
    channel = make_channel(tencent.base, tmp_path, now=night)
    assert channel.capabilities.send_window == ("08:00", "22:00")
    [result] = channel.send([msg("k", "13800000050")])
    assert result.status == "transient" and result.retry_after == 8.5 * 3600
    assert tencent.requests == []
    early_utc = dt.datetime(2026, 3, 2, 23, 0, tzinfo=dt.timezone.utc)  # 07:00 Beijing
    assert make_channel(tencent.base, tmp_path, now=early_utc).send(
        [msg("k", "13800000050")])[0].retry_after == 3600
    notification = make_channel(tencent.base, tmp_path, now=night, marketing=False)
    assert notification.capabilities.send_window is None
    assert notification.send([msg("k", "13800000050")])[0].status == "sent"


def test_unreachable_endpoint_is_transient(tmp_path):
    channel = make_channel("http://127.0.0.1:9", tmp_path)
    [result] = channel.send([msg("k", "13800000060")])
    assert result.status == "transient" and "SendSms request failed" in result.detail


def test_delivery_receipts_are_parsed_and_deduplicated():
    body = json.dumps([
        {"user_receive_time": "2026-03-02 10:00:05", "nationcode": "86", "mobile": "13811110000",
         "report_status": "SUCCESS", "errmsg": "DELIVRD", "description": "用户短信送达成功", "sid": "2028:0000:1"},
        {"user_receive_time": "2026-03-02 10:00:05", "nationcode": "86", "mobile": "13811110000",
         "report_status": "SUCCESS", "errmsg": "DELIVRD", "description": "用户短信送达成功", "sid": "2028:0000:1"},
        {"user_receive_time": "2026-03-02 10:00:09", "nationcode": "86", "mobile": "13811110005",
         "report_status": "FAIL", "errmsg": "MK:0005", "description": "空号", "sid": "2028:0005:1"},
    ], ensure_ascii=False).encode()
    seen: set[str] = set()
    receipts = sms.parse_delivery_receipts(body, seen)
    assert [(r.serial_no, r.phone, r.status, r.error_code) for r in receipts] == [
        ("2028:0000:1", "+8613811110000", "delivered", "DELIVRD"),
        ("2028:0005:1", "+8613811110005", "failed", "MK:0005")]
    assert receipts[0].received_at == dt.datetime(2026, 3, 2, 2, 0, 5, tzinfo=dt.timezone.utc)
    assert sms.parse_delivery_receipts(body, seen) == []  # redelivered callback: nothing new
    assert len(sms.parse_delivery_receipts(body)) == 2


def test_mask_phone():
    assert sms.mask_phone("+8613811112222") == "+86138****2222"
    assert "1111" not in sms.mask_phone("+8613811112222")


@settings(max_examples=50, deadline=None)
@given(payload=st.binary(max_size=300), secret=st.text(min_size=1, max_size=40),
       timestamp=st.integers(min_value=1_500_000_000, max_value=2_000_000_000))
def test_signature_matches_the_documented_derivation(payload, secret, timestamp):
    authorization = sms.tc3_authorization(
        secret_id="id", secret_key=secret, service="sms", timestamp=timestamp, payload=payload,
        signed_headers={"x-tc-action": "sendsms", "host": "h", "content-type": "application/json; charset=utf-8"})
    date = dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d")
    canonical = ("POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:h\nx-tc-action:sendsms\n\n"
                 f"content-type;host;x-tc-action\n{hashlib.sha256(payload).hexdigest()}")
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{date}/sms/tc3_request\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    assert authorization.endswith("Signature=" + documented_signature(secret, date, "sms", to_sign))
    assert f"Credential=id/{date}/sms/tc3_request, SignedHeaders=content-type;host;x-tc-action" in authorization


def test_settings_errors_say_what_to_do(tmp_path, monkeypatch):
    context = ChannelContext(project_dir=tmp_path)
    with pytest.raises(ConfigError, match="secret_id_env"):
        sms.TencentSmsChannel({}, context)
    monkeypatch.delenv("MC_TEST_TC_KEY", raising=False)
    with pytest.raises(ConfigError, match="MC_TEST_TC_KEY"):
        sms.TencentSmsChannel({"secret_id": "a", "secret_key_env": "MC_TEST_TC_KEY"}, context)
    monkeypatch.setenv("MC_TEST_TC_KEY", "k")
    with pytest.raises(ConfigError, match="sdk_app_id"):
        sms.TencentSmsChannel({"secret_id": "a", "secret_key_env": "MC_TEST_TC_KEY"}, context)


def test_registers_through_the_hook_and_the_entry_point():
    registered, entry_points = registered_channels(sms, "sms")
    assert registered == [sms.TencentSmsChannel]
    assert entry_points == {"motorcade_channels_sms"}
