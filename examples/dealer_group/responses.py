"""Simulated customers for the demo: what people do after a campaign reaches them.

The example has no real customers, so after the sends this module plays their part, deterministically
(seeded by person and campaign), through the real endpoints of ``motorcade collect``: the messaging gateway
posts a signed delivery receipt for every webhook message it got (``POST /r/webhook``); some recipients follow
the short link in the message they received (``GET /s/<code>`` with a phone's user agent, taken from the
delivered body); and some people come back to the workshop in the next 30 days (written as DMS service-visit
events and ingested through the JSON Lines source). The server runs on the demo's clock: each request is
made at the simulated moment it stands for. Recipients return more often than the holdout, so the uplift report has an effect to find;
the rates are stated here, and the report must recover them within its confidence interval.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import re
from pathlib import Path

# (campaign, follow-up event, rate for the holdout, rate for recipients who did not click, rate after a click)
BEHAVIOUR = {
    "lapsed_recall": ("service_visit", 0.10, 0.16, 0.45),
    "replacement_offer": ("test_drive", 0.04, 0.06, 0.25),
}
CLICK_RATE = {"email": 0.30, "webhook": 0.22, "wecom": 0.35}


def _rng(*parts) -> random.Random:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _identifier(store, person_id: int) -> dict[str, str] | None:
    person = store.get_person(person_id)
    found = {i.type: i.value for i in person.identifiers} if person else {}
    for type_, field in (("crm_id", "crm_id"), ("phone", "phone"), ("app_user_id", "app_user_id")):
        if type_ in found:
            return {field: found[type_]}
    return None


PHONE_BROWSER = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Mobile/15E148 MicroMessenger/8.0.49 NetType/WIFI Language/zh_CN")
SHORT_LINK = re.compile(r"https?://\S+?/s/[0-9A-Za-z]{11}")


def _delivered_body(send: dict) -> str:
    payload = send.get("payload") or {}
    steps, chosen = payload.get("steps") or [], payload.get("chosen")
    return steps[chosen].get("body") or "" if isinstance(chosen, int) and chosen < len(steps) else ""


def post_gateway_receipts(client, store, keys, secret: str, clock: dict, at: dt.datetime) -> int:
    """The messaging gateway reports delivery of every message it got, signed with the webhook secret."""
    from motorcade_channels_webhook import sign

    delivered = 0
    keys = sorted(k for k in keys if k)
    for start in range(0, len(keys), 200):
        clock["now"] = at
        body = json.dumps({"receipts": [{"idempotency_key": k, "status": "delivered", "at": at.isoformat()}
                                        for k in keys[start:start + 200]]}).encode()
        answer = client.post("/r/webhook", content=body, headers={
            "Content-Type": "application/json", "X-Motorcade-Signature": sign(secret.encode(), int(at.timestamp()), body)})
        answer.raise_for_status()
        delivered += len(keys[start:start + 200])
    return delivered


def simulate(project, as_of: dt.datetime, out_file: Path, *, client, clock: dict, secret: str,
             gateway_keys, seed: int = 7) -> dict[str, int]:
    """Receipts, clicks and follow-up events for every campaign audience in BEHAVIOUR; returns counts.

    ``client``: an HTTP client on the collector; ``clock["now"]`` is the collector's clock, set before each
    request to the moment it simulates."""
    from motorcade.sources.ingest import project_ingestor

    store = project.store
    counts = {"clicked": 0, "follow_up_events": 0, "bot_hits": 0, "delivered": 0}
    counts["delivered"] = post_gateway_receipts(client, store, gateway_keys, secret, clock,
                                                as_of + dt.timedelta(seconds=30))
    lines = []
    rows = store.query(
        "SELECT r.origin, s.person_id, s.arm, o.idempotency_key, o.channel, o.status "
        "FROM audience_snapshots s JOIN activation_runs r ON r.id = s.run_id "
        "LEFT JOIN outbox o ON o.run_id = s.run_id AND o.person_id = s.person_id "
        "WHERE r.origin_kind = 'campaign' ORDER BY r.origin, s.person_id"
    )
    for origin, person_id, arm, key, channel, status in rows:
        if origin not in BEHAVIOUR:
            continue
        event, holdout_rate, sent_rate, clicked_rate = BEHAVIOUR[origin]
        rng = _rng(seed, origin, person_id)
        clicked_at = None
        if arm == "treatment" and status == "sent":
            link = SHORT_LINK.search(_delivered_body(store.get_send(key) or {}))
            scanner = _rng(seed, origin, person_id, "scanner")  # its own draws: the people's stay as they were
            if link and scanner.random() < 0.15:  # a mail gateway's link scanner gets there first
                clock["now"] = as_of + dt.timedelta(minutes=scanner.uniform(1, 5))
                client.get(link.group(0), headers={"User-Agent": "Barracuda Sentinel (EE)"})
                counts["bot_hits"] += 1
            if link and rng.random() < CLICK_RATE.get(channel, 0.2):
                clicked_at = as_of + dt.timedelta(hours=rng.uniform(0.5, 72))
                clock["now"] = clicked_at
                answer = client.get(link.group(0), headers={"User-Agent": PHONE_BROWSER})
                if answer.status_code == 302:
                    counts["clicked"] += 1
        if arm == "holdout":
            rate = holdout_rate
        elif status == "sent":
            rate = clicked_rate if clicked_at else sent_rate
        else:
            rate = holdout_rate  # planned but not delivered (consent, cap, no address): no message, no effect
        if rng.random() >= rate:
            continue
        who = _identifier(store, person_id)
        if who is None:
            continue
        start = clicked_at or as_of
        at = start + dt.timedelta(days=rng.uniform(0.5, 29 - (start - as_of).total_seconds() / 86400))
        lines.append({"event": event, "ts": at.isoformat(), **who,
                      "properties": {"campaign_response": origin, "simulated": True},
                      "id": f"demo-{origin}-{person_id}-{event}"})
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    source_class = project.plugins.registry().source_class("jsonl")
    settings = {**project.config.sources["events"], "path": str(out_file)}
    source = source_class("demo_responses", settings, project.directory)
    summary = project_ingestor(project).ingest(source)
    counts["follow_up_events"] = summary.events
    return counts
