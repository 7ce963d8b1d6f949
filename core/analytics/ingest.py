"""Bulk JSON Lines ingest straight into an analytics engine (docs/engines.md, "Bulk ingest into the engine").

The engine parses the lines; Python sees only what is distinct or rare:

1. **Stage.** The file's lines go to the engine as Arrow batches (:mod:`motorcade.analytics.lines`); one
   SQL pass per batch extracts the event name, time, properties, dedup id and identifier values and
   marks the lines the engine may take on its own (``ok``): a JSON object the engine and Python read
   alike (no ``NaN``/``Infinity``, no exponent beyond two digits, no 19-digit run, no escaped surrogate,
   no field's key repeated, no repeated key in the properties, shallow nesting), a text name, an ISO
   time stamp ``YYYY-MM-DD[T ]HH:MM:SS…``,
   identifiers and id as text or whole numbers, properties an object or absent.
2. **Times.** The distinct hours of those stamps (``YYYY-MM-DDTHH`` + the rest after the seconds) go
   to Python, which gives each its epoch exactly as the SQLite path does
   (:func:`motorcade.sources.ingest._hour_epoch`); the engine joins them back and checks the range.
3. **Identities.** The distinct identifier value sets a block meets first in the run go to Python:
   cleaned as on the SQLite path, resolved through One-ID in the operational store in bulk (one
   observation per distinct set, in the order of their first line). The answer joins the run's identity
   map in the engine (:data:`MAP`: value set -> record id, person id), which every block's lines are
   joined to: no person id is computed per row in Python, and a set met again in a later block costs
   Python nothing (resolving it again would change nothing). A later merge moves the events of a set
   to its record's person at the end of the run (:func:`refresh_ingested_people`).
4. **The rest in Python.** Every line the engine did not take (odd time stamps, bad JSON, lines that
   are not UTF-8, blank lines...) goes through the very code of the SQLite path
   (``JsonlSource._add_line`` and ``Ingestor._clean_event_rows``), so it is stored, or quarantined
   with the same reason, exactly as there.
5. **Write.** Events new for the source (by dedup key, first line kept) are appended to ``events``
   with ids from :data:`INGEST_ID_BASE` on, their source, dedup key and identity record in
   ``ingested_events``. Consent events, quarantined rows, rejected identifier values, the people and
   the identity graph are written to the operational store.
"""

from __future__ import annotations

import bisect
import os
import re
import tempfile
import time

from ..errors import ConfigError
from ..identity.resolver import Observation
from ..sources.base import RejectedRow
from ..sources.batch import EventBatch, raw_line_text
from ..sources.ingest import IngestSummary, Ingestor, _hour_epoch, _SourceSettings
from ..sources.mapping import attribute_types
from .lines import BLOCK, line_batches

# Events ingested into the engine are numbered from here on; ids below are the operational store's
# (mirrored). The mirror replaces only those (docs/engines.md).
INGEST_ID_BASE = 1 << 40
INGESTED = "ingested_events"  # id, source, dedup_key, record_id of every event ingested into the engine
# the run's identity map: every usable identifier set (idkey: its values as the engine read them) met so
# far, with its record and person; a block sends Python only the sets it meets first
MAP = "motorcade_ingest_map"
MAP_COLUMNS = "idkey {text}, record_id {int}, person_id {int}, ids_text {text}, combo {text}, dropped BOOLEAN"

# lines the engine leaves to Python: numbers the store cannot keep or that the engines read differently,
# escaped surrogates (DuckDB refuses them; Python quarantines lone ones), trailing commas (DuckDB's
# reader takes them, JSON does not)
_GUARD = r"NaN|Infinity|[0-9.][eE][+-]?[0-9]{3}|[0-9]{19}|\\u[dD][89a-fA-F]|,[ \t\r\n]*[}\]]"
_ISO = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-5][0-9]:[0-5][0-9]"
_MAX_BRACKETS = 90  # more "[" and "{" than this: Python judges the nesting


def _lambda(arg: str, body: str) -> str:
    """A DuckDB lambda: ``lambda x: ...`` from 1.3 on (2.0 refuses the arrow), ``x -> ...`` before."""
    import duckdb

    version = tuple(int(p) for p in re.findall(r"\d+", duckdb.__version__)[:2])
    return f"lambda {arg}: {body}" if version >= (1, 3) else f"{arg} -> {body}"


def _json_path(field: str) -> str:
    return '$."' + field.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _EngineSQL:
    """What differs between engines for the ingest: loading Arrow, temporary tables, the staging pass."""

    def __init__(self, engine):
        self.engine = engine

    def run(self, sql: str, params: dict | None = None) -> None:
        self.engine._execute(sql, params)

    def rows(self, sql: str, params: dict | None = None) -> list[tuple]:
        return self.engine.query(sql, params)

    def insert_events(self, source: str) -> None:
        """Append the events of ``source`` (a table with the events' columns) to ``events``; ClickHouse computes
        the typed property columns itself (MATERIALIZED)."""
        self.run(f"INSERT INTO events (id, person_id, name, ts, properties) "
                 f"SELECT id, person_id, name, ts, properties FROM {source}")


class _DuckDB(_EngineSQL):
    types = {"int": "BIGINT", "text": "VARCHAR"}

    def insert_events(self, source: str) -> None:
        """Append the events of ``source``, filling the typed property columns the rules' keys have by now
        (DuckDB computes them only in the engine's own insert)."""
        self.run(self.engine.insert_events_sql(source))

    def create(self, name: str, columns: str, *, temporary: bool = True, order_by: str = "") -> None:
        kind = "TEMP TABLE" if temporary else "TABLE"
        self.run(f"CREATE {kind} IF NOT EXISTS {name} ({columns})")

    def drop(self, name: str) -> None:
        self.run(f"DROP TABLE IF EXISTS {name}")

    def append_arrow(self, name: str, table, select: str = "*", params: dict | None = None) -> None:
        conn = self.engine.conn
        conn.register("motorcade_ingest_batch", table)
        try:
            conn.execute(f"INSERT INTO {name} SELECT {select} FROM motorcade_ingest_batch", params or {})
        finally:
            conn.unregister("motorcade_ingest_batch")

    def stage_select(self, fields: dict[str, str], id_fields: list[str]) -> tuple[str, dict]:
        """``SELECT`` of the staging columns from a batch of lines (``line_no``, ``line``): each line is
        parsed four times in all (valid?, keys, the fields' types, their text), each list-valued."""
        paths = [_json_path(fields[k]) for k in ("name", "ts", "properties", "id")] + [_json_path(f) for f in id_fields]
        keys = list(dict.fromkeys([fields[k] for k in ("name", "ts", "properties", "id")] + list(id_fields)))
        params = {"paths": paths, "guard": _GUARD, "iso": _ISO, "keys": keys}
        scalar = ("'NULL'", "'VARCHAR'", "'BIGINT'", "'UBIGINT'")
        ok = " AND ".join([
            # no field read twice (Python keeps a repeated key's last value, the engine its first); other
            # keys may repeat (neither reads them): counting ours costs a third of deduplicating all
            "parsed", f"len(list_filter(k, {_lambda('x', 'list_contains($keys, x)')})) = "
                      f"len(list_filter($keys, {_lambda('x', 'list_contains(k, x)')}))",
            "t[1] = 'VARCHAR'", "s[1] <> ''", "t[2] = 'VARCHAR'", "regexp_matches(s[2], $iso)",
            # properties: one level (a nested object may repeat a key deeper down: Python judges it)
            "CASE WHEN t[3] = 'OBJECT' THEN strpos(substr(s[3], 2), '{') = 0 AND "
            "len(json_keys(s[3])) = len(list_distinct(json_keys(s[3]))) ELSE coalesce(t[3] = 'NULL', TRUE) END",
            *[f"coalesce(t[{i}] IN ({', '.join(scalar)}), TRUE)" for i in range(4, 5 + len(id_fields))],
        ])
        ids = "".join(f", CASE WHEN ok THEN nullif(s[{5 + j}], '') END AS i{j}" for j in range(len(id_fields)))
        idkey = " || '|' || ".join(f"coalesce(length(i{j})::VARCHAR || ':' || i{j}, '-')" for j in range(len(id_fields)))
        select = (
            f"SELECT line_no, line, ok, name, ts, hkey, mmss, properties, dedup, "
            f"{', '.join(f'i{j}' for j in range(len(id_fields))) or 'NULL'}, "
            f"{idkey or chr(39) + chr(39)} AS idkey, FALSE AS fast, NULL AS epoch FROM ("
            "SELECT line_no, line, ok, CASE WHEN ok THEN s[1] END AS name, CASE WHEN ok THEN s[2] END AS ts, "
            "CASE WHEN ok THEN substr(s[2], 1, 13) || substr(s[2], 20) END AS hkey, "
            "CASE WHEN ok THEN CAST(substr(s[2], 15, 2) AS BIGINT) * 60 + CAST(substr(s[2], 18, 2) AS BIGINT) END AS mmss, "
            "CASE WHEN ok AND t[3] = 'OBJECT' THEN s[3] ELSE '{}' END AS properties, "
            "CASE WHEN ok THEN nullif(s[4], '') END AS dedup" + ids + " FROM ("
            f"SELECT line_no, line, t, s, coalesce({ok}, FALSE) AS ok FROM ("
            "SELECT line_no, line, parsed, "
            "CASE WHEN parsed THEN json_type(line, $paths) END AS t, "
            "CASE WHEN parsed THEN json_extract_string(line, $paths) END AS s, "
            "CASE WHEN parsed THEN json_keys(line) END AS k FROM ("
            "SELECT line_no, line, starts_with(line, '{') AND NOT regexp_matches(line, $guard) "
            f"AND length(line) - length(replace(replace(line, '[', ''), '{{', '')) <= {_MAX_BRACKETS} "
            "AND json_valid(line) AS parsed FROM motorcade_ingest_batch))))"
        )
        return select, params

    def sha_prefix(self, text: str) -> str:
        return f"substr(sha256({text}), 1, 32)"

    def first_per_key(self, select: str, key: str, order: str) -> str:
        return f"SELECT * FROM ({select}) QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {order}) = 1"

    def not_ingested(self, candidates: str, keys: str) -> str:
        """The rows of ``candidates`` whose ``dedup_key`` is not among ``keys`` (never NULL): an anti join
        (DuckDB plans ``NOT IN`` as a mark join, measured ~0.3 CPU-s slower per 733k-line block)."""
        return f"SELECT c.* FROM ({candidates}) AS c ANTI JOIN ({keys}) AS k ON c.dedup_key = k.dedup_key"

    def to_text(self, expr: str) -> str:
        return f"CAST({expr} AS VARCHAR)"


class _ClickHouse(_EngineSQL):
    types = {"int": "Int64", "text": "String"}

    def create(self, name: str, columns: str, *, temporary: bool = True, order_by: str = "") -> None:
        engine = "Memory" if temporary else f"MergeTree ORDER BY ({order_by or 'tuple()'})"
        self.run(f"CREATE TABLE IF NOT EXISTS {name} ({columns}) ENGINE = {engine}")

    def drop(self, name: str) -> None:
        self.run(f"DROP TABLE IF EXISTS {name}")

    def append_arrow(self, name: str, table, select: str = "*", params: dict | None = None) -> None:
        engine = self.engine
        if engine.session is None:  # a server: clickhouse-connect inserts Arrow itself
            if select != "*":
                raise ConfigError("bulk ingest into a ClickHouse server needs chdb's file reader",
                                  hint="run the ingest with chdb:///folder, or load with the mirror")
            engine.client.insert_arrow(name, table, database=engine.database)
            return
        import pyarrow as pa

        with tempfile.TemporaryDirectory(prefix="motorcade-ingest-") as folder:
            path = os.path.join(folder, "batch.arrow")
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            # the file name is ours (a temporary folder), never data
            self.run(f"INSERT INTO {name} SELECT {select} FROM file('{path}', Arrow)", params)

    def stage_select(self, fields: dict[str, str], id_fields: list[str]) -> tuple[str, dict]:
        """``SELECT`` of the staging columns from the lines at ``__LINES__``: each line is parsed once
        for all its top-level keys with their values' JSON text (``JSONExtractKeysAndValuesRaw``); a field's
        value is then read from its own text. Numbers are typed on the line itself (the raw text of
        ``1.0`` is ``1``): a field that is not text, an object or null costs a parse of the line."""
        keys = [fields[k] for k in ("name", "ts", "properties", "id")] + list(id_fields)
        params = {f"k{i}": k for i, k in enumerate(keys)}
        # query parameters are read in ClickHouse's escaped text format: backslashes doubled
        params.update({"guard": _GUARD.replace("\\", "\\\\"), "iso": _ISO})
        raw = lambda i: f"r{i}"  # noqa: E731  the value's JSON text ('' when the key is absent)
        # a value typed by its text alone (absent, text, an object, null): the line need not be parsed again
        plain = lambda i: f"(r{i} = '' OR startsWith(r{i}, '\"') OR startsWith(r{i}, '{{') OR r{i} = 'null')"  # noqa: E731
        kind_of = lambda i: (  # noqa: E731
            f"multiIf(r{i} = '', 'Null', startsWith(r{i}, '\"'), 'String', startsWith(r{i}, '{{'), 'Object', "
            f"r{i} = 'null', 'Null', toString(JSONType(if({plain(i)}, '{{}}', line), {{k{i}:String}})))")
        kind = lambda i: f"t{i}"  # noqa: E731
        text = lambda i: f"JSONExtractString({raw(i)})"  # noqa: E731
        number_or_text = lambda i: (  # noqa: E731
            f"multiIf({kind(i)} = 'String', nullIf({text(i)}, ''), "
            f"{kind(i)} = 'Int64', toString(JSONExtractInt(if({kind(i)} = 'Int64', line, '{{}}'), {{k{i}:String}})), "
            f"{kind(i)} = 'UInt64', toString(JSONExtractUInt(if({kind(i)} = 'UInt64', line, '{{}}'), {{k{i}:String}})), "
            "NULL)")
        scalar = lambda i: f"{kind(i)} IN ('Null', 'String', 'Int64', 'UInt64')"  # noqa: E731
        ok = " AND ".join([
            "parsed",
            # no field read twice (Python keeps a repeated key's last value, the engine its first)
            *[f"countEqual(ks, {{k{i}:String}}) <= 1" for i in range(len(keys))],
            f"{kind(0)} = 'String'", f"{text(0)} != ''",
            f"{kind(1)} = 'String'", f"match({text(1)}, {{iso:String}})",
            f"({kind(2)} = 'Null' OR ({kind(2)} = 'Object' AND position(r2, '{{', 2) = 0 "
            f"AND length(JSONExtractKeys(r2)) = length(arrayDistinct(JSONExtractKeys(r2)))))",
            scalar(3), *[scalar(4 + j) for j in range(len(id_fields))],
        ])
        ids = [number_or_text(4 + j) for j in range(len(id_fields))]
        idkey = " || '|' || ".join(f"coalesce(toString(lengthUTF8(i{j})) || ':' || i{j}, '-')"
                                   for j in range(len(id_fields)))
        ts = text(1)
        rs = ", ".join(f"r{i}" for i in range(len(keys)))
        ts_ = ", ".join(f"t{i}" for i in range(len(keys)))
        select = (
            f"SELECT line_no, line, ok, name, ts, hkey, mmss, properties, dedup, "
            f"{', '.join(f'i{j}' for j in range(len(id_fields)))}, {idkey or chr(39) + chr(39)} AS idkey, "
            "FALSE AS fast, CAST(NULL AS Nullable(Int64)) AS epoch FROM ("
            f"SELECT line_no, line, ok, "
            f"if(ok, {text(0)}, NULL) AS name, if(ok, {ts}, NULL) AS ts, "
            f"if(ok, substringUTF8({ts}, 1, 13) || substringUTF8({ts}, 20), NULL) AS hkey, "
            f"if(ok, toInt64OrNull(substring({ts}, 15, 2)) * 60 + toInt64OrNull(substring({ts}, 18, 2)), NULL) AS mmss, "
            f"if(ok AND {kind(2)} = 'Object', r2, '{{}}') AS properties, "
            f"if(ok, {number_or_text(3)}, NULL) AS dedup"
            + "".join(f", if(ok, {expr}, NULL) AS i{j}" for j, expr in enumerate(ids))
            + f" FROM (SELECT line_no, line, parsed, {rs}, {ts_}, parsed AND {ok} AS ok FROM ("
            "SELECT line_no, line, parsed, arrayMap(p -> p.1, kv) AS ks"
            + "".join(f", arrayFirst(p -> p.1 = {{k{i}:String}}, kv).2 AS r{i}" for i in range(len(keys)))
            + "".join(f", {kind_of(i)} AS t{i}" for i in range(len(keys)))
            + " FROM (SELECT line_no, line, parsed, JSONExtractKeysAndValuesRaw(if(parsed, line, '{}')) AS kv FROM ("
            "SELECT line_no, line, startsWith(line, '{') AND NOT match(line, {guard:String}) "
            f"AND length(line) - length(replaceAll(replaceAll(line, '[', ''), '{{', '')) <= {_MAX_BRACKETS} "
            "AND isValidJSON(line) AS parsed FROM __LINES__))))) "
            # evaluated by masks, each JSON function would run again per branch it sits in (measured: 5x the CPU)
            "SETTINGS short_circuit_function_evaluation = 'disable'"
        )
        return select, params

    def sha_prefix(self, text: str) -> str:
        return f"substring(lower(hex(SHA256({text}))), 1, 32)"

    def first_per_key(self, select: str, key: str, order: str) -> str:
        return f"SELECT * FROM ({select}) ORDER BY {order} LIMIT 1 BY {key}"

    def not_ingested(self, candidates: str, keys: str) -> str:
        """The rows of ``candidates`` whose ``dedup_key`` is not among ``keys``."""
        return f"SELECT c.* FROM ({candidates}) AS c WHERE c.dedup_key NOT IN ({keys})"

    def to_text(self, expr: str) -> str:
        return f"toString({expr})"


def engine_sql(engine) -> _EngineSQL:
    if engine.dialect == "duckdb":
        return _DuckDB(engine)
    if engine.dialect == "clickhouse":
        return _ClickHouse(engine)
    raise ConfigError(f"bulk ingest into {engine.name} is not built", hint="use DuckDB or ClickHouse")


def ingested_count(engine) -> int:
    """Events the engine holds from its own ingest (0 when it never ingested any)."""
    sql = engine_sql(engine)
    sql.create(INGESTED, _ingested_columns(sql), temporary=False, order_by="source, dedup_key")
    return int(sql.rows(f"SELECT count(*) FROM {INGESTED}")[0][0])


def _ingested_columns(sql: _EngineSQL) -> str:
    t = sql.types
    return f"id {t['int']}, source {t['text']}, dedup_key {t['text']}, record_id {t['int']}"


class EngineIngest:
    """Ingests JSON Lines sources of the native shape into ``engine`` beside ``ingestor``'s operational
    store (see the module docstring). Reuse one instance for several sources of a run."""

    def __init__(self, ingestor: Ingestor, engine, *, block: int = BLOCK):
        """``block``: bytes of lines per block (each block is staged, resolved and written as a whole)."""
        self.block = block
        self.ingestor = ingestor
        self.store = ingestor.store
        self.engine = engine
        self.sql = engine_sql(engine)
        if engine.dialect == "clickhouse" and getattr(engine, "session", None) is None:
            raise ConfigError("bulk ingest into a ClickHouse server is not built: the file is read by chdb's "
                              "in-process reader", hint='use analytics = "chdb:///folder", or ingest_into = "store"')
        self.timings: dict[str, tuple[float, float]] = {}

    # -- the run -----------------------------------------------------------------------------------

    def ingest(self, source) -> IngestSummary:
        """Read ``source`` (a ``jsonl`` source) to the end into the engine; the summary as the SQLite path gives it."""
        if not hasattr(source, "_add_line") or not hasattr(source, "path"):
            raise ConfigError(f"[sources.{source.name}] is a {source.type_name!r} source: only JSON Lines "
                              "sources are ingested straight into the analytics engine",
                              hint='remove ingest_into = "analytics" from it: it is ingested into the operational store')
        if source.follow:
            raise ConfigError(f"[sources.{source.name}] follow = true is not supported by the engine ingest",
                              hint='read append-only logs through the operational store (ingest_into = "store")')
        started = time.perf_counter()
        timings = self.timings = {}  # stage -> (wall-clock seconds, CPU seconds of the process, engine threads included)
        last = [time.perf_counter(), time.process_time()]

        def mark(stage: str) -> None:
            wall, cpu = time.perf_counter(), time.process_time()
            before = timings.get(stage, (0.0, 0.0))
            timings[stage] = (before[0] + wall - last[0], before[1] + cpu - last[1])
            last[:] = [wall, cpu]

        ingestor, store, sql = self.ingestor, self.store, self.sql
        summary = IngestSummary(source=source.name)
        summary.bulk = True
        with store.transaction():
            store.settle_identity()
        settings = _SourceSettings.of(source, ingestor.timezone)
        for scope, kind in (("attribute", "person"), ("property", "event")):
            typed = attribute_types(source.settings, kind)
            if typed:
                with store.transaction():
                    store.define_value_types(typed, scope=scope, source=source.name)
        resolver = ingestor.resolver
        merged0, created0, flagged0 = resolver.merged, resolver.created, resolver.flagged
        ingestor._rejected = {}
        id_fields = [field for field, _type in source._id_fields] if source.format == "native" else []
        id_types = [type_ for _field, type_ in source._id_fields] if source.format == "native" else []
        fields = {"name": source.name_field, "ts": source.ts_field, "properties": source.properties_field,
                  "id": source.id_field}
        first_load = self._holds_none_of(source.name)
        self._source, self._blank_lines = source, []
        self._dropped_sets = {}  # idkey -> identifier values that did not clean, of the run's sets that have some
        try:
            self._load_keys(MAP, None, MAP_COLUMNS)
            # one block of lines at a time (64 MB): the engine's working tables stay that size, and each
            # block's store writes commit together, as the SQLite path commits a batch
            for lines, undecodable in line_batches(source.path, self.block, source.column_ranges()):
                self._block(source, settings, summary, lines, undecodable, fields, id_fields, id_types, mark)
            with store.transaction():
                store.set_source_cursor(source.name, source.next_cursor())
                store.settle_identity()  # at the end of the run, as the SQLite path settles
            # merges and splits of this run move records between people: the events follow their record. A
            # merge undone in the same run (a shared phone over its limit) leaves the merge log, and so the
            # identity fingerprint, as it was, while this run's events were written with the merged person.
            refresh_ingested_people(store, self.engine, force=resolver.merged > merged0)
            mark("engine: people after merges")
        except BaseException:
            resolver.reset()
            raise
        finally:
            for name in ("motorcade_ingest_stage", "motorcade_ingest_hours", MAP, "motorcade_ingest_unusable",
                         "motorcade_ingest_slow", "motorcade_ingest_new", "motorcade_ingest_stage2"):
                sql.drop(name)
        if first_load:  # every duplicate repeated a line of this very load
            summary.collapsed = summary.duplicates
        summary.merged = resolver.merged - merged0
        summary.people_created = resolver.created - created0
        summary.flagged = resolver.flagged - flagged0
        summary.seconds = time.perf_counter() - started
        return summary

    def _block(self, source, settings, summary: IngestSummary, lines, undecodable: list, fields: dict,
               id_fields: list[str], id_types: list[str], mark) -> None:
        """Steps 1-6 of the module docstring for one block of lines."""
        ingestor, store, sql = self.ingestor, self.store, self.sql
        ingestor._rejected = {}
        self._stage(source, lines, fields, id_fields)
        mark("engine: stage lines")
        self._times(settings)
        fast_sets = self._identifier_sets(id_fields, id_types, settings)
        mark("python: hours and identifier sets")
        slow_lines = list(undecodable) + [(int(n), line.encode("utf-8")) for n, line in sql.rows(
            "SELECT line_no, line FROM motorcade_ingest_stage WHERE NOT fast ORDER BY line_no")]
        slow_lines.sort(key=lambda r: r[0])
        slow_events, failed, records, read = self._python_path(source, settings, slow_lines, summary)
        mark("python: lines the engine left")
        fast = int(sql.rows("SELECT count(*) FROM motorcade_ingest_stage WHERE fast")[0][0])
        summary.read += read + fast
        with store.transaction():
            if records:  # identify calls (Segment lines): the record path, before the events as in a batch
                ingestor.write_batch(settings, records, summary)
            consents = self._consent_rows(settings, fast_sets, slow_events)
            people = self._resolve(settings, fast_sets, slow_events, summary, consents)
            quarantined = self._quarantine_rows(failed, fast_sets)
            unusable = len(quarantined) - len(failed)  # lines the engine kept whose identifier set is unusable
            if quarantined:
                summary.rejected += len(quarantined)
                summary.quarantined += store.quarantine_rows(source.name, quarantined)
            if ingestor._rejected:
                store.record_rejected_identifiers(source.name, list(ingestor._rejected))
        mark("store: One-ID, quarantine, consents")
        self._write(source.name, fast_sets, slow_events, people, summary, fast - unusable + len(slow_events))
        mark("engine: join and append")

    def _holds_none_of(self, source_name: str) -> bool:
        sql = self.sql
        sql.create(INGESTED, _ingested_columns(sql), temporary=False, order_by="source, dedup_key")
        param = "$source" if isinstance(sql, _DuckDB) else "{source:String}"
        return not sql.rows(f"SELECT 1 FROM {INGESTED} WHERE source = {param} LIMIT 1", {"source": source_name})

    # -- 1. stage ----------------------------------------------------------------------------------

    def _stage(self, source, lines, fields: dict[str, str], id_fields: list[str]) -> None:
        """A block of lines (Arrow: ``line_no``, ``line``) into a fresh ``motorcade_ingest_stage``."""
        sql = self.sql
        t = sql.types
        sql.drop("motorcade_ingest_stage")
        id_columns = "".join(f", i{j} {t['text']}" for j in range(len(id_fields))) if id_fields else f", i0 {t['text']}"
        nullable = (lambda c: f"Nullable({c})") if isinstance(sql, _ClickHouse) else (lambda c: c)
        columns = (f"line_no {t['int']}, line {t['text']}, ok BOOLEAN, name {nullable(t['text'])}, "
                   f"ts {nullable(t['text'])}, hkey {nullable(t['text'])}, mmss {nullable(t['int'])}, "
                   f"properties {t['text']}, dedup {nullable(t['text'])}"
                   + (id_columns.replace(f" {t['text']}", f" {nullable(t['text'])}")) + f", idkey {t['text']}"
                   + f", fast BOOLEAN, epoch {nullable(t['int'])}")
        sql.create("motorcade_ingest_stage", columns)
        if source.format != "native":  # only the native shape is read by the engine; the rest by Python
            select = "line_no, line, FALSE, NULL, NULL, NULL, NULL, '{}', NULL, NULL, '', FALSE, NULL"
            sql.append_arrow("motorcade_ingest_stage", lines, select)
            return
        select, params = sql.stage_select(fields, id_fields)
        if isinstance(sql, _ClickHouse):
            self._stage_clickhouse(lines, select, params)
            return
        sql.engine.conn.register("motorcade_ingest_batch", lines)
        try:
            sql.engine.conn.execute(f"INSERT INTO motorcade_ingest_stage {select}", params)
        finally:
            sql.engine.conn.unregister("motorcade_ingest_batch")

    def _stage_clickhouse(self, table, select: str, params: dict) -> None:
        import pyarrow as pa

        with tempfile.TemporaryDirectory(prefix="motorcade-ingest-") as folder:
            path = os.path.join(folder, "lines.arrow")
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            # the file name is ours (a temporary folder), never data
            lines = f"file('{path}', Arrow, 'line_no Int64, line String')"
            self.sql.run(f"INSERT INTO motorcade_ingest_stage {select.replace('__LINES__', lines)}", params)

    # -- 2. times ----------------------------------------------------------------------------------

    def _times(self, settings: _SourceSettings) -> None:
        """Epochs of the distinct hours, from Python; ``fast``: the lines whose time the engine now has."""
        sql = self.sql
        t = sql.types
        any_ = "any_value" if isinstance(sql, _DuckDB) else "any"
        keys = sql.rows(f"SELECT hkey, {any_}(ts) FROM motorcade_ingest_stage WHERE ok GROUP BY hkey")
        hours: dict = {}
        rows = []
        for key, ts in keys:
            base = _hour_epoch(hours, key, ts[:13], ts[19:], settings.tzinfo)
            if base is not None:
                rows.append((key, base))
        import pyarrow as pa

        sql.drop("motorcade_ingest_hours")
        sql.create("motorcade_ingest_hours", f"hkey {t['text']}, base {t['int']}")
        sql.append_arrow("motorcade_ingest_hours", pa.table({"hkey": pa.array([r[0] for r in rows], pa.string()),
                                                              "base": pa.array([r[1] for r in rows], pa.int64())}))
        # ``fast``: the lines the engine keeps, with their epoch in range; the others go to Python
        epoch = "h.base + s.mmss"
        if isinstance(sql, _DuckDB):
            sql.run(f"UPDATE motorcade_ingest_stage AS s SET epoch = {epoch}, fast = ({epoch} BETWEEN $lo AND $hi) "
                    "FROM motorcade_ingest_hours AS h WHERE s.ok AND s.hkey = h.hkey AND s.mmss IS NOT NULL",
                    {"lo": settings.earliest, "hi": settings.latest})
        else:
            self._rebuild_clickhouse_stage(settings)

    def _rebuild_clickhouse_stage(self, settings) -> None:
        """ClickHouse has no UPDATE ... FROM: the stage is rebuilt with the join (Memory tables)."""
        sql = self.sql
        columns = [r[0] for r in sql.rows("SELECT name FROM system.columns WHERE database = currentDatabase() "
                                          "AND table = 'motorcade_ingest_stage' ORDER BY position")]
        keep = [c for c in columns if c not in ("fast", "epoch")]
        sql.drop("motorcade_ingest_stage2")
        sql.run("CREATE TABLE motorcade_ingest_stage2 AS motorcade_ingest_stage")
        sql.run(
            f"INSERT INTO motorcade_ingest_stage2 ({', '.join(keep)}, epoch, fast) "
            f"SELECT {', '.join('s.' + c for c in keep)}, if(s.ok AND h.hkey != '' AND s.mmss IS NOT NULL, "
            "h.base + s.mmss, NULL) AS e, coalesce(s.ok AND h.hkey != '' AND s.mmss IS NOT NULL AND "
            "h.base + s.mmss BETWEEN {lo:Int64} AND {hi:Int64}, FALSE) "
            "FROM motorcade_ingest_stage AS s LEFT JOIN motorcade_ingest_hours AS h ON s.hkey = h.hkey "
            "SETTINGS join_use_nulls = 0",
            {"lo": settings.earliest, "hi": settings.latest})
        sql.run("DROP TABLE motorcade_ingest_stage")
        sql.run("RENAME TABLE motorcade_ingest_stage2 TO motorcade_ingest_stage")

    # -- 3. identifier sets ------------------------------------------------------------------------

    def _identifier_sets(self, id_fields: list[str], id_types: list[str], settings) -> dict[str, list]:
        """``idkey -> [raw identifiers, cleaned entry, first line, events]`` of the identifier sets of the
        lines the engine keeps that this block meets first in the run (the others are in :data:`MAP`,
        resolved already: resolving a set again changes nothing, as ``unchanged_record`` says)."""
        sql = self.sql
        any_ = "any_value" if isinstance(sql, _DuckDB) else "any"
        rows = sql.rows(f"SELECT idkey, {', '.join(f'{any_}(i{j})' for j in range(len(id_fields))) or 'NULL'}, "
                        f"min(line_no), count(*) FROM motorcade_ingest_stage WHERE fast "
                        f"AND idkey NOT IN (SELECT idkey FROM {MAP}) GROUP BY idkey")
        out = {}
        cache = self.ingestor._id_sets.setdefault(settings.region, {})
        for row in rows:
            key, vals, first, count = row[0], row[1:1 + len(id_fields)], int(row[-2]), int(row[-1])
            raw_ids = tuple((type_, v) for type_, v in zip(id_types, vals) if v is not None and v != "")
            entry = cache.get(raw_ids)
            if entry is None:
                entry = self.ingestor._identifier_set(raw_ids, settings)
            out[key] = [raw_ids, entry, first, count]
        return out

    # -- 4. the lines left to Python ---------------------------------------------------------------

    def _python_path(self, source, settings, lines: list[tuple[int, bytes]], summary: IngestSummary):
        """``(cleaned events, failed rows, records, lines read)`` of the lines the engine did not keep,
        through the SQLite path's own code (see the module docstring)."""
        batch = EventBatch(position_unit="line")
        read = 0
        for where, raw_line in lines:
            stripped = raw_line.strip()
            if not stripped or (stripped[0] != 123 and not raw_line.decode("utf-8", "replace").strip()):
                self._blank_lines.append(where)  # a blank line, as JsonlSource._lines skips it
                continue
            read += 1
            source._add_line(batch, where, raw_line)
        failed: dict = {}
        events = self.ingestor._clean_event_rows(batch, settings, summary, failed) if batch.events else []
        records = []
        for rec in batch.records:
            if type(rec) is RejectedRow:
                failed.setdefault(rec.position, (rec.position, rec.raw or "", rec.reason))
            else:
                records.append(rec)
        summary.read -= len(records)  # write_batch counts them again
        return events, failed, records, read

    # -- 5. One-ID in bulk -------------------------------------------------------------------------

    def _resolve(self, settings, fast_sets: dict, slow_events: list, summary: IngestSummary,
                 consents: list[tuple]) -> dict[str, tuple]:
        """``combination key -> (record id, person id)`` of every usable identifier set, resolved in the
        order of first appearance (as the SQLite path meets them), person ids after this run's merges.
        Each batch's consent events are applied after that batch's sets are resolved, as there."""
        if self._dropped_sets:  # sets of earlier blocks with values that did not clean: counted per event
            for key, count in self.sql.rows(
                    f"SELECT s.idkey, count(*) FROM motorcade_ingest_stage AS s JOIN {MAP} AS m ON s.idkey = m.idkey "
                    "WHERE s.fast AND m.dropped GROUP BY s.idkey"):
                rejected = self._dropped_sets[key]
                summary.identifiers_dropped += len(rejected) * int(count)
                self.ingestor._rejected.update(dict.fromkeys(rejected))
        first: dict[str, tuple[int, tuple]] = {}
        for raw_ids, entry, line, count in fast_sets.values():
            if entry[1]:  # identifier values that did not clean, counted per event as the SQLite path does
                summary.identifiers_dropped += len(entry[1]) * count
                self.ingestor._rejected.update(dict.fromkeys(entry[1]))
            if entry[2] is None:
                combo = entry[3]
                if combo not in first or first[combo][0] > line:
                    first[combo] = (line, entry[0])
        for ev in slow_events:
            where, combo = ev[0], ev[6]
            if combo not in first or first[combo][0] > where:
                first[combo] = (where, ev[3])
        order = sorted(first.items(), key=lambda item: item[1][0])
        rule = f"{settings.name} event"
        # One call per batch of the SQLite path (``batch_size`` non-blank lines): the guards judge an
        # identifier's spread per call, so the same calls give the same graph
        blank, size = self._blank_lines, max(1, int(getattr(self._source, "batch_size", 50000)))
        batch_of = lambda line: (line - 1 - bisect.bisect_left(blank, line)) // size  # noqa: E731
        calls: dict[int, list] = {}
        for combo, (line, ids) in order:
            calls.setdefault(batch_of(line), []).append((combo, ids))
        consents_of: dict[int, list] = {}
        for row in consents:
            consents_of.setdefault(batch_of(row[0]), []).append(row)
        out = {}
        person_of = self.ingestor.resolver.person_of
        for batch in sorted(set(calls) | set(consents_of)):
            sets = calls.get(batch, ())
            if sets:
                observations = [Observation(combo, ids, None, rule) for combo, ids in sets]
                resolved = self.ingestor._resolve_event_sets(settings.name, observations, summary)
                out.update((combo, people) for (combo, _ids), people in zip(sets, resolved))
            consents = consents_of.get(batch, ())
            # a set of an earlier block: its person now, from the store
            known = self.store.find_records(settings.name, list({r[4]: None for r in consents if r[4] not in out}))
            for _line, name, epoch, props, combo in consents:
                pid = out[combo][1] if combo in out else known[combo][1]
                self.ingestor._consent(settings, person_of(pid), name, epoch, props)
        return {combo: (rid, person_of(pid)) for combo, (rid, pid) in out.items()}

    def _quarantine_rows(self, failed: dict, fast_sets: dict) -> list[tuple[str, str, str]]:
        unusable = {key: entry[2] for key, (_raw, entry, _l, _c) in fast_sets.items() if entry[2] is not None}
        rows = list(failed.values())
        if unusable:
            import pyarrow as pa

            self._load_keys("motorcade_ingest_unusable", pa.table({"idkey": pa.array(list(unusable), pa.string()),
                                                              "reason": pa.array(list(unusable.values()), pa.string())}),
                            "idkey {text}, reason {text}")
            for line_no, line, reason in self.sql.rows(
                    "SELECT s.line_no, s.line, m.reason FROM motorcade_ingest_stage AS s "
                    "JOIN motorcade_ingest_unusable AS m ON s.idkey = m.idkey WHERE s.fast"):
                rows.append((f"line {int(line_no)}", raw_line_text(line.encode("utf-8")), reason))
        rows.sort(key=lambda r: int(r[0].partition(" ")[2]))
        return rows

    def _load_keys(self, name: str, table, columns: str) -> None:
        """A fresh temporary table ``name`` holding ``table`` (None: empty)."""
        sql = self.sql
        sql.drop(name)
        sql.create(name, columns.format(text=sql.types["text"], int=sql.types["int"]))
        if table is not None:
            sql.append_arrow(name, table)

    def _consent_rows(self, settings, fast_sets: dict, slow_events: list) -> list[tuple]:
        """``(line, name, epoch, properties, combination key)`` of the consent events, in file order:
        they change consent in the operational store (activation reads it there)."""
        names = list(settings.consent_events)
        if not names:
            return []
        combo_of = {key: entry[3] for key, (_r, entry, _l, _c) in fast_sets.items() if entry[2] is None}
        rows = []
        sql = self.sql
        marks = ", ".join(f"$c{i}" if isinstance(sql, _DuckDB) else f"{{c{i}:String}}" for i in range(len(names)))
        params = {f"c{i}": n for i, n in enumerate(names)}
        # a set of an earlier block has its combination key in the map (an unusable set has none: skipped)
        for line_no, name, epoch, props, key, known in sql.rows(
                f"SELECT s.line_no, s.name, s.epoch, s.properties, s.idkey, m.combo FROM motorcade_ingest_stage AS s "
                f"LEFT JOIN {MAP} AS m ON s.idkey = m.idkey WHERE s.fast AND s.name IN ({marks})"
                + (" SETTINGS join_use_nulls = 1" if isinstance(sql, _ClickHouse) else ""), params):
            combo = combo_of.get(key, known)
            if combo is not None:
                rows.append((int(line_no), name, int(epoch), props, combo))
        for ev in slow_events:
            if ev[1] in settings.consent_events:
                rows.append((ev[0], ev[1], ev[2], ev[4], ev[6]))
        rows.sort(key=lambda r: r[0])
        return rows

    # -- 6. write ----------------------------------------------------------------------------------

    def _write(self, source_name: str, fast_sets: dict, slow_events: list, people: dict, summary, total: int) -> None:
        """Join the identity map, drop what the source holds already (first line kept), append. ``total``:
        the block's events to write before that (the lines the engine keeps with a usable identifier set,
        and the events Python cleaned)."""
        import pyarrow as pa

        sql = self.sql
        t = sql.types
        # this block's new sets join the run's map; a set's person there is the one it had when resolved:
        # a later merge is followed by refresh_ingested_people at the end of the run, as for earlier blocks
        keys, records, persons, texts, combos, dropped = [], [], [], [], [], []
        for key, (_raw, entry, _line, _count) in fast_sets.items():
            if entry[2] is None:
                rid, pid = people[entry[3]]
                keys.append(key)
                records.append(rid)
                persons.append(pid)
                texts.append(entry[4])
                combos.append(entry[3])
                dropped.append(bool(entry[1]))
                if entry[1]:
                    self._dropped_sets[key] = entry[1]
        if keys:
            sql.append_arrow(MAP, pa.table({
                "idkey": pa.array(keys, pa.string()), "record_id": pa.array(records, pa.int64()),
                "person_id": pa.array(persons, pa.int64()), "ids_text": pa.array(texts, pa.string()),
                "combo": pa.array(combos, pa.string()), "dropped": pa.array(dropped, pa.bool_())}))
        # the lines Python cleaned, with their person
        slow = [(ev[0], ev[1], ev[2], ev[4], ev[5], *people[ev[6]]) for ev in slow_events]
        self._load_keys("motorcade_ingest_slow", pa.table({
            "line_no": pa.array([r[0] for r in slow], pa.int64()), "name": pa.array([r[1] for r in slow], pa.string()),
            "ts": pa.array([r[2] for r in slow], pa.int64()), "properties": pa.array([r[3] for r in slow], pa.string()),
            "dedup_key": pa.array([r[4] for r in slow], pa.string()),
            "record_id": pa.array([r[5] for r in slow], pa.int64()),
            "person_id": pa.array([r[6] for r in slow], pa.int64())}),
            "line_no {int}, name {text}, ts {int}, properties {text}, dedup_key {text}, record_id {int}, person_id {int}")
        sql.create(INGESTED, _ingested_columns(sql), temporary=False, order_by="source, dedup_key")
        dedup = ("coalesce(s.dedup, 'h:' || " + sql.sha_prefix(
            "s.name || chr(31) || " + sql.to_text("s.epoch") + " || chr(31) || m.ids_text || chr(31) || s.properties")
                 + ")").replace("chr(31)", "'\x1f'")
        candidates = (
            f"SELECT s.line_no AS line_no, s.name AS name, s.epoch AS ts, s.properties AS properties, {dedup} AS dedup_key, "
            "m.record_id AS record_id, m.person_id AS person_id FROM motorcade_ingest_stage AS s "
            f"JOIN {MAP} AS m ON s.idkey = m.idkey WHERE s.fast "
            "UNION ALL SELECT line_no, name, ts, properties, dedup_key, record_id, person_id FROM motorcade_ingest_slow")
        param = "$source" if isinstance(sql, _DuckDB) else "{source:String}"
        fresh = sql.not_ingested(candidates, f"SELECT dedup_key FROM {INGESTED} WHERE source = {param}")
        # the new events, numbered in line order, in one pass (one table for both appends)
        base = max(INGEST_ID_BASE, int(sql.rows(f"SELECT coalesce(max(id), 0) FROM {INGESTED}")[0][0]))
        sql.drop("motorcade_ingest_new")
        sql.create("motorcade_ingest_new", f"id {t['int']}, line_no {t['int']}, name {t['text']}, ts {t['int']}, "
                                           f"properties {t['text']}, dedup_key {t['text']}, record_id {t['int']}, "
                                           f"person_id {t['int']}")
        sql.run(f"INSERT INTO motorcade_ingest_new SELECT {base} + row_number() OVER (ORDER BY f.line_no) AS id, f.* "
                f"FROM ({sql.first_per_key(fresh, 'dedup_key', 'line_no')}) AS f", {"source": source_name})
        sql.insert_events("motorcade_ingest_new")
        sql.run(f"INSERT INTO {INGESTED} (id, source, dedup_key, record_id) "
                f"SELECT id, {param}, dedup_key, record_id FROM motorcade_ingest_new", {"source": source_name})
        new = int(sql.rows("SELECT count(*) FROM motorcade_ingest_new")[0][0])
        summary.events += new
        summary.written += new
        summary.duplicates += total - new


def into_engine(source) -> bool:
    """Whether ``source`` is configured to go straight into the analytics engine (``ingest_into``)."""
    return source.settings.get("ingest_into", "store") == "analytics"


def ingest_opened(project, source, ingestor: Ingestor, *, progress=None) -> IngestSummary:
    """Ingest an opened source of ``project`` where its ``ingest_into`` setting says: the operational
    store (:meth:`Ingestor.ingest`) or the analytics engine (:class:`EngineIngest`)."""
    if not into_engine(source):
        return ingestor.ingest(source, progress=progress)
    engine = project.analytics
    if engine is None:
        raise ConfigError(f"[sources.{source.name}] ingest_into = \"analytics\" but the project has no analytics engine",
                          hint='set [project] analytics = "duckdb:///analytics.duckdb" (or chdb:///folder) in '
                               'motorcade.toml, or remove ingest_into')
    summary = EngineIngest(ingestor, engine).ingest(source)
    if progress is not None:
        progress(summary.read)
    return summary




# -- identity changes after the ingest ---------------------------------------------------------------

INGEST_STATE = "motorcade_ingest_state"  # one row: the identity fingerprint the ingested events' people follow


def refresh_ingested_people(store, engine, *, force: bool = False) -> int:
    """After merges and splits in the operational store, give the events ingested into the engine the
    person their identity record belongs to now (as ``settle_identity`` does for the store's events);
    the events whose person changed. Cheap when nothing changed (the identity fingerprint is kept), unless
    ``force``: people merged since events were written, even if the merge log has come back to the
    fingerprint kept."""
    import pyarrow as pa

    from .tables import IDENTITY_FINGERPRINT

    sql = engine_sql(engine)
    if ingested_count(engine) == 0:
        return 0
    fingerprint = str(store.query(IDENTITY_FINGERPRINT)[0][0])
    sql.create(INGEST_STATE, f"fingerprint {sql.types['text']}", temporary=False)
    if not force and [r[0] for r in sql.rows(f"SELECT fingerprint FROM {INGEST_STATE}")] == [fingerprint]:
        return 0
    records = store.query("SELECT id, person_id FROM identity_records")
    table = pa.table({"record_id": pa.array([r[0] for r in records], pa.int64()),
                      "person_id": pa.array([r[1] for r in records], pa.int64())})
    sql.drop("motorcade_record_people")
    sql.create("motorcade_record_people", f"record_id {sql.types['int']}, person_id {sql.types['int']}")
    sql.append_arrow("motorcade_record_people", table)
    moved = (f"SELECT k.id AS id, r.person_id AS person_id FROM {INGESTED} AS k "
             "JOIN motorcade_record_people AS r ON k.record_id = r.record_id "
             "JOIN events AS e ON e.id = k.id WHERE e.person_id != r.person_id")
    try:
        changed = int(sql.rows(f"SELECT count(*) FROM ({moved}) AS m")[0][0])
        if changed and isinstance(sql, _DuckDB):
            sql.run(f"UPDATE events SET person_id = m.person_id FROM ({moved}) AS m WHERE events.id = m.id")
        elif changed:  # ClickHouse: the ingested events are rewritten (no UPDATE ... FROM)
            sql.drop("motorcade_ingest_moved")
            sql.run("CREATE TABLE motorcade_ingest_moved ENGINE = Memory AS "
                    "SELECT e.id AS id, coalesce(m.person_id, e.person_id) AS person_id, e.name AS name, e.ts AS ts, "
                    f"e.properties AS properties FROM events AS e LEFT JOIN ({moved}) AS m ON e.id = m.id "
                    f"WHERE e.id >= {INGEST_ID_BASE} SETTINGS join_use_nulls = 1")
            sql.run(f"DELETE FROM events WHERE id >= {INGEST_ID_BASE}")
            sql.insert_events("motorcade_ingest_moved")
    finally:
        sql.drop("motorcade_record_people")
        sql.drop("motorcade_ingest_moved")
    sql.run(f"TRUNCATE TABLE {INGEST_STATE}" if isinstance(sql, _ClickHouse) else f"DELETE FROM {INGEST_STATE}")
    sql.append_arrow(INGEST_STATE, pa.table({"fingerprint": pa.array([fingerprint], pa.string())}))
    return changed
