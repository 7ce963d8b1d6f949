"""Tag values computed on an analytics engine, kept in its ``tag_values`` table as they are written.

With ``[project] analytics`` set, ``motorcade tags compute`` runs the calculators' queries on the engine
(:class:`motorcade.tags.query.TagQuery`) and writes each calculator's values to the operational store (the
source of truth, in one bulk transaction) and, in the same pass, to the engine's typed ``tag_values``
table (:func:`tee_tag_values`), so a calculator downstream — a rule tag reading ``intent_level`` — reads
fresh values on the engine without a second copy of the whole table.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from sqlglot import exp

from ..segments.dialects import get_dialect
from .tables import BATCH, TABLES, arrow_schema

TAG_TABLE = next(t for t in TABLES if t.name == "tag_values")


def typed_row(tag: str, person_id: int, value: Any) -> tuple:
    """A tag value as the engine keeps it: ``(tag, person_id, value_kind, value_num, value_text)``, the kind
    as SQLite's ``typeof`` names the stored value (a boolean is the integer 0 / 1)."""
    if isinstance(value, bool):
        return tag, person_id, "integer", float(value), None
    if isinstance(value, int):
        return tag, person_id, "integer", float(value), None
    if isinstance(value, float):
        return tag, person_id, "real", value, None
    return tag, person_id, "text", None, str(value)


def delete_tag_values(engine, tags: Iterable[str], person_ids: Iterable[int] | None) -> None:
    """Remove the engine's values of ``tags`` (of everyone, or only of ``person_ids``)."""
    import json

    dialect = get_dialect(engine.dialect)
    params: dict[str, Any] = {}
    names = []
    for i, tag in enumerate(tags):
        params[f"tag{i}"] = tag
        names.append(exp.Placeholder(this=f"tag{i}"))
    if not names:
        return
    where = exp.In(this=exp.column("tag"), expressions=names)
    if person_ids is not None:
        params["person_ids_json"] = json.dumps(sorted(int(p) for p in person_ids))
        where = exp.and_(where, dialect.in_ids(exp.column("person_id"), exp.Placeholder(this="person_ids_json")))
    engine._execute(dialect.render(exp.delete("tag_values", where=where), params), params)


def _typed_batch(tags: list, people: list, values: list):
    """An Arrow batch of the engine's ``tag_values`` from three columns, typed as :func:`typed_row` types one
    value, column by column (the common ``float``, ``int`` and ``str`` values without a call per value)."""
    import pyarrow as pa

    kinds = ["real" if type(v) is float else "integer" if type(v) is int else "text" if type(v) is str
             else typed_row("", 0, v)[2] for v in values]
    numbers = [None if k == "text" else float(v) for k, v in zip(kinds, values)]
    texts = [str(v) if k == "text" else None for k, v in zip(kinds, values)]
    schema = arrow_schema(TAG_TABLE)
    return pa.RecordBatch.from_arrays([pa.array(c, type=f.type) for c, f in zip(
        (tags, people, kinds, numbers, texts), schema)], schema=schema)


def tee_tag_values(engine, values: Iterable[tuple[int, str, Any]], *, tags: Iterable[str],
                   person_ids: Iterable[int] | None) -> Iterator[tuple[int, str, Any]]:
    """``values`` passed through unchanged, appended on the way to the engine's ``tag_values`` in Arrow
    batches, after the engine's old values of ``tags`` (everyone's, or ``person_ids``') are removed."""
    delete_tag_values(engine, list(tags), person_ids)
    tag_column: list = []
    person_column: list = []
    value_column: list = []
    for item in values:
        person_id, tag, value = item
        if value is not None:
            tag_column.append(tag)
            person_column.append(person_id)
            value_column.append(value)
            if len(value_column) >= BATCH:
                engine._append(TAG_TABLE, [_typed_batch(tag_column, person_column, value_column)])
                tag_column, person_column, value_column = [], [], []
        yield item
    if value_column:
        engine._append(TAG_TABLE, [_typed_batch(tag_column, person_column, value_column)])
