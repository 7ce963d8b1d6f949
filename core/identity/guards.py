"""Identity guards: which identifier values may link records, per identifier type (``[identity]``).

::

    [identity]
    # the record holding the highest-priority identifier type wins each golden-record attribute
    priority = ["crm_id", "dms_customer_id", "national_id_hash", "app_user_id", "wechat_unionid", "phone", "email"]
    # an identifier carried by more records of one source than this is flagged and stops linking
    max_records_per_source = 5
    # an advisor's work phone never links customers (salespeople type their own number into leads)
    advisor_phones_link = false

    # junk rules of identifier types without rules of their own (phone has its own; default: ["placeholder"])
    junk_rules = ["placeholder"]

    [identity.phone]              # per identifier type
    junk = ["13800138000", "13888888888"]    # values that never link (added to the built-in list)
    junk_rules = ["placeholder", "same_character", "repeated_tail"]   # phone's default
    max_records_per_source = 3
    accept_unknown_ranges = false  # true: keep well-formed numbers of ranges the numbering data lacks

Junk rules (:data:`JUNK_RULES`): ``placeholder`` (null, none, n/a, test, 0, 未知 ...), ``same_character``
(three or more of one character: 1111111, aaaa) and ``repeated_tail`` (ending in 8 identical characters:
13900000000). Phones get all three; every other type only ``placeholder``, since a CRM may well number a
customer 111.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..errors import ConfigError
from ..sources.clean import CleanError, clean_identifier

DEFAULT_PRIORITY = (
    "crm_id", "dms_customer_id", "national_id_hash", "app_user_id", "wechat_unionid", "wecom_external_userid",
    "phone", "email", "wechat_openid", "wechat_mp_openid", "lead_id",
)
DEFAULT_MAX_RECORDS = 5
# Numbers people type when they do not want to give theirs; never a person's identifier.
DEFAULT_JUNK = {
    "phone": ("13800138000", "13888888888", "13900139000", "18888888888"),
    "email": ("test@test.com", "a@a.com", "no@email.com", "none@none.com", "123@qq.com"),
}
# rule name -> what it catches (for error messages and docs)
JUNK_RULES = {
    "placeholder": "null, none, n/a, test, 0 and the like",
    "same_character": "three or more of one character (111, aaaa)",
    "repeated_tail": "ending in 8 identical characters (13900000000)",
}
DEFAULT_JUNK_RULES = {"phone": frozenset(JUNK_RULES)}
DEFAULT_TYPE_JUNK_RULES = frozenset({"placeholder"})
PLACEHOLDERS = frozenset({"null", "none", "n/a", "na", "unknown", "-", "--", "test", "无", "空", "未知", "0", "nan"})
_LONGEST_PLACEHOLDER = max(map(len, PLACEHOLDERS))


@attrs.frozen
class IdentityGuards:
    """The guards of one project (built from ``[identity]``)."""

    priority: tuple[str, ...] = DEFAULT_PRIORITY
    default_max_records: int = DEFAULT_MAX_RECORDS
    max_records: dict[str, int] = attrs.field(factory=dict)  # per identifier type
    junk: dict[str, frozenset[str]] = attrs.field(factory=dict)  # cleaned junk values per type
    advisor_phones_link: bool = False
    region: str = "CN"  # default phone region
    # junk rules per identifier type, and of every other type
    junk_rules: dict[str, frozenset[str]] = attrs.field(factory=lambda: dict(DEFAULT_JUNK_RULES))
    default_junk_rules: frozenset[str] = DEFAULT_TYPE_JUNK_RULES
    # keep phone numbers that are well-formed but in a range the numbering data does not know
    accept_unknown_ranges: bool = False

    @classmethod
    def from_config(cls, table: dict[str, Any] | None, *, region: str | None = None) -> "IdentityGuards":
        table = dict(table or {})
        region = region or str(table.get("phone_region", "CN"))  # the [identity] table's own region by default
        per_type = {k: v for k, v in table.items() if isinstance(v, dict)}
        try:
            default_max = int(table.get("max_records_per_source", DEFAULT_MAX_RECORDS))
            max_records = {t: int(v["max_records_per_source"]) for t, v in per_type.items()
                           if "max_records_per_source" in v}
        except (TypeError, ValueError):
            raise ConfigError("[identity] max_records_per_source must be a whole number",
                              hint="e.g. max_records_per_source = 5") from None
        junk_raw: dict[str, set[str]] = {t: set(v) for t, v in DEFAULT_JUNK.items()}
        for type_, settings in per_type.items():
            junk_raw.setdefault(type_, set()).update(str(v) for v in settings.get("junk", ()))
        junk: dict[str, frozenset[str]] = {}
        for type_, values in junk_raw.items():
            cleaned = set()
            for value in values:
                cleaned.add(value)
                try:
                    cleaned.add(clean_identifier(type_, value, region=region))
                except CleanError:
                    pass
            junk[type_] = frozenset(cleaned)
        priority = tuple(table.get("priority", DEFAULT_PRIORITY))
        default_rules = _junk_rules(table.get("junk_rules"), "[identity] junk_rules", DEFAULT_TYPE_JUNK_RULES)
        junk_rules = dict(DEFAULT_JUNK_RULES)
        for type_, settings in per_type.items():
            if "junk_rules" in settings:
                junk_rules[type_] = _junk_rules(settings["junk_rules"], f"[identity.{type_}] junk_rules", frozenset())
        accept = per_type.get("phone", {}).get("accept_unknown_ranges", False)
        if not isinstance(accept, bool):
            raise ConfigError("[identity.phone] accept_unknown_ranges must be true or false",
                              hint="accept_unknown_ranges = true")
        return cls(priority=priority, default_max_records=default_max, max_records=max_records, junk=junk,
                   advisor_phones_link=bool(table.get("advisor_phones_link", False)), region=region,
                   junk_rules=junk_rules, default_junk_rules=default_rules, accept_unknown_ranges=accept)

    def limit(self, type_: str) -> int:
        return self.max_records.get(type_, self.default_max_records)

    def rules_of(self, type_: str) -> frozenset[str]:
        """The junk rules that apply to identifiers of ``type_``."""
        return self.junk_rules.get(type_, self.default_junk_rules)

    def junk_reason(self, type_: str, value: str) -> str | None:
        """Why this cleaned value must never link anyone, or None if it may.

        Called once per new identifier of a bulk load: the common case (a real value) is decided by a
        few character comparisons, without building strings.
        """
        junk = self.junk.get(type_)
        if junk is not None and value in junk:
            return "junk value"
        # Most values: longer than a placeholder once "+" (and a phone's "86") is stripped, with a last
        # character unlike the one before it (so neither all the same nor ending in 8 identical ones).
        if len(value) > (10 if type_ == "phone" else 8) and value[-1] != value[-2] and value[1] != "+":
            return None
        rules = self.junk_rules.get(type_, self.default_junk_rules)
        if not rules:
            return None
        plain = value.lstrip("+")
        phone = type_ == "phone"
        if phone and plain.startswith("86"):
            plain = plain[2:]
        n = len(plain)
        # (lower() never shortens a string, so a longer value cannot be a placeholder)
        if n <= _LONGEST_PLACEHOLDER and "placeholder" in rules and plain.lower() in PLACEHOLDERS:
            return "placeholder value"
        if n >= 3 and plain[0] == plain[-1] and "same_character" in rules and plain.count(plain[0]) == n:
            return "all characters the same"
        if n >= 8 and plain[-1] == plain[-2] and "repeated_tail" in rules and plain.endswith(plain[-1] * 8):
            return "phone ends in 8 identical digits" if phone else "ends in 8 identical characters"
        return None

    def over_limit_reason(self, type_: str, source: str, count: int) -> str:
        return f"{OVER_LIMIT}{count} records of source {source} (limit {self.limit(type_)} for {type_})"


OVER_LIMIT = "shared by "  # how over-shared flag reasons start (the resolver restates their count)


def _junk_rules(value: Any, where: str, default: frozenset[str]) -> frozenset[str]:
    if value is None:
        return default
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where} must be a list of rule names", hint=f'e.g. {where.split()[-1]} = ["placeholder"]')
    unknown = [str(v) for v in value if v not in JUNK_RULES]
    if unknown:
        raise ConfigError(f"{where}: unknown junk rule(s) {', '.join(map(repr, unknown))}",
                          hint="rules: " + "; ".join(f"{k} ({v})" for k, v in JUNK_RULES.items()))
    return frozenset(value)
