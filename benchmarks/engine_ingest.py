"""Bulk JSON Lines ingest end to end into each engine: events/s from the file to events queryable in the
engine with their person ids (docs/engines.md, "Bulk ingest into the engine").

One generated native-shape file (``BENCH_SIZE=small``: 200,000 events; ``medium``: 2,000,000; default
20,000,000; one person per ~20 events, phones, app user ids and some CRM ids, properties with Chinese
text) goes, each time into a fresh operational store:

- into SQLite through the SQLite path at its best (the parallel bulk load: worker processes parse, no
  event index during the load) — the baseline;
- into DuckDB and into ClickHouse (chdb) through :class:`motorcade.analytics.ingest.EngineIngest`
  (the engine parses; Python sees distinct hours and identifier sets; One-ID in the operational store).

Each engine's figure is checked: every event is in the engine with a person id. The lead calls
:func:`run_engine_ingest` from ``bench_engines``; ``python -m benchmarks.engine_ingest`` runs it alone.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"  # gitignored
IDENTIFIERS = {"phone": "phone", "app_user_id": "app_user_id", "crm_id": "crm_id"}


def _events() -> int:
    size = os.environ.get("BENCH_SIZE")
    return {"small": 200_000, "medium": 2_000_000}.get(size, 20_000_000)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


def write_events(path: Path, n: int, people: int, seed: int = 5) -> None:
    """``n`` native event lines for ``people`` people (the same shape as bench_ingest's file)."""
    rnd = random.Random(seed)
    names = ("touchpoint_visit", "share", "configurator_view", "app_login", "message_click")
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            p = rnd.randrange(people)
            ids = {"phone": f"139{p:08d}"} if p % 3 else {"app_user_id": f"U{p:010d}"}
            if p % 7 == 0:
                ids["crm_id"] = f"C{p:08d}"
            out.write(json.dumps({"event": names[i % 5],
                                  "ts": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i // 60) % 60:02d}+08:00",
                                  **ids, "properties": {"page": "品牌故事", "topic": "brand", "n": i},
                                  "id": f"ev{i:010d}"}, ensure_ascii=False) + "\n")


def events_file(n: int) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"engine_events_{n}.jsonl"
    if not path.exists():  # reused between runs: generating it is not what is measured
        write_events(path.with_suffix(".tmp"), n, people=max(1000, n // 20))
        path.with_suffix(".tmp").rename(path)
    return path


def _source(path: Path, folder: Path):
    from motorcade_sources_jsonl import JsonlSource

    return JsonlSource("events", {"path": str(path), "format": "native", "identifiers": IDENTIFIERS}, folder)


def ingest_sqlite(path: Path, folder: Path, n: int) -> tuple[float, str]:
    from motorcade.sources.ingest import Ingestor
    from motorcade.store import open_store

    store = open_store(folder / "sqlite.db")
    try:
        summary = Ingestor(store).ingest(_source(path, folder), bulk=True)
        assert summary.events == n, summary
        return summary.seconds, ""
    finally:
        store.close()


def ingest_engine(url: str, path: Path, folder: Path, n: int) -> tuple[float, str]:
    """Seconds from the file to events queryable in the engine (engine opened and closed inside)."""
    from motorcade.analytics import open_engine
    from motorcade.analytics.ingest import EngineIngest
    from motorcade.sources.ingest import Ingestor
    from motorcade.store import open_store

    store = open_store(folder / f"{url.partition(':')[0]}-store.db")
    started = time.perf_counter()
    engine = open_engine(url, base_dir=folder)
    try:
        runner = EngineIngest(Ingestor(store), engine)
        summary = runner.ingest(_source(path, folder))
        seconds = time.perf_counter() - started
        with_person = int(engine.query("SELECT count(*) FROM events WHERE person_id IS NOT NULL")[0][0])
        assert summary.events == n == with_person, (summary, with_person)
        stages = "; ".join(f"{k} {wall:.2f} s ({cpu:.2f} s CPU)" for k, (wall, cpu) in runner.timings.items())
        return seconds, stages
    finally:
        engine.close()
        store.close()


def run_engine_ingest(report) -> None:
    """Events/s end to end per engine, with SQLite's bulk path as the baseline."""
    n = _events()
    path = events_file(n)
    folder = Path(tempfile.mkdtemp(prefix="engine-ingest-", dir=OUT))
    try:
        load = _load()
        baseline, _ = ingest_sqlite(path, folder, n)
        report("ingest jsonl: SQLite (parallel bulk load)", baseline, None,
               note=f"{n:,} events, {n / baseline:,.0f} events/s; {load} at the start, {_load()} at the end")
        for key, url in (("DuckDB", "duckdb:///engine.duckdb"), ("ClickHouse (chdb)", "chdb:///engine-ch")):
            load = _load()
            seconds, stages = ingest_engine(url, path, folder, n)
            report(f"ingest jsonl: {key}", seconds, baseline,
                   note=f"{n / seconds:,.0f} events/s end to end; {load} at the start, {_load()} at the end; "
                        f"stages: {stages}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


run = run_engine_ingest

if __name__ == "__main__":
    def _print(name, seconds, baseline_seconds=None, note=""):
        ratio = f"{seconds / baseline_seconds:.2f}x" if baseline_seconds else "-"
        base = f"{baseline_seconds:.3f}" if baseline_seconds else "-"
        print(f"{name:45s} {seconds:8.3f} {base:>8s} {ratio:>8s}  {note}", flush=True)

    run_engine_ingest(_print)
