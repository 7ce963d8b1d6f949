"""Tag computation: every built-in calculator over the generated dealer-group store.

Uses the segment benchmark's seeded store (``benchmarks.generate_store``: 1M people / 20M events, or
10k / 200k with ``BENCH_SIZE=small``), copied to a scratch file so the tags written here never change the
store other benchmarks read. Rows: each calculator's full run, all of them together, and an incremental
run after a small batch of new events (baseline: the full run, so the ratio is the saving).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

CALCULATOR_MODULES = ("motorcade_tags_value", "motorcade_tags_activity", "motorcade_tags_intent",
                      "motorcade_tags_lifecycle", "motorcade_tags_quadrant")


def _size() -> tuple[int, int, int]:
    return (10_000, 200_000, 1) if os.environ.get("BENCH_SIZE") == "small" else (1_000_000, 20_000_000, 7)


def _calculators():
    import importlib

    from motorcade.plugins import MotorcadePluginManager

    pm = MotorcadePluginManager()
    for name in CALCULATOR_MODULES:
        pm.register(importlib.import_module(name), name=name)
    return {n: e.obj for n, e in pm.registry().tag_calculators.items()}


def run(report) -> None:
    from benchmarks.generate_store import AS_OF, generate

    from motorcade.model import Event
    from motorcade.store import SQLiteStore
    from motorcade.tags.engine import compute_tags

    people, events, seed = _size()
    source = generate(people, events, seed)
    calculators = _calculators()
    with tempfile.TemporaryDirectory(prefix="motorcade-bench-tags-") as scratch:
        path = Path(scratch) / "tags.db"
        shutil.copyfile(source, path)
        store = SQLiteStore(path)
        try:
            started = time.perf_counter()
            results = compute_tags(store, calculators, as_of=AS_OF)
            full = time.perf_counter() - started
            for r in results:
                report(f"{r.calculator} (full)", r.seconds, note=f"{r.rows_written:,} values, {people:,} people")
            report("all built-in tags (full)", full, note=f"{sum(r.rows_written for r in results):,} values")

            ids = [row[0] for row in store.query("SELECT id FROM people ORDER BY id LIMIT 1000")]
            at = AS_OF - dt.timedelta(hours=1)
            with store.transaction():
                store.insert_events(
                    Event(name=name, ts=at, person_id=pid, properties={"store": "S001", "amount": 800},
                          source="bench", dedup_key=f"bench-{pid}-{name}")
                    for pid in ids for name in ("app_login", "test_drive", "service_visit"))
            started = time.perf_counter()
            incremental = compute_tags(store, calculators, as_of=AS_OF, incremental=True)
            seconds = time.perf_counter() - started
            modes = ", ".join(f"{r.calculator} {r.mode}" for r in incremental)
            report("all built-in tags (incremental, 1k changed people)", seconds, baseline_seconds=full,
                   note=modes)
        finally:
            store.close()


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("BENCH_SIZE", "small")
    run(lambda name, seconds, baseline_seconds=None, note="": print(f"{name}: {seconds:.3f}s {note}"))
