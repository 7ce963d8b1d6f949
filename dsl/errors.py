"""Diagnostics for rule files: what is wrong, where (file, line, column, the source line with a caret)
and what to do (a hint).

A :class:`Diagnostic` is one finding; :class:`DslError` carries one or more error diagnostics and is
what :func:`motorcade.dsl.parse_text` and :func:`motorcade.dsl.load_rules` raise.
"""

from __future__ import annotations

import difflib
from typing import Iterable

import attrs

from motorcade.errors import MotorcadeError

ERROR = "error"
WARNING = "warning"


@attrs.frozen
class Diagnostic:
    """One error or warning about a rule file."""

    severity: str  # "error" | "warning"
    message: str  # what is wrong
    file: str  # file name as given to the parser
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    source_line: str | None = None  # the text of that line, without the newline
    hint: str | None = None  # what to do

    def render(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        out = [f"{where}: {self.severity}: {self.message}"]
        if self.source_line is not None and self.column is not None:
            out.append("    " + self.source_line.replace("\t", " "))
            out.append("    " + " " * (self.column - 1) + "^")
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()


def source_line(source: str, line: int | None) -> str | None:
    if line is None or line < 1:
        return None
    lines = source.split("\n")
    if line > len(lines):
        return ""
    return lines[line - 1]


def make(severity: str, message: str, *, file: str, source: str, line: int | None, column: int | None,
         hint: str | None = None) -> Diagnostic:
    return Diagnostic(severity, message, file, line, column, source_line(source, line), hint)


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """``"did you mean `test_drive`?"`` for the closest known name, or None."""
    matches = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"did you mean `{matches[0]}`?" if matches else None


class DslError(MotorcadeError):
    """One or more errors in rule files. ``diagnostics`` lists them all, in file order."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        first = self.diagnostics[0]
        super().__init__(first.message, first.hint)

    def __str__(self) -> str:
        return "\n\n".join(d.render() for d in self.diagnostics)
