"""Tags imported from another system: a source's ``[sources.X.tags]`` table maps columns to tags.

A lead-scoring system computes ``intent_level``; its export is read like any source, and the columns the
table names become tag values of the row's person, with the same catalogue (type, allowed values or range,
title), provenance (``calculator`` = ``source:X``, ``computed_at`` = when the row was read) and health
(coverage, distribution, freshness, drift) as computed tags. The producer of such a tag is the source: a
calculator or a rule tag of the same name is a conflict (`motorcade check` names both, `tags compute`
refuses).

The ingest core calls :func:`define` when a source starts, :func:`write` for each batch's person rows and
:func:`record_run` when the source is read to the end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any, Iterable, Sequence

from ..store.codec import utc_now
from .base import TagDefinition


def producer(source: str) -> str:
    """The name imported values carry as their calculator: ``source:leads``."""
    return f"source:{source}"


def version(definitions: Sequence[TagDefinition]) -> str:
    """A version that changes when the tag table of the source changes (type, values, range, title)."""
    text = repr(sorted((d.name, d.type, d.title, d.allowed_values, d.value_range) for d in definitions))
    return "import-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def define(store, source: str, definitions: Sequence[TagDefinition]) -> None:
    """Put the source's tags in the tag catalogue (before its values are written)."""
    with store.transaction():
        store.define_tags(definitions, calculator=producer(source), calculator_version=version(definitions))


def write(store, source: str, definitions: Sequence[TagDefinition], rows: Iterable[tuple[int, dict[str, Any]]],
          *, at: dt.datetime) -> int:
    """Replace the values of the source's tags for the people of ``rows`` (``(person_id, {tag: value})``,
    a value None = the source has none, which removes the stored one). Returns the values written."""
    values, people = [], set()
    for person_id, tags in rows:
        people.add(person_id)
        for tag, value in tags.items():
            if value is not None:
                values.append((person_id, tag, int(value) if isinstance(value, bool) else value))
    if not people:
        return 0
    return store.write_tag_values(values, tags=[d.name for d in definitions], calculator=producer(source),
                                  calculator_version=version(definitions), computed_at=at, person_ids=people)


def record_run(store, source: str, definitions: Sequence[TagDefinition], *, started: dt.datetime,
               rows_written: int, tags_table: dict[str, Any] | None = None) -> list[str]:
    """Record the read as a tag run of ``source:X`` with the tags' health figures; the drift warnings."""
    from .engine import drift_warnings, engine_settings, tag_health

    clock = time.perf_counter()
    name = producer(source)
    options = engine_settings(tags_table)
    people = store.people_count()
    previous = store.tag_runs(name, limit=1)
    previous_tags = previous[0]["health"].get("tags", {}) if previous else {}
    health_of = {d.name: tag_health(store, d, people) for d in definitions}
    warnings = [w for d in definitions for w in drift_warnings(d.name, health_of[d.name], previous_tags.get(d.name),
                                                               options)]
    health = {"mode": "import", "people": people, "tags": health_of, "warnings": warnings,
              "seconds": time.perf_counter() - clock}
    with store.transaction():
        store.record_tag_run(calculator=name, calculator_version=version(definitions), started_at=started,
                             finished_at=utc_now(), rows_written=rows_written, health=health)
    return warnings
