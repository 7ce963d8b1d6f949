"""Column mappings: how a row of a table (CSV file, SQL query) becomes records, from ``motorcade.toml``.

A source table has one sub-table per kind of record a row yields; each maps record fields to
columns. A column is named by a string, or by a table with a type (and optionally a constant)::

    [sources.dms]
    type = "csv"
    path = "data/dms_owners.csv"

    [sources.dms.person]
    key = "customer_id"                                      # the record's key in the source
    identifiers = { dms_customer_id = "customer_id", phone = "mobile" }
    attributes = { name = "name", birth_year = { column = "birth_year", type = "int" } }
    relations = { selling_store = "store_code" }             # kind = column holding the target id
    consents = { sms = "sms_opt_in" }                        # channel = yes/no column
    consent_times = { sms = "sms_opt_in_at" }                # when it was given (optional; see below)

    [sources.dms.car]                                        # owner = this row's person
    vin = "vin"
    brand = "brand"
    model = "model"
    model_year = "model_year"
    purchase_date = "purchase_date"
    store_id = "store_code"
    advisor_id = "service_advisor"
    owned_from = "owned_from"
    owned_to = "owned_to"

    [sources.insurance.event]                                # identifiers = the person's
    name = "insurance_policy"                                # a constant, or name_column = "..."
    ts = "start_date"
    dedup_key = "policy_no"
    properties = { insurer = "insurer", vin = { column = "vin", type = "vin" } }

    [sources.resales.transfer]                               # a car changing hands
    vin = "vin"
    date = "sold_on"                                         # optional: unknown = the day of ingest
    from_owner = { dms_customer_id = "seller_id" }           # the seller's identifiers
    to_owner = { dms_customer_id = "buyer_id", phone = "buyer_mobile" }

    [sources.stores.store]                                   # id, name, group, city, brand
    [sources.advisors.advisor]                               # id, name, store_id, role, phone

    [sources.leads.tags]                                     # tags computed elsewhere, per person row
    intent_level = { column = "intent", type = "string", values = ["low", "medium", "high"], title = "意向" }
    lead_score = { column = "score", type = "number", range = [0, 100] }

Types: str (default), int, float, bool, date, datetime, vin, phone, email. A value that does not
convert rejects the whole row (it goes to quarantine with the column named), never half of it; so does
a number that is not finite (``nan``, ``inf``, ``1e400``: no JSON number holds it) in an int or float
column. Without ``dedup_key`` an event's identity is its content (name, time, identifiers, properties):
identical rows are one event (see docs/sources.md).
Attributes and event properties mapped as date, datetime, int, float or bool keep that type in rules
(see :func:`attribute_types`). Tag columns take the tag types (string, number, boolean, date); a value that
does not convert, or is outside the tag's allowed values or range, rejects the row; an empty cell
removes the person's imported value.

A consent without a time (no ``consent_times`` column, or an empty cell) is taken as stated when the row
is first read in that state; such a "yes" never lifts an opt-out recorded from elsewhere (a receipt). A
consent with its time is an explicit choice at that time (``PeopleMixin.set_consent``).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from ..errors import ConfigError
from .base import (
    AdvisorRecord,
    CarRecord,
    EventRecord,
    PersonRecord,
    RawIdentifier,
    RejectedRow,
    SourceRecord,
    StoreRecord,
    TransferRecord,
)
from .clean import CleanError, convert, parse_bool, parse_timestamp

KINDS = ("person", "car", "event", "store", "advisor", "transfer")
# a tag's type -> the column conversion that gives it
TAG_CONVERSIONS = {"string": "str", "number": "float", "boolean": "bool", "date": "date"}
_TAG_KEYS = ("column", "type", "values", "range", "title", "description")
# an attribute's column type -> the type a rule compares it as (docs/dsl.md, "Typed values")
ATTRIBUTE_VALUE_TYPES = {"date": "date", "datetime": "datetime", "int": "number", "integer": "number",
                         "float": "number", "number": "number", "real": "number", "bool": "boolean"}


def attribute_types(settings: Mapping[str, Any], kind: str = "person") -> dict[str, str]:
    """The value types of the profile attributes (``kind`` "person") or event properties ("event") a source
    maps with a typed column: ``{"birth_date": "date"}``. Untyped (text) columns are not listed."""
    table = settings.get(kind)
    columns = table.get("attributes" if kind == "person" else "properties") if isinstance(table, dict) else None
    out = {}
    for name, spec in (columns or {}).items():
        if isinstance(spec, dict) and spec.get("type") in ATTRIBUTE_VALUE_TYPES:
            out[name] = ATTRIBUTE_VALUE_TYPES[spec["type"]]
    return out


def mapped_attribute_names(sources: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Every profile attribute the configured sources can write (``[sources.X.person] attributes``, and
    ``identify_attributes`` of event sources), whether or not a row has carried it yet."""
    names: set[str] = set()
    for settings in sources.values():
        person = settings.get("person")
        if isinstance(person, dict) and isinstance(person.get("attributes"), dict):
            names.update(person["attributes"])
        if isinstance(settings.get("identify_attributes"), dict):
            names.update(str(v) for v in settings["identify_attributes"].values())
    return names


def source_tag_definitions(source: str, settings: Mapping[str, Any]):
    """The :class:`~motorcade.tags.base.TagDefinition` of every tag ``[sources.SOURCE.tags]`` imports."""
    return tuple(tag.definition for tag in _tag_columns(source, settings).values())


class _TagColumn:
    __slots__ = ("column", "definition")

    def __init__(self, column: "_Column", definition: Any):
        self.column, self.definition = column, definition

    def value(self, row: Mapping[str, Any], tz: str) -> Any:
        d = self.definition
        raw = self.column.raw(row)
        try:
            value = convert(raw, TAG_CONVERSIONS[d.type], tz=tz)
        except CleanError as exc:
            raise CleanError(f"column {self.column.column} (tag {d.name}): {exc}") from None
        if value is None:
            return None
        if d.type == "number":
            if not math.isfinite(value):
                raise CleanError(f"column {self.column.column} (tag {d.name}): not a finite number: {raw!r}")
            if value == int(value):
                value = int(value)  # 42, not 42.0: the value other systems sent
        if d.allowed_values is not None and value not in d.allowed_values:
            raise CleanError(f"column {self.column.column} (tag {d.name}): {value!r} is not one of "
                             f"{', '.join(map(str, d.allowed_values))}")
        if d.value_range is not None and not (d.value_range[0] <= value <= d.value_range[1]):
            raise CleanError(f"column {self.column.column} (tag {d.name}): {value!r} is outside "
                             f"[{d.value_range[0]}, {d.value_range[1]}]")
        return value


def _tag_columns(source: str, settings: Mapping[str, Any]) -> dict[str, _TagColumn]:
    from motorcade.tags.base import TAG_TYPES, TagDefinition

    table = settings.get("tags")
    where = f"[sources.{source}.tags]"
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of tag = column",
                          hint='e.g. intent_level = { column = "intent", type = "string", values = ["low", "high"] }')
    if not isinstance(settings.get("person"), dict):
        raise ConfigError(f"{where} needs a [sources.{source}.person] table: tag values belong to the row's person",
                          hint=f'add [sources.{source}.person] with identifiers = {{ phone = "mobile" }}')
    out = {}
    for name, spec in table.items():
        spec = {"column": spec} if isinstance(spec, str) else spec
        if not isinstance(spec, dict) or "column" not in spec:
            raise ConfigError(f"{where} {name}: expected a column name or {{ column = ..., type = ... }}, got {spec!r}")
        unknown = sorted(set(spec) - set(_TAG_KEYS))
        if unknown:
            raise ConfigError(f"{where} {name}: unknown key(s) {', '.join(unknown)}", hint=f"keys: {', '.join(_TAG_KEYS)}")
        kind = spec.get("type", "string")
        if kind not in TAG_TYPES:
            raise ConfigError(f"{where} {name}: type {kind!r} is not a tag type", hint=f"types: {', '.join(TAG_TYPES)}")
        values, value_range = spec.get("values"), spec.get("range")
        if values is not None and not isinstance(values, list):
            raise ConfigError(f"{where} {name}: values must be a list", hint='values = ["low", "medium", "high"]')
        if value_range is not None and (kind != "number" or not isinstance(value_range, list) or len(value_range) != 2):
            raise ConfigError(f"{where} {name}: range is [low, high] and only for type = \"number\"", hint="range = [0, 100]")
        title = spec.get("title", "")
        definition = TagDefinition(
            name, kind, spec.get("description") or f"imported by source {source!r} from column {spec['column']!r}",
            title=title, allowed_values=None if values is None else tuple(values),
            value_range=None if value_range is None else (value_range[0], value_range[1]))
        out[name] = _TagColumn(_Column(spec["column"], f"{where} {name}"), definition)
    return out


class _Column:
    __slots__ = ("column", "type", "const", "required")

    def __init__(self, spec: Any, where: str, *, default_type: str = "str"):
        if isinstance(spec, str):
            self.column, self.type, self.const = spec, default_type, None
        elif isinstance(spec, dict):
            self.column = spec.get("column")
            self.type = spec.get("type", default_type)
            self.const = spec.get("value")
            if self.column is None and self.const is None:
                raise ConfigError(f"{where}: give a column (column = \"...\") or a constant (value = ...)")
        else:
            raise ConfigError(f"{where}: expected a column name or {{ column = ..., type = ... }}, got {spec!r}")

    def raw(self, row: Mapping[str, Any]) -> Any:
        if self.const is not None:
            return self.const
        return row.get(self.column)

    def value(self, row: Mapping[str, Any], tz: str, vin_check: Any) -> Any:
        raw = self.raw(row)
        try:
            return convert(raw, self.type, tz=tz, vin_check_digit=vin_check)
        except CleanError as exc:
            raise CleanError(f"column {self.column}: {exc}") from None


def _text(row: Mapping[str, Any], column: _Column | None) -> str | None:
    if column is None:
        return None
    raw = column.raw(row)
    if raw is None:
        return None
    text = str(raw).strip()
    return text or None


class RowMapping:
    """The record mapping of one source (built once from its settings, applied to every row)."""

    def __init__(self, source: str, settings: Mapping[str, Any]):
        self.source = source
        self.tz = settings.get("timezone", "Asia/Shanghai")
        self.vin_check = settings.get("vin_check_digit", True)
        where = f"[sources.{source}]"
        if not any(k in settings for k in KINDS):
            raise ConfigError(f"{where} maps no records", hint=f"add at least one of {', '.join(f'[sources.{source}.{k}]' for k in KINDS)}")
        self.person = self._person(settings.get("person"), f"[sources.{source}.person]")
        self.car = self._fields(settings.get("car"), f"[sources.{source}.car]",
                                ("vin", "brand", "model", "model_year", "purchase_date", "store_id", "advisor_id",
                                 "owned_from", "owned_to"), required=("vin", "brand", "model"))
        self.event = self._event(settings.get("event"), f"[sources.{source}.event]")
        self.store = self._fields(settings.get("store"), f"[sources.{source}.store]",
                                  ("id", "name", "group", "city", "brand"), required=("id", "name"))
        self.advisor = self._fields(settings.get("advisor"), f"[sources.{source}.advisor]",
                                    ("id", "name", "store_id", "role", "phone"), required=("id", "name", "store_id"))
        self.tags = _tag_columns(source, settings)
        self.transfer = self._transfer(settings.get("transfer"), f"[sources.{source}.transfer]")
        self.columns_used = self._columns_used()

    # -- building ---------------------------------------------------------------------------------

    @staticmethod
    def _fields(table: Any, where: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict[str, _Column] | None:
        if table is None:
            return None
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}", hint=f"fields: {', '.join(allowed)}")
        missing = [f for f in required if f not in table]
        if missing:
            raise ConfigError(f"{where}: map the required field(s) {', '.join(missing)}")
        return {name: _Column(spec, f"{where} {name}") for name, spec in table.items()}

    @staticmethod
    def _map(table: Any, where: str) -> dict[str, _Column]:
        if table is None:
            return {}
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table of name = column")
        return {name: _Column(spec, f"{where} {name}") for name, spec in table.items()}

    def _person(self, table: Any, where: str) -> dict[str, Any] | None:
        if table is None:
            return None
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        identifiers = self._map(table.get("identifiers"), f"{where} identifiers")
        if not identifiers:
            raise ConfigError(f"{where}: map at least one identifier", hint='identifiers = { phone = "mobile" }')
        return {
            "key": _Column(table["key"], f"{where} key") if "key" in table else None,
            "identifiers": identifiers,
            "attributes": self._map(table.get("attributes"), f"{where} attributes"),
            "relations": self._map(table.get("relations"), f"{where} relations"),
            "consents": self._map(table.get("consents"), f"{where} consents"),
            "consent_times": self._consent_times(table, where),
        }

    def _transfer(self, table: Any, where: str) -> dict[str, Any] | None:
        if table is None:
            return None
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        allowed = ("vin", "date", "from_owner", "to_owner")
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}", hint=f"fields: {', '.join(allowed)}")
        missing = [f for f in ("vin", "from_owner", "to_owner") if f not in table]
        if missing:
            raise ConfigError(f"{where}: map {', '.join(missing)}",
                              hint='from_owner = { dms_customer_id = "seller_id" }, to_owner = { phone = "buyer_mobile" }')
        owners = {}
        for side in ("from_owner", "to_owner"):
            owners[side] = self._map(table[side], f"{where} {side}")
            if not owners[side]:
                raise ConfigError(f"{where} {side}: map at least one identifier", hint='{ phone = "mobile" }')
        return {"vin": _Column(table["vin"], f"{where} vin"),
                "date": _Column(table["date"], f"{where} date") if "date" in table else None, **owners}

    def _consent_times(self, table: dict, where: str) -> dict[str, _Column]:
        times = self._map(table.get("consent_times"), f"{where} consent_times")
        unknown = sorted(set(times) - set(table.get("consents") or {}))
        if unknown:
            raise ConfigError(f"{where} consent_times: {', '.join(unknown)} not in consents",
                              hint="consent_times gives the time of a channel mapped in consents")
        return times

    def _event(self, table: Any, where: str) -> dict[str, Any] | None:
        if table is None:
            return None
        if "ts" not in table or not ("name" in table or "name_column" in table):
            raise ConfigError(f"{where}: map ts and a name (name = \"...\" or name_column = \"...\")")
        identifiers = self._map(table.get("identifiers"), f"{where} identifiers")
        if not identifiers and self.person is None:
            raise ConfigError(f"{where}: map identifiers (or a [sources.{self.source}.person] table)")
        return {
            "name": table.get("name"),
            "name_column": _Column(table["name_column"], where) if "name_column" in table else None,
            "ts": _Column(table["ts"], f"{where} ts"),
            "dedup_key": _Column(table["dedup_key"], f"{where} dedup_key") if "dedup_key" in table else None,
            "identifiers": identifiers,
            "properties": self._map(table.get("properties"), f"{where} properties"),
        }

    def _columns_used(self) -> set[str]:
        cols: set[str] = set()

        def add(c: _Column | None) -> None:
            if c is not None and c.column is not None:
                cols.add(c.column)

        if self.person:
            add(self.person["key"])
            for group in ("identifiers", "attributes", "relations", "consents", "consent_times"):
                for c in self.person[group].values():
                    add(c)
        for table in (self.car, self.store, self.advisor):
            for c in (table or {}).values():
                add(c)
        for tag in self.tags.values():
            add(tag.column)
        if self.transfer:
            add(self.transfer["vin"])
            add(self.transfer["date"])
            for side in ("from_owner", "to_owner"):
                for c in self.transfer[side].values():
                    add(c)
        if self.event:
            add(self.event["ts"])
            add(self.event["dedup_key"])
            add(self.event["name_column"])
            for group in ("identifiers", "properties"):
                for c in self.event[group].values():
                    add(c)
        return cols

    def check_columns(self, header: list[str], where: str) -> None:
        """Raise a ConfigError naming columns the mapping uses that the file does not have."""
        missing = sorted(self.columns_used - set(header))
        if missing:
            raise ConfigError(
                f"{where}: the mapping of source {self.source!r} names column(s) {', '.join(missing)} "
                f"that are not in the header",
                hint=f"columns present: {', '.join(header)}",
            )

    # -- applying ---------------------------------------------------------------------------------

    def records(self, row: Mapping[str, Any], position: str, raw: str) -> list[SourceRecord]:
        """The records of one row, or a single RejectedRow saying why it cannot be used."""
        try:
            return self._records(row, position, raw)
        except CleanError as exc:
            return [RejectedRow(position=position, raw=raw, reason=str(exc))]

    def _records(self, row: Mapping[str, Any], position: str, raw: str) -> list[SourceRecord]:
        out: list[SourceRecord] = []
        tz, vin_check = self.tz, self.vin_check
        person_key = None
        person_ids: tuple[RawIdentifier, ...] = ()
        if self.person is not None:
            p = self.person
            if p["key"] is not None:
                person_key = _text(row, p["key"])
                if person_key is None:
                    raise CleanError(f"missing key: column {p['key'].column} is empty")
            person_ids = tuple(
                RawIdentifier(t, text) for t, c in p["identifiers"].items() if (text := _text(row, c)) is not None
            )
            attributes = {name: c.value(row, tz, vin_check) for name, c in p["attributes"].items()}
            relations = tuple((kind, text) for kind, c in p["relations"].items() if (text := _text(row, c)) is not None)
            consents = []
            for channel, c in p["consents"].items():
                text = _text(row, c)
                if text is not None:
                    try:
                        granted = parse_bool(text)
                    except CleanError as exc:
                        raise CleanError(f"column {c.column}: {exc}") from None
                    at_column = p["consent_times"].get(channel)
                    at = _text(row, at_column)
                    if at is not None:
                        try:
                            at = parse_timestamp(at, tz)
                        except CleanError as exc:
                            raise CleanError(f"column {at_column.column}: {exc}") from None
                    consents.append((channel, granted, at))
            tags = {name: tag.value(row, tz) for name, tag in self.tags.items()}
            out.append(PersonRecord(source_key=person_key or "", identifiers=person_ids,
                                    attributes={k: v for k, v in attributes.items() if v is not None},
                                    position=position, raw=raw, relations=relations, consents=tuple(consents),
                                    tags=tags))
        if self.car is not None:
            c = self.car
            brand, model = _text(row, c["brand"]), _text(row, c["model"])
            if brand is None or model is None:
                raise CleanError(f"missing {'brand' if brand is None else 'model'} of the car")
            year = c["model_year"].value(row, tz, vin_check) if "model_year" in c else None
            if year is not None and not isinstance(year, int):
                year = convert(year, "int")
            out.append(CarRecord(
                vin=_text(row, c["vin"]) or "", brand=brand, model=model, model_year=year,
                purchase_date=_text(row, c.get("purchase_date")), store_id=_text(row, c.get("store_id")),
                owner=() if person_key else person_ids, owned_from=_text(row, c.get("owned_from")),
                owned_to=_text(row, c.get("owned_to")), advisor_id=_text(row, c.get("advisor_id")),
                position=position, raw=raw, owner_key=person_key,
            ))
        if self.event is not None:
            e = self.event
            name = e["name"] if e["name_column"] is None else _text(row, e["name_column"])
            if not name:
                raise CleanError("missing event name")
            identifiers = tuple(
                RawIdentifier(t, text) for t, col in e["identifiers"].items() if (text := _text(row, col)) is not None
            ) or person_ids
            properties = {k: v for k, col in e["properties"].items() if (v := col.value(row, tz, vin_check)) is not None}
            out.append(EventRecord(name=name, ts=e["ts"].raw(row), identifiers=identifiers, properties=properties,
                                   dedup_key=_text(row, e["dedup_key"]), position=position, raw=raw))
        if self.transfer is not None:
            t = self.transfer
            seller, buyer = (tuple(RawIdentifier(k, text) for k, col in t[side].items()
                                   if (text := _text(row, col)) is not None) for side in ("from_owner", "to_owner"))
            if not seller or not buyer:
                raise CleanError(f"missing the {'seller' if not seller else 'buyer'} of the car: "
                                 f"the {'from_owner' if not seller else 'to_owner'} columns are empty")
            out.append(TransferRecord(vin=_text(row, t["vin"]) or "", seller=seller, buyer=buyer,
                                      date=_text(row, t["date"]), position=position, raw=raw))
        if self.store is not None:
            s = self.store
            out.append(StoreRecord(id=_text(row, s["id"]) or "", name=_text(row, s["name"]) or "",
                                   group=_text(row, s.get("group")) or "", city=_text(row, s.get("city")),
                                   brand=_text(row, s.get("brand")), position=position, raw=raw))
        if self.advisor is not None:
            a = self.advisor
            out.append(AdvisorRecord(id=_text(row, a["id"]) or "", name=_text(row, a["name"]) or "",
                                     store_id=_text(row, a["store_id"]) or "", role=_text(row, a.get("role")) or "sales",
                                     phone=_text(row, a.get("phone")), position=position, raw=raw))
        return out


def mapping_warnings(source: str, settings: Mapping[str, Any]) -> list[str]:
    """Mappings that load but are likely wrong (``motorcade check`` prints them as warnings): a VIN
    mapped as a person identifier (a VIN identifies a car, never a person: people who sold or bought
    the car would be merged into one)."""
    warnings = []
    tables = [(f"[sources.{source}.{kind}] identifiers", (settings.get(kind) or {}).get("identifiers"))
              for kind in ("person", "event")]
    tables += [(f"[sources.{source}.transfer] {side}", (settings.get("transfer") or {}).get(side))
               for side in ("from_owner", "to_owner")]
    for label, table in tables:
        if not isinstance(table, dict):
            continue
        for type_, spec in table.items():
            column = spec if isinstance(spec, str) else spec.get("column") if isinstance(spec, dict) else None
            typed_vin = isinstance(spec, dict) and spec.get("type") == "vin"
            if type_.lower() == "vin" or typed_vin or (column or "").lower() == "vin":
                warnings.append(
                    f"{label} maps {type_} = {column!r}: a VIN identifies a car and never identifies a person "
                    f"(everyone who owned the car would become one person); map the car under "
                    f"[sources.{source}.car] or [sources.{source}.transfer] instead")
    return warnings
