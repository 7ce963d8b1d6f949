"""Motorcade source ``jsonl``: behaviour events, one JSON object per line.

Two shapes, chosen by ``format`` (``auto`` decides per line):

- ``native``: ``{"event": ..., "ts": ..., "<id field>": ..., "properties": {...}, "id": ...}`` with the
  identifier fields mapped by ``identifiers = { phone = "phone", crm_id = "crm_id", ... }``.
- ``segment``: Segment's tracking spec. ``track`` calls become events (``messageId`` is the dedup key),
  ``identify`` calls become person records (traits mapped by ``traits`` and ``identify_attributes``),
  ``page``/``screen`` calls become ``page_viewed``/``screen_viewed`` events. ``userId`` and
  ``anonymousId`` are identifiers of the types ``user_id`` and ``anonymous_id`` name.

Lines that are not JSON, or name no event, are rejected with their line number and text; so are lines
the store cannot keep: not UTF-8, numbers that are not finite (``NaN``, ``Infinity``, ``1e400``), lone
surrogates, properties nested more than 100 levels. A byte order mark at the start of a line is ignored.
With ``follow = true`` the source remembers the byte offset it read to and starts there next run
(for append-only logs); otherwise it re-reads the file and the event dedup keys make that a no-op.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from motorcade.config_schema import FLAG, PATH, TEXT, Setting, choice, map_of, whole
import motorcade
from motorcade.errors import ConfigError
from motorcade.sources.clean import CleanError, check_json_value, parse_timestamp
from motorcade.sources.base import EventRecord, PersonRecord, RawIdentifier, RejectedRow, Source, SourceRecord
from motorcade.sources.base import estimate_lines
from motorcade.sources.batch import EventBatch, properties_json, raw_line_text

__all__ = ["JsonlSource"]

SEGMENT_TYPES = ("track", "identify", "page", "screen")


class JsonlSource(Source):
    """Settings: ``path``, ``format`` (auto|native|segment), ``identifiers``, ``name_field`` (event),
    ``ts_field`` (ts), ``id_field`` (id), ``properties_field`` (properties), ``user_id``,
    ``anonymous_id``, ``traits``, ``identify_attributes``, ``batch_size`` (50000: one transaction each), ``follow``,
    ``workers`` (parse processes of a large first load; default one per core, 0 = none)."""

    type_name = "jsonl"
    description = "JSON Lines events: native shape or Segment track/identify"
    settings_schema = (
        Setting("path", PATH, "the JSON Lines file", required=True),
        Setting("format", choice("auto", "native", "segment"), "line shape (auto decides per line)", "auto"),
        Setting("identifiers", map_of(TEXT, "identifier type"), "native lines: identifier type = field", {}),
        Setting("name_field", TEXT, "native lines: field holding the event name", "event"),
        Setting("ts_field", TEXT, "native lines: field holding the event time", "ts"),
        Setting("id_field", TEXT, "native lines: field holding the event's own id (dedup key)", "id"),
        Setting("properties_field", TEXT, "native lines: field holding the properties object", "properties"),
        Setting("user_id", TEXT, "Segment lines: identifier type of userId", "user_id"),
        Setting("anonymous_id", TEXT, "Segment lines: identifier type of anonymousId", "anonymous_id"),
        Setting("traits", map_of(TEXT, "trait"), "Segment identify: trait = identifier type",
                {"phone": "phone", "email": "email"}),
        Setting("identify_attributes", map_of(TEXT, "trait"), "Segment identify: trait = profile attribute", {}),
        Setting("batch_size", whole(1), "lines per transaction", 50000),
        Setting("follow", FLAG, "remember the byte offset read to and start there next run (append-only logs)",
                False),
    )
    yields = ("events", "people")

    def __init__(self, name, settings, project_dir):
        super().__init__(name, settings, project_dir)
        if "path" not in settings:
            raise ConfigError(f"[sources.{name}] needs a path", hint='path = "data/events.jsonl"')
        self.path = Path(project_dir) / settings["path"]
        self.format = settings.get("format", "auto")
        if self.format not in ("auto", "native", "segment"):
            raise ConfigError(f"[sources.{name}] format {self.format!r}: use auto, native or segment")
        self.identifiers: dict[str, str] = dict(settings.get("identifiers", {}))  # type -> field
        self.name_field = settings.get("name_field", "event")
        self.ts_field = settings.get("ts_field", "ts")
        self.id_field = settings.get("id_field", "id")
        self.properties_field = settings.get("properties_field", "properties")
        self.user_id = settings.get("user_id", "user_id")
        self.anonymous_id = settings.get("anonymous_id", "anonymous_id")
        self.traits: dict[str, str] = dict(settings.get("traits", {"phone": "phone", "email": "email"}))  # trait -> type
        self.identify_attributes: dict[str, str] = dict(settings.get("identify_attributes", {}))  # trait -> attribute
        self.batch_size = int(settings.get("batch_size", 50000))
        self.follow = bool(settings.get("follow", False))
        if self.format == "native" and not self.identifiers:
            raise ConfigError(f"[sources.{name}] maps no identifier fields",
                              hint='identifiers = { phone = "phone", crm_id = "crm_id" }')
        self._id_fields = tuple((field, type_) for type_, field in self.identifiers.items())
        self._id_field_names = tuple(field for field, _ in self._id_fields)
        # raw identifier values of a line -> its ((type, value), ...) tuple: the same tuple object for
        # all lines of a person, which the ingest core's caches then find by identity
        self._raw_id_sets: dict[tuple, tuple] = {}
        self._end = 0

    def size_hint(self) -> int | None:
        return estimate_lines(self.path)

    def next_cursor(self) -> str | None:
        return str(self._end) if self.follow else None

    def _open_at(self, cursor: str | None) -> tuple[Any, int, bool]:
        """``(binary handle, start offset, resumed)``: the file opened where a ``follow`` cursor left off
        (from the start when there is none, or when the file is shorter than it: it was replaced)."""
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            raise ConfigError(f"[sources.{self.name}] file {self.path} does not exist",
                              hint="check `path` (it is relative to the project directory)") from None
        if self.follow and cursor and cursor.isdigit():
            offset = int(cursor)
            if offset <= os.fstat(handle.fileno()).st_size:
                handle.seek(offset)
                return handle, offset, True
        return handle, 0, False

    def _lines(self, cursor: str | None) -> Iterator[tuple[int, bool, bytes]]:
        """``(line number or byte offset, is_line_number, raw line)`` of every non-blank complete line."""
        handle, start, resumed = self._open_at(cursor)
        with handle:
            line_no = -1 if resumed else 0  # resumed: line numbers unknown, positions become byte offsets
            self._end = start
            offset = start
            by_line = line_no >= 0
            for raw_line in handle:
                where = offset
                if by_line:
                    line_no += 1
                    where = line_no
                offset += len(raw_line)
                if not raw_line.endswith(b"\n"):
                    # an incomplete last line (the writer is mid-line): leave it for the next run
                    if self.follow:
                        offset -= len(raw_line)
                        break
                stripped = raw_line.strip()
                if not stripped or (stripped[0] != 123 and not raw_line.decode("utf-8", "replace").strip()):
                    continue  # a blank line (123 is "{": only other lines can be blank in Unicode terms)
                yield where, by_line, raw_line
            self._end = offset

    def read(self, cursor: str | None = None) -> Iterator[list[SourceRecord]]:
        batch: list[SourceRecord] = []
        parse = self.parse_line
        for where, by_line, raw_line in self._lines(cursor):
            if raw_line[:3] == _BOM:
                raw_line = raw_line[3:]
            batch.append(parse(raw_line, f"line {where}" if by_line else f"byte {where}"))
            if len(batch) >= self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def read_columns(self, cursor: str | None = None) -> Iterator[EventBatch]:
        """The ingest fast path: the same lines as :meth:`read`, events as row tuples (no record objects)."""
        batch = None
        size = self.batch_size
        n = 0
        for where, by_line, raw_line in self._lines(cursor):
            if batch is None:
                batch = EventBatch(position_unit="line" if by_line else "byte")
                n = 0
            self._add_line(batch, where, raw_line)
            n += 1
            if n >= size:
                yield batch
                batch = None
        if batch is not None:
            yield batch

    def _add_line(self, batch: EventBatch, where: int, raw_line: bytes) -> None:
        if raw_line[:3] == _BOM:
            raw_line = raw_line[3:]
        if self.format == "native" and _orjson_loads is not None:
            out = self._native_fast(raw_line)
            if out is not None:
                batch.events.append((where, *out, raw_line))
                return
        obj = _loads(raw_line)
        out = (self._native if self.format == "native" else self._fields)(obj) if type(obj) is dict else obj
        if type(out) is tuple:
            try:
                props_json = properties_json(out[3])
            except CleanError as exc:  # the same reason the record path gives (see Ingestor.write_batch)
                out = _Reject(str(exc))
            else:
                batch.events.append((where, out[0], out[1], out[2], props_json, out[4], raw_line))
                return
        batch.records.append(self._record(out, raw_line_text(raw_line), batch.position(where)))

    # -- parallel reading (see motorcade.sources.batch.ParseWorkers) -------------------------------

    def column_ranges(self, cursor: str | None = None) -> Iterator[tuple[int, int, int | None]]:
        """``(start, stop, lines before)`` byte ranges of the batches :meth:`read_columns` would yield.

        Each range holds ``batch_size`` lines (blank lines skipped, as :meth:`read_columns` skips
        them); ``lines before`` is the number of lines before ``start`` (None when positions are byte
        offsets: a resumed ``follow`` read). :meth:`read_column_range` parses one range, so worker
        processes can parse ranges in parallel. Scanning costs a fraction of parsing: newlines are
        counted in C, and only lines that do not start with ``{`` are looked at one by one.
        """
        handle, start, resumed = self._open_at(cursor)
        with handle:
            by_line = not resumed
            self._end = start
            size = self.batch_size
            batch_start, batch_lines_before, count = start, 0, 0
            pos, lines = start, 0  # byte offset and physical lines before ``pending``
            pending = b""
            while True:
                block = handle.read(1 << 22)
                data = pending + block
                cut = data.rfind(b"\n") + 1 if block else len(data)
                body, pending = data[:cut], data[cut:]
                if body and not body.endswith(b"\n") and self.follow:
                    body, pending = b"", body  # an incomplete last line waits for the next run
                if body:
                    blank = _blank_lines(body)
                    n_lines = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
                    if count + n_lines - len(blank) < size:
                        count += n_lines - len(blank)
                    else:  # a boundary falls in this body: walk its lines
                        i = 0
                        for k in range(n_lines):
                            j = body.find(b"\n", i) + 1 or len(body)
                            if i not in blank:
                                count += 1
                                if count == size:
                                    yield batch_start, pos + j, batch_lines_before if by_line else None
                                    batch_start, batch_lines_before, count = pos + j, lines + k + 1, 0
                            i = j
                    pos += len(body)
                    lines += n_lines
                if not block:
                    break
            if count:
                yield batch_start, pos, batch_lines_before if by_line else None
            self._end = pos

    def read_column_range(self, start: int, stop: int, lines_before: int | None) -> EventBatch:
        """The :class:`EventBatch` of the lines in bytes ``[start, stop)`` (a range from :meth:`column_ranges`)."""
        with open(self.path, "rb") as handle:
            handle.seek(start)
            data = handle.read(stop - start)
        by_line = lines_before is not None
        batch = EventBatch(position_unit="line" if by_line else "byte")
        add = self._add_line
        where = lines_before if by_line else start
        offset = start
        for raw_line in io.BytesIO(data):
            if by_line:
                where += 1
            else:
                where = offset
                offset += len(raw_line)
            if raw_line[0] != 123:  # "{": not blank; otherwise judged as _lines does
                stripped = raw_line.strip()
                if not stripped or (stripped[0] != 123 and not raw_line.decode("utf-8", "replace").strip()):
                    continue
            add(batch, where, raw_line)
        return batch

    def reparse(self, position: str, raw: str) -> list[SourceRecord]:
        return [self.parse_line(raw, position)]

    # -- one line ---------------------------------------------------------------------------------

    def parse_line(self, line: str | bytes, position: str) -> SourceRecord:
        """The record of one line (its text, or its bytes as read from the file)."""
        obj = _loads(line)
        text = raw_line_text(line) if isinstance(line, bytes) else line
        out = self._fields(obj) if type(obj) is dict else obj
        if type(out) is tuple:
            name, ts, ids, props, dedup = out
            return EventRecord(name, ts, tuple(RawIdentifier(t, v) for t, v in ids), props, dedup, position, text)
        return self._record(out, text, position)

    def _record(self, out: Any, text: str, position: str) -> SourceRecord:
        """The record of a line that is not an event: a rejection (``_Reject``) or an identify call."""
        if isinstance(out, _Reject):
            return RejectedRow(position, text, out.reason)
        if isinstance(out, _Identify):
            return PersonRecord(source_key="", identifiers=tuple(RawIdentifier(t, v) for t, v in out.identifiers),
                                attributes=out.attributes, position=position, raw=text)
        return RejectedRow(position, text, "a line must be a JSON object")

    def _fields(self, obj: dict) -> tuple | _Reject | _Identify:
        """``(name, ts, ((type, value), ...), properties, dedup key)`` of an event line, or what else it is."""
        shape = self.format
        if shape == "auto":
            shape = "segment" if obj.get("type") in SEGMENT_TYPES and "messageId" in obj else "native"
        if shape == "native":
            return self._native(obj)
        return self._segment(obj)

    def _native(self, obj: dict) -> tuple | _Reject:
        get = obj.get
        name = get(self.name_field)
        if not name or not isinstance(name, str):
            return _Reject(f"missing event name (field {self.name_field!r})")
        ts = get(self.ts_field)
        if ts is None:
            return _Reject(f"missing time stamp (field {self.ts_field!r})")
        ids = []
        for field, type_ in self._id_fields:
            v = get(field)
            if v is not None and v != "":
                ids.append((type_, v if type(v) is str else str(v)))
        ids = tuple(ids)
        props = get(self.properties_field) or {}
        if not isinstance(props, dict):
            return _Reject(f"field {self.properties_field!r} must be an object")
        dedup = get(self.id_field)
        return name, ts, ids, props, str(dedup) if dedup is not None and dedup != "" else None

    def _native_fast(self, raw_line: bytes) -> tuple | None:
        """``(name, ts, identifiers, properties JSON, dedup key)`` of a native event line whose fields
        orjson certainly reads as the standard library does, else None (the line takes :func:`_loads`
        and :meth:`_native`, whose results this matches).

        orjson turns integers beyond 64 bits into floats, so a line is only taken here when none of
        the fields used is a float and the properties are flat (text, integers, booleans, nulls);
        integers orjson returns as integers are exact. Spares :func:`_loads` its scan for long digit runs.
        """
        try:
            obj = _orjson_loads(raw_line)
        except ValueError:
            return None
        if type(obj) is not dict:
            return None
        get = obj.get
        name = get(self.name_field)
        ts = get(self.ts_field)
        if not name or type(name) is not str or type(ts) not in _SCALAR_TS:
            return None
        raw_ids = tuple(map(get, self._id_field_names))
        for v in raw_ids:
            # text, whole numbers and nulls only (the general path spells the rest its own way); checked
            # before the cache, whose keys would take 1.0 and true for the number 1
            if type(v) not in _ID_VALUE_TYPES:
                return None
        ids = self._raw_id_sets.get(raw_ids)
        if ids is None:  # a new person's values: one tuple for all their lines (see _raw_id_sets)
            found = []
            for (field, type_), v in zip(self._id_fields, raw_ids):
                if v is not None and v != "":
                    found.append((type_, v if type(v) is str else str(v)))
            if len(self._raw_id_sets) > 1_000_000:
                self._raw_id_sets.clear()
            ids = self._raw_id_sets[raw_ids] = tuple(found)
        props = get(self.properties_field) or {}
        if type(props) is not dict:
            return None
        if props:
            for value in props.values():
                if type(value) not in _FLAT:
                    return None
            try:
                props_json = _orjson_dumps(props, option=_OPT_SORT_KEYS).decode()
            except TypeError:
                return None
        else:
            props_json = "{}"
        dedup = get(self.id_field)
        if dedup is None or dedup == "":
            dedup = None
        elif type(dedup) is str:
            pass
        elif type(dedup) is int:
            dedup = str(dedup)
        else:
            return None
        return name, ts, ids, props_json, dedup

    def _segment(self, obj: dict) -> tuple | _Reject | _Identify:
        kind = obj.get("type")
        if kind not in SEGMENT_TYPES:
            return _Reject(f"Segment call type {kind!r} is not track, identify, page or screen")
        if obj.get("userId") in (None, "") and obj.get("anonymousId") in (None, ""):
            # Segment's spec: every call names its user by userId or anonymousId
            return _Reject("missing identifiers: neither userId nor anonymousId")
        ids: list[tuple[str, str]] = []
        if obj.get("userId") not in (None, ""):
            ids.append((self.user_id, str(obj["userId"])))
        if obj.get("anonymousId") not in (None, ""):
            ids.append((self.anonymous_id, str(obj["anonymousId"])))
        context = obj.get("context") if isinstance(obj.get("context"), dict) else {}
        traits: dict[str, Any] = {}
        if isinstance(context.get("traits"), dict):
            traits.update(context["traits"])
        if kind == "identify" and isinstance(obj.get("traits"), dict):
            traits.update(obj["traits"])
        for trait, type_ in self.traits.items():
            value = traits.get(trait)
            if value not in (None, ""):
                ids.append((type_, str(value)))
        ids_t = tuple(dict.fromkeys(ids))
        ts = obj.get("timestamp") or obj.get("originalTimestamp") or obj.get("sentAt")
        if ts is None:
            return _Reject("missing timestamp")
        if kind == "identify":
            try:  # an identify call with a broken time stamp is as unusable as a track call with one
                parse_timestamp(ts, self.timezone)
            except CleanError as exc:
                return _Reject(str(exc))
            attributes = {attr: traits[t] for t, attr in self.identify_attributes.items() if traits.get(t) not in (None, "")}
            return _Identify(ids_t, attributes)
        if kind == "track":
            name = obj.get("event")
            if not name or not isinstance(name, str):
                return _Reject("missing event name (field 'event')")
        else:
            name = "page_viewed" if kind == "page" else "screen_viewed"
        props = obj.get("properties") or {}
        if not isinstance(props, dict):
            return _Reject("field 'properties' must be an object")
        if kind in ("page", "screen") and obj.get("name"):
            props = {**props, "name": obj["name"]}
        dedup = obj.get("messageId")
        return name, ts, ids_t, props, str(dedup) if dedup else None


class _Reject:
    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


class _Identify:
    __slots__ = ("identifiers", "attributes")

    def __init__(self, identifiers: tuple[tuple[str, str], ...], attributes: dict[str, Any]):
        self.identifiers = identifiers
        self.attributes = attributes


def _loads(raw: bytes | str) -> Any:
    """The JSON value of one line, or a ``_Reject`` saying why it is not JSON.

    orjson (when installed) parses most lines several times faster; whatever it refuses (NaN, huge
    integers, lone surrogates, invalid UTF-8) goes through the standard library, so both accept the
    same lines and give the same values. Lines with 19 digits in a row go to the standard library
    too: orjson turns integers beyond 64 bits into floats instead of refusing them.
    """
    if _orjson_loads is not None and not _long_digits(raw):
        try:
            return _orjson_loads(raw)
        except ValueError:
            pass
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:  # quarantined as it is (U+FFFD would hide the damage)
            return _Reject(f"not valid UTF-8: byte 0x{exc.object[exc.start]:02x} at byte {exc.start + 1} of the line "
                           "(JSON Lines are UTF-8: convert the file, or fix the writer)")
        raw = raw.rstrip("\r\n")  # error positions as in the line's text
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return _Reject(f"not valid JSON: {exc.args[0] if exc.args else exc}")
    except RecursionError:
        return _Reject("not valid JSON here: arrays and objects nested too deeply")
    # what orjson refuses and the standard library takes: NaN, Infinity, 1e400, lone surrogates
    try:
        check_json_value(value, "", max_nesting=None)
    except CleanError as exc:
        return _Reject(f"not JSON the store can keep: {exc}")
    return value


_LINE_NOT_AN_OBJECT = re.compile(rb"\n(?=[^{])").finditer


def _blank_lines(body: bytes) -> set[int]:
    """Start offsets of the blank lines of ``body`` (whole lines): only a line that does not start with
    ``{`` can be blank, and those are found in C; each is then judged as :meth:`JsonlSource._lines` does."""
    starts = [m.start() + 1 for m in _LINE_NOT_AN_OBJECT(body)]
    if body[:1] != b"{":
        starts.insert(0, 0)
    blank = set()
    for i in starts:
        if i >= len(body):
            continue
        j = body.find(b"\n", i) + 1 or len(body)
        raw_line = body[i:j]
        stripped = raw_line.strip()
        if not stripped or (stripped[0] != 123 and not raw_line.decode("utf-8", "replace").strip()):
            blank.add(i)
    return blank


def _long_digits(raw: bytes | str) -> bool:
    """Whether the line holds 19 digits in a row (mapping every digit to "0" is cheaper than a regex)."""
    if isinstance(raw, str):
        return _LONG_DIGITS_S(raw) is not None
    return _NINETEEN_ZEROS in raw.translate(_DIGITS_TO_ZERO)


_BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark (editors on Windows write one at the start of a file)
_DIGITS_TO_ZERO = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_NINETEEN_ZEROS = b"0" * 19
_LONG_DIGITS_S = re.compile(r"[0-9]{19}").search

try:
    from orjson import OPT_SORT_KEYS as _OPT_SORT_KEYS
    from orjson import dumps as _orjson_dumps
    from orjson import loads as _orjson_loads
except ImportError:  # optional: the standard library parses the same lines, slower
    _orjson_loads = None

_SCALAR_TS = frozenset({str, int, bool})  # time stamps orjson reads exactly (floats may be big integers)
_ID_VALUE_TYPES = frozenset({str, int, type(None)})
_FLAT = frozenset({str, int, bool, type(None)})  # property values orjson encodes as the standard library does


@motorcade.hookimpl
def register_sources(register):
    register(JsonlSource)
