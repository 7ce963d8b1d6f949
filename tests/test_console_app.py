"""The console's HTTP side without a browser (issue #21): log-in, signed session cookies, CSRF on every
POST, tokens checked on every request, and actions narrowed by the caller's scope through the core."""

from __future__ import annotations

import json
import re

import pytest
from starlette.testclient import TestClient

from motorcade.console.app import Console
from motorcade.console.sessions import COOKIE
from motorcade.project import Project
from motorcade.testing import build_console_project


@pytest.fixture
def console(tmp_path):
    project, tokens = build_console_project(tmp_path / "p")
    directory = project.directory
    project.close()
    app_console = Console(directory)
    return app_console, TestClient(app_console.app()), directory, tokens


def csrf_of(response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', response.text).group(1)


def log_in(client, token: str):
    response = client.post("/login", data={"token": token, "csrf": csrf_of(client.get("/login"))})
    assert response.status_code == 200 and str(response.url).endswith("/"), response.text[:500]
    return response


def audit(directory, action: str) -> list[dict]:
    project = Project(directory)
    try:
        return project.store.audit_entries(action=action)
    finally:
        project.close()


def test_pages_need_a_log_in_and_an_unknown_token_is_refused(console):
    _, client, _, _ = console
    assert str(client.get("/segments").url).endswith("/login")
    page = client.get("/login")
    response = client.post("/login", data={"token": "mct_made_up", "csrf": csrf_of(page)})
    assert response.status_code == 401 and "not known" in response.text
    assert str(client.get("/").url).endswith("/login")


def test_a_post_without_the_sessions_csrf_token_is_refused(console):
    _, client, directory, tokens = console
    page = client.get("/login")
    assert client.post("/login", data={"token": tokens["gm"]}).status_code == 403  # no token: no log-in
    assert client.post("/login", data={"token": tokens["gm"], "csrf": "guess"}).status_code == 403
    log_in(client, tokens["gm"])
    before = client.get("/sends").text.count('name="key"')
    response = client.post("/sends", data={"key": "k1"})  # no csrf
    assert response.status_code == 403 and "CSRF" in response.text
    assert client.get("/sends").text.count('name="key"') == before == 2
    assert csrf_of(page) != csrf_of(client.get("/sends"))  # log-in starts a new session


def test_a_tampered_or_foreign_cookie_is_not_a_session(console):
    app_console, client, _, tokens = console
    log_in(client, tokens["gm"])
    cookie = client.cookies[COOKIE]
    sid, signature = cookie.split(".")
    client.cookies.set(COOKIE, sid + "." + signature[:-1] + ("0" if signature[-1] != "0" else "1"))
    assert str(client.get("/").url).endswith("/login")
    other = Console(app_console.directory)  # another console process: another key
    client.cookies.set(COOKIE, other.sessions.sign(sid))
    assert str(client.get("/").url).endswith("/login")
    client.cookies.set(COOKIE, cookie)
    assert client.get("/").status_code == 200


def test_a_token_revoked_after_log_in_ends_the_session(console):
    _, client, directory, tokens = console
    log_in(client, tokens["sm1"])
    assert client.get("/").status_code == 200
    project = Project(directory)
    try:
        [token] = [t for t in project.store.list_tokens("sm1")]
        project.store.revoke_token(token["id"])
    finally:
        project.close()
    response = client.get("/")
    assert response.status_code == 401 and "revoked" in response.text
    assert str(client.get("/").url).endswith("/login")


def test_the_owner_link_works_once(console):
    app_console, client, _, _ = console
    code = app_console.sessions.new_owner_code()
    response = client.get(f"/login/owner?code={code}")
    assert response.status_code == 200 and "group_admin" in response.text
    assert "Quarantine" in response.text  # the local owner operates
    fresh = TestClient(app_console.app())
    assert fresh.get(f"/login/owner?code={code}").status_code == 401


def test_retry_from_the_console_touches_only_the_callers_dead_letters_and_is_audited(console):
    _, client, directory, tokens = console
    log_in(client, tokens["sm1"])
    page = client.get("/sends")
    keys = re.findall(r'name="key" value="([^"]+)"', page.text)
    assert keys == ["k1"]
    response = client.post("/sends", data={"csrf": csrf_of(page), "key": ["k1", "k5"]})  # k5: SH02's person
    assert "1 sends put back" in response.text
    project = Project(directory)
    try:
        status = {s["idempotency_key"]: s["status"] for s in project.store.list_sends(limit=10)}
    finally:
        project.close()
    assert status["k1"] == "planned" and status["k5"] == "dead"
    [entry] = audit(directory, "console.sends.retry")
    assert entry["actor"] == "sm1"


def test_export_needs_the_export_permission_is_masked_and_audited(console):
    _, client, directory, tokens = console
    log_in(client, tokens["ana"])
    response = client.get("/segments/visited/members.csv")
    assert response.status_code == 200
    lines = response.text.strip().splitlines()
    assert lines[0] == "person_id,name,phone,entered_at" and len(lines) == 7
    assert "张三" not in response.text and "张**" in response.text
    [entry] = audit(directory, "console.segments.members")
    assert entry["actor"] == "ana"


def test_a_store_user_may_not_edit_or_check_a_group_rule(console):
    _, client, directory, tokens = console
    log_in(client, tokens["sm1"])
    assert client.get("/segments/visited/edit").status_code == 403
    page = client.get("/segments/sh01_visited/edit")
    response = client.post("/segments/visited/edit", data={"csrf": csrf_of(page), "action": "publish",
                                                            "text": "segment visited { where did purchase }\n"})
    assert response.status_code == 403
    assert "did service_visit" in (directory / "rules" / "group.mc").read_text(encoding="utf-8")
    # nor move the store's file to the group: the edited text must stay inside the caller's scope too
    response = client.post("/segments/sh01_visited/edit", data={
        "csrf": csrf_of(page), "action": "publish",
        "text": 'segment sh01_visited { where did service_visit }\n'})
    assert response.status_code == 403 and audit(directory, "console.publish") == []


def test_the_live_check_answers_with_the_caret_diagnostic(console):
    _, client, _, tokens = console
    log_in(client, tokens["sm1"])
    page = client.get("/segments/sh01_visited/edit")
    answer = client.post("/segments/sh01_visited/check", data={"text": 'segment sh01_visited {\n  where did\n}\n'},
                         headers={"x-csrf-token": csrf_of(page)}).json()
    [error] = [e for e in answer["errors"] if e["severity"] == "error"]
    assert error["line"] == 3 and "^" in error["rendered"] and "sh01.mc:3" in error["rendered"]
    assert client.post("/segments/sh01_visited/check", data={"text": "x"}).status_code == 403


def test_rule_text_is_highlighted_and_escaped():
    from motorcade.console.highlight import highlight

    html = str(highlight('segment a "<b>" { where tag x >= 4 } # note <i>'))
    assert '<span class="k">segment</span>' in html and '<span class="s">&#34;&lt;b&gt;&#34;</span>' in html
    assert '<span class="n">4</span>' in html and '<span class="c"># note &lt;i&gt;</span>' in html
    assert "<b>" not in html and "<i>" not in html


def test_quarantine_rows_are_masked_and_retried_by_the_groups_operators_only(console):
    app_console, client, directory, tokens = console
    log_in(client, tokens["gm"])
    assert client.get("/quarantine").status_code == 403  # a marketer does not operate ingest
    client.get(f"/login/owner?code={app_console.sessions.new_owner_code()}")
    page = client.get("/quarantine")
    assert "has no name" in page.text and "13800138000" not in page.text  # the phone is masked
    [row_id] = re.findall(r'name="id" value="(\d+)"', page.text)
    response = client.post("/quarantine", data={"csrf": csrf_of(page), "id": row_id})
    assert "crm: no longer configured; 1 row(s) left in quarantine" in response.text
    [entry] = audit(directory, "console.quarantine.retry")
    assert json.loads(entry["arguments"])["ids"] == [int(row_id)] and "local owner" in entry["actor"]


def test_personal_data_stays_masked_even_with_show_pii_set(console, monkeypatch):
    _, client, _, tokens = console
    monkeypatch.setenv("MOTORCADE_SHOW_PII", "1")
    log_in(client, tokens["gm"])  # a group marketer holds `pii`: the CLI would unmask for them
    page = client.get("/segments/visited").text
    assert "张三一" not in page and "张**" in page


def test_journeys_show_their_graph_with_counts_to_those_who_may_read_them(console):
    app_console, client, directory, tokens = console
    project = Project(directory)  # people 1-4 (SH01) and 5-8 (SH02) entered the group journey
    try:
        with project.store.transaction():
            project.store.add_journey_states([{
                "journey": "welcome_back", "person_id": pid, "entry": 1, "version": "v1", "arm": "treatment",
                "step": "thanks", "status": "active", "entered_at": 1, "due_at": 1, "waiting_since": None,
                "updated_at": 1} for pid in range(1, 9)])
    finally:
        project.close()
    log_in(client, tokens["sm1"])
    assert "/journeys" in client.get("/").text
    page = client.get("/journeys")  # as `motorcade journeys status`: a store manager's figures count their people
    assert page.status_code == 200 and 'data-journey="welcome_back"' in page.text
    assert '<strong class="entered">4</strong>' in page.text
    client.get(f"/login/owner?code={app_console.sessions.new_owner_code()}")
    page = client.get("/journeys")
    assert page.status_code == 200 and 'data-journey="welcome_back"' in page.text and "回厂关怀" in page.text
    assert '<strong class="entered">8</strong>' in page.text
    assert "<svg" in page.text and "thanks" in page.text and "survey" in page.text
