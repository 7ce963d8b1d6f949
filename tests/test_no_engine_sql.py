"""No SQL text specific to SQLite outside the SQLite store and the compiler's SQLite dialect (issue #16).

What counts as SQL text: the string literals of the code (f-string parts included), not its comments or
docstrings (prose may name ``INSERT OR IGNORE`` to explain a guarantee) and not Python's own
``datetime.strftime`` calls (the method name is code, not a string; its ``"%Y-%m-%d"`` argument names no
function). In those literals, case-insensitively:

* ``json_extract``, ``julianday``, ``strftime`` called as SQL functions (followed by ``(``), or a literal
  that is exactly the name (a sqlglot ``func("json_extract", ...)`` call);
* ``INSERT OR IGNORE|REPLACE|ABORT|FAIL|ROLLBACK`` (SQLite's conflict clause; other engines say
  ``ON CONFLICT``);
* ``PRAGMA`` followed by a name.

Scanned: the shipped code in core/, dsl/ and plugins/ (tests and benchmarks excluded: they build SQLite
fixture files and SQLite baselines on purpose).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("core", "dsl", "plugins")
# Where SQLite SQL belongs: the SQLite store, and the segment compiler's SQLite dialect (its own module once
# the compiler is split into dialect classes; until then the compiler module itself).
ALLOWED = ("core/store/", "core/segments/dialects.py", "core/segments/compiler.py")
EXCLUDED_PARTS = {"tests", "__pycache__", "build"}

_SQL_FUNCTIONS = r"json_extract|julianday|strftime"
SQLITE_SQL = re.compile(
    rf"\b(?:{_SQL_FUNCTIONS})\s*\(|^\s*(?:{_SQL_FUNCTIONS})\s*$"
    r"|\binsert\s+or\s+(?:ignore|replace|abort|fail|rollback)\b"
    r"|\bpragma\s+\w+",
    re.IGNORECASE,
)


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def sqlite_sql_in(source: str) -> list[tuple[int, str]]:
    """``(line, text)`` of every string literal (not a docstring) in ``source`` that holds SQLite-only SQL."""
    docstrings = _docstring_lines(ast.parse(source))
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.STRING or token.start[0] in docstrings:
            continue
        literal = ast.parse(token.string, mode="eval").body
        if isinstance(literal, ast.JoinedStr):  # an f-string: its text parts; a {field} is code, not SQL
            text = "".join(part.value if isinstance(part, ast.Constant) else "{?}" for part in literal.values)
        elif isinstance(literal, ast.Constant) and isinstance(literal.value, str):
            text = literal.value
        else:  # bytes
            continue
        for match in SQLITE_SQL.finditer(text):
            found.append((token.start[0] + text.count("\n", 0, match.start()), match.group(0).strip()))
    return found


def _shipped_files() -> list[Path]:
    files = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if EXCLUDED_PARTS & set(path.relative_to(ROOT).parts) or relative.startswith(ALLOWED):
                continue
            files.append(path)
    return files


def test_no_sqlite_sql_outside_the_store_and_the_sqlite_dialect():
    offences = [f"{path.relative_to(ROOT).as_posix()}:{line}: {text}"
                for path in _shipped_files() for line, text in sqlite_sql_in(path.read_text(encoding="utf-8"))]
    assert not offences, ("SQLite-only SQL outside core/store/ (move it into a named store function, or build a "
                          "sqlglot tree rendered with store.dialect):\n" + "\n".join(offences))


@pytest.mark.parametrize("source, expected", [
    ('q = "SELECT json_extract(p, \'$.a\') FROM t"\n', [(1, "json_extract(")]),
    ('q = (\n    "SELECT 1 "\n    f"FROM t WHERE {x} AND JulianDay (ts) > 0"\n)\n', [(3, "JulianDay (")]),
    ('conn.execute("insert   or ignore into t values (1)")\n', [(1, "insert   or ignore")]),
    ('conn.execute("PRAGMA data_version")\n', [(1, "PRAGMA data_version")]),
    ('f = func("strftime", fmt, col)\n', [(1, "strftime")]),
    ('q = """\nSELECT 1,\n  strftime(\'%s\', ts)\n"""\n', [(3, "strftime(")]),
    # not SQL text: Python's strftime, a docstring, a comment, a word inside a longer name
    ('stamp = now.strftime("%Y-%m-%d")\n', []),
    ('msg = f"at {slot.strftime(\'%H:%M\')} (json_extract is not used)"\n', []),
    ('def f():\n    """Uses INSERT OR IGNORE semantics and json_extract(x)."""\n', []),
    ('x = 1  # PRAGMA foo, json_extract(x)\n', []),
    ('q = "SELECT my_json_extract_x FROM t"\n', []),
    ('q = "pragmatic"\n', []),
])
def test_the_pattern_finds_sql_text_and_only_sql_text(source, expected):
    assert sqlite_sql_in(source) == expected
