"""SQL functions the PostgreSQL store installs (``CREATE OR REPLACE`` whenever it migrates), so that the
store's portable statements mean on PostgreSQL what they mean on SQLite.

* ``motorcade_utc_offset(ts, zone)`` and ``motorcade_add_months(ts, months, zone)``: as on SQLite
  (:mod:`motorcade.store.functions`), with PostgreSQL's own time-zone rules (``zone`` an IANA name, ``UTC``
  or a fixed ``+08:00``; PostgreSQL reads ``+08:00`` the POSIX way round, so fixed offsets are computed
  here). Month arithmetic clamps the day to the month's end, as the rule language's ``shift`` does.
* ``date(ts, 'unixepoch')``, ``strftime('%s', iso text)``, ``strftime(fmt, ts, 'unixepoch')`` for the
  formats the reports use (``%Y``, ``%m``, ``%Y-%m``, ``%s``), and ``json_extract(document, '$.key')``
  (text, or the value's text for a number; a path given as ``$."key"`` too): SQLite's functions of the
  same names, for the report queries (:mod:`motorcade.store.reports`);
* ``json_extract_path_text(jsonb, ...)``: what sqlglot renders for a JSON value on PostgreSQL, for the
  jsonb documents (people.attributes, events.properties);
* ``instr(text, text)``: SQLite's substring search (the audit log's actor filter);
* ``motorcade_id_list(json array text)``: the ids of a JSON array, for a tag calculator's person filter
  (:meth:`motorcade.tags.base.TagContext.person_filter`);
* ``boolean + boolean`` and ``integer + boolean`` (SQLite's truth values are the integers 0 and 1).
"""

from __future__ import annotations

from typing import Callable

# Epoch seconds PostgreSQL's to_timestamp accepts comfortably: years 1 to 9999 (as Python's datetime).
_LOW, _HIGH = -62135596800, 253402300799

FUNCTIONS = (
    f"""CREATE OR REPLACE FUNCTION motorcade_utc_offset(ts bigint, zone text) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN ts IS NULL OR zone IS NULL THEN NULL
        WHEN zone ~ '^[+-][0-9]{{2}}:[0-9]{{2}}$' THEN
            (CASE WHEN left(zone, 1) = '-' THEN -1 ELSE 1 END)
            * (substr(zone, 2, 2)::bigint * 3600 + substr(zone, 5, 2)::bigint * 60)
        ELSE extract(epoch FROM (to_timestamp(least(greatest(ts, {_LOW}), {_HIGH})) AT TIME ZONE zone)
            - (to_timestamp(least(greatest(ts, {_LOW}), {_HIGH})) AT TIME ZONE 'UTC'))::bigint
    END $$""",
    f"""CREATE OR REPLACE FUNCTION motorcade_add_months(ts bigint, months bigint, zone text) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN ts IS NULL OR months IS NULL OR zone IS NULL THEN NULL
        WHEN zone ~ '^[+-][0-9]{{2}}:[0-9]{{2}}$' THEN
            floor(extract(epoch FROM ((to_timestamp(ts + motorcade_utc_offset(ts, zone)) AT TIME ZONE 'UTC')
                + make_interval(months => months::int)) AT TIME ZONE 'UTC'))::bigint
                - motorcade_utc_offset(ts, zone)
        WHEN ts < {_LOW} OR ts > {_HIGH} THEN CASE WHEN months > 0 THEN 4611686018427387904
                                                  ELSE -4611686018427387904 END
        ELSE floor(extract(epoch FROM ((to_timestamp(ts) AT TIME ZONE zone)
            + make_interval(months => months::int)) AT TIME ZONE zone))::bigint
    END $$""",
    f"""CREATE OR REPLACE FUNCTION date(ts bigint, modifier text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(to_timestamp(least(greatest(ts, {_LOW}), {_HIGH})) AT TIME ZONE 'UTC', 'YYYY-MM-DD') $$""",
    """CREATE OR REPLACE FUNCTION strftime(fmt text, t text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN fmt = '%s' THEN floor(extract(epoch FROM t::timestamptz))::bigint::text END $$""",
    f"""CREATE OR REPLACE FUNCTION strftime(fmt text, ts bigint, modifier text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN fmt = '%s' THEN ts::text ELSE to_char(
        to_timestamp(least(greatest(ts, {_LOW}), {_HIGH})) AT TIME ZONE 'UTC',
        replace(replace(fmt, '%Y', 'YYYY'), '%m', 'MM')) END $$""",
    """CREATE OR REPLACE FUNCTION json_extract_path_text(document jsonb, VARIADIC path text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT jsonb_extract_path_text(document, VARIADIC path) $$""",
    """CREATE OR REPLACE FUNCTION instr(haystack text, needle text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT strpos(haystack, needle) $$""",
    """CREATE OR REPLACE FUNCTION motorcade_id_list(ids text) RETURNS SETOF bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT jsonb_array_elements_text(ids::jsonb)::bigint $$""",
    """CREATE OR REPLACE FUNCTION json_extract(document jsonb, path text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT document #>> ARRAY[CASE WHEN path LIKE '$."%"' THEN substr(path, 4, length(path) - 4)
                                   ELSE substr(path, 3) END] $$""",
)


# SQLite's truth values are integers: ``(t1 IS NOT NULL) + (t2 IS NOT NULL)`` counts (a funnel's depth).
OPERATORS = (
    ("motorcade_bool_plus", "boolean", "boolean", "$1::int + $2::int"),
    ("motorcade_int_plus_bool", "integer", "boolean", "$1 + $2::int"),
)


def install(execute: Callable[[str], object]) -> None:
    for statement in FUNCTIONS:
        execute(statement)
    for name, left, right, body in OPERATORS:
        execute(f"CREATE OR REPLACE FUNCTION {name}({left}, {right}) RETURNS integer LANGUAGE sql IMMUTABLE "
                f"PARALLEL SAFE AS $$ SELECT {body} $$")
        execute(f"DO $$ BEGIN CREATE OPERATOR + (LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = {name}); "
                f"EXCEPTION WHEN duplicate_function THEN NULL; END $$")
