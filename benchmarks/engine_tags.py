"""All built-in tags on SQLite, DuckDB and ClickHouse (chdb, in-process), side by side in one run.

On the generated store of ``benchmarks.generate_store`` (1,000,000 people / 20,000,000 events, seed 7;
``BENCH_SIZE=small``: 10k / 200k; ``BENCH_SIZE=medium``: 100k / 2M), copied to a scratch file so the tags
written here never change the shared store. Rows:

* ``sqlite: all built-in tags``: ``compute_tags`` on the operational store, as without ``[project] analytics``;
* ``<engine>: mirror``: the first copy of the analytical tables into the engine (what ``segments compute``
  also does; later runs append only new events);
* ``<engine>: all built-in tags`` (baseline: SQLite's): ``compute_tags(..., analytics=engine)``: the queries
  on the engine, the values written to the operational store and to the engine's tag table, health figures;
  per calculator too. Every engine must leave the same values in the store as SQLite (checked per tag).

``BENCH_ENGINES=duckdb`` (or ``clickhouse``) limits the engines; ``BENCH_STORE=path`` writes (or reuses) the
generated store of the chosen size at ``path`` instead of the shared ``benchmarks/out`` one. :func:`run` is what ``bench_engines`` calls;
alone: ``python -m benchmarks.engine_tags``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

CALCULATOR_MODULES = ("motorcade_tags_value", "motorcade_tags_activity", "motorcade_tags_intent",
                      "motorcade_tags_lifecycle", "motorcade_tags_quadrant")

# per tag: how many values, the length of the text values and the sum of the numbers, rounded (the sum's
# order of addition follows the rows' order, which differs between runs)
FINGERPRINT = ("SELECT tag, count(*), sum(CASE WHEN typeof(value) = 'text' THEN length(value) ELSE 0 END), "
               "round(total(CASE WHEN typeof(value) IN ('integer', 'real') THEN value END), 3) FROM tag_values "
               "GROUP BY tag ORDER BY tag")


def _size() -> tuple[int, int, int]:
    size = os.environ.get("BENCH_SIZE")
    if size == "small":
        return 10_000, 200_000, 1
    if size == "medium":
        return 100_000, 2_000_000, 3
    return 1_000_000, 20_000_000, 7


def _calculators():
    import importlib

    from motorcade.plugins import MotorcadePluginManager

    pm = MotorcadePluginManager()
    for name in CALCULATOR_MODULES:
        pm.register(importlib.import_module(name), name=name)
    return {n: e.obj for n, e in pm.registry().tag_calculators.items()}


def _load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def run(report) -> None:
    """Report the rows described in the module docstring through ``report(name, seconds, baseline, note)``."""
    import sqlite3
    import zoneinfo

    from benchmarks.generate_store import AS_OF, generate
    from motorcade.analytics import ClickHouseEngine, DuckDBEngine
    from motorcade.store.sqlite import SQLiteStore
    from motorcade.tags.engine import compute_tags

    people, events, seed = _size()
    tz = zoneinfo.ZoneInfo("Asia/Shanghai")
    source = generate(people, events, seed, path=Path(os.environ["BENCH_STORE"]) if os.environ.get("BENCH_STORE")
                      else None)
    wanted = os.environ.get("BENCH_ENGINES", "duckdb,clickhouse").split(",")
    folder = Path(tempfile.mkdtemp(prefix="motorcade-bench-engine-tags-"))
    try:
        path = folder / "tags.db"
        with sqlite3.connect(source) as src, sqlite3.connect(path) as dst:
            src.backup(dst)
        store = SQLiteStore(path)
        try:
            calculators = _calculators()
            started = time.perf_counter()
            results = compute_tags(store, calculators, as_of=AS_OF, timezone=tz)
            on_sqlite = time.perf_counter() - started
            per_calc = {r.calculator: r.seconds for r in results}
            values = sum(r.rows_written for r in results)
            report("sqlite: all built-in tags", on_sqlite, None,
                   note=f"{values:,} values, {people:,} people / {events:,} events; {_load()}")
            expected = store.query(FINGERPRINT)
            engines = []
            if "duckdb" in wanted:
                engines.append(("duckdb", lambda: DuckDBEngine(folder / "analytics.duckdb")))
            if "clickhouse" in wanted:
                engines.append(("clickhouse", lambda: ClickHouseEngine(chdb_path=str(folder / "chdb"))))
            for key, make in engines:
                engine = make()
                try:
                    started = time.perf_counter()
                    counts = engine.mirror(store)
                    seconds = time.perf_counter() - started
                    report(f"{key}: mirror of the analytical tables", seconds, None,
                           note=f"{sum(counts.values()):,} rows; {_load()}")
                    started = time.perf_counter()
                    results = compute_tags(store, calculators, as_of=AS_OF, timezone=tz, analytics=engine)
                    seconds = time.perf_counter() - started
                    for r in results:
                        report(f"{key}: {r.calculator} (baseline SQLite)", r.seconds, per_calc[r.calculator],
                               note=f"{r.rows_written:,} values")
                    report(f"{key}: all built-in tags (baseline SQLite)", seconds, on_sqlite,
                           note=f"{sum(r.rows_written for r in results):,} values; {_load()}")
                    got = store.query(FINGERPRINT)
                    if [tuple(r) for r in got] != [tuple(r) for r in expected]:
                        raise AssertionError(f"{key}: the tag values differ from SQLite's: {got} != {expected}")
                finally:
                    engine.close()
        finally:
            store.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover
    def _print(name, seconds, baseline_seconds=None, note=""):
        ratio = f"{seconds / baseline_seconds:.2f}x" if baseline_seconds else "-"
        base = f"{baseline_seconds:.3f}" if baseline_seconds else "-"
        print(f"{name:55s} {seconds:8.3f} {base:>8s} {ratio:>8s}  {note}", flush=True)

    run(_print)
