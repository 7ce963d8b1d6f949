"""The HTTP collector against Segment's documented API: the real segment-analytics-python client, status codes
and reasons for bad input, write keys, gzip, limits, deduplication, clock skew, One-ID, event triggers."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import sqlite3
import time

import pytest

from motorcade.project import Project
from motorcade_sources_segment_http.server import BackgroundServer, running_collector
from motorcade_sources_segment_http.spec import Invalid, normalise

KEY = "wk_app_secret_123"
CONFIG = """
[project]
name = "collect"
timezone = "Asia/Shanghai"

[sources.app]
type = "segment_http"
write_key_env = "TEST_APP_WRITE_KEY"
user_id = "app_user_id"
traits = { phone = "phone", email = "email" }
identify_attributes = { name = "name", city = "city" }

[sources.web]
type = "segment_http"
write_key_file = "web.key"
"""
RULES = """
trigger test_drive_thanks {
  on test_drive
  via webhook template "thanks"
}
"""


def make_project(tmp_path):
    (tmp_path / "motorcade.toml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "web.key").write_text("wk_web_key\n", encoding="utf-8")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "t.mc").write_text(RULES, encoding="utf-8")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "thanks.txt").write_text("Thanks {{ person.name }}", encoding="utf-8")
    from motorcade.plugins import load_plugins

    return Project(tmp_path, plugin_manager=load_plugins())


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_APP_WRITE_KEY", KEY)
    project = make_project(tmp_path)
    yield project
    project.close()


@pytest.fixture(scope="module")
def shared():
    """One project and running collector for the tests that only look at answers (they use distinct ids)."""
    import os
    import tempfile

    os.environ["TEST_APP_WRITE_KEY"] = KEY
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(__import__("pathlib").Path(tmp))
        with running_collector(project, idle_seconds=0.01) as running:
            with BackgroundServer(running.app) as server:
                running.url = server.url
                yield project, running
        project.close()


@pytest.fixture
def collector(project):
    with running_collector(project, idle_seconds=0.01) as running:
        with BackgroundServer(running.app) as server:
            running.url = server.url
            yield running


def rows(project, sql, params=()):
    conn = sqlite3.connect(project.directory / "motorcade.db")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def post(url, path, body, *, key=KEY, gzipped=False, raw=None, headers=None):
    import httpx

    data = raw if raw is not None else json.dumps(body).encode("utf-8")
    head = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        head["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    if gzipped:
        data = gzip.compress(data)
        head["Content-Encoding"] = "gzip"
    return httpx.post(url + path, content=data, headers=head, timeout=10)


def test_the_real_segment_client_delivers_every_message_once_with_one_id_and_trigger_sends(project):
    """...and the trigger on the tracked event sends through a local webhook receiver (collect --dispatch)."""
    from segment.analytics.client import Client

    from motorcade.activation.testing import KeyCountingServer

    import contextlib

    from motorcade.plugins import load_plugins

    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(KeyCountingServer())
        config = project.directory / "motorcade.toml"
        config.write_text(config.read_text(encoding="utf-8") + f'\n[channels.webhook]\nurl = "{receiver.url}"\n'
                          'secret = "s"\n', encoding="utf-8")
        project = Project(project.directory, plugin_manager=load_plugins())
        stack.callback(project.close)
        collector = stack.enter_context(running_collector(project, idle_seconds=0.01, dispatch=True))
        collector.url = stack.enter_context(BackgroundServer(collector.app)).url
        _drive_the_real_client(project, collector, receiver)


def _drive_the_real_client(project, collector, receiver):
    from segment.analytics.client import Client

    client = Client(write_key=KEY, host=collector.url, gzip=True, upload_size=100, max_retries=3)
    client.identify("u-1", {"phone": "13812345678", "name": "张伟", "city": "上海"}, anonymous_id="anon-1")
    client.track(anonymous_id="anon-1", event="page_scroll", properties={"depth": 50})
    client.alias("anon-2", "u-1")  # previous id (an anonymous visitor), then the user id
    client.page("u-1", category="cars", name="X5")
    for i in range(2000):
        client.track(f"u-{i % 7 + 1}", "configurator_view", {"step": i})
    client.track("u-1", "test_drive", {"store": "SH001"})
    client.flush()
    client.join()
    assert wait_for(lambda: rows(project, "SELECT count(*) FROM events")[0][0] >= 2003)
    events = dict(rows(project, "SELECT name, count(*) FROM events WHERE source = 'app' GROUP BY name"))
    assert events == {"page_scroll": 1, "page_viewed": 1, "configurator_view": 2000, "test_drive": 1}
    # identify linked the anonymous visitor's earlier event to the person; the phone became an identifier
    person = rows(project, "SELECT person_id FROM identifiers WHERE type = 'app_user_id' AND value = 'u-1'")[0][0]
    assert rows(project, "SELECT person_id FROM events WHERE name = 'page_scroll'")[0][0] == person
    assert rows(project, "SELECT person_id FROM identifiers WHERE type = 'phone'")[0][0] == person
    assert rows(project, "SELECT person_id FROM identifiers WHERE value = 'anon-2'")[0][0] == person
    assert json.loads(rows(project, "SELECT attributes FROM people WHERE id = ?", (person,))[0][0])["city"] == "上海"
    # the trigger planned its send without waiting for a poll
    assert wait_for(lambda: rows(project, "SELECT count(*) FROM outbox WHERE origin = 'test_drive_thanks'")[0][0] == 1)
    # ... and delivered through the webhook channel to the local receiver, once
    assert wait_for(lambda: len(receiver.deliveries) == 1)
    assert list(receiver.deliveries.values()) == [1]
    assert rows(project, "SELECT status FROM outbox WHERE origin = 'test_drive_thanks'")[0][0] == "sent"
    context = json.loads(rows(project, "SELECT properties FROM events WHERE name = 'test_drive'")[0][0])["context"]
    assert context["library"]["name"] == "analytics-python"


def test_a_segment_enter_trigger_fires_from_live_events_without_a_segment_run(project, collector):
    """`on enter segment S`: the processor recomputes the segments such triggers watch after new data (at most
    once a second) and plans the trigger for who entered, without `segments compute` or `serve`."""
    (project.directory / "rules" / "s.mc").write_text(
        "segment drivers { where did test_drive }\n"
        'trigger welcome_driver { on enter segment drivers  via webhook template "thanks" }\n', encoding="utf-8")
    assert post(collector.url, "/v1/track", {"userId": "u-seg", "event": "test_drive", "messageId": "seg-1"}
                ).status_code == 200
    assert wait_for(lambda: rows(project, "SELECT count(*) FROM outbox WHERE origin = 'welcome_driver'")[0][0] == 1)
    assert rows(project, "SELECT count(*) FROM segment_members WHERE segment = 'drivers'")[0][0] == 1
    # a second event of the same person changes no membership: no second firing
    assert post(collector.url, "/v1/track", {"userId": "u-seg", "event": "test_drive", "messageId": "seg-2"}
                ).status_code == 200
    time.sleep(2.5)
    assert rows(project, "SELECT count(*) FROM outbox WHERE origin = 'welcome_driver'")[0][0] == 1


def test_a_message_sent_twice_is_stored_once(project, collector):
    message = {"userId": "u-9", "event": "order", "messageId": "m-1", "timestamp": "2026-11-20T08:00:00Z"}
    assert post(collector.url, "/v1/track", message).status_code == 200
    answer = post(collector.url, "/v1/batch", {"batch": [{**message, "type": "track"}]})
    assert answer.status_code == 200 and answer.json()["duplicates"] == 1
    assert wait_for(lambda: collector.processor.backlog(project.store) == 0)
    assert rows(project, "SELECT count(*) FROM inbox")[0][0] == 1
    assert rows(project, "SELECT count(*) FROM events WHERE dedup_key = 'm-1'")[0][0] == 1


@pytest.mark.parametrize("path, body, status, reason", [
    ("/v1/track", {"userId": "u", "messageId": "x"}, 400, "needs an event name"),
    ("/v1/track", {"event": "e", "messageId": "x"}, 400, "needs a userId or an anonymousId"),
    ("/v1/alias", {"userId": "u", "messageId": "x"}, 400, "needs previousId and userId"),
    ("/v1/group", {"userId": "u", "messageId": "x"}, 400, "needs a groupId"),
    ("/v1/track", {"userId": "u", "event": "e", "properties": [1]}, 400, "properties must be a JSON object"),
    ("/v1/track", {"userId": "u", "event": "e", "timestamp": "yesterday"}, 400, "is not an ISO 8601 date-time"),
    ("/v1/track", {"userId": "u", "event": "e", "timestamp": "1970-01-01T00:00:00Z"}, 400, "is outside"),
    ("/v1/track", {"userId": "u", "event": "e", "timestamp": "2999-01-01T00:00:00Z"}, 400, "is outside"),
    ("/v1/track", {"type": "identify", "userId": "u", "event": "e"}, 400, "sent to the track endpoint"),
    ("/v1/batch", {"batch": "no"}, 400, "needs a 'batch' array"),
])
def test_bad_messages_get_400_with_the_reason_and_are_quarantined(shared, path, body, status, reason):
    project, collector = shared
    answer = post(collector.url, path, body)
    assert answer.status_code == status and reason in answer.json()["reason"]
    if path != "/v1/batch":
        assert any(reason in r for (r,) in rows(project, "SELECT reason FROM quarantine WHERE source = 'app'"))


def test_a_bad_message_in_a_batch_is_quarantined_and_the_good_ones_kept(project, collector):
    batch = [{"type": "track", "userId": "u", "event": "ok", "messageId": f"g{i}"} for i in range(3)]
    batch.insert(1, {"type": "track", "userId": "u", "messageId": "bad"})
    answer = post(collector.url, "/v1/batch", {"batch": batch})
    assert answer.status_code == 200
    assert answer.json()["accepted"] == 3 and answer.json()["quarantined"][0]["index"] == 1
    assert wait_for(lambda: rows(project, "SELECT count(*) FROM events WHERE name = 'ok'")[0][0] == 3)
    assert rows(project, "SELECT count(*) FROM quarantine WHERE reason LIKE '%event name%'")[0][0] == 1


def test_transport_errors(shared):
    project, collector = shared
    good = {"userId": "u", "event": "e"}
    assert post(collector.url, "/v1/track", good, key=None).status_code == 401
    assert post(collector.url, "/v1/track", good, key="wrong").status_code == 401
    assert post(collector.url, "/v1/track", good, key="wk_web_key").status_code == 200  # the web source's key
    assert post(collector.url, "/v1/track", None, raw=b"{not json").status_code == 400
    assert post(collector.url, "/v1/track", None, raw=b"[1, 2]").json()["reason"] == "the body must be a JSON object"
    assert post(collector.url, "/v1/track", good, gzipped=True).status_code == 200
    assert post(collector.url, "/v1/track", good, headers={"Content-Encoding": "br"}).status_code == 415
    big = {"userId": "u", "event": "e", "properties": {"x": "y" * 33_000}}
    answer = post(collector.url, "/v1/track", big)
    assert answer.status_code == 400 and "32 KB" in answer.json()["reason"]
    batch = {"batch": [{"type": "track", "userId": "u", "event": "e", "properties": {"x": "y" * 20_000}}] * 30}
    answer = post(collector.url, "/v1/batch", batch)
    assert answer.status_code == 400 and "500 KB" in answer.json()["reason"]
    bomb = gzip.compress(b'{"batch": [' + b" " * 50_000_000 + b"]}")
    answer = post(collector.url, "/v1/batch", None, raw=bomb, headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 413
    import httpx

    assert httpx.get(collector.url + "/v1/track").status_code == 405
    assert post(collector.url, "/v1/nope", good).status_code == 404


def test_the_write_key_is_never_printed(project):
    from motorcade_sources_segment_http.keys import load_write_keys

    keys = load_write_keys({n: s for n, s in project.config.sources.items()}, project.directory)
    assert KEY not in repr(keys) and set(keys.values()) == {"app", "web"}


def test_above_the_backlog_bound_the_collector_answers_503_with_retry_after(project):
    with running_collector(project, max_backlog=5, idle_seconds=0.01) as running:
        running.processor.stop()  # nothing is ingested: the backlog only grows
        with BackgroundServer(running.app) as server:
            batch = {"batch": [{"type": "track", "userId": "u", "event": "e", "messageId": f"b{i}"}
                               for i in range(10)]}
            assert post(server.url, "/v1/batch", batch).status_code == 200
            answer = post(server.url, "/v1/track", {"userId": "u", "event": "e"})
            assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"


RECEIVED = dt.datetime(2026, 11, 20, 10, 0, 0, tzinfo=dt.timezone.utc)


def test_clock_skew_is_corrected_as_segment_documents():
    # the device clock is 2 hours behind: it stamped the event at 07:59:30 and sent it at 07:59:50 (its time)
    message = {"userId": "u", "event": "e", "timestamp": "2026-11-20T07:59:30Z"}
    normal = normalise(message, call_type="track", received_at=RECEIVED, batch_sent_at="2026-11-20T07:59:50Z")
    assert normal["timestamp"] == "2026-11-20T09:59:40.000Z"  # receivedAt - (sentAt - originalTimestamp)
    assert normal["originalTimestamp"] == "2026-11-20T07:59:30.000Z" and normal["receivedAt"] == "2026-11-20T10:00:00.000Z"
    # no sentAt: the client's time stands; neither: the server's
    assert normalise(message, call_type="track", received_at=RECEIVED)["timestamp"] == "2026-11-20T07:59:30.000Z"
    assert normalise({"userId": "u", "event": "e"}, call_type="track",
                     received_at=RECEIVED)["timestamp"] == "2026-11-20T10:00:00.000Z"
    with pytest.raises(Invalid, match="is not one of"):
        normalise({"type": "flush", "userId": "u"}, call_type=None, received_at=RECEIVED)


def test_every_message_that_got_a_200_survives_a_kill_9_of_the_collector(project, tmp_path):
    """Clients send batches while `motorcade collect` is SIGKILLed at random moments and restarted; every
    messageId that was answered 200 is in the store exactly once afterwards (inbox and events)."""
    import os
    import random
    import signal
    import socket
    import subprocess
    import sys
    import threading

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TEST_APP_WRITE_KEY": KEY}
    motorcade = [sys.executable, "-c", "from motorcade.cli import run; run()"]

    def start():
        process = subprocess.Popen([*motorcade, "--project", str(project.directory), "collect", "--listen",
                                    f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert wait_for(lambda: _up(url), timeout=30), process.stderr.read1().decode() if process.poll() else "no start"
        return process

    acknowledged: set[str] = set()
    stop = threading.Event()
    rng = random.Random(7)

    def send():
        n = 0
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                ids = [f"k{n + i}" for i in range(rng.randint(1, 40))]
                n += len(ids)
                body = {"batch": [{"type": "track", "userId": f"u{i % 50}", "event": "tick", "messageId": m}
                                  for i, m in enumerate(ids)]}
                try:
                    answer = client.post(url + "/v1/batch", json=body,
                                         headers={"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()})
                except httpx.HTTPError:
                    time.sleep(0.02)
                    continue
                if answer.status_code == 200:
                    acknowledged.update(ids)

    process = start()
    sender = threading.Thread(target=send)
    sender.start()
    kills = 0
    try:
        for _ in range(4):
            time.sleep(rng.uniform(0.3, 1.2))
            before = len(acknowledged)
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            assert len(acknowledged) >= before  # (the sender saw 200s before the kill)
            process = start()
        time.sleep(0.5)
    finally:
        stop.set()
        sender.join()
    try:
        assert kills == 4 and len(acknowledged) > 100
        stored = {m for (m,) in rows(project, "SELECT message_id FROM inbox WHERE source = 'app'")}
        assert acknowledged <= stored  # nothing acknowledged was lost
        assert wait_for(lambda: rows(project, "SELECT count(*) FROM events WHERE name = 'tick'")[0][0] == len(stored),
                        timeout=60)
        dupes = rows(project, "SELECT dedup_key, count(*) FROM events WHERE name = 'tick' GROUP BY dedup_key "
                              "HAVING count(*) > 1")
        assert dupes == []
    finally:
        process.terminate()
        process.wait(timeout=30)
    # no processor outlives its collector (a SIGKILLed collector cannot stop it; it must end with it)
    assert wait_for(lambda: not _processes_with(f"--listen 127.0.0.1:{port}"), timeout=15), \
        _processes_with(f"--listen 127.0.0.1:{port}")


def _processes_with(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found


def _up(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# --- analytics.js in a real browser -------------------------------------------------------------------------------
# Segment's analytics.js (@segment/analytics-next from the npm registry) in Debian's headless Chromium sends
# identify(), page() and track() to the collector; the events arrive with the browser's context.

import functools  # noqa: E402
import http.server  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI") == "true"


def _need(condition: bool, what: str) -> None:
    if not condition:
        if IN_CI:
            pytest.fail(f"{what} (CI must run the browser test: .ci/run installs it)")
        pytest.skip(what)


@pytest.fixture(scope="module")
def analytics_js(tmp_path_factory) -> Path:
    """The UMD build of @segment/analytics-next, fetched from the npm registry with `npm pack`."""
    _need(shutil.which("npm") is not None, "npm is not installed")
    folder = tmp_path_factory.mktemp("ajs")
    result = subprocess.run(["npm", "pack", "@segment/analytics-next@1", "--silent"], cwd=folder, capture_output=True,
                            text=True, timeout=300)
    _need(result.returncode == 0, f"npm pack @segment/analytics-next failed: {result.stderr.strip()[:300]}")
    [tarball] = folder.glob("*.tgz")
    with tarfile.open(tarball) as archive:
        archive.extractall(folder, filter="data")
    web = folder / "web"
    web.mkdir()
    import gzip

    for packed in (folder / "package" / "dist" / "umd").glob("*.js.gz"):
        (web / packed.name[:-3]).write_bytes(gzip.decompress(packed.read_bytes()))
    bundles = web / "analytics-next" / "bundles"
    bundles.mkdir(parents=True)
    for script in web.glob("*.bundle.*.js"):
        shutil.copy(script, bundles / script.name)
    return web


PAGE = """<!doctype html><html><head><title>试驾预约</title><script src="/index.js"></script></head><body>
<script>
(async () => {{
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load({{
    writeKey: "{key}", cdnURL: location.origin,
    cdnSettings: {{ integrations: {{ "Segment.io": {{ apiKey: "{key}", apiHost: "127.0.0.1:{port}/v1", protocol: "http" }} }} }}
  }});
  await analytics.identify("browser-user-1", {{ phone: "13900001111" }});
  await analytics.page("cars", "X5 详情");
  await analytics.track("configurator_view", {{ model: "X5", step: 3 }});
  document.title = "sent";
}})().catch(e => {{ document.title = "error: " + e; }});
</script></body></html>"""


def test_analytics_js_in_chromium_delivers_page_and_track(tmp_path, monkeypatch, analytics_js):
    _need(Path(CHROMIUM).exists(), f"{CHROMIUM} is not installed (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api") if not IN_CI else __import__(
        "playwright.sync_api", fromlist=["sync_playwright"])
    monkeypatch.setenv("TEST_APP_WRITE_KEY", KEY)
    project = make_project(tmp_path)
    try:
        with running_collector(project, idle_seconds=0.01) as collector, BackgroundServer(collector.app) as api:
            (analytics_js / "index.html").write_text(PAGE.format(key=KEY, port=api.port), encoding="utf-8")
            handler = functools.partial(_QuietHandler, directory=str(analytics_js))
            site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            threading.Thread(target=site.serve_forever, daemon=True).start()
            try:
                with playwright.sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync"])
                    page = browser.new_page()
                    page.goto(f"http://127.0.0.1:{site.server_address[1]}/index.html")
                    deadline = time.monotonic() + 30
                    while page.title() not in ("sent",) and not page.title().startswith("error"):
                        assert time.monotonic() < deadline, "analytics.js did not finish"
                        page.wait_for_timeout(100)
                    assert page.title() == "sent", page.title()
                    browser.close()
            finally:
                site.shutdown()
            assert wait_for(lambda: rows(project, "SELECT count(*) FROM events WHERE source = 'app'")[0][0] == 2)
            names = {n for (n,) in rows(project, "SELECT name FROM events WHERE source = 'app'")}
            assert names == {"page_viewed", "configurator_view"}
            import json

            props = json.loads(rows(project, "SELECT properties FROM events WHERE name = 'configurator_view'")[0][0])
            assert props["model"] == "X5" and "Chrome" in props["context"]["userAgent"]
            assert props["context"]["library"]["name"] == "analytics.js"
            # identify linked the phone to the browser user, and the page view is theirs
            person = rows(project, "SELECT person_id FROM identifiers WHERE type = 'app_user_id'")[0][0]
            assert {p for (p,) in rows(project, "SELECT person_id FROM events WHERE source = 'app'")} == {person}
            assert rows(project, "SELECT person_id FROM identifiers WHERE type = 'phone'")[0][0] == person
    finally:
        project.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


JOURNEY = """
journey drive_followup {
  entry on test_drive
  thanks: send via webhook template "thanks"
  reply: wait for service_booked up to 7 days then {
    booked: send via webhook template "thanks"
  }
}
"""


def _with_webhook(project, receiver_url):
    from motorcade.plugins import load_plugins

    config = project.directory / "motorcade.toml"
    config.write_text(config.read_text(encoding="utf-8") + f'\n[channels.webhook]\nurl = "{receiver_url}"\n'
                      'secret = "s"\n', encoding="utf-8")
    (project.directory / "rules" / "t.mc").write_text(JOURNEY, encoding="utf-8")
    return Project(project.directory, plugin_manager=load_plugins())


def test_the_processor_moves_journeys_on_live_events_and_dispatches_their_sends_once(project):
    """`collect --dispatch`: an event that lets a person into a journey (`entry on EVENT`) and the event a
    `wait for` waits for move the person on at once, without a `run` pass, and each send reaches the local
    webhook receiver once."""
    import contextlib

    from motorcade.activation.testing import KeyCountingServer

    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(KeyCountingServer())
        project = _with_webhook(project, receiver.url)
        stack.callback(project.close)
        collector = stack.enter_context(running_collector(project, idle_seconds=0.01, dispatch=True))
        collector.url = stack.enter_context(BackgroundServer(collector.app)).url
        assert post(collector.url, "/v1/track", {"userId": "u-j", "event": "test_drive", "messageId": "j-1"}
                    ).status_code == 200
        assert wait_for(lambda: len(receiver.deliveries) == 1)
        person = rows(project, "SELECT person_id FROM identifiers WHERE value = 'u-j'")[0][0]
        assert rows(project, "SELECT step, status FROM journey_states WHERE person_id = ?", (person,)) == [
            ("reply", "active")]
        time.sleep(1.1)  # store times are whole seconds: only an event after the wait began counts
        assert post(collector.url, "/v1/track", {"userId": "u-j", "event": "service_booked", "messageId": "j-2"}
                    ).status_code == 200
        assert wait_for(lambda: len(receiver.deliveries) == 2)
        assert wait_for(lambda: rows(project, "SELECT status FROM journey_states")[0][0] == "completed")
        assert sorted(receiver.deliveries) == [f"journey:drive_followup:e1:p{person}:sbooked",
                                               f"journey:drive_followup:e1:p{person}:sthanks"]
        assert list(receiver.deliveries.values()) == [1, 1]
        assert [r[0] for r in rows(project, "SELECT outcome FROM journey_path ORDER BY id")] == [
            "sent", "event", "sent"]


def test_run_and_the_processor_together_never_double_a_journey_step(project):
    """`run` passes in another connection while the processor advances the same journey on live events:
    every person takes each step once (one path record per step and no other), one outbox row per send."""
    import threading

    from motorcade.activation.settings import ActivationContext
    from motorcade.journeys.engine import process_journey
    from motorcade.plugins import load_plugins

    project = _with_webhook(project, "http://127.0.0.1:9/never-called")
    runner = Project(project.directory, plugin_manager=load_plugins())
    stop, passes, errors = threading.Event(), [], []

    def run_passes():
        while not stop.is_set():
            try:
                passes.append(process_journey(ActivationContext.for_project(runner), "drive_followup"))
                stop.wait(0.03)
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
                return

    people = 30
    try:
        with running_collector(project, idle_seconds=0.01) as collector:
            with BackgroundServer(collector.app) as server:
                thread = threading.Thread(target=run_passes)
                thread.start()
                try:
                    for i in range(people):
                        assert post(server.url, "/v1/track", {"userId": f"r-{i}", "event": "test_drive",
                                                              "messageId": f"r-{i}"}).status_code == 200
                    assert wait_for(lambda: rows(project, "SELECT count(*) FROM journey_states WHERE step = 'reply'"
                                                 )[0][0] == people, timeout=30)
                    time.sleep(1.1)
                    for i in range(people):
                        assert post(server.url, "/v1/track", {"userId": f"r-{i}", "event": "service_booked",
                                                              "messageId": f"b-{i}"}).status_code == 200
                    assert wait_for(lambda: rows(project, "SELECT count(*) FROM journey_states WHERE status = "
                                                 "'completed'")[0][0] == people, timeout=30)
                    assert collector.processor.stats.fired > 0  # the processor took some of the steps itself
                finally:
                    stop.set()
                    thread.join()
    finally:
        runner.close()
    assert errors == [] and passes
    paths = rows(project, "SELECT person_id, group_concat(step || '>' || outcome, ' ') FROM "
                          "(SELECT * FROM journey_path ORDER BY id) GROUP BY person_id")
    assert len(paths) == people
    assert {path for _, path in paths} == {"thanks>sent reply>event booked>sent"}
    assert rows(project, "SELECT count(*), count(DISTINCT idempotency_key) FROM outbox") == [(2 * people, 2 * people)]
    # the steps each side reports taking add up to the steps taken: nothing was taken twice
    assert sum(p["steps"] for p in passes) <= 3 * people
