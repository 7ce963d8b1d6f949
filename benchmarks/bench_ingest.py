"""Ingest benchmarks: JSON Lines events/s into SQLite, and One-ID stitching of identity records.

- ``ingest jsonl events``: a native-shape JSON Lines file through the jsonl connector, cleaning, identity
  resolution and the parallel bulk load (worker processes parse, no event index during the load, indexes
  built at the end); a second line breaks the time down by stage. Baseline: the bare ``executemany`` of
  the same rows, already parsed, into an empty events table under the same bulk load.
- ``identity stitching``: 1,000,000 person records from two sources, ~30 % of them sharing a phone
  with a record of the other source (``BENCH_SIZE=small``: 100,000).

    python -m benchmarks.bench_ingest
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path


def _sizes() -> tuple[int, int]:
    if os.environ.get("BENCH_SIZE") == "small":
        return 100_000, 100_000
    return 500_000, 1_000_000


def _write_events(path: Path, n: int, people: int) -> None:
    rnd = random.Random(5)
    names = ("touchpoint_visit", "share", "configurator_view", "app_login", "message_click")
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            p = rnd.randrange(people)
            ids = {"phone": f"139{p:08d}"} if p % 3 else {"app_user_id": f"U{p:010d}"}
            if p % 7 == 0:
                ids["crm_id"] = f"C{p:08d}"
            out.write(json.dumps({"event": names[i % 5], "ts": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T10:{i % 60:02d}:00+08:00",
                                  **ids, "properties": {"page": "品牌故事", "topic": "brand", "n": i}, "id": f"ev{i:010d}"},
                                 ensure_ascii=False) + "\n")


OUT = Path(__file__).resolve().parent / "out"  # gitignored


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


def bench_events(report, n: int) -> float:
    """End to end through the connector and the bulk load: worker processes parse and clean byte ranges
    (one per core), the ingest process resolves identities and copies each batch in with one
    INSERT ... SELECT, no event index during the load (duplicates removed, indexes built at the end)."""
    from motorcade.sources.ingest import Ingestor
    from motorcade.store import open_store
    from motorcade_sources_jsonl import JsonlSource

    OUT.mkdir(exist_ok=True)
    path = OUT / f"events_{n}.jsonl"
    if not path.exists():  # reused between runs: generating it is not what is measured
        _write_events(path.with_suffix(".tmp"), n, people=max(1000, n // 25))
        path.with_suffix(".tmp").rename(path)
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        tmp = Path(tmp)
        source = JsonlSource("events", {"path": str(path), "format": "native",
                                        "identifiers": {"phone": "phone", "app_user_id": "app_user_id", "crm_id": "crm_id"}}, tmp)
        store = open_store(tmp / "b.db")
        load = _load()
        cpu = time.process_time()
        ingestor = Ingestor(store)
        summary = ingestor.ingest(source, bulk=True)
        cpu = time.process_time() - cpu
        load_after = _load()
        assert summary.events == n, summary
        # baseline: the same rows, parsed already, into an empty events table with one executemany in one
        # transaction, under the same bulk load (no event index, indexes built at the end): SQLite's ceiling
        rows = store.conn.execute("SELECT person_id, name, ts, properties, source, dedup_key, record_id FROM events").fetchall()
        store.close()
        base = open_store(tmp / "base.db")
        started = time.perf_counter()
        base_cpu = time.process_time()
        with base.bulk_event_load(defer_dedup=True), base.transaction():
            base.insert_event_rows(rows)
        baseline = time.perf_counter() - started
        base_cpu = time.process_time() - base_cpu
        base.close()
    report("ingest jsonl events", summary.seconds, baseline,
           f"{n:,} events: {n / summary.seconds:,.0f} events/s end to end ({n / cpu:,.0f}/s per CPU-second of the "
           f"ingest process); bare executemany {n / baseline:,.0f}/s ({n / base_cpu:,.0f}/s per CPU-second); "
           f"{load} at the start, {load_after.split(' on ')[0]} at the end")
    stages = _stages(ingestor.timings, n)
    if stages:
        print(f"{'':<24} stages: {stages}")
    return n / summary.seconds


def _stages(timings: dict, n: int) -> str:
    """The per-stage breakdown of a parallel load (seconds, and microseconds per event)."""
    if "load phase" not in timings:
        return ""
    us = lambda key: f"{timings.get(key, 0.0):.2f} s = {1e6 * timings.get(key, 0.0) / n:.2f} us/event"  # noqa: E731
    workers = int(timings["workers"])
    idle = workers * timings["load phase"] - timings["workers: busy"]
    return "; ".join([
        f"load phase {timings['load phase']:.2f} s with {workers} workers",
        f"workers parse+clean {us('workers: parse+clean CPU')} of CPU (busy {timings['workers: busy']:.2f} s, "
        f"idle {idle:.2f} s in all)",
        f"main waits for workers {us('main: waiting for workers')}",
        f"resolves identities {us('main: resolving identities')}",
        f"inserts rows {us('main: inserting rows')}",
        f"other batch writing {timings.get('main: writing batches', 0.0) - timings.get('main: resolving identities', 0.0) - timings.get('main: inserting rows', 0.0):.2f} s",
        f"dedup + indexes + checkpoint {us('main: indexes')}",
        f"analyze {timings.get('main: analyze', 0.0):.2f} s",
    ])


def bench_identity(report, n: int, *, database: str | None = None) -> float:
    """Person records from two sources (CRM, DMS), 30 % sharing a phone with the other source (into a new
    SQLite file, or the empty store ``database`` names)."""
    from motorcade.sources.base import PersonRecord, RawIdentifier
    from motorcade.sources.ingest import Ingestor
    from motorcade.store import open_store

    rnd = random.Random(11)
    shared = int(n * 0.3)  # records whose phone another source's record also carries
    making = [0.0]  # seconds spent building the records (the connector's work, not stitching)

    def batches(source: str, start: int, stop: int, size: int = 20000):
        for lo in range(start, stop, size):
            t0 = time.perf_counter()
            batch = []
            for i in range(lo, min(stop, lo + size)):
                # CRM records 0..n/2; DMS records n/2..n; the first `shared/2` of each half share phones
                half = i - start
                phone = f"138{half + 10_000_000:08d}" if half < shared // 2 else f"13{5 if source == 'crm' else 6}{half + 10_000_000:08d}"
                key = f"{source[0].upper()}{i:09d}"
                ids = (RawIdentifier(f"{source}_id", key), RawIdentifier("phone", phone))
                if rnd.random() < 0.3:
                    ids += (RawIdentifier("email", f"u{i}@163.com"),)
                batch.append(PersonRecord(source_key=key, identifiers=ids, attributes={"name": f"n{i}"}, position=key))
            making[0] += time.perf_counter() - t0
            yield batch

    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        store = open_store(database or Path(tmp) / "i.db")
        ingestor = Ingestor(store)
        load = _load()
        started = time.perf_counter()
        a = ingestor.ingest_records("crm", batches("crm", 0, n // 2))
        b = ingestor.ingest_records("dms", batches("dms", n // 2, n))
        seconds = time.perf_counter() - started - making[0]
        people = store.conn.execute("SELECT count(*) FROM people").fetchone()[0]
        store.close()
    assert people == n - shared // 2, (people, n, shared)
    report("identity stitching", seconds, None,
           f"{n:,} records, {shared:,} overlapping -> {people:,} people, {b.merged + a.merged} merges: "
           f"{n / seconds:,.0f} records/s (building the records, {making[0]:.1f} s, not counted); {load}")
    return n / seconds


def run(report) -> None:
    events, records = _sizes()
    bench_events(report, events)
    bench_identity(report, records)


if __name__ == "__main__":
    def _print(name, seconds, baseline_seconds=None, note=""):
        ratio = f" ({seconds / baseline_seconds:.1f}x baseline)" if baseline_seconds else ""
        print(f"{name:<24} {seconds:8.2f} s{ratio}  {note}")

    run(_print)
