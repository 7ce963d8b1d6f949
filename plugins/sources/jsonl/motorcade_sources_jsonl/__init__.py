"""Motorcade source ``jsonl``: behaviour events, one JSON object per line.

Two shapes, chosen by ``format`` (``auto`` decides per line):

- ``native``: ``{"event": ..., "ts": ..., "<id field>": ..., "properties": {...}, "id": ...}`` with the
  identifier fields mapped by ``identifiers = { phone = "phone", crm_id = "crm_id", ... }``.
- ``segment``: Segment's tracking spec. ``track`` calls become events (``messageId`` is the dedup key),
  ``identify`` calls become person records (traits mapped by ``traits`` and ``identify_attributes``),
  ``page``/``screen`` calls become ``page_viewed``/``screen_viewed`` events. ``userId`` and
  ``anonymousId`` are identifiers of the types ``user_id`` and ``anonymous_id`` name.

Lines that are not JSON, or name no event, are rejected with their line number and text.
With ``follow = true`` the source remembers the byte offset it read to and starts there next run
(for append-only logs); otherwise it re-reads the file and the event dedup keys make that a no-op.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

import motorcade
from motorcade.errors import ConfigError
from motorcade.sources.clean import CleanError, parse_timestamp
from motorcade.sources.base import EventRecord, PersonRecord, RawIdentifier, RejectedRow, Source, SourceRecord
from motorcade.sources.batch import EventBatch, properties_json

__all__ = ["JsonlSource"]

SEGMENT_TYPES = ("track", "identify", "page", "screen")


class JsonlSource(Source):
    """Settings: ``path``, ``format`` (auto|native|segment), ``identifiers``, ``name_field`` (event),
    ``ts_field`` (ts), ``id_field`` (id), ``properties_field`` (properties), ``user_id``,
    ``anonymous_id``, ``traits``, ``identify_attributes``, ``batch_size`` (50000: one transaction each), ``follow``."""

    type_name = "jsonl"
    description = "JSON Lines events: native shape or Segment track/identify"
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
        self._end = 0

    def size_hint(self) -> int | None:
        try:
            return self.path.stat().st_size // 200
        except OSError:
            return None

    def next_cursor(self) -> str | None:
        return str(self._end) if self.follow else None

    def _lines(self, cursor: str | None) -> Iterator[tuple[int, bool, bytes]]:
        """``(line number or byte offset, is_line_number, raw line)`` of every non-blank complete line."""
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            raise ConfigError(f"[sources.{self.name}] file {self.path} does not exist",
                              hint="check `path` (it is relative to the project directory)") from None
        with handle:
            start = 0
            line_no = 0
            if self.follow and cursor and cursor.isdigit():
                offset = int(cursor)
                if offset <= os.fstat(handle.fileno()).st_size:  # a shorter file was replaced: start over
                    handle.seek(offset)
                    start = offset
                    line_no = -1  # unknown: positions become byte offsets
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
            text = raw_line.decode("utf-8", "replace").rstrip("\r\n")
            batch.append(parse(text, f"line {where}" if by_line else f"byte {where}"))
            if len(batch) >= self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def read_columns(self, cursor: str | None = None) -> Iterator[EventBatch]:
        """The ingest fast path: the same lines as :meth:`read`, events as row tuples (no record objects)."""
        batch = None
        size = self.batch_size
        fields = self._native if self.format == "native" else self._fields
        n = 0
        for where, by_line, raw_line in self._lines(cursor):
            if batch is None:
                batch = EventBatch(position_unit="line" if by_line else "byte")
                events, n = batch.events, 0
            obj = _loads(raw_line)
            out = fields(obj) if type(obj) is dict else obj
            if type(out) is tuple:
                events.append((where, out[0], out[1], out[2], properties_json(out[3]), out[4], raw_line))
            else:
                position = batch.position(where)
                text = raw_line.decode("utf-8", "replace").rstrip("\r\n")
                batch.records.append(self._record(out, text, position))
            n += 1
            if n >= size:
                yield batch
                batch = None
        if batch is not None:
            yield batch

    def reparse(self, position: str, raw: str) -> list[SourceRecord]:
        return [self.parse_line(raw, position)]

    # -- one line ---------------------------------------------------------------------------------

    def parse_line(self, text: str, position: str) -> SourceRecord:
        obj = _loads(text)
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
        raw = raw.decode("utf-8", "replace").rstrip("\r\n")  # error positions as in the line's text
    try:
        return json.loads(raw)
    except ValueError as exc:
        return _Reject(f"not valid JSON: {exc.args[0] if exc.args else exc}")


def _long_digits(raw: bytes | str) -> bool:
    """Whether the line holds 19 digits in a row (mapping every digit to "0" is cheaper than a regex)."""
    if isinstance(raw, str):
        return _LONG_DIGITS_S(raw) is not None
    return _NINETEEN_ZEROS in raw.translate(_DIGITS_TO_ZERO)


_DIGITS_TO_ZERO = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_NINETEEN_ZEROS = b"0" * 19
_LONG_DIGITS_S = re.compile(r"[0-9]{19}").search

try:
    from orjson import loads as _orjson_loads
except ImportError:  # optional: the standard library parses the same lines, slower
    _orjson_loads = None


@motorcade.hookimpl
def register_sources(register):
    register(JsonlSource)
