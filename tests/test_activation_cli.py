"""`motorcade run`, `serve` and `sends` end to end, plus the activation part of `motorcade check`."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

from motorcade.activation.check import check_activation, check_project
from motorcade.activation.testing import KeyCountingServer, memory_channel_plugin
from motorcade.cli import main
from motorcade.dsl.rules import rule_set_from_text
from motorcade.model import Event
from motorcade.project import Project

SH = zoneinfo.ZoneInfo("Asia/Shanghai")


def write_project(directory: Path, rules: str, *, channels: str = "", templates: dict[str, str]) -> None:
    (directory / "rules").mkdir(parents=True, exist_ok=True)
    (directory / "templates").mkdir(exist_ok=True)
    (directory / "motorcade.toml").write_text(f"""
[project]
name = "cli"
timezone = "Asia/Shanghai"
{channels}
[activation]
poll_seconds = 0.5
claim_seconds = 5
max_attempts = 1
""", encoding="utf-8")
    (directory / "rules" / "main.mc").write_text(rules, encoding="utf-8")
    for name, text in templates.items():
        (directory / "templates" / name).write_text(text, encoding="utf-8")


def add_members(store, segment, ids):
    now = dt.datetime.now(dt.timezone.utc)
    store.record_segment_run(segment, ids, revision="test", as_of=now, computed_at=now, duration_ms=0, plan=None)


def past_minute() -> str:
    return (dt.datetime.now(SH) - dt.timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M")


def test_run_and_sends_commands_with_masked_addresses(tmp_path, register_plugin, capsys):
    sms = memory_channel_plugin("sms", address_type="phone", answers={})
    register_plugin(sms, name="sms")
    directory = tmp_path / "p"
    write_project(directory, f"""
segment all_owners {{ where profile.is_owner = true }}
campaign notice {{ audience all_owners  schedule at {past_minute()}  via sms template "n"  quiet hours off }}
""", templates={"n.txt": "{{ person.name }}您好"})
    project = Project(directory)
    store = project.store
    with store.transaction():
        ids = [store.create_person({"name": f"客户{i}", "is_owner": True}) for i in range(3)]
        for i, pid in enumerate(ids[:2]):
            store.conn.execute("INSERT INTO identifiers (type, value, person_id) VALUES ('phone', ?, ?)",
                               (f"+861380000000{i}", pid))
    add_members(store, "all_owners", ids)
    assert main(["--project", str(directory), "run", "--once"]) == 0
    out = capsys.readouterr().out
    assert "planned 1 campaign runs" in out and "sent 2" in out
    assert main(["--project", str(directory), "sends", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["status"] for r in rows) == ["sent", "sent", "suppressed"]
    addresses = {r["address"] for r in rows if r["status"] == "sent"}
    assert addresses == {"+86138****0000", "+86138****0001"}  # masked by default
    assert all(len(r["revision"]) == 12 for r in rows)
    assert main(["--project", str(directory), "sends", "list", "--status", "suppressed"]) == 0
    assert "reason: no channel: sms: no phone" in capsys.readouterr().out
    assert main(["--project", str(directory), "sends", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert {(s["status"], s["count"]) for s in stats} == {("sent", 2), ("suppressed", 1)}
    # retry: the suppressed send goes back to planned once the person has a phone
    with store.transaction():
        store.conn.execute("INSERT INTO identifiers (type, value, person_id) VALUES ('phone', '+8613900000009', ?)",
                           (ids[2],))
    assert main(["--project", str(directory), "sends", "retry"]) == 2  # usage error: keys or --all
    capsys.readouterr()
    assert main(["--project", str(directory), "sends", "retry", "--status", "suppressed", "--all"]) == 0
    assert "1 sends put back to planned" in capsys.readouterr().out
    assert main(["--project", str(directory), "run"]) == 0
    # planned at the first run: the person had no phone then, so the stored steps still say so
    assert store.list_sends(person_id=ids[2])[0]["status"] == "suppressed"
    project.close()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_two_serve_processes_share_the_work_send_each_message_once_and_sleep_when_idle(tmp_path):
    with KeyCountingServer() as server:
        directory = tmp_path / "p"
        write_project(directory, f"""
segment all_owners {{ where profile.is_owner = true }}
campaign notice {{ audience all_owners  schedule at {past_minute()}  via webhook template "n"  transactional }}
trigger thanks {{ on order  via webhook template "t"  transactional  reenter always }}
""", channels=f'[channels.webhook]\nurl = "{server.url}"\nsecret = "s"\n',
            templates={"n.txt": "{{ person.name }}", "t.txt": "谢谢 {{ event.model }}"})
        project = Project(directory)
        store = project.store
        with store.transaction():
            ids = [store.create_person({"name": f"客户{i}", "is_owner": True}) for i in range(300)]
        add_members(store, "all_owners", ids)
        env = {**os.environ, "MOTORCADE_LOAD_PLUGINS": "webhook", "MOTORCADE_PROJECT": str(directory)}
        procs = [subprocess.Popen([sys.executable, "-m", "motorcade.cli", "serve"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        try:
            deadline = time.monotonic() + 30
            while len(server.snapshot()[0]) < 300 and time.monotonic() < deadline:
                time.sleep(0.1)
            with store.transaction():  # events arriving while serving fire the trigger
                store.insert_events([Event("order", dt.datetime.now(dt.timezone.utc), pid, {"model": "X5"}, "dms",
                                           f"o{pid}") for pid in ids[:20]])
            while len(server.snapshot()[0]) < 320 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
            before = [_cpu_seconds(p.pid) for p in procs]
            time.sleep(2.0)  # idle: nothing due, nothing new
            idle_cpu = [_cpu_seconds(p.pid) - b for p, b in zip(procs, before)]
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            outputs = [proc.communicate(timeout=20) for proc in procs]
        deliveries, _ = server.snapshot()
        assert len(deliveries) == 320 and set(deliveries.values()) == {1}  # no crash: not even a re-delivery
        assert all(proc.returncode == 0 for proc in procs), outputs
        assert all(b"stopped after" in out for out, _ in outputs)
        assert max(idle_cpu) < 0.4, idle_cpu  # polling every 0.5 s, not spinning
        assert set(store.status_counts_of_sends()) == {"sent"}
        project.close()


def test_check_reports_missing_templates_unknown_fields_and_uninstalled_channels(tmp_path, register_plugin):
    sms = memory_channel_plugin("sms", address_type="phone", max_length=70)
    register_plugin(sms, name="sms")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "a.txt").write_text("{{ person.nmae }} {{ advisor.name }}")
    rules = rule_set_from_text("""
segment s { where profile.x = 1 }
campaign c { audience s  schedule cron "0 25 * * *"  via sms template "a" fallback wecom template "a" }
trigger t { on order  via sms template "missing" }
""")
    from motorcade.plugins import get_plugin_manager

    problems = [str(p) for p in check_activation(rules, templates_dir=tmp_path / "templates",
                                                   registry=get_plugin_manager().registry(), attributes={"name"})]
    assert any("`person.nmae` does not exist" in p and "person.name" in p for p in problems)
    assert any("hour '25' is outside 0-23" in p for p in problems)
    assert any("no channel named 'wecom' is installed" in p for p in problems)
    assert any("template 'missing' for channel sms not found" in p for p in problems)
    assert len(problems) == 4


def test_check_project_uses_the_projects_catalogue(motorcade_project, register_plugin):
    register_plugin(memory_channel_plugin("sms", address_type="phone"), name="sms")
    directory = motorcade_project.directory
    (directory / "rules" / "m.mc").write_text('segment s { where profile.name = "x" }\n'
                                              'campaign c { audience s  via sms template "a" }\n')
    (directory / "templates").mkdir()
    (directory / "templates" / "a.txt").write_text("{{ profile.name }} {{ profile.plate }}")
    with motorcade_project.store.transaction():
        motorcade_project.store.create_person({"name": "张伟"})
    problems = check_project(motorcade_project)
    assert [p.message for p in problems] == ["`profile.plate` does not exist"]


def test_reasons_quoting_phone_numbers_or_emails_are_masked(monkeypatch):
    from motorcade.masking import mask_message as _mask_text

    text = 'permanent: HTTP 400: {"PhoneNumber": "+8613812345678", "To": "zhang.wei@example.com"}'
    masked = _mask_text(text)
    assert "+8613812345678" not in masked and "+86138****5678" in masked and "z***@example.com" in masked
    monkeypatch.setenv("MOTORCADE_SHOW_PII", "1")
    assert _mask_text(text) == text


def test_campaign_through_the_email_plugin_to_a_local_smtp_server(tmp_path, motorcade_pm):
    """The email channel plugin end to end: planned, rendered with a subject, delivered over SMTP once."""
    import email as email_lib
    import email.policy
    import socket

    import motorcade_channels_email
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            self.messages.append(email_lib.message_from_bytes(envelope.content, policy=email_lib.policy.default))
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        motorcade_pm.register(motorcade_channels_email, name="email")
        directory = tmp_path / "p"
        write_project(directory, f"""
segment all_owners {{ where profile.is_owner = true }}
campaign recall {{ audience all_owners  schedule at {past_minute()}  via email template "recall"  quiet hours off }}
""", channels=f'[channels.email]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "plain"\n'
               f'from = "宝悦汽车 <care@example-dealer.cn>"\n',
            templates={"recall.txt": "Subject: {{ person.name }}，您的爱车该保养了\n\n{{ person.name }}您好，请回厂保养。"})
        project = Project(directory, plugin_manager=motorcade_pm)
        store = project.store
        with store.transaction():
            ids = [store.create_person({"name": n, "is_owner": True}) for n in ("张伟", "李娜")]
            for pid in ids:
                store.conn.execute("INSERT INTO identifiers (type, value, person_id) VALUES ('email', ?, ?)",
                                   (f"p{pid}@example.com", pid))
        add_members(store, "all_owners", ids)
        from motorcade.activation.runner import run_once
        from motorcade.activation.settings import ActivationContext

        report = run_once(ActivationContext.for_project(project))
        assert report.dispatched["sent"] == 2
        assert sorted(str(m["Subject"]) for m in inbox.messages) == ["张伟，您的爱车该保养了", "李娜，您的爱车该保养了"]
        keys = {m["X-Motorcade-Idempotency-Key"] for m in inbox.messages}
        assert keys == {s["idempotency_key"] for s in store.list_sends()}
        project.close()
    finally:
        controller.stop()


def test_run_says_what_happened_to_the_sends_and_why_nothing_was_planned(tmp_path, register_plugin, capsys):
    sms = memory_channel_plugin("sms", address_type="phone", answers={})
    register_plugin(sms, name="sms")
    directory = tmp_path / "p"
    write_project(directory, f"""
segment all_owners {{ where profile.is_owner = true }}
campaign notice {{ audience all_owners  schedule at {past_minute()}  via sms template "n"  quiet hours off }}
trigger on_order {{ on order  via sms template "n" }}
""", templates={"n.txt": "{{ person.name }}您好"})
    project = Project(directory)
    store = project.store
    with store.transaction():
        ids = [store.create_person({"name": f"客户{i}", "is_owner": True}) for i in range(3)]
        store.conn.execute("INSERT INTO identifiers (type, value, person_id) VALUES ('phone', '+8613800000000', ?)",
                           (ids[0],))
    add_members(store, "all_owners", ids)
    assert main(["--project", str(directory), "run", "--once"]) == 0
    out = capsys.readouterr().out
    assert "planned 1 campaign runs (3 sends)" in out and "sent 1" in out
    assert "2 suppressed: no channel: sms: no phone" in out  # planned, then stopped: the reason is shown
    assert main(["--project", str(directory), "run", "--once"]) == 0
    out = capsys.readouterr().out
    assert "nothing was planned:" in out
    assert "campaign notice: the slot" in out and "was planned already" in out
    assert "trigger on_order: no new events that fire it" in out
    project.close()


def test_check_reports_activation_findings_in_the_one_error_format(tmp_path, capsys):
    """file:line:col relative to the project, the line with a caret under the clause, a hint; an unknown channel
    once (not again as "not installed"); a cron error at the schedule clause's own line."""
    directory = tmp_path / "p"
    write_project(directory, """segment a { where has car }
campaign c {
  audience a

  schedule cron "0 25 * * *"
  via nochan template "t"
}
campaign d { audience a  schedule daily at 10:00  via sms template "broken" }
""", templates={"broken.txt": "Hello\n  {{ person.name \n"})
    assert main(["--project", str(directory), "check"]) == 1
    out = capsys.readouterr().out
    assert str(directory) not in out  # paths relative to the project
    assert out.count("`nochan`") == 1 and "no channel named 'nochan'" not in out
    assert "rules/main.mc:5:12: error: cron \"0 25 * * *\": hour '25' is outside 0-23\n" \
           "      schedule cron \"0 25 * * *\"\n               ^" in out
    assert "rules/main.mc:6:7: error: template 't' for channel nochan not found in templates\n" in out
    assert "templates/broken.txt:2:3: error: syntax error" in out and "\n      ^\n" in out
