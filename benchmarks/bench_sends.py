"""Sends per second through the webhook channel to a local HTTP server: batched vs one by one.

A project with N people in one audience (N = 20,000; 3,000 with ``BENCH_SIZE=small``) plans one campaign
run (snapshot + outbox rows + rendered messages in one transaction), then the dispatcher claims, sends
and records every row. The receiver on 127.0.0.1 deduplicates on the idempotency key, like a provider.
The baseline is the same dispatch with ``batch_size = 1`` (one POST and one result transaction per send).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from pathlib import Path

from motorcade.activation.dispatcher import Dispatcher
from motorcade.activation.planner import plan_campaign
from motorcade.activation.settings import ActivationContext
from motorcade.activation.testing import KeyCountingServer
from motorcade.plugins import load_plugins
from motorcade.project import Project

BATCH = 50


def _size() -> int:
    return 3_000 if os.environ.get("BENCH_SIZE") == "small" else 20_000


def _project(directory: Path, url: str, batch_size: int, people: int):
    import motorcade_channels_webhook

    (directory / "rules").mkdir(parents=True)
    (directory / "templates").mkdir()
    (directory / "motorcade.toml").write_text(f"""
[project]
name = "bench"
timezone = "Asia/Shanghai"
[channels.webhook]
url = "{url}"
secret = "bench-secret"
batch_size = {batch_size}
[activation]
claim_batch = 500
""", encoding="utf-8")
    (directory / "rules" / "r.mc").write_text(
        'segment everyone { where profile.is_owner = true }\n'
        'campaign notice { audience everyone  via webhook template "n"  transactional }\n', encoding="utf-8")
    (directory / "templates" / "n.txt").write_text("尊敬的{{ person.name }}，您的爱车{{ person.plate }}到了保养时间",
                                                   encoding="utf-8")
    pm = load_plugins(entry_points=False)
    pm.register(motorcade_channels_webhook, name="webhook")
    project = Project(directory, plugin_manager=pm)
    store = project.store
    now = dt.datetime.now(dt.timezone.utc)
    with store.transaction():
        ids = [store.create_person({"name": f"客户{i}", "plate": f"沪A{i:05d}", "is_owner": True})
               for i in range(people)]
    store.record_segment_run("everyone", ids, revision="test", as_of=now, computed_at=now, duration_ms=0,
                             plan=None)
    return project


def _plan_and_dispatch(batch_size: int, people: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp, KeyCountingServer() as server:
        project = _project(Path(tmp) / "p", server.url, batch_size, people)
        ctx = ActivationContext.for_project(project, worker_id="bench")
        started = time.perf_counter()
        plan_campaign(ctx, "notice", ctx.now())
        planned = time.perf_counter() - started
        dispatcher = Dispatcher(ctx)
        started = time.perf_counter()
        totals = dispatcher.dispatch_due()
        dispatched = time.perf_counter() - started
        dispatcher.close()
        delivered = len(server.snapshot()[0])
        project.close()
        if totals["sent"] != people or delivered != people:
            raise AssertionError(f"expected {people} deliveries, got {totals} / {delivered}")
        return planned, dispatched, delivered


def run(report) -> None:
    people = _size()
    plan_batched, batched, n = _plan_and_dispatch(BATCH, people)
    _, one_by_one, _ = _plan_and_dispatch(1, people)
    report(f"plan {n:,} sends (snapshot, outbox, rendering)", plan_batched, note=f"{n / plan_batched:,.0f} sends/s")
    report(f"webhook dispatch {n:,} sends, batches of {BATCH}", batched, baseline_seconds=one_by_one,
           note=f"{n / batched:,.0f} sends/s batched vs {n / one_by_one:,.0f} sends/s one by one")


if __name__ == "__main__":
    def _print(name, seconds, baseline_seconds=None, note=""):
        print(f"{name}: {seconds:.3f} s (baseline {baseline_seconds}) {note}")

    os.environ.setdefault("BENCH_SIZE", "small")
    run(_print)
