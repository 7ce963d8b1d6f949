"""Identity guards: which identifier values may link records, per identifier type (``[identity]``).

::

    [identity]
    # the record holding the highest-priority identifier type wins each golden-record attribute
    priority = ["crm_id", "dms_customer_id", "national_id_hash", "app_user_id", "wechat_unionid", "phone", "email"]
    # an identifier carried by more records of one source than this is flagged and stops linking
    max_records_per_source = 5
    # an advisor's work phone never links customers (salespeople type their own number into leads)
    advisor_phones_link = false

    [identity.phone]              # per identifier type
    junk = ["13800138000", "13888888888"]
    max_records_per_source = 3
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

    @classmethod
    def from_config(cls, table: dict[str, Any] | None, *, region: str = "CN") -> "IdentityGuards":
        table = dict(table or {})
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
        return cls(priority=priority, default_max_records=default_max, max_records=max_records, junk=junk,
                   advisor_phones_link=bool(table.get("advisor_phones_link", False)), region=region)

    def limit(self, type_: str) -> int:
        return self.max_records.get(type_, self.default_max_records)

    def junk_reason(self, type_: str, value: str) -> str | None:
        """Why this cleaned value must never link anyone, or None if it may.

        Called once per new identifier of a bulk load: the common case (a real value) is decided by a
        few character comparisons, without building strings.
        """
        junk = self.junk.get(type_)
        if junk is not None and value in junk:
            return "junk value"
        # Most values: longer than a placeholder once "+" (and a phone's "86") is stripped, with a last
        # character unlike the one before it (so neither all the same nor ending in 8 identical digits).
        if len(value) > (10 if type_ == "phone" else 8) and value[-1] != value[-2] and value[1] != "+":
            return None
        plain = value.lstrip("+")
        phone = type_ == "phone"
        if phone and plain.startswith("86"):
            plain = plain[2:]
        n = len(plain)
        # (lower() never shortens a string, so a longer value cannot be a placeholder)
        if n <= _LONGEST_PLACEHOLDER and plain.lower() in PLACEHOLDERS:
            return "placeholder value"
        if n >= 3 and plain[0] == plain[-1] and plain.count(plain[0]) == n:
            return "all characters the same"
        if phone and n >= 8 and plain[-1] == plain[-2] and plain.endswith(plain[-1] * 8):
            return "phone ends in 8 identical digits"
        return None

    def over_limit_reason(self, type_: str, source: str, count: int) -> str:
        return f"shared by {count} records of source {source} (limit {self.limit(type_)} for {type_})"
