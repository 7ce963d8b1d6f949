"""Moving up: copy a project's SQLite store into PostgreSQL, then verify the copy.

:func:`copy_store` copies every table (ids kept) in batches through PostgreSQL's ``COPY``, in one
transaction (a copy that fails or is killed leaves the target as empty as it found it), after migrating
the target to the same schema version. Each table's secondary indexes are built after its rows arrive, and
the rows arrive frozen (``COPY ... (FREEZE)`` into tables emptied in the same transaction), so the copy is
ready for index-only scans without waiting for a vacuum. :func:`verify_copy` then compares the row count of every table
and the members of every segment of the project's rules, computed on both stores at the same as-of.

The copy is audited without making the stores differ: its ``store.copy.started`` entry is appended to the
source's log *before* any row is read, so it is copied with the rest and both chains agree up to it; the
outcome (rows, verification) is appended afterwards to the target's log (:func:`record_copy_outcome`) and,
by the command line, to the source's. :func:`verify_copy` compares the audit log up to the copy's own entry.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable

import attrs

from ..errors import MotorcadeError
from .codec import dumps
from .postgres.dialect import ID_TABLES

BATCH = 20_000
# Untyped SQLite columns that are jsonb on PostgreSQL: a tag value (a number or text) becomes its JSON.
JSON_VALUE_COLUMNS = {("tag_values", "value"), ("store_tag_values", "value"), ("tag_value_counts", "value")}


@attrs.define
class CopyResult:
    rows: dict[str, int]  # table -> rows copied
    seconds: float
    audit_entry: int | None = None  # id of the copy's ``store.copy.started`` entry (copied too)


@attrs.define
class VerifyResult:
    counts: dict[str, tuple[int, int]]  # table -> (rows in the source, rows in the target)
    segments: dict[str, tuple[int, int, int]]  # segment -> (members on source, on target, in only one)
    as_of: dt.datetime
    audit_chain_same: bool = True  # the copy's audit entry carries the same hash on both stores

    @property
    def ok(self) -> bool:
        return (self.audit_chain_same and all(a == b for a, b in self.counts.values())
                and all(d == 0 for *_, d in self.segments.values()))


def _tables(source) -> list[str]:
    """The source's tables in creation order (referenced tables before the tables that refer to them)."""
    return [r[0] for r in source.conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name != 'schema_version' ORDER BY rowid")]


def _source_columns(source, table: str) -> list[str]:
    return [r[1] for r in source.conn.execute(f"PRAGMA table_info({table})")]


def _target_columns(target, table: str) -> set[str]:
    return {r[0] for r in target.conn.execute_native(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s AND is_generated = 'NEVER'", (table,))}


def _drop_secondary_indexes(raw, table: str) -> list[str]:
    """Drop the indexes of ``table`` that back no constraint; return their definitions to build them again.

    Filling a table and then building each index once (a sort) is several times faster than keeping the
    indexes up to date row by row: for the events table's two indexes that lead with a person or a name,
    each row lands on a random page, and once an index outgrows the server's cache every row costs a read.
    """
    found = raw.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = %s::regclass AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)", (table,)).fetchall()
    for name, _ in found:
        raw.execute(f"DROP INDEX {name}")
    return [definition for _, definition in found]


def copy_store(source, target, *, batch_size: int = BATCH,
               progress: Callable[[str, int, int], None] | None = None) -> CopyResult:
    """Copy every table of ``source`` (a SQLite store) into ``target`` (an empty PostgreSQL store).

    ``progress(table, rows copied so far, rows in the table)`` is called after every batch.
    """
    if getattr(source, "dialect", None) != "sqlite" or getattr(target, "dialect", None) != "postgres":
        raise MotorcadeError("store copy copies a SQLite store into a PostgreSQL one",
                             hint="motorcade store copy --to postgresql://user@host/db, run in the SQLite project")
    if source.schema_version() != target.schema_version():
        raise MotorcadeError(f"the stores are at schema versions {source.schema_version()} (source) and "
                             f"{target.schema_version()} (target)", hint="open both with this Motorcade version")
    tables = _tables(source)
    occupied = {t: n for t in tables
                if (n := target.conn.execute_native(f"SELECT count(*) FROM {t}").fetchone()[0])}
    if occupied:
        named = ", ".join(f"{t} ({n:,} rows)" for t, n in sorted(occupied.items()))
        raise MotorcadeError(f"{target.location} is not empty: {named}",
                             hint="copy into a new, empty database (createdb ...); nothing was written")
    started = time.perf_counter()
    copied: dict[str, int] = {}
    raw = target.conn.raw
    # Before any row is read, so the entry is among the rows copied (the target's chain continues from it).
    audit_entry = source.audit("store.copy.started", {"to": target.location, "batch": batch_size},
                               {"tables": len(tables)})
    with target.transaction():
        # Emptied in this transaction, the tables can take their rows frozen and all-visible (COPY FREEZE): the
        # first reads after the copy need not visit every page to set its hint bits, and index-only scans
        # read no table page (without it, the first run of a segment after a 20M-event copy took 15.8 s, not 0.9 s).
        raw.execute("TRUNCATE " + ", ".join(tables))
        for table in tables:
            wanted = _target_columns(target, table)
            columns = [c for c in _source_columns(source, table) if c in wanted]
            total = source.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            encode = [i for i, c in enumerate(columns) if (table, c) in JSON_VALUE_COLUMNS]
            cursor = source.conn.execute(f"SELECT {', '.join(columns)} FROM {table}")
            done = 0
            rebuild = _drop_secondary_indexes(raw, table)
            with raw.cursor() as cur:
                quoted = ", ".join(f'"{c}"' for c in columns)  # (a column may be a keyword: user)
                with cur.copy(f"COPY {table} ({quoted}) FROM STDIN (FREEZE)") as copy:
                    while rows := cursor.fetchmany(batch_size):
                        for row in rows:
                            if encode:
                                row = list(row)
                                for i in encode:
                                    if row[i] is not None:
                                        row[i] = dumps(row[i])
                            copy.write_row(row)
                        done += len(rows)
                        if progress is not None:
                            progress(table, done, total)
            for definition in rebuild:
                raw.execute(definition)
            copied[table] = done
            if table in ID_TABLES:  # the next id generated continues after the copied ones
                raw.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"greatest((SELECT max(id) FROM {table}), 1))")
    target.analyze()
    return CopyResult(copied, time.perf_counter() - started, audit_entry)


def record_copy_outcome(source, target, result: CopyResult, verified: "VerifyResult | None") -> dict[str, Any]:
    """Append the copy's outcome to the target's audit log, as the caller who copied (after verify, so it is
    not compared); returns what it recorded (for the source's own entry)."""
    outcome = {"rows": sum(result.rows.values()), "tables": len(result.rows), "started_entry": result.audit_entry,
               "verify": "skipped" if verified is None else "ok" if verified.ok else "FAILED",
               "outcome": "ok" if verified is None or verified.ok else "exit 1"}
    target.access = source.access
    target.audit("store.copy", {"from": source.location}, outcome)
    return outcome


def _copied_audit_entry(target) -> int | None:
    """The id of the newest ``store.copy.started`` entry the target holds: the last entry copied."""
    rows = target.audit_entries(action="store.copy.started", limit=1)
    return rows[0]["id"] if rows else None


def verify_copy(source, target, rule_set, tz, as_of: dt.datetime) -> VerifyResult:
    """Row counts of every table on both stores, and every segment's members computed on both at ``as_of``.

    The audit log is compared up to the copy's own ``store.copy.started`` entry (entries appended later, the
    outcome of the copy among them, are each store's own), and that entry must carry the same hash on both:
    the copied chain is the source's."""
    from ..segments.compute import evaluate_members

    counts = {}
    copied_upto = _copied_audit_entry(target)
    for table in _tables(source):
        where = ""
        if table == "audit_log" and copied_upto is not None:
            where = f" WHERE id <= {int(copied_upto)}"
        counts[table] = (source.conn.execute(f"SELECT count(*) FROM {table}{where}").fetchone()[0],
                         target.conn.execute_native(f"SELECT count(*) FROM {table}{where}").fetchone()[0])
    same_chain = True
    if copied_upto is not None:
        hashes = [s.conn.execute("SELECT hash FROM audit_log WHERE id = ?", (copied_upto,)).fetchone()
                  for s in (source, target)]
        same_chain = hashes[0] is not None and tuple(hashes[0]) == tuple(hashes[1])
    segments: dict[str, Any] = {}
    for name in sorted(rule_set.segments):
        on_source = set(evaluate_members(source, rule_set, name, as_of, tz)[0])
        on_target = set(evaluate_members(target, rule_set, name, as_of, tz)[0])
        segments[name] = (len(on_source), len(on_target), len(on_source ^ on_target))
    return VerifyResult(counts, segments, as_of, same_chain)
