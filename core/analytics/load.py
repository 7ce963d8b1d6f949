"""Moving an existing project's analytical data into an engine, verified (``motorcade store copy --to
duckdb:///… | chdb:///…``; docs/engines.md, "Moving a project's data into an engine").

The copy is a full mirror (every analytical table replaced; events read into Arrow by ADBC's SQLite
driver in a child process when it is installed). The check: every analytical table's row count in the
engine equals the store's, and every segment's members computed on the engine equal those computed on
the store at the same instant.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Callable

import attrs

from .engines import ENGINE_SCHEMES
from .tables import TABLE_NAMES


@attrs.frozen
class EngineCopyResult:
    rows: dict[str, int]  # table -> rows copied
    seconds: float
    counts: dict[str, tuple[int, int]]  # table -> (store, engine)
    segments: dict[str, tuple[int, int, int]]  # segment -> (members on the store, on the engine, in only one)
    as_of: dt.datetime | None

    @property
    def ok(self) -> bool:
        return all(a == b for a, b in self.counts.values()) and not any(d for _, _, d in self.segments.values())


def is_engine_url(url: str) -> bool:
    return str(url).partition("://")[0] in ENGINE_SCHEMES


def copy_into_engine(project, url: str, *, as_of: dt.datetime | None,
                     progress: Callable[[str], None] | None = None) -> EngineCopyResult:
    """Copy ``project``'s analytical tables into the engine ``url`` names; verify unless ``as_of`` is None."""
    from ..segments.compute import evaluate_members
    from .engines import open_engine
    from .ingest import ingested_count
    from .segments import members_on_engine

    store = project.store
    engine = open_engine(url, base_dir=project.directory)
    try:
        started = time.perf_counter()
        rows = engine.mirror(store, incremental=False)
        seconds = time.perf_counter() - started
        if progress is not None:
            progress(f"copied {sum(rows.values()):,} rows of {len(rows)} tables in {seconds:.1f} s")
        counts: dict[str, tuple[int, int]] = {}
        segments: dict[str, tuple[int, int, int]] = {}
        if as_of is not None:
            in_engine = engine.counts()
            extra = ingested_count(engine)  # events ingested straight into the engine are not the store's
            for name in TABLE_NAMES:
                counts[name] = (_count(store, name), in_engine[name] - (extra if name == "events" else 0))
            rules, tz = project.rules(), project.timezone
            for name in sorted(rules.segments):
                on_store = set(evaluate_members(store, rules, name, as_of, tz)[0])
                on_engine = set(members_on_engine(store, engine, rules, name, as_of, tz))
                segments[name] = (len(on_store), len(on_engine), len(on_store ^ on_engine))
        return EngineCopyResult(rows, seconds, counts, segments, as_of)
    finally:
        engine.close()


def _count(store, table: str) -> int:
    # the table names are ours (motorcade.analytics.tables), never input
    return int(store.query(f"SELECT count(*) FROM {table}")[0][0])

