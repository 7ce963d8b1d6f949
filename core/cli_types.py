"""Click parameter types shared by several commands."""

from __future__ import annotations

import click


class PersonId(click.ParamType):
    """A person id. Output masks ids (``3**``); a masked id passed back is refused with what to do."""

    name = "PERSON_ID"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text.isdigit():
            return int(text)
        if "*" in text:
            self.fail(f"{text!r} is a masked id, which cannot name a person: run the command that printed it with "
                      "MOTORCADE_SHOW_PII=1 (if you may see personal data) to get the real id, or find the person "
                      "by an identifier with `motorcade identity explain TYPE:VALUE`", param, ctx)
        self.fail(f"{text!r} is not a person id (a whole number)", param, ctx)


PERSON_ID = PersonId()
