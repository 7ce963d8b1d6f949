"""Live collection: latency from the collector's 200 to the outbox and to the channel's receipt, and how many
events per second one collector process accepts.

- **Latency** (``realtime``): a load generator offers 1,000 track events/s (batches of 10 every 10 ms) for
  ``SECONDS`` to ``motorcade collect``'s app (uvicorn on 127.0.0.1, processor with in-process dispatch); one
  event in ten is ``test_drive``, which a trigger answers through the webhook channel to a local receiver. A
  watcher polls the outbox and the receiver every 5 ms and notes when each send appears (so each figure
  includes up to 5 ms of polling). Reported: p50/p95/max seconds from the 200 to the outbox row and to the
  receiver.
- **Throughput**: ``/v1/batch`` requests of 500 messages from 4 concurrent clients for a fixed count (accepted =
  answered 200, i.e. stored); the baseline is the store alone taking the same normalised messages
  (``inbox_append`` of 500 at a time), so the ratio is what HTTP, JSON and the spec checks cost. And the real
  segment-analytics-python client (its own batching, gzip) sending track calls.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import threading
import time
from pathlib import Path

KEY = "bench-write-key"
SECONDS = 10


def _project(directory: Path, receiver_url: str):
    from motorcade.project import Project

    os.environ["BENCH_WRITE_KEY"] = KEY
    (directory / "rules").mkdir(parents=True)
    (directory / "templates").mkdir()
    (directory / "motorcade.toml").write_text(f"""
[project]
name = "bench"
timezone = "Asia/Shanghai"
[sources.app]
type = "segment_http"
write_key_env = "BENCH_WRITE_KEY"
[channels.webhook]
url = "{receiver_url}"
secret = "bench-secret"
batch_size = 50
""", encoding="utf-8")
    (directory / "rules" / "r.mc").write_text(
        'trigger drive_thanks { on test_drive  via webhook template "t"  transactional }\n', encoding="utf-8")
    (directory / "templates" / "t.txt").write_text("感谢试驾", encoding="utf-8")
    return Project(directory)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _auth() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode(),
            "Content-Type": "application/json"}


def _latency(report, project, receiver, url) -> None:
    import sqlite3

    import httpx

    acknowledged: dict[str, float] = {}  # messageId of a test_drive -> when its 200 arrived
    stop = threading.Event()

    def offer() -> None:
        n = 0
        with httpx.Client(timeout=10) as client:
            next_at = time.perf_counter()
            while not stop.is_set():
                batch = []
                for _ in range(10):
                    name = "test_drive" if n % 10 == 0 else "configurator_view"
                    batch.append({"type": "track", "userId": f"u{n % 5000}", "event": name, "messageId": f"m{n}"})
                    n += 1
                answer = client.post(url + "/v1/batch", content=json.dumps({"batch": batch}), headers=_auth())
                done = time.perf_counter()
                if answer.status_code == 200:
                    for message in batch:
                        if message["event"] == "test_drive":
                            acknowledged[message["messageId"]] = done
                next_at += 0.01
                time.sleep(max(0.0, next_at - time.perf_counter()))

    to_outbox: dict[str, float] = {}
    to_receiver: dict[str, float] = {}
    def watch() -> None:
        conn = sqlite3.connect(project.directory / "motorcade.db")
        event_of: dict[str, str] = {}  # idempotency key -> messageId
        last = 0
        while not stop.is_set() or len(to_receiver) < len(to_outbox):
            now = time.perf_counter()
            for row_id, key, message_id in conn.execute(
                    "SELECT o.rowid, o.idempotency_key, e.dedup_key FROM outbox o JOIN events e "
                    "ON e.id = CAST(substr(o.idempotency_key, instr(o.idempotency_key, ':e') + 2, "
                    "instr(substr(o.idempotency_key, instr(o.idempotency_key, ':e') + 2), ':') - 1) AS INTEGER) "
                    "WHERE o.rowid > ? ORDER BY o.rowid", (last,)):
                last = row_id
                event_of[key] = message_id
                to_outbox.setdefault(message_id, now)
            with receiver.lock:
                delivered = list(receiver.deliveries)
            for key in delivered:
                if key in event_of:
                    to_receiver.setdefault(event_of[key], now)
            if stop.is_set() and time.perf_counter() > stopped_at + 30:
                break
            time.sleep(0.005)
        conn.close()

    stopped_at = float("inf")
    offerer, watcher = threading.Thread(target=offer), threading.Thread(target=watch)
    offerer.start(), watcher.start()
    time.sleep(SECONDS)
    stop.set()
    stopped_at = time.perf_counter()
    offerer.join()
    watcher.join()
    outbox = [to_outbox[m] - t for m, t in acknowledged.items() if m in to_outbox]
    receipt = [to_receiver[m] - t for m, t in acknowledged.items() if m in to_receiver]
    if not outbox:
        raise RuntimeError("no trigger send reached the outbox")
    note = f"{len(acknowledged)} triggering events at 1,000 events/s offered; {len(outbox)} planned, {len(receipt)} received"
    report("200 -> outbox p50", _percentile(outbox, 0.5), note=note)
    report("200 -> outbox p95 (target <= 1 s)", _percentile(outbox, 0.95))
    report("200 -> outbox max", max(outbox))
    if receipt:
        report("200 -> receiver p50", _percentile(receipt, 0.5))
        report("200 -> receiver p95", _percentile(receipt, 0.95))


def _throughput(report, project, url) -> None:
    import httpx

    from motorcade_sources_segment_http.spec import normalise

    per_request, clients, requests_each = 500, 4, 20 if os.environ.get("BENCH_SIZE") == "small" else 60
    total = per_request * clients * requests_each
    accepted = [0] * clients

    def client_run(index: int) -> None:
        with httpx.Client(timeout=60) as client:
            for r in range(requests_each):
                batch = [{"type": "track", "userId": f"t{index}-{i % 300}", "event": "configurator_view",
                          "messageId": f"t{index}-{r}-{i}", "properties": {"step": i, "model": "X5"},
                          "timestamp": "2026-11-20T08:00:00Z"} for i in range(per_request)]
                answer = client.post(url + "/v1/batch", content=json.dumps({"batch": batch}), headers=_auth())
                if answer.status_code == 200:
                    accepted[index] += answer.json()["accepted"]

    started = time.perf_counter()
    threads = [threading.Thread(target=client_run, args=(i,)) for i in range(clients)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    seconds = time.perf_counter() - started
    # Baseline: the store alone takes the same number of normalised messages, 500 per transaction.
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    bodies = [json.dumps(normalise({"type": "track", "userId": "b", "event": "configurator_view", "messageId": f"b{i}",
                                    "properties": {"step": i, "model": "X5"}}, call_type=None, received_at=now))
              for i in range(total)]
    store = project.store
    base_started = time.perf_counter()
    for start in range(0, total, per_request):
        store.inbox_append("baseline", [(f"b{i}", "2026-11-20T08:00:00.000Z", bodies[i])
                                        for i in range(start, min(total, start + per_request))])
    baseline = time.perf_counter() - base_started
    report(f"/v1/batch: {total:,} events accepted", seconds, baseline,
           note=f"{sum(accepted) / seconds:,.0f} events/s accepted (target >= 20,000); "
                f"store alone {total / baseline:,.0f}/s")


def _real_client(report, url) -> None:
    from segment.analytics.client import Client

    count = 5_000 if os.environ.get("BENCH_SIZE") == "small" else 20_000
    client = Client(write_key=KEY, host=url, gzip=True, upload_size=100, max_queue_size=count + 10)
    started = time.perf_counter()
    for i in range(count):
        client.track(f"c{i % 1000}", "app_open", {"i": i})
    client.flush()
    client.join()
    seconds = time.perf_counter() - started
    report(f"segment-analytics-python: {count:,} track calls", seconds,
           note=f"{count / seconds:,.0f} events/s through the real client's batching (target >= 5,000)")


def run(report) -> None:
    from motorcade.activation.testing import KeyCountingServer
    from motorcade_sources_segment_http.server import BackgroundServer, running_collector

    with tempfile.TemporaryDirectory() as tmp, KeyCountingServer() as receiver:
        project = _project(Path(tmp) / "p", receiver.url)
        with running_collector(project, dispatch=True, idle_seconds=0.005) as collector:
            with BackgroundServer(collector.app) as server:
                _latency(report, project, receiver, server.url)
                _throughput(report, project, server.url)
                _real_client(report, server.url)
        project.close()
