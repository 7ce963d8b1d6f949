"""What differs between the engines a segment compiles for: one small class per engine.

The compiler (:mod:`motorcade.segments.compiler`) builds one sqlglot tree per rule; where engines differ it
asks its dialect, which builds that piece of the tree. Everything else — the three-valued logic, kinds,
time windows resolved in Python and bound as epoch seconds, the plan shapes — is shared.

What differs, and nothing more:

* **truth values**: SQLite has none (``1`` / ``0``); PostgreSQL refuses an integer where a boolean is
  needed, so the other engines use ``TRUE`` / ``FALSE``;
* **JSON attributes and event properties**: the function that extracts a value and the one that names its
  JSON type (``json_extract`` / ``json_type`` on SQLite and DuckDB with different type names,
  ``jsonb_extract_path`` / ``jsonb_typeof`` on PostgreSQL, ``JSONExtract*`` / ``JSONType`` on ClickHouse);
* **tag values**: SQLite keeps each value with its own type in a column without affinity
  (``typeof(value)``); the typed engines keep ``value_kind`` (``integer`` / ``real`` / ``text``),
  ``value_num`` and ``value_text`` (see docs/engines.md, "Tables");
* **ISO dates and instants in text**: checking that text names a real day / time, and an instant's epoch
  second;
* **calendar month shifts** (``did A then B within N months``): SQLite and DuckDB call the Python function
  the evaluator uses (``motorcade_add_months``, registered on each connection); PostgreSQL and ClickHouse
  move the wall clock with their own time-zone functions;
* **aggregates**: ``sum`` of nothing is 0 (SQLite's ``total``), ClickHouse's correlated scalar subqueries
  give NULL for an empty ``count``;
* **correlation depth**: ClickHouse resolves a correlated column only from the immediately enclosing
  query, so under ``has car where`` and ``count(E where ...)`` the person is read from the ownership / event
  row, and a sequence is one join of its steps instead of nested ``EXISTS``;
* **placeholders**: ``:v1`` (SQLite), ``$v1`` (DuckDB), ``%(v1)s`` (PostgreSQL), ``{v1:Int64}``
  (ClickHouse, typed from the bound value).

``DIALECTS[name]`` is the dialect object; ``compile_condition(..., dialect="duckdb")``,
``plan_segment(..., dialect="postgres")`` and ``Compiler(..., dialect=...)`` take the name.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

# SQL kind expression of a JSON value on SQLite: the evaluator's kind_of over json.loads output.
_SQLITE_JSON_KINDS = {"true": "bool", "false": "bool", "integer": "number", "real": "number", "text": "string",
                      "array": "other", "object": "other"}
_DUCKDB_JSON_KINDS = {"BOOLEAN": "bool", "BIGINT": "number", "UBIGINT": "number", "DOUBLE": "number",
                      "HUGEINT": "number", "VARCHAR": "string", "ARRAY": "other", "OBJECT": "other"}
_POSTGRES_JSON_KINDS = {"boolean": "bool", "number": "number", "string": "string", "array": "other",
                        "object": "other"}
_CLICKHOUSE_JSON_KINDS = {"Bool": "bool", "Int64": "number", "UInt64": "number", "Double": "number",
                          "String": "string", "Array": "other", "Object": "other"}
ISO_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
ISO_INSTANT_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}$"


def _func(name: str, *args) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _num(value: int) -> exp.Literal:
    return exp.Literal.number(value)


def _s(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def _and(*items) -> exp.Expression:
    out = items[0]
    for item in items[1:]:
        out = exp.And(this=out, expression=item)
    return out


def _or(*items) -> exp.Expression:
    out = items[0]
    for item in items[1:]:
        out = exp.Or(this=out, expression=item)
    return out


def _in(value, names) -> exp.In:
    return exp.In(this=value, expressions=[_s(x) for x in names])


def _cast(e, to: str) -> exp.Cast:
    return exp.Cast(this=e, to=exp.DataType.build(to))


class Dialect:
    """SQLite: the store's own engine, and the base the others override."""

    name = "sqlite"
    sqlglot = "sqlite"  # the sqlglot dialect the tree is rendered in
    # tag values keep their SQLite type (a text never equals a number): `=` / IN need no kind test
    typed_tag_storage = True
    # correlated columns only from the immediately enclosing query (ClickHouse)
    correlate_innermost = False
    # how a plan joins people to its driver's rows: SQLite's CROSS JOIN ... ON keeps the driver outermost
    driver_join: str | None = "cross"
    # plans of set shape (column stores): semi-/anti-joins and one GROUP BY person_id ... HAVING over the
    # named events instead of correlated per-person checks, no probes (docs/compiler.md)
    set_plans = False
    # in a set plan, the people who consent to a channel only through `*` (granted there, no own row), found
    # by grouping their `*` and channel rows (ClickHouse: measured faster) rather than by an anti-join over
    # the channel's rows of just those people (DuckDB): docs/compiler.md, "Plan choice per engine"
    grouped_default_consent = False
    # the tag value's kinds whose view column (``tag_kind``) is NULL for every other kind
    exclusive_tag_views: tuple[str, ...] = ()

    # -- truth values --
    def true(self) -> exp.Expression:
        return _num(1)

    def false(self) -> exp.Expression:
        return _num(0)

    def unknown(self) -> exp.Expression:
        """NULL as a truth value."""
        return exp.Null()

    def as_int(self, truth: exp.Expression) -> exp.Expression:
        """A truth value as the number 1 / 0 (for arithmetic)."""
        return exp.Paren(this=truth)

    # -- tag values --
    def tag_kind(self, t: str, col) -> tuple[exp.Expression, Any, dict]:
        """``(value, stored(kind) -> test, views)`` of the tag value in row ``t``: ``value`` is NULL exactly
        when the value is missing; ``views[kind]`` the value as that kind where it is not ``value``."""
        value = col(t, "value")
        sqlite_types = {"number": ("integer", "real"), "string": ("text",)}

        def stored(k: str) -> exp.Expression:
            if k == "integer":
                return exp.EQ(this=_func("typeof", value), expression=_s("integer"))
            return _in(_func("typeof", value), sqlite_types[k])

        return value, stored, {}

    def tag_value_in(self, t: str, col, items: list, bind) -> exp.Expression:
        """The tag value in row ``t`` equals one of ``items`` (numbers and strings; a text never equals a
        number)."""
        return exp.In(this=col(t, "value"), expressions=[bind(v) for v in items])

    # -- JSON documents --
    def json_path(self, key: str) -> str:
        return '$."' + key.replace('"', '\\"') + '"'

    def json_parts(self, bind, document, key: str) -> tuple[exp.Expression, Any, dict]:
        """``(value, kind_is(kind) -> test, views)`` of the JSON value under ``key`` of ``document``: ``value`` is
        NULL exactly when the key is missing or JSON null."""
        path = bind(self.json_path(key))
        value = _func("json_extract", document, path)
        json_kind = _func("json_type", document, path)
        return value, self._kind_test(json_kind, _SQLITE_JSON_KINDS), {}

    @staticmethod
    def _kind_test(json_kind, names: dict):
        def kind_is(k):
            types = [j for j, v in names.items() if v == k]
            if not types:
                return None
            return _in(json_kind, types)
        return kind_is

    # -- ISO text --
    def iso_date(self, v, coalesce_false) -> exp.Expression:
        """1 when text ``v`` is exactly YYYY-MM-DD naming a real day, else 0 (motorcade.dsl.data.iso_date)."""
        return _and(exp.Glob(this=v, expression=_s("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]")),
                    exp.GTE(this=v, expression=_s("0001")),
                    # date() normalises an impossible day (02-30 -> 03-02) only with a modifier
                    coalesce_false(exp.EQ(this=_func("date", v, _s("+0 days")), expression=v)))

    def iso_instant(self, v, coalesce_false) -> exp.Expression:
        """1 when text ``v`` is exactly YYYY-MM-DDTHH:MM:SS+HH:MM naming a real time, else 0
        (motorcade.dsl.data.iso_instant)."""
        local = _func("substr", v, _num(1), _num(19))
        pattern = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9][+-][0-9][0-9]:[0-9][0-9]"
        return _and(exp.Glob(this=v, expression=_s(pattern)),
                    exp.GTE(this=v, expression=_s("1000")),
                    coalesce_false(exp.EQ(this=_func("strftime", _s("%Y-%m-%dT%H:%M:%S"), local, _s("+0 seconds")),
                                          expression=local)),
                    exp.LTE(this=_func("substr", v, _num(21), _num(2)), expression=_s("23")),
                    exp.LTE(this=_func("substr", v, _num(24), _num(2)), expression=_s("59")))

    def instant_epoch(self, text) -> exp.Expression:
        """Epoch seconds of ISO instant text (already checked by :meth:`iso_instant`)."""
        return _cast(_func("strftime", _s("%s"), text), "INTEGER")

    # -- text --
    def contains(self, v, text) -> exp.Expression:
        return exp.GT(this=_func("instr", v, text), expression=_num(0))

    def starts_with(self, v, text) -> exp.Expression:
        return exp.EQ(this=_func("substr", v, _num(1), _func("length", text)), expression=text)

    # -- aggregates over a person's events --
    def total(self, value) -> exp.Expression:
        # total(), not sum(): SQLite's sum() raises "integer overflow" past 64 bits (total() is a float,
        # 0.0 for no numbers: the evaluator's 0)
        return _func("total", value)

    def scalar(self, subquery: exp.Subquery, func: str) -> exp.Expression:
        """A correlated scalar aggregate as the compiler uses it (``count`` of nothing is 0)."""
        return subquery

    def in_list(self, value, items: list) -> exp.Expression:
        """``value IN (items)``: NULL when ``value`` is NULL."""
        return exp.In(this=value, expressions=items)

    # -- calendar months --
    def add_months(self, bind, ts, months: int, zone: str) -> exp.Expression:
        """Epoch second of ``ts`` moved ``months`` calendar months on ``zone``'s wall clock (day clamped)."""
        return _func("motorcade_add_months", ts, bind(months), bind(zone))


    # -- tag calculators (motorcade.tags.query) --
    def json_text(self, document, key: str) -> exp.Expression:
        """The value under top-level ``key`` (a plain name) of JSON ``document`` as text: a string as it is, a
        number as its JSON text; NULL when the key is missing or JSON null."""
        return _cast(_func("json_extract", document, _s(f"$.{key}")), "TEXT")

    def json_number(self, document, key: str) -> exp.Expression:
        """The value under ``key`` as a 64-bit float (a JSON number, or text holding one); NULL when missing."""
        return _cast(_func("json_extract", document, _s(f"$.{key}")), "REAL")

    def local_day(self, ts, zone: str, bind) -> exp.Expression:
        """Days since 1970-01-01 of the local date, in the zone named ``zone`` (a
        :func:`motorcade.localtime.zone_key`), of the epoch seconds ``ts``; exact across daylight saving."""
        return exp.Div(this=exp.Paren(this=exp.Add(this=ts, expression=_func("motorcade_utc_offset", ts.copy(),
                                                                              bind(zone)))),
                       expression=_num(86400), typed=True)  # typed: integer division

    def in_ids(self, column, ids_json) -> exp.Expression:
        """``column`` is one of the ids of the JSON array bound as ``ids_json`` (one parameter for any number)."""
        return exp.In(this=column, query=exp.select("value").from_(
            exp.Table(this=_func("json_each", ids_json))).subquery())

    def outer(self, value) -> exp.Expression:
        """A column a LEFT JOIN reads from its right side: NULL where the right side has no row."""
        return value

    def year_start(self, year) -> exp.Expression:
        """1 January of the (integer) year ``year`` as ISO text, ``'2019-01-01'``."""
        return _func("printf", _s("%04d-01-01"), year)

    def round_half_away(self, value) -> exp.Expression:
        """``value`` rounded to a whole number, halves away from zero."""
        return _func("round", value)

    # -- rendering --
    def render(self, tree: exp.Expression, params: dict, pretty: bool = False) -> str:
        return tree.sql(dialect=self.sqlglot, pretty=pretty)


class TypedDialect(Dialect):
    """What the typed engines (PostgreSQL, DuckDB, ClickHouse) share: booleans, tag values in three typed
    columns, ISO text checked with a regular expression and calendar arithmetic."""

    typed_tag_storage = False
    # value_num holds only integers and reals, value_text only texts (tables.py, tags.typed_row, migrations)
    exclusive_tag_views = ("number", "string")
    driver_join = None

    def true(self):
        return exp.true()

    def false(self):
        return exp.false()

    def as_int(self, truth):
        return _cast(truth, "INTEGER")

    def unknown(self):
        return _cast(exp.Null(), "BOOLEAN")

    def tag_kind(self, t, col):
        kind = col(t, "value_kind")

        def stored(k):
            if k == "integer":
                return exp.EQ(this=kind, expression=_s("integer"))
            return _in(kind, {"number": ("integer", "real"), "string": ("text",)}[k])

        # a boolean tag's 0 / 1 compare as numbers 0 / 1
        return kind, stored, {"number": col(t, "value_num"), "string": col(t, "value_text"),
                              "bool": col(t, "value_num"), "date": col(t, "value_text")}

    def tag_value_in(self, t, col, items, bind):
        numbers = [v for v in items if not isinstance(v, str)]
        texts = [v for v in items if isinstance(v, str)]
        tests = []
        if numbers:
            tests.append(exp.In(this=col(t, "value_num"), expressions=[bind(v) for v in numbers]))
        if texts:
            tests.append(exp.In(this=col(t, "value_text"), expressions=[bind(v) for v in texts]))
        if not tests:
            return self.false()
        return tests[0] if len(tests) == 1 else exp.Paren(this=exp.Or(this=tests[0], expression=tests[1]))

    def _int(self, e):
        return _cast(e, "INTEGER")

    def _mod(self, e, n: int):
        return exp.Mod(this=e, expression=_num(n))

    def _valid_day(self, v) -> exp.Expression:
        """The YYYY-MM-DD at the start of ``v`` (already matched by a pattern) names a real day."""
        y = self._int(_func("substr", v, _num(1), _num(4)))
        m = self._int(_func("substr", v, _num(6), _num(2)))
        d = self._int(_func("substr", v, _num(9), _num(2)))
        leap = exp.Or(this=exp.Paren(this=_and(exp.EQ(this=self._mod(y, 4), expression=_num(0)),
                                               exp.NEQ(this=self._mod(y.copy(), 100), expression=_num(0)))),
                      expression=exp.EQ(this=self._mod(y.copy(), 400), expression=_num(0)))
        days = exp.Case(ifs=[
            exp.If(this=exp.EQ(this=m, expression=_num(2)),
                   true=exp.Case(ifs=[exp.If(this=leap, true=_num(29))], default=_num(28))),
            exp.If(this=exp.In(this=m.copy(), expressions=[_num(4), _num(6), _num(9), _num(11)]), true=_num(30))],
            default=_num(31))
        return _and(exp.GTE(this=m.copy(), expression=_num(1)), exp.LTE(this=m.copy(), expression=_num(12)),
                    exp.GTE(this=d, expression=_num(1)), exp.LTE(this=d.copy(), expression=days))

    def _guarded(self, pattern: str, v, then: exp.Expression) -> exp.Expression:
        # CASE, not AND: an engine may evaluate both sides of AND, and the casts fail on other text
        return exp.Case(ifs=[exp.If(this=exp.RegexpLike(this=v, expression=_s(pattern)), true=then)],
                        default=self.false())

    def iso_date(self, v, coalesce_false):
        return self._guarded(ISO_DATE_RE, v, _and(exp.GTE(this=v, expression=_s("0001")), self._valid_day(v)))

    def iso_instant(self, v, coalesce_false):
        def part(start, length):
            return self._int(_func("substr", v, _num(start), _num(length)))

        return self._guarded(ISO_INSTANT_RE, v, _and(
            exp.GTE(this=v, expression=_s("1000")), self._valid_day(v),
            exp.LTE(this=part(12, 2), expression=_num(23)), exp.LTE(this=part(15, 2), expression=_num(59)),
            exp.LTE(this=part(18, 2), expression=_num(59)),
            exp.LTE(this=part(21, 2), expression=_num(23)), exp.LTE(this=part(24, 2), expression=_num(59))))

    def total(self, value):
        return exp.Coalesce(this=exp.Sum(this=value), expressions=[_num(0)])

    def json_number(self, document, key):
        return exp.TryCast(this=self.json_text(document, key), to=exp.DataType.build("DOUBLE"))

    def year_start(self, year):
        return exp.DPipe(this=_func("lpad", _cast(year, "TEXT"), _num(4), _s("0")), expression=_s("-01-01"))

    def round_half_away(self, value):
        # round() of a float rounds halves to even on PostgreSQL and ClickHouse
        return exp.Mul(this=_func("sign", value), expression=_func("floor", exp.Add(
            this=_func("abs", value.copy()), expression=exp.Literal.number("0.5"))))

    @staticmethod
    def _fixed_offset(zone: str) -> int | None:
        """The UTC offset of a zone without daylight saving (``"+08:00"``, ``"UTC"``), else None."""
        import datetime as dt

        from motorcade.localtime import zone_from_key

        tz = zone_from_key(zone)
        return int(tz.utcoffset(None).total_seconds()) if isinstance(tz, dt.timezone) else None

    def property_parts(self, e: str, col, key: str) -> tuple[exp.Expression, Any, dict]:
        """``json_parts`` of event property ``key`` read from the columns an engine materialised for it
        (:func:`property_columns`) instead of parsing the JSON document of every row."""
        names = property_columns(key)
        kind = col(e, names["kind"])

        def kind_is(k):
            return exp.EQ(this=kind.copy(), expression=_s(k)) if k in ("bool", "number", "string", "other") else None

        return kind, kind_is, {"number": col(e, names["num"]), "string": col(e, names["text"]),
                               "bool": col(e, names["bool"])}

    def property_sql(self, key: str) -> dict[str, tuple[str, str]]:
        """``{column: (type, SQL over properties)}`` that fills the typed columns of ``key`` (an engine's)."""
        raise NotImplementedError


PROPERTY_KEY_RE = r"^[a-z][a-z0-9_]{0,30}$"  # event property keys that get typed columns in an engine


def property_columns(key: str) -> dict[str, str]:
    """The typed columns of event property ``key`` materialised in an engine's ``events`` (docs/engines.md):
    its kind (``bool`` / ``number`` / ``string`` / ``other``, NULL when missing or JSON null) and its value as
    a number, as text and as a 0 / 1 flag — exactly the pieces ``json_parts`` extracts per row."""
    return {part: f"p_{key}_{part}" for part in ("kind", "num", "text", "bool")}


class DuckDBDialect(TypedDialect):
    name = "duckdb"
    sqlglot = "duckdb"
    set_plans = True

    def json_parts(self, bind, document, key):
        path = bind(self.json_path(key))
        json_kind = _func("json_type", document, path)
        value = exp.Nullif(this=json_kind, expression=_s("NULL"))
        extracted = _func("json_extract", document, path)
        text = _func("json_extract_string", document, path)
        views = {"number": exp.TryCast(this=extracted, to=exp.DataType.build("DOUBLE")), "string": text,
                 "bool": exp.Case(ifs=[exp.If(this=exp.EQ(this=text, expression=_s("true")), true=_num(1))],
                                  default=_num(0))}
        return value, self._kind_test(json_kind, _DUCKDB_JSON_KINDS), views

    def instant_epoch(self, text):
        return _cast(_func("epoch", exp.TryCast(this=text, to=exp.DataType.build("TIMESTAMPTZ"))), "BIGINT")

    def property_sql(self, key):
        import re

        assert re.match(PROPERTY_KEY_RE, key)  # the key becomes part of the SQL text: checked before
        path = self.json_path(key)
        t = f"json_type(properties, '{path}')"
        numbers = ", ".join(f"'{j}'" for j, v in _DUCKDB_JSON_KINDS.items() if v == "number")
        names = property_columns(key)
        return {names["kind"]: ("VARCHAR", f"CASE WHEN {t} IS NULL OR {t} = 'NULL' THEN NULL WHEN {t} = 'BOOLEAN' "
                                           f"THEN 'bool' WHEN {t} IN ({numbers}) THEN 'number' WHEN {t} = 'VARCHAR' "
                                           "THEN 'string' ELSE 'other' END"),
                names["num"]: ("DOUBLE", f"TRY_CAST(json_extract(properties, '{path}') AS DOUBLE)"),
                names["text"]: ("VARCHAR", f"json_extract_string(properties, '{path}')"),
                names["bool"]: ("INTEGER", f"CASE WHEN json_extract_string(properties, '{path}') = 'true' "
                                           "THEN 1 ELSE 0 END")}

    def contains(self, v, text):
        return exp.GT(this=_func("instr", v, text), expression=_num(0))

    def starts_with(self, v, text):
        return _func("starts_with", v, text)

    def json_text(self, document, key):
        return _func("json_extract_string", document, _s(f"$.{key}"))

    def local_day(self, ts, zone, bind):
        fixed = self._fixed_offset(zone)
        if fixed is not None:
            return exp.IntDiv(this=exp.Paren(this=exp.Add(this=ts, expression=_num(fixed))), expression=_num(86400))
        # ICU's time zones: the wall clock in the zone, counted as if it were UTC
        wall = _func("epoch", _func("timezone", bind(zone), _func("to_timestamp", ts)))
        return exp.IntDiv(this=_cast(wall, "BIGINT"), expression=_num(86400))

    def in_ids(self, column, ids_json):
        ids = _func("unnest", _func("from_json", ids_json, _s('["BIGINT"]')))
        return exp.In(this=column, query=exp.select(ids).subquery())


class PostgresDialect(TypedDialect):
    """PostgreSQL: documents are ``jsonb``; tag values as in :class:`TypedDialect`; consents' ``granted`` and
    everything else as on SQLite (integers, ISO text, epoch seconds)."""

    name = "postgres"
    sqlglot = "postgres"

    def json_parts(self, bind, document, key):
        k = bind(key)
        json_kind = _func("jsonb_typeof", _func("jsonb_extract_path", document, k))
        value = exp.Nullif(this=json_kind, expression=_s("null"))
        text = _func("jsonb_extract_path_text", document, k)
        views = {"number": _cast(text, "DOUBLE PRECISION"), "string": text,
                 "bool": exp.Case(ifs=[exp.If(this=exp.EQ(this=text, expression=_s("true")), true=_num(1))],
                                  default=_num(0))}
        return value, self._kind_test(json_kind, _POSTGRES_JSON_KINDS), views

    def _mod(self, e, n):
        return _func("mod", e, _num(n))  # `%` would be read as a placeholder by psycopg

    def json_text(self, document, key):
        return _func("jsonb_extract_path_text", document, _s(key))

    def json_number(self, document, key):
        return _cast(self.json_text(document, key), "DOUBLE PRECISION")

    def local_day(self, ts, zone, bind):
        return Dialect.local_day(self, ts, zone, bind)  # motorcade_utc_offset: installed by the PostgreSQL store

    def in_ids(self, column, ids_json):
        return exp.In(this=column, query=exp.select(_func("motorcade_id_list", ids_json)).subquery())


    def instant_epoch(self, text):
        return _cast(exp.Extract(this=exp.var("EPOCH"), expression=_cast(text, "TIMESTAMPTZ")), "BIGINT")

    def contains(self, v, text):
        return exp.GT(this=_func("strpos", v, text), expression=_num(0))

    def starts_with(self, v, text):
        return _func("starts_with", v, text)

    def add_months(self, bind, ts, months, zone):
        z = bind(zone)
        # the wall clock in the zone, moved by calendar months (PostgreSQL clamps the day to the month's end),
        # read back in the zone
        local = exp.Paren(this=exp.AtTimeZone(this=_func("to_timestamp", ts), zone=z))
        moved = exp.Paren(this=exp.Add(this=local, expression=_func(
            "make_interval", exp.Kwarg(this=exp.var("months"), expression=bind(months)))))
        return _cast(_func("floor", exp.Extract(this=exp.var("EPOCH"), expression=exp.Paren(
            this=exp.AtTimeZone(this=moved, zone=z.copy())))), "BIGINT")


class ClickHouseDialect(TypedDialect):
    """ClickHouse (a server through clickhouse-connect, or in-process through chdb): documents are ``String``
    columns read with ``JSONExtract*``; correlated columns only from the immediately enclosing query."""

    name = "clickhouse"
    sqlglot = "clickhouse"
    correlate_innermost = True
    set_plans = True
    grouped_default_consent = True

    def json_parts(self, bind, document, key):
        k = bind(key)
        json_kind = _func("toString", _func("JSONType", document, k))
        value = exp.Nullif(this=json_kind, expression=_s("Null"))
        views = {"number": _func("JSONExtractFloat", document, k), "string": _func("JSONExtractString", document, k),
                 "bool": _func("toInt8", _func("JSONExtractBool", document, k))}
        return value, self._kind_test(json_kind, _CLICKHOUSE_JSON_KINDS), views

    def _int(self, e):
        return _func("toInt64OrZero", e)

    def property_sql(self, key):
        import re

        assert re.match(PROPERTY_KEY_RE, key)  # the key becomes part of the SQL text: checked before
        t = f"toString(JSONType(properties, '{key}'))"
        numbers = ", ".join(f"'{j}'" for j, v in _CLICKHOUSE_JSON_KINDS.items() if v == "number")
        names = property_columns(key)
        return {names["kind"]: ("Nullable(String)", f"multiIf({t} IS NULL OR {t} = 'Null', NULL, {t} = 'Bool', "
                                                    f"'bool', {t} IN ({numbers}), 'number', {t} = 'String', "
                                                    "'string', 'other')"),
                names["num"]: ("Nullable(Float64)", f"JSONExtractFloat(properties, '{key}')"),
                names["text"]: ("Nullable(String)", f"JSONExtractString(properties, '{key}')"),
                names["bool"]: ("Nullable(Int8)", f"toInt8(JSONExtractBool(properties, '{key}'))")}

    def json_text(self, document, key):
        kind = _func("toString", _func("JSONType", document, _s(key)))
        return _func("multiIf", exp.EQ(this=kind, expression=_s("Null")), exp.Null(),
                     exp.EQ(this=kind.copy(), expression=_s("String")),
                     _func("JSONExtractString", document.copy(), _s(key)),
                     _func("JSONExtractRaw", document.copy(), _s(key)))

    def json_number(self, document, key):
        return _func("toFloat64OrNull", self.json_text(document, key))

    def local_day(self, ts, zone, bind):
        fixed = self._fixed_offset(zone)
        if fixed is not None:
            return _func("intDiv", exp.Add(this=ts, expression=_num(fixed)), _num(86400))
        # the zone of toDateTime must be a constant: the project's zone key, never data
        return _func("toInt64", _func("toDate", _func("toDateTime", ts, _s(zone))))

    def in_ids(self, column, ids_json):
        return exp.In(this=column, query=exp.select(_func("arrayJoin", _func("JSONExtract", ids_json,
                                                                             _s("Array(Int64)")))).subquery())

    def outer(self, value):
        # an unmatched LEFT JOIN row gets the column type's default (0, ''), NULL only in a Nullable column
        return _func("toNullable", value)

    def year_start(self, year):
        return _func("concat", _func("leftPad", _func("toString", year), _num(4), _s("0")), _s("-01-01"))


    def instant_epoch(self, text):
        return _func("toUnixTimestamp", _func("parseDateTimeBestEffortOrNull", text))

    def contains(self, v, text):
        return exp.GT(this=_func("position", v, text), expression=_num(0))

    def starts_with(self, v, text):
        return _func("startsWith", v, text)

    def total(self, value):
        return exp.Coalesce(this=_func("sumOrNull", value), expressions=[_num(0)])

    def scalar(self, subquery, func):
        # a correlated scalar subquery over no rows is NULL here (it is decorrelated into a join with the
        # grouped rows: no row, no group), also for count and sum
        if func in ("count", "sum"):
            return exp.Coalesce(this=subquery, expressions=[_num(0)])
        return subquery

    def in_list(self, value, items):
        # `NULL IN (...)` is 0 in ClickHouse, not NULL; and a correlated subquery cannot be an argument of IN
        # ("not supported as IN function arguments yet"): then one equality per item
        member = exp.In(this=value.copy(), expressions=items)
        if value.find(exp.Subquery) is not None and items:
            member = exp.Paren(this=_or(*[exp.EQ(this=value.copy(), expression=i) for i in items]))
        return exp.Case(ifs=[exp.If(this=exp.Is(this=value, expression=exp.Null()), true=exp.Null())],
                        default=member)

    def add_months(self, bind, ts, months, zone):
        # the zone of toDateTime must be a constant: it is the project's zone, bound as a literal name
        # by the compiler (a zone key, never rule text)
        local = _func("toDateTime", ts, _s(zone))
        return _func("toInt64", _func("toUnixTimestamp", _func("addMonths", local, bind(months))))

    def render(self, tree, params, pretty=False):
        tree = tree.copy()
        for placeholder in tree.find_all(exp.Placeholder):
            value = params.get(placeholder.name)
            kind = "Int64" if isinstance(value, int) else "Float64" if isinstance(value, float) else "String"
            placeholder.set("kind", exp.DataType.build(kind, dialect="clickhouse"))
        return tree.sql(dialect=self.sqlglot, pretty=pretty)


DIALECTS: dict[str, Dialect] = {d.name: d for d in (Dialect(), PostgresDialect(), DuckDBDialect(),
                                                   ClickHouseDialect())}
DIALECTS["postgresql"] = DIALECTS["postgres"]


def get_dialect(dialect: str | Dialect | None) -> Dialect:
    if dialect is None:
        return DIALECTS["sqlite"]
    if isinstance(dialect, Dialect):
        return dialect
    try:
        return DIALECTS[dialect]
    except KeyError:
        raise ValueError(f"no segment compiler dialect `{dialect}` (known: "
                         f"{', '.join(sorted(DIALECTS))})") from None
