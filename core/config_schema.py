"""The schema of ``motorcade.toml``: every key, its kind, default and meaning, in one place.

The config loader validates the core's tables against it (:func:`validate_document`); the tables a
plugin reads (``[sources.NAME]`` beyond the mapping, ``[channels.NAME]``, ``[tags.NAME]``) are checked
against the ``settings_schema`` the plugin class declares once plugins are loaded
(:func:`validate_plugin_settings`). ``docs/config.md`` is rendered from the same objects
(:func:`render_reference`) and a test keeps the page equal to what this module renders, so a key cannot
exist undocumented.

Every problem names the table and key, what was found and what is expected; all problems of one file
are reported together. Values read from ``${ENV}`` references are text: numeric kinds accept numeric
text and hand the plugin the number.
"""

from __future__ import annotations

import codecs
import difflib
import math
import re
import zoneinfo
from typing import Any, Callable, Iterable, Mapping, Sequence

import attrs

from .errors import ConfigError

NO_DEFAULT = object()


class Invalid(Exception):
    """A value does not fit its kind; the message says what was expected."""


# --- kinds -----------------------------------------------------------------------------------------

@attrs.frozen
class Kind:
    """How one value is checked and converted; ``label`` is what the reference shows."""

    label: str
    convert: Callable[[Any], Any]

    def __call__(self, value: Any) -> Any:
        return self.convert(value)


def _number(value: Any, *, whole: bool) -> float | int:
    if isinstance(value, bool):
        raise Invalid("a number (true/false is not one)")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
        except ValueError:
            raise Invalid("a number") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid("a finite number")
    if whole:
        if isinstance(value, float) and not value.is_integer():
            raise Invalid("a whole number")
        return int(value)
    return value


def whole(minimum: int | None = None, maximum: int | None = None) -> Kind:
    label = "whole number" + _range_label(minimum, maximum)

    def convert(value: Any) -> int:
        try:
            number = _number(value, whole=True)
        except Invalid:
            raise Invalid(label) from None
        _check_range(number, minimum, maximum, label)
        return int(number)

    return Kind(label, convert)


def number(minimum: float | None = None, maximum: float | None = None, *, above: float | None = None) -> Kind:
    label = "number" + (f" > {above:g}" if above is not None else _range_label(minimum, maximum))

    def convert(value: Any) -> float:
        try:
            result = _number(value, whole=False)
        except Invalid:
            raise Invalid(label) from None
        if above is not None and not result > above:
            raise Invalid(label)
        _check_range(result, minimum, maximum, label)
        return result

    return Kind(label, convert)


def _range_label(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f" ≥ {minimum:g}"
    if maximum is not None:
        return f" ≤ {maximum:g}"
    return ""


def _check_range(value: float, minimum: float | None, maximum: float | None, label: str) -> None:
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise Invalid(label)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("text (in quotes)")
    return value


TEXT = Kind("text", _text)
SECRET = Kind("text (secret: use ${ENV})", _text)
PATH = Kind("path (relative to the project)", _text)


def _non_empty(value: Any) -> str:
    if not _text(value).strip():
        raise Invalid("non-empty text")
    return value


NAME = Kind("non-empty text", _non_empty)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise Invalid("true or false")


FLAG = Kind("true or false", _flag)


def choice(*values: str) -> Kind:
    label = "one of " + ", ".join(f'"{v}"' for v in values)

    def convert(value: Any) -> str:
        if value not in values:
            raise Invalid(label)
        return value

    return Kind(label, convert)


def _clock_time(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise Invalid('a local time "HH:MM"')
    return value


CLOCK_TIME = Kind('local time "HH:MM"', _clock_time)


def _time_zone(value: Any) -> str:
    try:
        zoneinfo.ZoneInfo(_text(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Invalid('an IANA time zone such as "Asia/Shanghai"') from None
    return value


TIME_ZONE = Kind("IANA time zone", _time_zone)


def _instant(value: Any) -> Any:
    import datetime as dt

    from .as_of import parse_as_of
    from .errors import MotorcadeError

    try:
        parse_as_of(value if isinstance(value, (dt.date, dt.datetime)) else _text(value), dt.timezone.utc)
    except MotorcadeError:
        raise Invalid("a date or time such as 2026-11-20T08:00") from None
    return value


def _encoding(value: Any) -> str:
    try:
        codecs.lookup(_text(value))
    except LookupError:
        raise Invalid('a text encoding Python knows, e.g. "utf-8-sig" or "gb18030"') from None
    return value


ENCODING = Kind("text encoding", _encoding)


def _one_character(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 1:
        raise Invalid('exactly one character, e.g. "," or "\\t"')
    return value


ONE_CHARACTER = Kind("one character", _one_character)


def list_of(item: Kind, *, minimum: int = 0) -> Kind:
    label = f"list of {item.label}"

    def convert(value: Any) -> list:
        if not isinstance(value, list):
            raise Invalid(label)
        if len(value) < minimum:
            raise Invalid(f"{label} with at least {minimum}")
        out = []
        for i, element in enumerate(value):
            try:
                out.append(item(element))
            except Invalid as exc:
                raise Invalid(f"{label}: item {i + 1} must be {exc}") from None
        return out

    return Kind(label, convert)


def map_of(item: Kind, key: str = "name") -> Kind:
    label = f"table of {key} = {item.label}"

    def convert(value: Any) -> dict:
        if not isinstance(value, dict):
            raise Invalid(label)
        out = {}
        for k, v in value.items():
            try:
                out[k] = item(v)
            except Invalid as exc:
                raise Invalid(f"{label}: {k} must be {exc}") from None
        return out

    return Kind(label, convert)


def any_of(*kinds: Kind) -> Kind:
    label = " or ".join(k.label for k in kinds)

    def convert(value: Any) -> Any:
        for kind in kinds:
            try:
                return kind(value)
            except Invalid:
                continue
        raise Invalid(label)

    return Kind(label, convert)


# --- settings and sections -------------------------------------------------------------------------

@attrs.frozen
class Setting:
    """One key of a table: its kind, default (``NO_DEFAULT``: none) and one line on what it does."""

    name: str
    kind: Kind
    doc: str
    default: Any = NO_DEFAULT
    required: bool = False


@attrs.frozen
class Table:
    """A sub-table with its own keys (``quiet_hours = { start = ..., end = ... }``)."""

    settings: tuple[Setting, ...]
    label: str = "table"


@attrs.frozen
class Section:
    """A table of ``motorcade.toml``: ``title`` is its header as written (``[channels.webhook]``)."""

    title: str
    doc: str
    settings: tuple[Setting, ...]
    # keys this module does not check itself (mapping tables checked by the source mapping)
    delegated: tuple[str, ...] = ()


def table_kind(*settings: Setting, label: str = "table") -> Kind:
    """A kind for an inline table with known keys, checked like a section."""
    known = {s.name: s for s in settings}

    def convert(value: Any) -> dict:
        if not isinstance(value, dict):
            raise Invalid(label)
        problems: list[str] = []
        out = _check_keys(known, value, "", problems, delegated=())
        if problems:
            raise Invalid(f"{label} ({'; '.join(problems)})")
        return out

    return Kind(label, convert)


def _check_keys(known: Mapping[str, Setting], table: Mapping[str, Any], where: str, problems: list[str],
                delegated: Iterable[str]) -> dict:
    delegated = set(delegated)
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key in delegated:
            out[key] = value
            continue
        setting = known.get(key)
        if setting is None:
            close = difflib.get_close_matches(key, [*known, *delegated], n=1)
            hint = f"did you mean {close[0]!r}?" if close else (
                f"known keys: {', '.join(sorted([*known, *delegated]))}" if known or delegated else "it takes no keys")
            problems.append(f"{where}unknown key {key!r} ({hint})")
            out[key] = value
            continue
        try:
            out[key] = setting.kind(value)
        except Invalid as exc:
            problems.append(f"{where}{key} = {_shown(value, setting)}: expected {exc}")
            out[key] = value
    for setting in known.values():
        if setting.required and setting.name not in table:
            problems.append(f"{where}{setting.name} is required ({setting.doc})")
    return out


def _shown(value: Any, setting: Setting) -> str:
    if setting.kind is SECRET:
        return "(hidden)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_section(section: Section, table: Any, problems: list[str], title: str | None = None) -> dict:
    """Check ``table`` against ``section``, appending one line per problem; returns the converted table."""
    title = title or section.title
    if not isinstance(table, dict):
        problems.append(f"{title} must be a table, not {type(table).__name__}")
        return {}
    return _check_keys({s.name: s for s in section.settings}, table, f"{title} ", problems, section.delegated)


def raise_problems(path: Any, problems: Sequence[str]) -> None:
    if not problems:
        return
    if len(problems) == 1:
        raise ConfigError(f"{path}: {problems[0]}", hint="every key is described in docs/config.md")
    lines = "\n".join(f"  - {p}" for p in problems)
    raise ConfigError(f"{path}: {len(problems)} settings are wrong:\n{lines}",
                      hint="every key is described in docs/config.md")


# --- the core's tables -----------------------------------------------------------------------------

PROJECT = Section("[project]", "The project itself.", (
    Setting("name", NAME, "project name (shown in reports)", "the folder's name"),
    Setting("timezone", TIME_ZONE, "the project's time zone: relative times in rules, schedules, quiet hours "
            "and local dates in reports resolve in it", "Asia/Shanghai"),
    Setting("database", TEXT, "the operational store: a SQLite file path (relative to the project) or "
            "sqlite:///path, or a PostgreSQL URL postgresql://user@host/db (docs/stores.md)", "motorcade.db"),
    Setting("analytics", TEXT, "the analytics engine segment plans run on, beside the operational store: "
            "duckdb:///file.duckdb, chdb:///folder (ClickHouse in-process) or clickhouse://host:8123/db "
            "(docs/engines.md); empty: the operational store itself", ""),
    Setting("rules", any_of(TEXT, list_of(TEXT)), "rule files (*.mc) or folders of them", ["rules"]),
    Setting("plugins_dir", any_of(TEXT, list_of(TEXT)), "folder(s) of one-off plugins as plain .py files, loaded "
            "with the installed ones", []),
))

ACTIVATION = Section("[activation]", "Planning and delivering sends (`run`, `serve`).", (
    Setting("templates", PATH, "folder of message templates", "templates"),
    Setting("claim_seconds", number(above=0), "a claimed send is re-claimable after this long (its worker is "
            "presumed dead)", 60),
    Setting("claim_batch", whole(1), "sends claimed per transaction", 200),
    Setting("max_attempts", whole(1), "delivery attempts before a transient failure becomes a dead letter", 6),
    Setting("backoff_base_seconds", number(above=0), "first retry after about this long, doubling each attempt",
            30),
    Setting("backoff_max_seconds", number(above=0), "longest wait between two attempts", 3600),
    Setting("retry_after_max_seconds", number(above=0), "a provider's Retry-After longer than this is capped (the "
            "send's reason says so)", 3600),
    Setting("catch_up_hours", number(above=0), "a schedule slot older than this is not run any more", 24),
    Setting("trigger_lookback_hours", number(above=0), "a new trigger starts with events (or segment changes) "
            "this recent", 24),
    Setting("trigger_batch", whole(1), "events handled per transaction", 1000),
    Setting("poll_seconds", number(above=0), "`serve`: how often to look for new events when nothing else is due",
            5),
    Setting("scheduler_lease_seconds", number(above=0), "a planner killed mid-pass blocks planning at most this "
            "long", 60),
    Setting("stop_grace_seconds", number(above=0), "`serve` on SIGTERM/SIGINT: how long the batch in flight may "
            "take before the process exits anyway", 10),
    Setting("render_seconds", number(above=0), "rendering one message may take this long", 2),
    Setting("render_max_chars", whole(1), "longest message (and text or list built while rendering)", 100000),
    Setting("render_max_loops", whole(1), "most loop iterations plus function and macro calls per message",
            10000),
    Setting("public_url", TEXT, "the public address of `motorcade collect` (e.g. https://go.example.cn): "
            "templates' track() links and open pixels point there"),
    Setting("utm_source", TEXT, "when set, a short link's redirect adds utm_source (this), utm_medium (the "
            "channel), utm_campaign (the campaign or trigger) and utm_content (the template)"),
))

GUARDRAILS = Section("[guardrails]", "Consent, quiet hours and frequency caps for every send.", (
    Setting("consent", choice("opt_out", "opt_in"), "opt_out: marketing may go to people who have not refused "
            "the channel; opt_in: only to people who granted it", "opt_out"),
    Setting("quiet_hours", table_kind(Setting("start", CLOCK_TIME, "start of the quiet period", required=True),
                                      Setting("end", CLOCK_TIME, "end of the quiet period", required=True),
                                      label='{ start = "HH:MM", end = "HH:MM" }'),
            "no marketing sends between these local hours; sends are deferred, not dropped"),
    Setting("frequency_cap", table_kind(Setting("count", whole(1), "most marketing messages", required=True),
                                        Setting("days", number(above=0), "in this many days", required=True),
                                        label="{ count = N, days = D }"),
            "at most `count` marketing messages per person in `days` (transactional sends are exempt)"),
))

IDENTITY = Section("[identity]", "One-ID: how identifiers are cleaned and stitched. Settings for one identifier "
                   "type go in a table of their own, `[identity.TYPE]` (below).", (
    Setting("phone_region", TEXT, "region assumed for phone numbers written without a country code", "CN"),
    Setting("priority", list_of(TEXT), "identifier types, most trusted first (decides the golden record)",
            "crm_id, dms_customer_id, national_id_hash, app_user_id, wechat_unionid, wecom_external_userid, "
            "phone, email, wechat_openid, wechat_mp_openid, lead_id"),
    Setting("max_records_per_source", whole(1), "an identifier shared by more records of one source than this "
            "is flagged as shared and links nobody", 5),
    Setting("advisor_phones_link", FLAG, "whether a sales advisor's work phone may link customers", False),
    Setting("junk_rules", list_of(choice("placeholder", "same_character", "repeated_tail")),
            "junk rules of identifier types without rules of their own (phone has its own: all three); see "
            "docs/identity.md", ["placeholder"]),
))

IDENTITY_TYPE = Section("[identity.TYPE]", "Settings for one identifier type (`[identity.phone]`, "
                        "`[identity.crm_id]`, ...).", (
    Setting("max_records_per_source", whole(1), "overrides [identity] max_records_per_source for this type"),
    Setting("junk", list_of(any_of(TEXT, whole())), "values of this type that are never real (placeholders); "
            "added to the built-in list", []),
    Setting("junk_rules", list_of(choice("placeholder", "same_character", "repeated_tail")),
            "the junk rules of this type (phone: all three; others: [identity] junk_rules)"),
    Setting("accept_unknown_ranges", FLAG, "[identity.phone] only: keep well-formed numbers in ranges the phone "
            "numbering data does not list as assigned (otherwise rejected: `motorcade identity rejected`)", False),
))

PIPELINE = Section("[pipeline]", "What `motorcade pipeline` runs.", (
    Setting("stages", list_of(choice("ingest", "tags", "segments", "run"), minimum=1),
            "the stages, in order", ["ingest", "tags", "segments", "run"]),
    Setting("as_of", Kind("date or time (as --as-of)", _instant), "a fixed as-of instant for every stage "
            "(reproducible runs); the formats --as-of takes, or a TOML date-time", "now"),
))

ACCESS = Section("[access]", "Scopes, users and roles (docs/access.md).", (
    Setting("group_tags", list_of(NAME), "tags only the group may read: `check` rejects a store-scoped rule that "
            "reads one (the group value is weighted over every store)", ["group_value_score", "value_level"]),
))

TAGS_ENGINE = Section("[tags]", "Scalar keys of [tags] are engine settings; [tags.NAME] tables belong to "
                      "calculators.", (
    Setting("coverage_drift", number(0, 1), "warn when a tag's coverage moves by more than this share", 0.10),
    Setting("distribution_drift", number(0, 1), "warn when the total-variation distance of a tag's distribution "
            "exceeds this", 0.20),
    Setting("mean_drift", number(0), "numeric tags without a range: warn when the mean moves by more than this "
            "many previous standard deviations", 0.5),
))

SOURCE_COMMON = Section("[sources.NAME]", "Keys every source takes, whatever its type; the record mappings "
                        "([sources.NAME.person], .car, .event, .store, .advisor, .transfer) are described in "
                        "docs/sources.md, imported tags ([sources.NAME.tags]) in docs/tags.md; they are checked "
                        "when the source is read.", (
    Setting("type", NAME, "the source plugin (`motorcade plugins` lists them)", required=True),
    Setting("timezone", TIME_ZONE, "zone of naive local times in this source", "Asia/Shanghai"),
    Setting("vin_check_digit", FLAG, "reject VINs whose check digit is wrong", True),
    Setting("workers", whole(0), "parallel worker processes for large loads (0: none)", "one per core"),
    Setting("ingest_into", choice("store", "analytics"), "where the events of a `jsonl` source go: the operational "
            "store, or straight into the analytics engine of [project] analytics (docs/engines.md)", "store"),
    Setting("phone_region", TEXT, "region assumed for this source's phone numbers without a country code",
            "[identity] phone_region"),
    Setting("car_advisor_relation", TEXT, "relation kind written from a car's advisor to its owner",
            "service_advisor"),
    Setting("car_store_relation", TEXT, "relation kind written from a car's store to its owner", "selling_store"),
    Setting("min_event_time", Kind("date or time (naive: the source's time zone)", _instant),
            "event times before this are quarantined (docs/sources.md)", "1990-01-01"),
    Setting("max_event_days_ahead", number(0, 36500), "event times more than this many days after the ingest "
            "started are quarantined", 1),
    Setting("consent_events", map_of(table_kind(
        Setting("channel", TEXT, 'channel the change applies to ("*": all)'),
        Setting("granted", FLAG, "true: a grant; false: a refusal", required=True),
        label="{ channel = ..., granted = true|false }"), key="event name"),
            "events that change consent (added to unsubscribe/subscribe)"),
), delegated=("person", "car", "event", "store", "advisor", "transfer", "tags"))

REPORTS = Section("[reports]", "Settings of `motorcade report` (docs/reports.md).", (
    Setting("touches", list_of(TEXT, minimum=1), "events that count as touches in `report attribution`",
            ["sent", "clicked", "message_click", "touchpoint_visit", "configurator_view", "store_visit", "test_drive",
             "lead_submit"]),
    Setting("attribution_half_life_days", number(above=0), "half-life of the time-decay attribution model", 7),
    Setting("portrait_attributes", list_of(TEXT), "profile attributes `report portrait` describes besides the tags",
            []),
))

CORE_SECTIONS = {"project": PROJECT, "activation": ACTIVATION, "guardrails": GUARDRAILS, "identity": IDENTITY,
                 "pipeline": PIPELINE, "access": ACCESS, "reports": REPORTS}
TOP_LEVEL = (*CORE_SECTIONS, "sources", "channels", "tags")


def validate_document(doc: Mapping[str, Any], path: Any) -> None:
    """Check the core's own tables of a parsed ``motorcade.toml``; raise one ConfigError listing every problem."""
    problems: list[str] = []
    for key, value in doc.items():
        if key not in TOP_LEVEL:
            close = difflib.get_close_matches(key, TOP_LEVEL, n=1)
            problems.append(f"unknown table [{key}]" + (f" (did you mean [{close[0]}]?)" if close else
                                                        f" (tables: {', '.join(TOP_LEVEL)})"))
    for key, section in CORE_SECTIONS.items():
        if key not in doc:
            continue
        table = doc[key]
        if key == "identity" and isinstance(table, dict):
            for type_, sub in table.items():
                if isinstance(sub, dict):
                    check_section(IDENTITY_TYPE, sub, problems, f"[identity.{type_}]")
            table = {k: v for k, v in table.items() if not isinstance(v, dict)}
        check_section(section, table, problems)
    tags = doc.get("tags", {})
    if isinstance(tags, dict):
        check_section(TAGS_ENGINE, {k: v for k, v in tags.items() if not isinstance(v, dict)}, problems)
    for kind in ("sources", "channels"):
        value = doc.get(kind, {})
        if not isinstance(value, dict):
            problems.append(f"[{kind}] must be a table")
            continue
        for name, table in value.items():
            if not isinstance(table, dict):
                problems.append(f"[{kind}.{name}] must be a table, not {type(table).__name__}")
            elif kind == "sources" and "type" not in table:
                problems.append(f'[sources.{name}] needs a `type` (the source plugin, e.g. "csv")')
    raise_problems(path, problems)


# --- plugin tables ---------------------------------------------------------------------------------

def plugin_schema(cls: Any) -> tuple[Setting, ...] | None:
    """The settings a plugin class declares (``settings_schema``), or None if it declares none.

    A tag calculator that declares none is described by its ``default_settings``: the same keys, each of
    the kind its default has (a table's values of the kind of its first value)."""
    schema = getattr(cls, "settings_schema", None)
    if schema is not None:
        return tuple(schema)
    defaults = getattr(cls, "default_settings", None)
    if isinstance(defaults, dict):
        return tuple(Setting(key, _kind_of(value), "see docs/tags.md", value)
                     for key, value in defaults.items())
    return None


def _kind_of(value: Any) -> Kind:
    if isinstance(value, bool):
        return FLAG
    if isinstance(value, (int, float)):
        return number()
    if isinstance(value, str):
        return TEXT
    if isinstance(value, list):
        return list_of(_kind_of(value[0])) if value else Kind("list", _list)
    if isinstance(value, dict):
        return map_of(_kind_of(next(iter(value.values())))) if value else map_of(any_of(number(), TEXT))
    return Kind("value", lambda v: v)


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise Invalid("a list")
    return value


def validate_plugin_settings(config: Any, registry: Any) -> None:
    """Check ``[sources.NAME]``, ``[channels.NAME]`` and ``[tags.NAME]`` against the installed plugins'
    declared schemas. Tables of a plugin that is not installed are left to the commands that need it
    (they say which plugin is missing); plugins that declare no schema are not checked."""
    problems: list[str] = []
    for name, table in config.sources.items():
        registered = registry.sources.get(table.get("type"))
        own = plugin_schema(registered.obj) if registered is not None else None
        settings = SOURCE_COMMON.settings + (own or ())
        if own is None:
            # a plugin not installed here, or one that declares nothing: check the keys the core knows and
            # leave the rest to the plugin (a missing plugin is reported by the commands that need it)
            known = {s.name for s in settings}
            table = {k: v for k, v in table.items() if k in known or k in SOURCE_COMMON.delegated}
        section = Section(f"[sources.{name}]", "", settings, SOURCE_COMMON.delegated)
        config.sources[name] = {**config.sources[name], **check_section(section, table, problems)}
    for name, table in config.channels.items():
        registered = registry.channels.get(name)
        own = plugin_schema(registered.obj) if registered is not None else None
        if own is None:
            continue
        config.channels[name] = check_section(Section(f"[channels.{name}]", "", own), table, problems)
    for name, table in config.tags.items():
        if not isinstance(table, dict):
            continue
        registered = registry.tag_calculators.get(name)
        own = plugin_schema(registered.obj) if registered is not None else None
        if own is None:
            continue
        config.tags[name] = check_section(Section(f"[tags.{name}]", "", own), table, problems)
    raise_problems(config.path, problems)


# --- the reference page ----------------------------------------------------------------------------

def _default_text(setting: Setting) -> str:
    if setting.required:
        return "required"
    if setting.default is NO_DEFAULT:
        return "not set"
    value = setting.default
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, (int, float)):
        return f"`{value:g}`"
    if isinstance(value, list):
        return "`[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in value) + "]`"
    if isinstance(value, dict):
        return "`{ " + ", ".join(f"{k} = {v!r}" for k, v in value.items()) + " }`" if value else "`{}`"
    if isinstance(value, str) and " " not in value:
        return f'`"{value}"`'
    return str(value)


def _table_rows(settings: Iterable[Setting]) -> list[str]:
    rows = ["| key | kind | default | what it does |", "|---|---|---|---|"]
    for s in settings:
        kind = s.kind.label.replace("|", "\\|")
        doc = s.doc.replace("|", "\\|")
        rows.append(f"| `{s.name}` | {kind} | {_default_text(s)} | {doc} |")
    return rows


def render_reference(registry: Any) -> str:
    """docs/config.md: the core's tables, then every installed plugin's, in name order."""
    out = [
        "# Configuration reference (`motorcade.toml`)",
        "",
        "<!-- Generated from core/config_schema.py and the installed plugins' `settings_schema`: run",
        "     `motorcade config reference > docs/config.md`; a test keeps this page equal to that output. -->",
        "",
        "Every table and key `motorcade.toml` takes. Unknown keys and tables are errors that name the key and",
        "suggest the closest known one; every problem in a file is reported at once. Any text value may name",
        "environment variables, `\"${SMTP_HOST}\"` or `\"${SMTP_PORT:-2525}\"` (with a default): keep secrets",
        "out of the file this way; numeric keys accept such text and read it as a number.",
        "",
    ]
    for section in (PROJECT, ACTIVATION, GUARDRAILS, IDENTITY, IDENTITY_TYPE, PIPELINE, ACCESS, REPORTS, TAGS_ENGINE,
                    SOURCE_COMMON):
        out += [f"## `{section.title}`", "", section.doc, "", *_table_rows(section.settings), ""]
    for kind, title, table in (("sources", "Source types", registry.sources),
                               ("channels", "Channels", registry.channels),
                               ("tags", "Tag calculators", registry.tag_calculators)):
        out += [f"## {title}", ""]
        for name in sorted(table):
            registered = table[name]
            schema = plugin_schema(registered.obj)
            header = (f"[sources.NAME] with type = \"{name}\"" if kind == "sources" else f"[{kind}.{name}]")
            dist = registered.plugin
            out += [f"### `{header}`", "", f"From plugin `{dist}`.", ""]
            if schema is None:
                out += ["This plugin declares no settings schema; see its README.", ""]
            elif not schema:
                out += ["No settings.", ""]
            else:
                out += [*_table_rows(schema), ""]
    return "\n".join(out).rstrip() + "\n"
