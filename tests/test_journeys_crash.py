"""Crash safety of journeys, proven: SIGKILL the planner at random points of random journeys.

A random journey (sends, waits, `wait for`, branches, splits, exits, a goal) runs over a few hundred people
through simulated days. Each simulated tick is a real subprocess (``python DRIVER DIR TIME``) that lets
people in and advances them against a real SQLite file; the kill schedule SIGKILLs some ticks at a drawn
moment (start-up, entering, mid-batch), and the tick is then run again at the same simulated time until it
finishes -- what `serve` does after a crash. A kill is drawn as a number of rows (path records and
sends) the tick must have committed first, so it lands between or inside batches, not only at start-up. The same journey over the same data run without kills is the
oracle. The two must end identical:

* the outbox holds the same idempotency keys (no send skipped, none planned twice -- and the ``queued``
  feedback events, written once per inserted send, are one per key);
* every person took the same path (step, outcome, next step, time) and stands at the same step.

Batches are small (``trigger_batch = 7``) so a pass is many transactions and kills land between them.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from motorcade.dsl import ast
from motorcade.dsl.format import format_rule
from motorcade.model import Event
from motorcade.project import Project

PEOPLE = 240
TICKS = 5
T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.timezone.utc)  # 10:00 in Shanghai

DRIVER = '''
import datetime as dt, sys
from motorcade.activation.settings import ActivationContext
from motorcade.journeys.engine import process_journey
from motorcade.project import Project
at = dt.datetime.fromisoformat(sys.argv[2])
project = Project(sys.argv[1])
ctx = ActivationContext.for_project(project, clock=lambda: at, worker_id="w")
process_journey(ctx, "flow")
print("done")
'''

CONDS = ["profile.vip = true", "did wecom_reply in last 2 days", "tag level = \"high\"", "not in segment everyone"]


def _cond(index):
    from motorcade.dsl.parser import parse_text

    return parse_text(f"segment s {{ where {CONDS[index]} }}").rules[0].where


def steps_of(depth):
    via = st.just(ast.Via([ast.ChannelStep("webhook", "notice")]))
    simple = st.one_of(
        st.builds(ast.SendStep, st.none(), via), st.builds(ast.SendStep, st.none(), via),
        st.builds(ast.WaitStep, st.none(), st.builds(ast.Duration, st.integers(1, 2), st.just("days"))),
        st.builds(ast.WaitUntilStep, st.none(), st.builds(dt.time, st.integers(0, 23), st.just(0))),
        st.builds(ast.ExitStep, st.none()))
    if depth == 0:
        return st.lists(simple, min_size=1, max_size=3)
    inner = steps_of(depth - 1)
    compound = st.one_of(
        st.builds(ast.WaitForStep, st.none(), st.just("wecom_reply"), st.none(),
                  st.builds(ast.Duration, st.integers(1, 3), st.just("days")), st.none() | inner, st.none() | inner),
        st.builds(ast.IfStep, st.none(), st.integers(0, len(CONDS) - 1).map(_cond), inner, st.none() | inner),
        st.integers(1, 99).flatmap(lambda p: st.builds(
            ast.SplitStep, st.none(), st.tuples(st.builds(ast.SplitArm, st.just(p), inner),
                                                st.builds(ast.SplitArm, st.just(100 - p), inner)))))
    return st.lists(st.one_of(simple, simple, compound), min_size=1, max_size=4)


journeys = st.builds(
    ast.Journey, st.just("flow"), st.none(), entry=st.just(ast.EntrySegment("everyone")),
    holdout=st.sampled_from([None, 10]), reentry=st.none(),
    exit_when=st.none() | st.just(_cond(1)),
    goal=st.none() | st.just(ast.Goal("service_visit", None, ast.Duration(30, "days"))),
    steps=st.tuples(st.builds(ast.SendStep, st.none(), st.just(ast.Via([ast.ChannelStep("webhook", "notice")]))),
                    steps_of(2)).map(lambda parts: [parts[0], *parts[1]]))


def make_project(directory: Path, journey: ast.Journey, seed: int) -> None:
    (directory / "rules").mkdir(parents=True)
    (directory / "templates").mkdir()
    (directory / "motorcade.toml").write_text("""
[project]
name = "crash"
timezone = "Asia/Shanghai"

[channels.webhook]
url = "http://127.0.0.1:9/never-called"
secret = "s"

[activation]
trigger_batch = 7
""", encoding="utf-8")
    (directory / "rules" / "flow.mc").write_text(
        "segment everyone { where profile.is_owner = true }\n\n" + format_rule(journey) + "\n", encoding="utf-8")
    (directory / "templates" / "notice.txt").write_text("{{ person.name }}", encoding="utf-8")
    project = Project(directory)
    store = project.store
    rng = random.Random(seed)
    with store.transaction():
        ids = [store.create_person({"name": f"客户{i}", "is_owner": True, "vip": rng.random() < 0.3})
               for i in range(PEOPLE)]
    events = []
    for pid in ids:
        for n in range(rng.randint(0, 2)):
            name = rng.choice(["wecom_reply", "wecom_reply", "service_visit"])
            at = T0 + dt.timedelta(hours=rng.uniform(0, 24 * TICKS))
            events.append(Event(name, at, pid, {}, "app", f"{pid}-{n}"))
    store.insert_events(events)
    store.record_segment_run("everyone", ids, revision="t", as_of=T0, computed_at=T0, duration_ms=0, plan=None)
    project.close()


def _progress(directory: Path) -> int:
    """Rows committed so far (path records and sends), read from outside the worker."""
    import sqlite3

    conn = sqlite3.connect(directory / "motorcade.db", timeout=30)
    try:
        return conn.execute("SELECT (SELECT count(*) FROM journey_path) + (SELECT count(*) FROM outbox)").fetchone()[0]
    except sqlite3.OperationalError:  # the tables are not there yet
        return 0
    finally:
        conn.close()


def tick(directory: Path, driver: Path, at: dt.datetime, kill_after_rows: int | None = None) -> tuple[bool, bool]:
    """Run one tick. With ``kill_after_rows``, SIGKILL the worker once that many more rows were committed
    (or when it is about to finish). Returns (finished, killed mid-pass: some of its batches committed)."""
    env = {**os.environ, "MOTORCADE_LOAD_PLUGINS": "webhook"}
    before = _progress(directory)
    proc = subprocess.Popen([sys.executable, str(driver), str(directory), at.isoformat()], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if kill_after_rows is not None:
        give_up = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < give_up:
            if _progress(directory) >= before + kill_after_rows:
                break
            time.sleep(0.003)
        if proc.poll() is None:
            proc.kill()  # SIGKILL: no cleanup, maybe mid-transaction
            proc.wait()
            return False, _progress(directory) > before
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    return True, False


def outcome(directory: Path):
    project = Project(directory)
    store = project.store
    keys = sorted(r[0] for r in store.query("SELECT idempotency_key FROM outbox"))
    queued = store.query("SELECT count(*), count(DISTINCT json_extract(properties, '$.idempotency_key')) "
                         "FROM events WHERE source = 'motorcade' AND name = 'queued'")[0]
    path = [tuple(r) for r in store.query(
        "SELECT person_id, entry, step, outcome, next_step, at FROM journey_path ORDER BY person_id, entry, id")]
    states = [tuple(r) for r in store.query(
        "SELECT person_id, entry, arm, step, status, due_at FROM journey_states ORDER BY person_id, entry")]
    project.close()
    return keys, tuple(queued), path, states


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.generate], database=None)
@given(journey=journeys, seed=st.integers(0, 2**31),
       kills=st.lists(st.tuples(st.integers(0, TICKS - 1), st.integers(1, 120)), min_size=3, max_size=6))
def test_sigkilled_journey_ticks_skip_no_step_and_double_no_send(journey, seed, kills, motorcade_pm):
    """Mutant it catches: a batch's states and path committed before its outbox rows (a kill in between
    loses those sends for good); with kills drawn in seconds instead of rows it survived (they landed in
    start-up)."""
    import motorcade_channels_webhook

    from motorcade.activation.settings import ActivationContext
    from motorcade.journeys.engine import process_journey

    if not motorcade_pm.is_registered(motorcade_channels_webhook):
        motorcade_pm.register(motorcade_channels_webhook, name="webhook")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        driver = tmp / "driver.py"
        driver.write_text(DRIVER, encoding="utf-8")
        make_project(tmp / "crashed", journey, seed)
        shutil.copytree(tmp / "crashed", tmp / "oracle")
        times = [T0 + dt.timedelta(days=day, hours=7 * day) for day in range(TICKS)]
        oracle_project = Project(tmp / "oracle", plugin_manager=motorcade_pm)
        killed = mid_pass = 0
        for index, at in enumerate(times):
            # the oracle: the same tick in this process, never interrupted
            process_journey(ActivationContext.for_project(oracle_project, clock=lambda: at, worker_id="o"), "flow")
            for kill_tick, rows in kills:
                if kill_tick == index:
                    finished, partial = tick(tmp / "crashed", driver, at, kill_after_rows=rows)
                    killed += not finished
                    mid_pass += partial
            assert tick(tmp / "crashed", driver, at)[0]  # the restart runs the tick to completion
        oracle_project.close()
        crashed, oracle = outcome(tmp / "crashed"), outcome(tmp / "oracle")
        keys, queued, path, states = crashed
        assert queued == (len(keys), len(keys))  # one queued event per planned send: none planned twice
        assert keys == oracle[0], "the outbox differs from the uninterrupted run"
        assert path == oracle[2], "a person's path differs from the uninterrupted run"
        assert states == oracle[3]
        assert states and keys  # the journey really ran
        print(f"kills={killed} mid_pass={mid_pass} sends={len(keys)} steps={len(path)}")
