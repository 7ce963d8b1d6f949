"""Crash safety, proven: SIGKILL worker processes at random points of a run of thousands of sends.

What "exactly once" means here (docs/activation.md#delivery-guarantees): Motorcade delivers at least
once, with one stable idempotency key per planned send; the receiver (like a provider that accepts a
key) deduplicates on it. The test's receiver counts every request per key and asserts that

* every planned send's key arrived (none missing), and no key arrived that was not planned;
* a key that arrived more than once (a worker killed after the POST, before recording it) carried
  exactly the same message each time -- so deduplicating on the key is safe;
* re-deliveries are within the documented bound: at most the batch in flight per killed worker
  (``killed x batch_size`` extra requests in all), so a provider that does not deduplicate sees few;
* at least one kill landed mid-delivery (the worker was alive and the receiver had some, not all, of the
  sends): the schedule really exercised the crash window it claims to;
* the outbox ends with every send ``sent`` and one ``sent`` feedback event per key.

``claim_seconds`` is 4 here, well above one local POST, so the other documented source of re-delivery
(a batch's send outlasting its claim) cannot blur the bound on a loaded machine.

Workers are real ``motorcade run`` subprocesses against a real SQLite file and a real HTTP server on
127.0.0.1 (the webhook channel plugin); sometimes two run at once.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from motorcade.activation.testing import KeyCountingServer, blast_campaign_project
from motorcade.project import Project

PEOPLE = 2000


def make_project(directory: Path, url: str, batch_size: int, people: int = PEOPLE,
                 claim_seconds: int = 1, database: str | None = None) -> tuple[Project, dt.datetime]:
    return blast_campaign_project(directory, url, people=people, batch_size=batch_size, database=database,
                                  name="crash", activation={"claim_seconds": claim_seconds, "claim_batch": 50,
                                                            "scheduler_lease_seconds": 1})


def worker(directory: Path) -> subprocess.Popen:
    env = {**os.environ, "MOTORCADE_LOAD_PLUGINS": "webhook", "MOTORCADE_PROJECT": str(directory)}
    return subprocess.Popen([sys.executable, "-m", "motorcade.cli", "run", "--once"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def pending(project: Project) -> int:
    counts = project.store.status_counts_of_sends()
    return sum(counts.get(s, 0) for s in ("planned", "deferred", "failed", "claimed"))


def delivered(server: KeyCountingServer) -> int:
    return sum(server.snapshot()[0].values())


# Three random kill schedules per CI run (~30-50 s); no shrinking: each example spawns real processes.
# The first kill always waits for a drawn number of deliveries, so every schedule hits the send loop.
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.generate], database=None)
@given(first_kill=st.tuples(st.integers(1, 500), st.booleans()),
       more_kills=st.lists(st.tuples(st.one_of(st.floats(0.2, 1.6), st.integers(1, 500)), st.booleans()),
                           min_size=1, max_size=2),
       batch_size=st.sampled_from([1, 1, 25]))
def test_sigkilled_workers_lose_no_send_and_redeliver_at_most_the_in_flight_batch(first_kill, more_kills,
                                                                                   batch_size):
    """Each kill is drawn as seconds after start (hits start-up and planning) or as a number of further
    deliveries the receiver must see first (hits the send loop, between POST and recording).

    Mutant it catches: the dispatcher posting every batch twice (2,000 extra requests against a bound of
    ``kills x batch_size``); the at-least-once checks alone passed it."""
    run_kill_schedule([first_kill, *more_kills], batch_size)


# The same on PostgreSQL (a throwaway server, tests/conftest.py): two workers on one database in every
# round, killed at random; their claims meet in FOR UPDATE SKIP LOCKED and the leases in one table.
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.generate], database=None)
@given(first_kill=st.integers(1, 500),
       more_kills=st.lists(st.one_of(st.floats(0.2, 1.6), st.integers(1, 500)), min_size=1, max_size=2),
       batch_size=st.sampled_from([1, 25]))
def test_two_sigkilled_workers_on_postgresql_lose_no_send_and_redeliver_at_most_the_in_flight_batch(
        pg_cluster, first_kill, more_kills, batch_size):
    database = pg_cluster.create_database()
    try:
        run_kill_schedule([(first_kill, True), *((k, True) for k in more_kills)], batch_size, database=database)
    finally:
        pg_cluster.drop_database(database)


def run_kill_schedule(kills: list[tuple], batch_size: int, *, database: str | None = None) -> None:
    """Run workers (two at once where a kill says so) against one project, SIGKILL them on the schedule,
    drain the outbox with fresh workers, and check what the receiver got (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp, KeyCountingServer() as server:
        directory = Path(tmp) / "project"
        project, slot = make_project(directory, server.url, batch_size, claim_seconds=4, database=database)
        killed = 0
        mid_delivery = 0  # kills of a live worker while the receiver had some but not all sends
        for when, two_at_once in kills:
            procs = [worker(directory) for _ in range(2 if two_at_once else 1)]
            if isinstance(when, float):
                time.sleep(when)
            else:
                target = delivered(server) + when
                give_up = time.monotonic() + 30
                while (delivered(server) < target and time.monotonic() < give_up
                       and any(p.poll() is None for p in procs)):
                    time.sleep(0.002)
            for proc in procs:
                if proc.poll() is None:
                    seen = delivered(server)
                    proc.kill()  # SIGKILL: no cleanup, no lease release, maybe mid-transaction or mid-POST
                    killed += 1
                    mid_delivery += 0 < seen < PEOPLE
                proc.wait()
        # restart until the outbox is drained (claims of killed workers expire after claim_seconds)
        deadline = time.monotonic() + 90
        while True:
            proc = worker(directory)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()
            planned = project.store.list_sends(limit=10**6)
            if planned and pending(project) == 0:
                break
            assert time.monotonic() < deadline, f"outbox not drained: {project.store.status_counts_of_sends()}"
            time.sleep(1.1)

        slot_id = slot.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%MZ")
        expected = {f"campaign:blast:{slot_id}:p{pid}:s0" for pid in project.store.person_ids()}
        assert len(expected) == PEOPLE
        assert {s["idempotency_key"] for s in planned} == expected  # planned exactly once per person
        assert {s["status"] for s in planned} == {"sent"}
        deliveries, bodies = server.snapshot()
        assert set(deliveries) == expected  # none missing, nothing unplanned
        assert all(len(bodies[key]) == 1 for key in deliveries)  # a re-delivery was the very same message
        assert mid_delivery >= 1, f"no kill landed mid-delivery (kills={killed})"
        extra = sum(n - 1 for n in deliveries.values())
        assert extra <= killed * batch_size, \
            f"{extra} re-deliveries; the bound is the in-flight batch per killed worker: {killed} x {batch_size}"
        sent_events = project.store.query(
            "SELECT count(*), count(DISTINCT json_extract(properties, '$.idempotency_key')) FROM events "
            "WHERE source = 'motorcade' AND name = 'sent'")[0]
        assert tuple(sent_events) == (PEOPLE, PEOPLE)
        runs = project.store.runs_of("campaign", "blast")
        assert len(runs) == 1 and runs[0]["audience_size"] == PEOPLE
        project.close()
        # how often the crash window (POSTed, not yet recorded) was hit, for the curious: -rP shows it
        print(f"kills={killed} mid_delivery={mid_delivery} batch={batch_size} redelivered={extra}")


def test_a_send_posted_but_never_recorded_is_redelivered_with_the_same_key_and_bytes(tmp_path, motorcade_pm):
    """The crash window made deterministic: a worker POSTs a batch and dies before recording it."""
    import motorcade_channels_webhook

    from motorcade.activation.dispatcher import Dispatcher
    from motorcade.activation.runner import run_once
    from motorcade.activation.settings import ActivationContext

    motorcade_pm.register(motorcade_channels_webhook, name="webhook")
    with KeyCountingServer() as server:
        make_project(tmp_path / "p", server.url, 1, people=200)
        project = Project(tmp_path / "p", plugin_manager=motorcade_pm)
        clock_at = [dt.datetime.now(dt.timezone.utc)]
        ctx = ActivationContext.for_project(project, clock=lambda: clock_at[0], worker_id="doomed")
        run_once(ctx, dispatch=False)
        doomed = Dispatcher(ctx)
        claimed = doomed.claim(limit=10)
        channel = doomed.channel("webhook")
        channel.send([doomed._message(s) for s in claimed])  # delivered ... and the worker dies here
        assert sum(server.snapshot()[0].values()) == 10
        clock_at[0] += dt.timedelta(seconds=2)  # claim_seconds = 1 has passed
        survivor = ActivationContext.for_project(project, clock=lambda: clock_at[0], worker_id="survivor")
        report = run_once(survivor)
        assert report.dispatched["sent"] == 200
        deliveries, bodies = server.snapshot()
        twice = {k for k, n in deliveries.items() if n == 2}
        assert twice == {s["idempotency_key"] for s in claimed}
        assert all(len(bodies[k]) == 1 for k in twice)
        assert len(deliveries) == 200 and set(project.store.status_counts_of_sends()) == {"sent"}
        channel.close()
        project.close()
