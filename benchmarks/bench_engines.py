"""The six seed segments on SQLite, DuckDB and ClickHouse (chdb, in-process), side by side in one run.

On the generated store of ``benchmarks.generate_store`` (1,000,000 people / 20,000,000 events, seed 7;
``BENCH_SIZE=small``: 10k / 200k; ``BENCH_SIZE=medium``: 100k / 2M), the analytical tables are mirrored
into a DuckDB file and a chdb folder (:mod:`motorcade.analytics`), then for every seed segment of
``benchmarks.bench_segments``:

* ``<engine>: <segment>``: plan choice and the compiled query on that engine, the member ids fetched
  (best of 3), baseline = the same on SQLite in the same run; every engine must return SQLite's members;
* ``<engine>: mirror``: copying the analytical tables from the SQLite store into the engine (rows/s in
  the note) — this is a copy through Arrow batches, not the JSON Lines ingest of issue 17's target;
* ``<engine>: size on disk``: reported in the note (seconds column: 0).

``BENCH_ENGINES=duckdb`` (or ``clickhouse``) limits the engines. Run alone: ``python -m benchmarks engines``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path


def _size() -> tuple[int, int, int]:
    size = os.environ.get("BENCH_SIZE")
    if size == "small":
        return 10_000, 200_000, 1
    if size == "medium":
        return 100_000, 2_000_000, 3
    return 1_000_000, 20_000_000, 7


def _disk(path: Path) -> int:
    if path.is_file():
        wal = path.with_name(path.name + ".wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _best(fn, repeat: int = 3):
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def run(report) -> None:
    import zoneinfo

    from benchmarks.bench_segments import SEGMENTS
    from benchmarks.generate_store import AS_OF, generate
    from motorcade.analytics import ClickHouseEngine, DuckDBEngine
    from motorcade.dsl.rules import rule_set_from_text
    from motorcade.segments.compute import evaluate_members
    from motorcade.store.sqlite import SQLiteStore

    people, events, seed = _size()
    tz = zoneinfo.ZoneInfo("Asia/Shanghai")
    path = generate(people, events, seed)
    store = SQLiteStore(path)
    rule_set = rule_set_from_text(SEGMENTS, "bench_segments.mc")
    wanted = os.environ.get("BENCH_ENGINES", "duckdb,clickhouse").split(",")
    folder = Path(tempfile.mkdtemp(prefix="motorcade-bench-engines-"))
    try:
        with store.transaction():
            store.refresh_plan_stats()
        report("sqlite: size on disk", 0.0, None, note=f"{_disk(Path(path)) / 1e6:,.0f} MB ({people:,} people, "
                                                      f"{events:,} events)")
        on_sqlite = {}
        for name in rule_set.segments:
            evaluate_members(store, rule_set, name, AS_OF, tz)  # warm the page cache
            on_sqlite[name] = _best(lambda name=name: evaluate_members(store, rule_set, name, AS_OF, tz)[0])
        engines = []
        if "duckdb" in wanted:
            engines.append(("duckdb", folder / "analytics.duckdb", lambda p: DuckDBEngine(p)))
        if "clickhouse" in wanted:
            engines.append(("clickhouse", folder / "chdb", lambda p: ClickHouseEngine(chdb_path=str(p))))
        for key, target, make in engines:
            engine = make(target)
            try:
                started = time.perf_counter()
                counts = engine.mirror(store)
                seconds = time.perf_counter() - started
                rows = sum(counts.values())
                report(f"{key}: mirror of the analytical tables", seconds, None,
                       note=f"{rows:,} rows, {rows / seconds:,.0f} rows/s")
                for name in rule_set.segments:
                    evaluate_members(store, rule_set, name, AS_OF, tz, engine=engine)  # warm
                    seconds, members = _best(lambda name=name: evaluate_members(store, rule_set, name, AS_OF, tz,
                                                                                engine=engine)[0])
                    sqlite_seconds, expected = on_sqlite[name]
                    if members != expected:
                        raise AssertionError(f"{key}: {name}: {len(members)} members, SQLite {len(expected)}")
                    report(f"{key}: {name} (baseline SQLite compiled)", seconds, sqlite_seconds,
                           note=f"{len(members):,} members")
                if key == "duckdb":
                    engine.query("CHECKPOINT")  # the write-ahead log into the file, so its size is the data's
            finally:
                engine.close()
            report(f"{key}: size on disk", 0.0, None, note=f"{_disk(target) / 1e6:,.0f} MB")
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    def _print(name, seconds, baseline_seconds=None, note=""):
        ratio = f"{seconds / baseline_seconds:.2f}x" if baseline_seconds else "-"
        base = f"{baseline_seconds:.3f}" if baseline_seconds else "-"
        print(f"{name:60s} {seconds:8.3f} {base:>8s} {ratio:>8s}  {note}")

    run(_print)
