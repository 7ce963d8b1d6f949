"""Guard rails applied to every send when a dispatcher claims it, in this order:

1. **consent** -- a global opt-out (channel ``*``) stops the send; a per-channel opt-out removes that
   channel from the ``via`` chain (with ``consent = "opt_in"`` a channel needs a recorded grant).
2. **quiet hours** -- in the person's time zone; the send is *deferred* to the end of the quiet window.
3. **frequency cap** -- at most N marketing sends per person in D days across all campaigns and
   triggers (transactional sends are exempt and do not count).
4. **holdout** -- the control group drawn when the run was planned (a deterministic hash of person and
   campaign) is recorded, not sent.
5. **channel fallback** -- the first remaining ``via`` step the person has an address for
   (WeCom -> SMS when the person has no WeCom external userid).
6. **channel limits** -- the channel's ``send_window`` (deferred), ``marketing_allowed`` and
   ``max_length`` (that step is skipped); its rate limit paces the dispatcher.

The first rail that stops a send writes its reason on the outbox row (``motorcade sends list``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import attrs

from motorcade.errors import ConfigError


def parse_hhmm(text: str, where: str) -> dt.time:
    try:
        hours, minutes = str(text).split(":")
        return dt.time(int(hours), int(minutes))
    except (ValueError, TypeError):
        raise ConfigError(f"{where}: {text!r} is not a time of day", hint='write "21:00"') from None


@attrs.frozen
class GuardRails:
    """The project's ``[guardrails]`` settings."""

    consent_mode: str = "opt_out"  # "opt_out": send unless refused; "opt_in": send only with a grant
    quiet_hours: tuple[dt.time, dt.time] | None = None  # (start, end) local; None = none
    cap_count: int | None = None  # marketing sends per person ...
    cap_days: int = 7  # ... in this many days

    @classmethod
    def from_config(cls, table: dict[str, Any]) -> "GuardRails":
        where = "motorcade.toml [guardrails]"
        mode = table.get("consent", "opt_out")
        if mode not in ("opt_out", "opt_in"):
            raise ConfigError(f"{where}: consent = {mode!r}", hint='use "opt_out" or "opt_in"')
        quiet = table.get("quiet_hours")
        quiet_hours = None
        if quiet:
            if not isinstance(quiet, dict) or "start" not in quiet or "end" not in quiet:
                raise ConfigError(f"{where}: quiet_hours needs start and end",
                                  hint='quiet_hours = { start = "21:00", end = "09:00" }')
            quiet_hours = (parse_hhmm(quiet["start"], where + " quiet_hours.start"),
                           parse_hhmm(quiet["end"], where + " quiet_hours.end"))
        cap = table.get("frequency_cap")
        cap_count, cap_days = None, 7
        if cap:
            if not isinstance(cap, dict) or "count" not in cap:
                raise ConfigError(f"{where}: frequency_cap needs a count",
                                  hint="frequency_cap = { count = 2, days = 7 }")
            cap_count, cap_days = int(cap["count"]), int(cap.get("days", 7))
            if cap_count < 0 or cap_days < 1:
                raise ConfigError(f"{where}: frequency_cap count must be >= 0 and days >= 1")
        return cls(consent_mode=mode, quiet_hours=quiet_hours, cap_count=cap_count, cap_days=cap_days)


def in_holdout(person_id: int, origin: str, percent: float | None) -> bool:
    """Deterministic control-group draw: the same person and campaign always land in the same arm."""
    if not percent:
        return False
    digest = hashlib.sha256(f"holdout\0{origin}\0{person_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    return bucket < float(percent) / 100.0


def window_end(local: dt.datetime, start: dt.time, end: dt.time) -> dt.datetime | None:
    """If ``local`` falls in the daily window [start, end) (which may wrap midnight), when it ends; else None."""
    t = local.time().replace(tzinfo=None)
    if start == end:
        return None
    if start < end:
        inside = start <= t < end
        end_day = local.date()
    else:  # wraps midnight, e.g. 21:00 -> 09:00
        inside = t >= start or t < end
        end_day = local.date() + dt.timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    naive = dt.datetime.combine(end_day, end)
    return naive.replace(tzinfo=local.tzinfo)


def outside_window_until(local: dt.datetime, start: dt.time, end: dt.time) -> dt.datetime | None:
    """If ``local`` is outside the allowed daily window [start, end), when the window opens next; else None."""
    t = local.time().replace(tzinfo=None)
    if start < end:
        if start <= t < end:
            return None
        day = local.date() if t < start else local.date() + dt.timedelta(days=1)
        return dt.datetime.combine(day, start).replace(tzinfo=local.tzinfo)
    # an allowed window that wraps midnight: the forbidden part is [end, start)
    return window_end(local, end, start)


def consent_allows(consents: dict[str, bool], channel: str, mode: str) -> bool:
    """A global refusal wins; then the channel's own state; then the global state; then the mode's default."""
    if consents.get("*") is False:
        return False
    if channel in consents:
        return consents[channel]
    if "*" in consents:
        return consents["*"]
    return mode == "opt_out"
