"""Click parameter types shared by several commands, so hostile input is a usage error (exit 2) with what to
do, not a crash deep inside."""

from __future__ import annotations

import click

SQLITE_INTEGER_MAX = 2**63 - 1  # the largest integer SQLite stores

ROW_ID = click.IntRange(1, SQLITE_INTEGER_MAX)  # link, quarantine-row ids
COUNT = click.IntRange(1, SQLITE_INTEGER_MAX)  # --limit and the like


class PersonId(click.ParamType):
    """A person id (1 .. 2^63-1). A masked value passed back (``3**``, as some older output and masked
    identifiers look) is refused with what to do."""

    name = "PERSON_ID"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            if "*" in text:
                self.fail(f"{text!r} is a masked id, which cannot name a person: person ids are shown unmasked "
                          "(`explain`, `segments members`, `sends list`); a masked value is an identifier — find "
                          "the person with `motorcade identity explain TYPE:VALUE` (MOTORCADE_SHOW_PII=1 shows "
                          "identifiers if you may see personal data)", param, ctx)
            if not text.isdigit():
                self.fail(f"{text!r} is not a person id (a whole number)", param, ctx)
            number = int(text)
        if not 1 <= number <= SQLITE_INTEGER_MAX:
            self.fail(f"{number} is not a person id (ids run from 1 to {SQLITE_INTEGER_MAX})", param, ctx)
        return number


PERSON_ID = PersonId()
