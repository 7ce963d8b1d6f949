"""Ingest benchmarks: JSON Lines events/s into SQLite, and One-ID stitching of identity records.

- ``ingest jsonl events``: a native-shape JSON Lines file through the jsonl connector, cleaning, identity
  resolution and the bulk path (event indexes dropped and rebuilt). Baseline: the bare ``executemany``
  of the same rows, already parsed, into an empty events table (SQLite's ceiling on this machine).
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


def bench_events(report, n: int) -> float:
    from motorcade.sources.ingest import Ingestor
    from motorcade.store import open_store
    from motorcade_sources_jsonl import JsonlSource

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _write_events(tmp / "e.jsonl", n, people=max(1000, n // 25))
        source = JsonlSource("events", {"path": "e.jsonl", "format": "native", "batch_size": 20000,
                                        "identifiers": {"phone": "phone", "app_user_id": "app_user_id", "crm_id": "crm_id"}}, tmp)
        store = open_store(tmp / "b.db")
        summary = Ingestor(store).ingest(source, bulk=True)
        assert summary.events == n, summary
        # baseline: the same rows, parsed already, straight into an empty table with executemany
        rows = store.conn.execute("SELECT person_id, name, ts, properties, source, dedup_key, record_id FROM events").fetchall()
        base = open_store(tmp / "base.db")
        started = time.perf_counter()
        with base.transaction():
            base.insert_event_rows(rows)
        baseline = time.perf_counter() - started
        store.close()
        base.close()
    report("ingest jsonl events", summary.seconds, baseline,
           f"{n:,} events: {n / summary.seconds:,.0f} events/s end to end (bare executemany {n / baseline:,.0f}/s)")
    return n / summary.seconds


def bench_identity(report, n: int) -> float:
    from motorcade.sources.base import PersonRecord, RawIdentifier
    from motorcade.sources.ingest import Ingestor
    from motorcade.store import open_store

    rnd = random.Random(11)
    shared = int(n * 0.3)  # records whose phone another source's record also carries

    def batches(source: str, start: int, stop: int, size: int = 20000):
        for lo in range(start, stop, size):
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
            yield batch

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "i.db")
        ingestor = Ingestor(store)
        started = time.perf_counter()
        a = ingestor.ingest_records("crm", batches("crm", 0, n // 2))
        b = ingestor.ingest_records("dms", batches("dms", n // 2, n))
        seconds = time.perf_counter() - started
        people = store.conn.execute("SELECT count(*) FROM people").fetchone()[0]
        store.close()
    assert people == n - shared // 2, (people, n, shared)
    report("identity stitching", seconds, None,
           f"{n:,} records, {shared:,} overlapping -> {people:,} people, {b.merged + a.merged} merges: {n / seconds:,.0f} records/s")
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
