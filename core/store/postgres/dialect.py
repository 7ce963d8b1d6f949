"""SQLite statements of the store's mixins, rendered for PostgreSQL.

The mixins (one per pipeline stage) write their SQL in the portable subset both engines share; what
differs in spelling only is rewritten here once per statement text (cached):

* placeholders ``?`` and ``?N`` become psycopg's ``%s`` (a numbered one may repeat: the parameters are
  reordered to match), and every literal ``%`` is doubled;
* ``INSERT OR IGNORE INTO t ...`` becomes ``INSERT INTO t ... ON CONFLICT DO NOTHING``;
* ``INSERT OR REPLACE INTO t (cols) ...`` becomes an upsert on ``t``'s primary key (:data:`PRIMARY_KEYS`);
* ``a IS NOT b`` (SQLite's null-safe comparison) becomes ``a IS DISTINCT FROM b`` and ``IS b`` (not NULL)
  ``IS NOT DISTINCT FROM b``;
* ``temp.t`` is ``pg_temp.t``; ``WHERE 1`` / ``AND 0`` (integer truth values) are ``TRUE`` / ``FALSE``; the
  column ``user`` is quoted (a keyword in PostgreSQL);
* two-or-more-argument ``min(...)`` / ``max(...)`` (SQLite's scalar forms) become ``LEAST`` / ``GREATEST``;
* ``CAST(... AS INTEGER)`` casts to ``BIGINT`` (SQLite's integers are 64-bit).

SQLite's ``date``, ``strftime`` and ``json_extract`` as the reports use them exist on PostgreSQL as functions
the store installs (:mod:`.functions`). Statements whose meaning differs otherwise (``json_each``,
temporary tables, ``sqlite_master``)
are not translated: the PostgreSQL store overrides the named functions that use them, and
:func:`translate` refuses them so that a missed one fails loudly instead of answering differently.
"""

from __future__ import annotations

import functools
import re

# Primary key of each table an ``INSERT OR REPLACE`` may name.
PRIMARY_KEYS = {
    "tag_values": ("tag", "person_id"),
    "store_tag_values": ("tag", "store_id", "person_id"),
    "segment_members": ("segment", "person_id"),
    "plan_stats": ("key",),
    "event_day_counts": ("name", "day"),
    "value_types": ("scope", "name"),
    "consent_statements": ("record_id", "channel"),
    "rejected_identifiers": ("source", "type", "value"),
    "people": ("id",),
    "source_cursors": ("source",),
}

# Tables whose ``id`` column is generated: an INSERT into one returns it (``cursor.lastrowid``).
ID_TABLES = frozenset({"people", "identity_records", "identifiers", "identity_links", "ownerships", "events",
                       "quarantine", "tag_runs", "segment_runs", "segment_changes", "identity_splits", "inbox",
                       "user_grants", "api_tokens", "audit_log", "link_hits", "receipt_rejections", "journey_path"})

SQLITE_ONLY = re.compile(r"\b(json_each|json_group_array|json_object|json_array|julianday|"
                         r"sqlite_master|PRAGMA|unixepoch|typeof|GLOB|printf|group_concat|iif)\b",
                         re.IGNORECASE)


class UntranslatableSQL(Exception):
    """A statement written in SQLite's own dialect reached the PostgreSQL store."""


def _split_literals(sql: str) -> list[tuple[bool, str]]:
    """``(is_literal, text)`` pieces: single-quoted strings and double-quoted names are literal."""
    pieces: list[tuple[bool, str]] = []
    i = start = 0
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"":
            if i > start:
                pieces.append((False, sql[start:i]))
            j = i + 1
            while j < len(sql):
                if sql[j] == ch:
                    if j + 1 < len(sql) and sql[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            pieces.append((True, sql[i:j + 1]))
            i = start = j + 1
            continue
        i += 1
    if start < len(sql):
        pieces.append((False, sql[start:]))
    return pieces


_PLACEHOLDER = re.compile(r"\?(\d*)")
_SCALAR = re.compile(r"\b(min|max)\s*\(", re.IGNORECASE)


_SUBQUERY = re.compile(r"\b(FROM|JOIN)\s*\(\s*SELECT\b", re.IGNORECASE)
_ALIAS_FOLLOWS = re.compile(r"\s*(AS\b|(?!(WHERE|GROUP|ORDER|LIMIT|UNION|JOIN|ON|CROSS|LEFT|INNER|HAVING|WINDOW|"
                            r"EXCEPT|INTERSECT)\b)[A-Za-z_]\w*)", re.IGNORECASE)


def _alias_subqueries(code: str) -> str:
    """``FROM (SELECT ...)`` without an alias gets one (PostgreSQL 15 requires it; SQLite does not)."""
    out, pos, n = [], 0, 0
    for m in _SUBQUERY.finditer(code):
        start = code.index("(", m.start())
        depth, j = 0, start
        while j < len(code):
            if code[j] == "(":
                depth += 1
            elif code[j] == ")":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if j < len(code) and not _ALIAS_FOLLOWS.match(code, j + 1):
            n += 1
            out.append(code[pos:j + 1] + f" AS _sub{n}")
            pos = j + 1
    out.append(code[pos:])
    return "".join(out)


def _scalar_min_max(code: str) -> str:
    """``min(a, b)`` -> ``LEAST(a, b)`` (aggregate ``min(a)`` kept). Works on code without literals."""
    out, pos = [], 0
    for m in _SCALAR.finditer(code):
        if m.start() < pos:
            continue
        depth, j, commas = 1, m.end(), 0
        while j < len(code) and depth:
            c = code[j]
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            elif c == "," and depth == 1:
                commas += 1
            j += 1
        if commas:
            out.append(code[pos:m.start()])
            out.append("LEAST(" if m.group(1).lower() == "min" else "GREATEST(")
            pos = m.end()
    out.append(code[pos:])
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> tuple[str, tuple[int, ...] | None, str | None]:
    """``(postgresql text, parameter order or None, table whose id an INSERT returns or None)``.

    The parameter order lists, for each ``%s`` in the result, the index of the parameter it takes (None:
    the parameters are used in order, as with ``?``).
    """
    if sql.strip().upper() == "PRAGMA DATA_VERSION":
        # what SQLite's data_version is for (has anything changed since?): the next transaction id moves
        # whenever any session writes (this one's writes included, which only costs a cache refresh)
        return "SELECT txid_snapshot_xmax(txid_current_snapshot())", None, None
    pieces = _split_literals(sql)
    code_only = " ".join(text for literal, text in pieces if not literal)
    if SQLITE_ONLY.search(code_only):
        raise UntranslatableSQL(f"SQLite-only SQL reached the PostgreSQL store: {sql[:200]}")
    numbered: list[int] = []
    plain = 0
    out = []
    for literal, text in pieces:
        if literal:
            out.append(text.replace("%", "%%"))
            continue
        text = text.replace("%", "%%")

        def placeholder(m: re.Match) -> str:
            nonlocal plain
            if m.group(1):
                numbered.append(int(m.group(1)) - 1)
            else:
                numbered.append(plain)
                plain += 1
            return "%s"

        text = _PLACEHOLDER.sub(placeholder, text)
        text = re.sub(r"\bIS\s+NOT\s+(?!NULL\b|DISTINCT\b)", "IS DISTINCT FROM ", text, flags=re.IGNORECASE)
        text = re.sub(r"\bIS\s+(?!NOT\b|NULL\b|DISTINCT\b|TRUE\b|FALSE\b)", "IS NOT DISTINCT FROM ", text,
                      flags=re.IGNORECASE)
        text = _scalar_min_max(text)
        text = re.sub(r"\btemp\.", "pg_temp.", text)  # SQLite's temporary schema
        # SQLite's truth values are integers: WHERE 1 / AND 0 as conditions
        text = re.sub(r"\b(WHERE|AND|OR)\s+([01])\b(?!\s*[-+*/%=<>!.])",
                      lambda m: f"{m.group(1)} {'TRUE' if m.group(2) == '1' else 'FALSE'}", text)
        text = re.sub(r'(?<![\w"])user(?![\w"])', '"user"', text)  # a column named user (a keyword here)
        text = re.sub(r"\bAS\s+INTEGER\s*\)", "AS BIGINT)", text, flags=re.IGNORECASE)  # SQLite's are 64-bit
        out.append(text)
    pg = "".join(out).strip()
    if _SUBQUERY.search(pg):
        pg = _alias_subqueries(pg)
    order = tuple(numbered) if numbered != list(range(len(numbered))) else None
    head = re.match(r"INSERT\s+OR\s+(IGNORE|REPLACE)\s+INTO\s+([\w.]+)\s*(\(([^)]*)\))?", pg, re.IGNORECASE)
    if head:
        table = head.group(2)
        pg = "INSERT INTO " + pg[head.start(2):]
        if head.group(1).upper() == "IGNORE":
            pg += " ON CONFLICT DO NOTHING"
        else:
            key = PRIMARY_KEYS.get(table)
            if key is None or head.group(4) is None:
                raise UntranslatableSQL(f"INSERT OR REPLACE into {table}: no primary key known for PostgreSQL")
            columns = [c.strip() for c in head.group(4).split(",")]
            rest = [c for c in columns if c not in key]
            action = ("DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in rest)) if rest else "DO NOTHING"
            pg += f" ON CONFLICT ({', '.join(key)}) {action}"
    returning = None
    insert = re.match(r"INSERT\s+INTO\s+(\w+)", pg, re.IGNORECASE)
    if insert and insert.group(1) in ID_TABLES and not re.search(r"\bRETURNING\b", pg, re.IGNORECASE):
        returning = insert.group(1)
    return pg, order, returning


def arrange(params, order: tuple[int, ...] | None):
    """The parameters in the order the translated statement takes them."""
    if order is None or isinstance(params, dict):
        return params
    params = tuple(params)
    return tuple(params[i] for i in order)


@functools.lru_cache(maxsize=1024)
def explicit_id_table(pg: str) -> str | None:
    """The table an INSERT writes explicit ``id`` values into (its sequence must move past them)."""
    m = re.match(r"INSERT\s+INTO\s+(\w+)\s*\(([^)]*)\)", pg, re.IGNORECASE)
    if m and m.group(1) in ID_TABLES and "id" in [c.strip() for c in m.group(2).split(",")]:
        return m.group(1)
    return None
