"""The contract between a tag-calculator plugin and the core.

A calculator declares the tags it produces and what they depend on; the core orders calculators by
those dependencies, hands each a :class:`TagContext`, and writes the values it returns together with
``computed_at`` and the calculator's version.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Iterable, Iterator

import attrs

TAG_TYPES = ("string", "number", "boolean", "date")


@attrs.frozen
class TagDefinition:
    """One tag in the catalogue."""

    name: str  # tag name used in rules: `tag intent_level = "high"`
    type: str  # one of TAG_TYPES
    description: str  # what it means, for `motorcade tags list`
    title: str = ""  # display title, e.g. "购买意向等级"
    allowed_values: tuple[Any, ...] | None = None  # closed set of values (levels), if any
    value_range: tuple[float, float] | None = None  # inclusive numeric range, if any
    # True: besides the person's value, the calculator yields the value at each store the person used, as
    # ``(person_id, tag, value, store_id)``; a store-scoped rule reads the value at its store (docs/tags.md)
    per_store: bool = False

    def __attrs_post_init__(self):
        if self.type not in TAG_TYPES:
            raise ValueError(f"tag {self.name!r}: type {self.type!r} is not one of {', '.join(TAG_TYPES)}")


@attrs.frozen
class TagContext:
    """What a calculator gets for one computation."""

    store: Any  # the project's Store (read through its query functions)
    as_of: dt.datetime  # the instant "now" means for this computation (aware)
    settings: dict[str, Any]  # this calculator's `[tags.NAME]` table from motorcade.toml
    person_ids: frozenset[int] | None = None  # None = everyone; else only these people (incremental)
    timezone: dt.tzinfo | None = None  # the project's time zone (None: as_of's own zone)
    # The analytics engine holding a mirror of the analytical tables (``[project] analytics``), where a
    # calculator built on motorcade.tags.query.TagQuery runs its query; None: the operational store.
    analytics: Any = None

    @property
    def dialect(self) -> str:
        """The store's engine as sqlglot names its dialect (``"sqlite"``, ``"postgres"``, ...): render SQL built
        as a sqlglot tree with it (``tree.sql(dialect=context.dialect)``) before :meth:`Store.query`."""
        return self.store.dialect

    def json_value_sql(self, column: str, key: str) -> str:
        """SQL for the scalar value of top-level key ``key`` of the JSON document in ``column`` (``"properties"``,
        ``"e.properties"``), rendered from a sqlglot tree in the store's dialect. ``key`` must be a plain name
        (letters, digits, ``_``): it becomes part of the SQL text."""
        from sqlglot import exp

        if not key.replace("_", "").isalnum():
            raise ValueError(f"{key!r} is not a JSON key name (letters, digits and _ only)")
        *table, name = column.split(".")
        path = exp.JSONPath(expressions=[exp.JSONPathRoot(), exp.JSONPathKey(this=key)])
        value = exp.JSONExtractScalar(this=exp.column(name, table=table[0] if table else None), expression=path,
                                      json_subtype=True)
        return value.sql(dialect=self.dialect)

    @property
    def as_of_epoch(self) -> int:
        """``as_of`` as events.ts counts time: whole seconds since the epoch."""
        return int(self.as_of.timestamp())

    @property
    def utc_offset_seconds(self) -> int:
        """The UTC offset of ``as_of`` in seconds. Not for bucketing events into days: in a zone with
        daylight saving time the offset differs between events; use :meth:`local_day_sql`."""
        offset = self.as_of.utcoffset()
        return 0 if offset is None else int(offset.total_seconds())

    @property
    def zone(self) -> dt.tzinfo:
        """The project's time zone: local days and dates are counted in it."""
        return self.timezone or self.as_of.tzinfo

    @property
    def zone_key(self) -> str:
        """:attr:`zone` as text for SQL (``motorcade_utc_offset(ts, zone)``)."""
        from motorcade.localtime import zone_key

        return zone_key(self.zone)

    @property
    def local_today(self) -> dt.date:
        """``as_of``'s date in the project's time zone."""
        return self.as_of.astimezone(self.zone).date()

    def local_day_sql(self, column: str) -> tuple[str, dict[str, Any]]:
        """SQL for the local day (days since 1970-01-01 in :attr:`zone`) of the epoch seconds in ``column``,
        exact across daylight-saving changes, and its parameters (``:local_zone``)."""
        from motorcade.localtime import local_day_sql

        return local_day_sql(column, ":local_zone"), {"local_zone": self.zone_key}

    def person_filter(self, column: str) -> tuple[str, dict[str, Any]]:
        """An ``AND column IN (...)`` clause restricting a query to :attr:`person_ids`, and its parameters.

        Empty for a full run. The ids travel as one JSON parameter (``json_each``), so a large incremental
        set costs one bound value, not thousands.
        """
        if self.person_ids is None:
            return "", {}
        import json

        ids = {"person_ids_json": json.dumps(sorted(self.person_ids))}
        if self.dialect == "postgres":  # motorcade_id_list: installed by the PostgreSQL store
            return f" AND {column} IN (SELECT motorcade_id_list(:person_ids_json))", ids
        if self.dialect != "sqlite":
            from motorcade.errors import MotorcadeError

            raise MotorcadeError(f"TagContext.person_filter has no {self.dialect} form yet",
                                 hint="run the calculator in full, or give it supports_incremental = False")
        return f" AND {column} IN (SELECT value FROM json_each(:person_ids_json))", ids

    def sql(self, text: str) -> str:
        """``text``, a query written in SQLite's dialect with ``:name`` parameters (as the bundled calculators
        write theirs), rendered for the store's engine through sqlglot: on SQLite unchanged; on PostgreSQL
        with PostgreSQL's spelling (``LEAST``/``GREATEST`` for scalar min/max, ``%(name)s`` parameters,
        ``REAL`` as ``DOUBLE PRECISION``). Only for SQL whose meaning sqlglot carries over exactly: a
        function one engine lacks (``printf``) must be written per dialect."""
        if self.dialect == "sqlite":
            return text
        import sqlglot

        return sqlglot.parse_one(text, read="sqlite").sql(dialect=self.dialect)

    def wants(self, person_id: int) -> bool:
        """Whether this computation should yield a value for ``person_id``."""
        return self.person_ids is None or person_id in self.person_ids


class TagCalculator:
    """Base class of a tag calculator. Subclasses set the class attributes and implement compute."""

    name: ClassVar[str] = ""  # calculator name, e.g. "activity"
    version: ClassVar[str] = "1"  # bump when the computation changes; stored with every value
    produces: ClassVar[tuple[TagDefinition, ...]] = ()  # the tags it writes
    depends_on_tags: ClassVar[tuple[str, ...]] = ()  # tags (of other calculators) it reads
    depends_on_events: ClassVar[tuple[str, ...]] = ()  # event names it reads
    default_settings: ClassVar[dict[str, Any]] = {}  # documented defaults for `[tags.NAME]`
    # The keys of `[tags.NAME]` with kinds and docs (motorcade.config_schema.Setting objects); None: derived
    # from default_settings (the same keys; kinds from the defaults' types).
    settings_schema: ClassVar[tuple | None] = None
    # False when the calculator's inputs cannot be tracked per person (e.g. tables without a change time):
    # the core then runs it in full even when asked for an incremental run.
    supports_incremental: ClassVar[bool] = True
    # The store engines (``store.dialect`` values: "sqlite", "postgres", ...) the calculator runs on; None: any.
    # A calculator whose SQL text is written for one engine says so, and the tag engine refuses to run it on
    # another with an error naming the calculator, its plugin and the engine, instead of failing mid-query.
    supported_engines: ClassVar[tuple[str, ...] | None] = None

    def input_events(self, settings: dict[str, Any]) -> tuple[str, ...] | None:
        """Event names whose arrival changes this calculator's values (for incremental runs).

        Defaults to ``depends_on_events``; a calculator whose settings choose the events overrides this.
        A calculator that declares neither events nor tags gets None: any new event of a person counts as
        a change. One that reads only tags gets ``()``: only rewritten upstream values count.
        """
        if self.depends_on_events:
            return tuple(self.depends_on_events)
        return () if self.depends_on_tags else None

    def compute(self, context: TagContext) -> Iterable[tuple[int, str, Any]] | Iterator[tuple[int, str, Any]]:
        """Return or yield ``(person_id, tag_name, value)`` for every person that has a value.

        With ``context.person_ids`` set (an incremental run), yield values only for those people: the core
        replaces exactly their values of the produced tags. Values are checked against the definitions.
        """
        raise NotImplementedError
