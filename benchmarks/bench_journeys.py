"""Journeys: how fast a tick advances the people whose wait ended, and how many sends/s it plans.

N people (100,000; 5,000 with ``BENCH_SIZE=small``) enter a three-step journey with waits
(send, wait 1 day, send, wait 1 day, send; a goal checked before every step) through a segment entry.
The same flow with each send replaced by a `wait until` (no message to render) measures the engine alone.
Tick 1 lets everyone in and plans the first send; ticks 2 and 3 come a simulated day apart: everyone's wait
has ended, so each person takes the wait, the send and the next wait (or the end). A person-step is one
step taken by one person (a send, a finished wait, an entry). The webhook channel renders each message
(its template sees the person) into the outbox; nothing is delivered. Target: >= 20,000 person-steps/s.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from pathlib import Path

from motorcade.activation.settings import ActivationContext
from motorcade.journeys.engine import process_journey
from motorcade.plugins import load_plugins
from motorcade.project import Project

T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.timezone.utc)


def _size() -> int:
    return 5_000 if os.environ.get("BENCH_SIZE") == "small" else 100_000


SENDS = """
journey nurture {
  entry on entering segment everyone
  goal service_visit within 30 days
  first: send via webhook template "n"
  wait 1 day
  second: send via webhook template "n"
  wait 1 day
  third: send via webhook template "n"
}
"""
# The same flow shape with the sends replaced by checks that cost no rendering: the engine's own pace.
WAITS = """
journey nurture {
  entry on entering segment everyone
  goal service_visit within 30 days
  first: wait until 09:00
  wait 1 day
  second: wait until 09:00
  wait 1 day
  third: wait until 09:00
}
"""


def _project(directory: Path, people: int, journey: str) -> Project:
    import motorcade_channels_webhook

    (directory / "rules").mkdir(parents=True)
    (directory / "templates").mkdir()
    (directory / "motorcade.toml").write_text("""
[project]
name = "bench"
timezone = "Asia/Shanghai"
[channels.webhook]
url = "http://127.0.0.1:9/never-called"
secret = "bench-secret"
[activation]
trigger_batch = 5000
""", encoding="utf-8")
    (directory / "rules" / "r.mc").write_text("segment everyone { where profile.is_owner = true }\n" + journey,
                                              encoding="utf-8")
    (directory / "templates" / "n.txt").write_text("尊敬的{{ person.name }}，您的爱车{{ person.plate }}到了保养时间",
                                                   encoding="utf-8")
    pm = load_plugins(entry_points=False)
    pm.register(motorcade_channels_webhook, name="webhook")
    project = Project(directory, plugin_manager=pm)
    store = project.store
    with store.transaction():
        ids = [store.create_person({"name": f"客户{i}", "plate": f"沪A{i:05d}", "is_owner": True})
               for i in range(people)]
    store.record_segment_run("everyone", ids, revision="bench", as_of=T0, computed_at=T0, duration_ms=0, plan=None)
    return project


def run(report) -> None:
    for label, journey in (("sends", SENDS), ("waits only", WAITS)):
        _ticks(report, label, journey)


def _ticks(report, label: str, journey: str) -> None:
    people = _size()
    with tempfile.TemporaryDirectory() as tmp:
        project = _project(Path(tmp) / "p", people, journey)
        for day in range(3):
            at = T0 + dt.timedelta(days=day, minutes=1)
            ctx = ActivationContext.for_project(project, clock=lambda at=at: at, worker_id="bench")
            started, cpu_started = time.perf_counter(), time.process_time()
            totals = process_journey(ctx, "nurture")
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            person_steps = totals["steps"] + totals["entered"]
            # the CPU seconds of this process too: on a machine other processes keep busy, wall time mostly
            # measures the wait for a core
            report(f"{label}, tick {day + 1}: {people:,} people, {person_steps:,} person-steps, {totals['sends']:,} sends",
                   seconds, note=f"{person_steps / seconds:,.0f} person-steps/s, {totals['sends'] / seconds:,.0f} "
                                 f"sends/s planned; {cpu:.2f} CPU s: {person_steps / max(cpu, 1e-9):,.0f} "
                                 "person-steps per CPU second")
        project.close()


if __name__ == "__main__":
    def _print(name, seconds, baseline_seconds=None, note=""):
        print(f"{name}: {seconds:.3f} s {note}")

    os.environ.setdefault("BENCH_SIZE", "small")
    run(_print)
