"""Option types shared by the command modules, so hostile numbers are usage errors, not crashes deep inside."""

from __future__ import annotations

import click

SQLITE_INTEGER_MAX = 2**63 - 1  # the largest integer SQLite stores

ROW_ID = click.IntRange(1, SQLITE_INTEGER_MAX)  # person, link, quarantine-row ids
COUNT = click.IntRange(1, SQLITE_INTEGER_MAX)  # --limit and the like
