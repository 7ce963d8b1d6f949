"""Guard rails as a property: for generated people (consent, time zone, earlier sends, addresses), the
outcome of every send is the one the documented order predicts: consent -> quiet hours -> frequency cap
-> holdout -> channel fallback, with the first rail that stops a send named in its reason."""

from __future__ import annotations

import datetime as dt
import tempfile
import zoneinfo
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motorcade.activation.guardrails import in_holdout
from motorcade.activation.runner import run_once
from motorcade.activation.settings import ActivationContext
from motorcade.activation.testing import memory_channel_plugin
from motorcade.model import Consent
from motorcade.plugins import load_plugins
from motorcade.project import Project

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 11, 23, 22, 30, tzinfo=SH)  # quiet in Shanghai, 14:30 in London, 09:30 in New York
ZONES = ["Asia/Shanghai", "Europe/London", "America/New_York"]

person_state = st.fixed_dictionaries({
    "global_optout": st.booleans(),
    "wecom_optout": st.booleans(),
    "sms_optout": st.booleans(),
    "zone": st.sampled_from(ZONES),
    "earlier_sends": st.integers(0, 3),
    "earlier_transactional": st.integers(0, 2),
    "wecom_id": st.booleans(),
    "phone": st.booleans(),
})


def expected(pid: int, p: dict) -> tuple[str, str | None, str]:
    """(status, channel, reason prefix) the documented order predicts."""
    if p["global_optout"]:
        return "suppressed", None, "consent:"
    allowed = [c for c, out in (("wecom", p["wecom_optout"]), ("sms", p["sms_optout"])) if not out]
    if not allowed:
        return "suppressed", None, "consent:"
    if p["zone"] == "Asia/Shanghai":
        return "deferred", None, "quiet_hours:"
    if p["earlier_sends"] >= 2:
        return "suppressed", None, "frequency_cap:"
    if in_holdout(pid, "promo", 30):
        return "holdout", None, "holdout:"
    if "wecom" in allowed and p["wecom_id"]:
        return "sent", "wecom", ""
    if "sms" in allowed and p["phone"]:
        return "sent", "sms", "fallback: wecom -> sms"
    return "suppressed", None, "no channel:"


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(states=st.lists(person_state, min_size=1, max_size=25))
def test_every_send_ends_as_the_guard_rail_order_predicts(states):
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "rules").mkdir()
        (directory / "templates").mkdir()
        (directory / "motorcade.toml").write_text("""
[project]
name = "g"
timezone = "Asia/Shanghai"
[guardrails]
frequency_cap = { count = 2, days = 7 }
quiet_hours = { start = "21:00", end = "09:00" }
""", encoding="utf-8")
        (directory / "rules" / "r.mc").write_text("""
segment everyone { where profile.x = 1 }
campaign promo { audience everyone  schedule daily at 22:00  holdout 30%
  via wecom template "m" fallback sms template "m" }
""", encoding="utf-8")
        (directory / "templates" / "m.txt").write_text("hi {{ person.name }}", encoding="utf-8")
        wecom = memory_channel_plugin("wecom", address_type="wecom_external_userid")
        sms = memory_channel_plugin("sms", address_type="phone")
        pm = load_plugins(entry_points=False)
        pm.register(wecom, name="wecom")
        pm.register(sms, name="sms")
        project = Project(directory, plugin_manager=pm)
        store = project.store
        earlier = NOW - dt.timedelta(days=2)
        with store.transaction():
            ids = []
            for i, p in enumerate(states):
                pid = store.create_person({"name": f"p{i}", "x": 1, "timezone": p["zone"]})
                ids.append(pid)
                if p["global_optout"]:
                    store.set_consent(Consent(pid, "*", False, earlier, "crm"))
                for channel in ("wecom", "sms"):
                    if p[f"{channel}_optout"]:
                        store.set_consent(Consent(pid, channel, False, earlier, "crm"))
                if p["wecom_id"]:
                    store.conn.execute("INSERT INTO identifiers (type, value, person_id) VALUES (?, ?, ?)",
                                       ("wecom_external_userid", f"wm{pid}", pid))
                if p["phone"]:
                    store.conn.execute("INSERT INTO identifiers (type, value, person_id) VALUES (?, ?, ?)",
                                       ("phone", f"+86138{pid:08d}", pid))
                for n in range(p["earlier_sends"] + p["earlier_transactional"]):
                    transactional = n >= p["earlier_sends"]
                    store.enqueue_sends([{
                        "idempotency_key": f"old:{pid}:{n}", "origin_kind": "campaign", "origin": "old",
                        "run_id": "old", "person_id": pid, "channel": "sms", "template": "m", "revision": "r0",
                        "status": "sent", "payload": {"transactional": transactional}}], at=earlier)
        store.record_segment_run("everyone", ids, revision="t", as_of=NOW, computed_at=NOW, duration_ms=0,
                                 plan=None)
        ctx = ActivationContext.for_project(project, clock=lambda: NOW, worker_id="w")
        run_once(ctx)
        sends = {s["person_id"]: s for s in store.list_sends(origin="promo", limit=1000)}
        assert set(sends) == set(ids)
        for pid, p in zip(ids, states):
            status, channel, reason = expected(pid, p)
            send = sends[pid]
            assert send["status"] == status, (p, send["reason"])
            assert (send["reason"] or "").startswith(reason), (p, send["reason"])
            if channel:
                assert send["channel"] == channel
        (run,) = store.runs_of("campaign", "promo")
        assert run["id"] == "campaign:promo:20261123T1400Z"  # the 22:00 slot
        snapshot = store.audience_snapshot(run["id"])
        assert {pid for pid, arm in snapshot.items() if arm == "holdout"} == {
            pid for pid in ids if in_holdout(pid, "promo", 30)}
        assert sorted(m.person_id for m in wecom.sent + sms.sent) == sorted(
            pid for pid, p in zip(ids, states) if expected(pid, p)[0] == "sent")
        project.close()
