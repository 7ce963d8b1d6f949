"""Motorcade channel ``wechat_mp``: WeChat mini-program subscribe messages (订阅消息, ``subscribeMessage.send``).

Built from the mini-program server documentation (``cgi-bin/stable_token``, ``cgi-bin/message/subscribe/send``,
its error codes, the field types of subscribe-message templates) and tested against a local server that checks
every request as documented; it has never contacted the real WeChat API.

**One subscription, one message.** A user who taps "allow" in ``wx.requestSubscribeMessage`` lets the
mini-program send them *one* message of that template. The app reports each answer as an event (default name
``mp_subscribe``, properties ``template_id`` and ``result`` = ``accept`` / ``reject``), e.g. through
``motorcade collect``. Before sending, the channel counts the person's accepted subscriptions for the template
minus the messages of that template already sent (``store.subscriptions_left``); with none left the send is
refused (``permanent``, "no unused subscription") instead of spending a call WeChat would answer with 43101.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

import attrs

import motorcade
from motorcade.activation.channel import (
    Channel,
    ChannelCapabilities,
    ChannelContext,
    DeliveryResult,
    InProcessTokenCache,
    OutboundMessage,
    secret_setting,
)
from motorcade.config_schema import NAME, SECRET, TEXT, Setting, choice, map_of, number, table_kind
from motorcade.errors import ConfigError

__version__ = "0.1.0"

TOKEN_ERRCODES = {40001, 40014, 42001}
PERMANENT_ERRCODES = {43101: "the user has no subscription for this template (one subscription, one message)",
                      40003: "invalid openid", 40037: "invalid template_id",
                      47003: "data does not match the template's fields", 41030: "invalid page"}
TRANSIENT_ERRCODES = {-1: "system busy", 45009: "daily API quota reached"}
# Field kinds of subscribe-message templates and their documented lengths (characters).
FIELD_LIMITS = {"thing": 20, "character_string": 32, "phrase": 5, "name": 10, "car_number": 8, "phone_number": 17,
                "letter": 32, "symbol": 5, "amount": 32, "number": 32, "time": 32, "date": 32}


def field_kind(name: str) -> str:
    """``thing1`` -> ``thing``; ``character_string2`` -> ``character_string``."""
    return name.rstrip("0123456789")


def field_value(kind: str, value: str) -> str:
    """``value`` cut to the field kind's documented length (a longer value makes WeChat refuse the call)."""
    limit = FIELD_LIMITS.get(kind)
    return value if limit is None or len(value) <= limit else value[:limit - 1] + "…"


class TokenError(Exception):
    """stable_token failed; the detail is WeChat's answer."""


class WeChatMiniProgramChannel(Channel):
    name = "wechat_mp"
    description = "WeChat mini-program subscribe messages (subscribeMessage.send), one subscription one message"
    capabilities = ChannelCapabilities(address_type="wechat_mp_openid", batch_size=20)
    settings_schema = (
        Setting("appid", NAME, "the mini-program's AppID", required=True),
        Setting("secret_env", TEXT, "environment variable holding the AppSecret"),
        Setting("secret", SECRET, "the AppSecret itself (prefer secret_env)"),
        Setting("templates", map_of(table_kind(
            Setting("id", TEXT, "the subscribe-message template id", required=True),
            Setting("page", TEXT, "page opened from the message; {link_code} is replaced by the first tracked "
                    "link's code"),
            Setting("data", map_of(TEXT, "template field"), "template field (thing1, time2, ...) = body, subject, "
                    "link, or fixed text", required=True),
            label="{ id = ..., page = ..., data = { thing1 = \"body\" } }"), "rule template name"),
                "rule template name = the subscribe-message template", {}),
        Setting("subscribe_event", TEXT, "event name the app reports a subscription answer with", "mp_subscribe"),
        Setting("miniprogram_state", choice("formal", "trial", "developer"), "which version the message opens",
                "formal"),
        Setting("api_base", TEXT, "API base URL", "https://api.weixin.qq.com"),
        Setting("timeout", number(above=0), "seconds to wait for the API", 10),
    )

    def __init__(self, settings: dict[str, Any], context: ChannelContext):
        super().__init__(settings, context)
        if not settings.get("appid"):
            raise ConfigError("channel wechat_mp: [channels.wechat_mp] has no appid",
                              hint="copy the AppID from the mini-program console (开发 > 开发管理)")
        self._appid = str(settings["appid"])
        self._secret = secret_setting(settings, channel="wechat_mp", name="secret", what="AppSecret",
                                      example_env="WECHAT_MP_SECRET")
        self._templates = {str(k): dict(v) for k, v in (settings.get("templates") or {}).items()}
        self._event = str(settings.get("subscribe_event", "mp_subscribe"))
        self._state = str(settings.get("miniprogram_state", "formal"))
        self._api = str(settings.get("api_base", "https://api.weixin.qq.com")).rstrip("/")
        self._timeout = float(settings.get("timeout", 10))
        self._tokens = context.token_cache or InProcessTokenCache()
        self.token_key = f"wechat_mp:{self._appid}"

    # -- HTTP and token ---------------------------------------------------------------------------------

    def _post(self, path: str, body: dict, query: dict[str, str] | None = None) -> dict:
        url = f"{self._api}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, data=json.dumps(body, ensure_ascii=False).encode("utf-8"), method="POST",
                                         headers={"Content-Type": "application/json; charset=utf-8"})
        with urllib.request.urlopen(request, timeout=self._timeout) as response:
            return json.loads(response.read())

    def _stable_token(self) -> tuple[str, float]:
        answer = self._post("/cgi-bin/stable_token", {"grant_type": "client_credential", "appid": self._appid,
                                                      "secret": self._secret, "force_refresh": False})
        if not answer.get("access_token"):
            raise TokenError(f"stable_token failed: {json.dumps(answer, ensure_ascii=False)}; check appid, secret_env "
                             "and the IP allow-list of the mini-program")
        return answer["access_token"], float(answer.get("expires_in", 7200))

    def _token(self) -> str:
        return self._tokens.get_or_refresh(self.token_key, self._stable_token)

    # -- sending ------------------------------------------------------------------------------------------

    def build_request(self, message: OutboundMessage, spec: dict[str, Any]) -> dict[str, Any]:
        sources = {"body": message.body, "subject": message.subject or "", "link": str(message.params.get("link", ""))}
        data = {field: {"value": field_value(field_kind(field), sources.get(what, what))}
                for field, what in spec["data"].items()}
        body: dict[str, Any] = {"touser": message.address, "template_id": spec["id"], "data": data,
                                "miniprogram_state": self._state, "lang": "zh_CN"}
        if spec.get("page"):
            body["page"] = str(spec["page"]).replace("{link_code}", str(message.params.get("link_code", "")))
        return body

    def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        results, spent = [], {}
        for message in batch:
            key = message.idempotency_key
            spec = self._templates.get(message.template)
            if spec is None:
                results.append(DeliveryResult(key, "permanent", detail=f"template {message.template!r} has no "
                                              "subscribe-message template: add it under [channels.wechat_mp.templates]"))
                continue
            if self.context.store is not None:
                names = [n for n, s in self._templates.items() if s["id"] == spec["id"]]
                left = self.context.store.subscriptions_left(
                    message.person_id, grant_event=self._event, template_id=spec["id"], channel=self.name,
                    templates=names) - spent.get((message.person_id, spec["id"]), 0)
                if left <= 0:
                    results.append(DeliveryResult(key, "permanent", detail=(
                        f"no unused subscription to template {spec['id']}: one subscription allows one message "
                        f"(the app reports subscriptions as {self._event!r} events)")))
                    continue
            result = self._send_one(message, spec)
            if result.status == "sent":
                spent[(message.person_id, spec["id"])] = spent.get((message.person_id, spec["id"]), 0) + 1
            results.append(result)
        return results

    def _send_one(self, message: OutboundMessage, spec: dict[str, Any]) -> DeliveryResult:
        key = message.idempotency_key
        body = self.build_request(message, spec)
        path = "/cgi-bin/message/subscribe/send"
        try:
            token = self._token()
            answer = self._post(path, body, {"access_token": token})
            if answer.get("errcode") in TOKEN_ERRCODES:
                invalidate = getattr(self._tokens, "invalidate", None)
                if invalidate is not None:
                    invalidate(self.token_key, token)
                answer = self._post(path, body, {"access_token": self._token()})
        except TokenError as exc:
            return DeliveryResult(key, "transient", detail=str(exc))
        except (OSError, ValueError) as exc:
            return DeliveryResult(key, "transient", detail=f"subscribe/send failed: {type(exc).__name__}: {exc}")
        detail = json.dumps(answer, ensure_ascii=False)
        errcode = answer.get("errcode", 0)
        if errcode == 0:
            msgid = answer.get("msgid")
            return DeliveryResult(key, "sent", provider_message_id=None if msgid is None else str(msgid), detail=detail)
        if errcode in TRANSIENT_ERRCODES or errcode in TOKEN_ERRCODES:
            return DeliveryResult(key, "transient", detail=detail)
        hint = PERMANENT_ERRCODES.get(errcode)
        return DeliveryResult(key, "permanent", detail=detail + (f" ({hint})" if hint else ""))


@motorcade.hookimpl
def register_channels(register):
    register(WeChatMiniProgramChannel)
