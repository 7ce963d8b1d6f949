"""``--as-of``: the one set of formats every command accepts for the instant "now" means.

- ``now`` (the default when the option is not given);
- a date, ``2026-11-20``: the start of that day in the project's time zone;
- a date and time, ``2026-11-20T08:00`` or ``2026-11-20 08:00:30``: in the project's time zone;
- with an offset or ``Z``, ``2026-11-20T08:00+08:00`` / ``2026-11-20T00:00Z``: that instant.
"""

from __future__ import annotations

import datetime as dt
import re

import click

from .errors import MotorcadeError

FORMATS_HINT = ("use now, a date (2026-11-20), a local date and time (2026-11-20T08:00) or an instant with an "
                "offset (2026-11-20T08:00+08:00, 2026-11-20T00:00Z)")
_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?")


def parse_as_of(value, tz: dt.tzinfo) -> dt.datetime:
    """An aware instant from None or ``"now"`` (now), a date, a datetime or text in the formats above."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "now"):
        return dt.datetime.now(tz)
    if isinstance(value, str):
        text = value.strip()
        if not _SHAPE.fullmatch(text):
            raise MotorcadeError(f"as-of {value!r} is not a date or time Motorcade reads", hint=FORMATS_HINT)
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise MotorcadeError(f"as-of {value!r} is not a real date or time", hint=FORMATS_HINT) from None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    return value if value.tzinfo else value.replace(tzinfo=tz)


class AsOfText(click.ParamType):
    """Checks the shape of ``--as-of`` when options are parsed (a usage error, exit 2); the command reads
    it with :func:`parse_as_of` once the project's time zone is known."""

    name = "AS_OF"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, dt.datetime):
            return value
        try:
            parse_as_of(value, dt.timezone.utc)
        except MotorcadeError as exc:
            self.fail(f"{exc.args[0]} ({FORMATS_HINT})", param, ctx)
        return value


def as_of_option(help_text: str = "The instant 'now' means (default: now).") -> callable:
    """The ``--as-of`` option, the same in every command."""
    return click.option("--as-of", "as_of", type=AsOfText(), metavar="WHEN",
                        help=f"{help_text} Formats: now, 2026-11-20, 2026-11-20T08:00 (project time zone), "
                             "2026-11-20T08:00+08:00.")
