"""Text -> AST: the cached LALR parser, the Transformer, and syntax errors an operator can act on."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from importlib import resources

import attrs
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from motorcade.dsl import ast
from motorcade.dsl.errors import ERROR, Diagnostic, DslError, make

RULE_KEYWORDS = ("segment", "campaign", "trigger", "tag", "funnel")

_UNIT_PLURAL = {
    "minute": "minutes", "hour": "hours", "day": "days", "week": "weeks", "month": "months", "year": "years",
}


@functools.lru_cache(maxsize=1)
def get_parser() -> Lark:
    """The LALR parser, built once per process."""
    grammar = resources.files("motorcade.dsl").joinpath("grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", start=["start", "cell"],
                propagate_positions=True, maybe_placeholders=True)


class _Collect:
    """Errors found while transforming (bad dates, duplicate clauses...), reported together."""

    def __init__(self, filename: str, source: str):
        self.filename = filename
        self.source = source
        self.diagnostics: list[Diagnostic] = []

    def error(self, message: str, line: int | None, column: int | None, hint: str | None = None) -> None:
        self.diagnostics.append(make(ERROR, message, file=self.filename, source=self.source, line=line,
                                     column=column, hint=hint))


def _pos(meta_or_token) -> dict:
    line = getattr(meta_or_token, "line", None)
    column = getattr(meta_or_token, "column", None)
    return {"line": line, "column": column}


def parse_string_token(text: str) -> str:
    return json.loads(text)


def parse_number(text: str) -> int | float:
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return float(text)


def parse_datetime(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace(" ", "T", 1))


def parse_time(text: str) -> dt.time:
    hours, minutes = text.split(":")
    return dt.time(int(hours), int(minutes))


@v_args(meta=True)
class ToAst(Transformer):
    """Parse tree -> :mod:`motorcade.dsl.ast` nodes."""

    def __init__(self, collect: _Collect):
        super().__init__(visit_tokens=True)
        self.collect = collect

    # ---- tokens ----
    def NAME(self, token):  # noqa: N802 (lark calls terminal callbacks by terminal name)
        return token

    def STRING(self, token):  # noqa: N802
        try:
            return Token.new_borrow_pos("STRING", parse_string_token(token), token)
        except ValueError:
            self.collect.error("this string has an invalid escape sequence", token.line, token.column,
                               'use \\" for a quote, \\\\ for a backslash, \\n for a new line')
            return Token.new_borrow_pos("STRING", "", token)

    def _literal_from_token(self, token) -> ast.Literal:
        pos = _pos(token)
        kind = token.type
        try:
            if kind == "STRING":
                value = str(token)
            elif kind == "NUMBER":
                value = parse_number(token)
            elif kind == "DATE":
                value = dt.date.fromisoformat(token)
            elif kind == "DATETIME":
                value = parse_datetime(token)
            elif kind == "TRUE":
                value = True
            elif kind == "FALSE":
                value = False
            else:  # pragma: no cover - grammar guarantees the kinds above
                raise AssertionError(kind)
        except ValueError as exc:
            self.collect.error(f"`{token}` is not a valid {kind.lower()}: {exc}", token.line, token.column,
                               "dates are YYYY-MM-DD, date-times YYYY-MM-DD HH:MM[:SS][+08:00]")
            value = str(token)
        return ast.Literal(value, **pos)

    def _int(self, token) -> int:
        value = parse_number(token)
        if not isinstance(value, int) or value < 0:
            self.collect.error(f"expected a whole number, got `{token}`", token.line, token.column,
                               "write a non-negative whole number such as 14")
            return 0
        return value

    # ---- values ----
    def literal(self, meta, children):
        return self._literal_from_token(children[0])

    def list(self, meta, children):
        items = [c for c in children if c is not None]
        return ast.ListLit(items, **_pos(meta))

    def cell(self, meta, children):
        return children[0]

    def unit(self, meta, children):
        word = str(children[0])
        return _UNIT_PLURAL.get(word, word)

    def ago(self, meta, children):
        return ast.Ago(self._int(children[0]), children[1], **_pos(meta))

    def duration(self, meta, children):
        return ast.Duration(self._int(children[0]), children[1], **_pos(meta))

    # ---- windows ----
    def _time_point(self, value):
        if isinstance(value, ast.Ago) or (
            isinstance(value, ast.Literal) and isinstance(value.value, (dt.date, dt.datetime))
        ):
            return value
        self.collect.error("a time window needs a date, a date-time or `N days ago` here", value.line,
                           value.column, "e.g. `since 2026-01-01`, `before 30 days ago`")
        return value

    def w_last(self, meta, children):
        return ast.LastN(self._int(children[0]), children[1], **_pos(meta))

    def w_between(self, meta, children):
        return ast.BetweenTimes(self._time_point(children[0]), self._time_point(children[1]), **_pos(meta))

    def w_before(self, meta, children):
        return ast.Before(self._time_point(children[0]), **_pos(meta))

    def w_after(self, meta, children):
        return ast.After(self._time_point(children[0]), **_pos(meta))

    def w_since(self, meta, children):
        return ast.Since(self._time_point(children[0]), **_pos(meta))

    # ---- subjects and tests ----
    def tag_ref(self, meta, children):
        return ast.TagRef(str(children[0]), **_pos(meta))

    def profile_ref(self, meta, children):
        return ast.ProfileRef(str(children[0]), **_pos(meta))

    def field_ref(self, meta, children):
        return ast.FieldRef(str(children[0]), **_pos(meta))

    def cmp_op(self, meta, children):
        return str(children[0])

    def agg_func(self, meta, children):
        return str(children[0])

    def compare(self, meta, children):
        return ("compare", children[0], children[1])

    def in_list(self, meta, children):
        return ("in", children[0].items, False)

    def not_in_list(self, meta, children):
        return ("in", children[0].items, True)

    def between(self, meta, children):
        return ("between", children[0], children[1])

    def is_null(self, meta, children):
        return ("null", False)

    def is_not_null(self, meta, children):
        return ("null", True)

    def contains(self, meta, children):
        return ("text", "contains", str(children[0]))

    def starts_with(self, meta, children):
        return ("text", "starts with", str(children[0]))

    def _predicate(self, subject, test, pos):
        kind = test[0]
        if kind == "compare":
            return ast.Compare(subject, test[1], test[2], **pos)
        if kind == "in":
            return ast.InList(subject, test[1], test[2], **pos)
        if kind == "between":
            return ast.Between(subject, test[1], test[2], **pos)
        if kind == "null":
            return ast.IsNull(subject, test[1], **pos)
        return ast.TextMatch(subject, test[1], test[2], **pos)

    def predicate(self, meta, children):
        subject, test = children
        return self._predicate(subject, test, _pos(meta))

    def aggregate_w(self, meta, children):
        func, event, prop, where, window, test = children
        subject = ast.Aggregate(func, str(event), None if prop is None else str(prop), where, window, **_pos(meta))
        return self._predicate(subject, test, _pos(meta))

    def aggregate(self, meta, children):
        func, event, prop, where, test = children
        return self.aggregate_w(meta, [func, event, prop, where, None, test])

    # ---- conditions ----
    def or_(self, meta, children):
        return ast.Or(children, **_pos(meta))

    def and_(self, meta, children):
        return ast.And(children, **_pos(meta))

    def not_(self, meta, children):
        return ast.Not(children[0], **_pos(meta))

    def did(self, meta, children):
        return ast.Did(str(children[0]), children[1], False, **_pos(meta))

    def did_not(self, meta, children):
        return ast.Did(str(children[0]), children[1], True, **_pos(meta))

    def did_any(self, meta, children):
        *events, window = children
        return ast.DidAny([str(e) for e in events], window, **_pos(meta))

    def sequence(self, meta, children):
        *steps, within_n, within_unit, window = children
        within = None
        if within_n is not None:
            within = ast.Duration(self._int(within_n), within_unit, **_pos(within_n))
        return ast.Sequence([str(s) for s in steps], within, window, **_pos(meta))

    def in_segment(self, meta, children):
        return ast.InSegment(str(children[0]), **_pos(meta))

    def has_car(self, meta, children):
        return ast.HasCar(children[0], **_pos(meta))

    def consented(self, meta, children):
        return ast.ConsentCond("consented", str(children[0]), **_pos(meta))

    def unsubscribed(self, meta, children):
        return ast.ConsentCond("unsubscribed", str(children[0]), **_pos(meta))

    # ---- rules ----
    @staticmethod
    def _title(token):
        return None if token is None else str(token)

    def segment(self, meta, children):
        name, title, scope, where = children
        return ast.Segment(str(name), self._title(title), where, end_line=meta.end_line, scope=scope, **_pos(meta))

    def scope_group(self, meta, children):
        if str(children[0]) != "group":
            hint = 'write `scope group`, or `scope store "CODE"` for stores' if str(children[0]) != "store" else \
                'name the store: `scope store "SH01"` (several: `scope store "SH01", "SH02"`)'
            self.collect.error(f"`scope {children[0]}` is not a scope", children[0].line, children[0].column, hint)
        return ast.ScopeDecl((), **_pos(meta))

    def scope_stores(self, meta, children):
        word, *codes = children
        if str(word) != "store":
            self.collect.error(f"`scope {word} ...` is not a scope", word.line, word.column,
                               'write `scope store "SH01"` (or `scope group`)')
        return ast.ScopeDecl([str(c) for c in codes], **_pos(meta))

    def case_when(self, meta, children):
        return ast.CaseWhen(children[0], children[1], **_pos(meta))

    def tag_rule(self, meta, children):
        name, title, *cases, default = children
        return ast.TagRule(str(name), self._title(title), cases, default, end_line=meta.end_line, **_pos(meta))

    def funnel(self, meta, children):
        name, title, *steps, within_n, within_unit, by = children
        within = None
        if within_n is not None:
            within = ast.Duration(self._int(within_n), within_unit, **_pos(within_n))
        return ast.Funnel(str(name), self._title(title), [str(s) for s in steps], within,
                          None if by is None else str(by), end_line=meta.end_line, **_pos(meta))

    # clauses return (field, value, meta); campaign/trigger assemble them
    def audience(self, meta, children):
        return ("audience", str(children[0]), meta)

    def schedule_clause(self, meta, children):
        return ("schedule", children[0], meta)

    def daily(self, meta, children):
        return ast.Daily(self._time(children[0]), **_pos(meta))

    def every(self, meta, children):
        return ast.Every(self._int(children[0]), children[1], **_pos(meta))

    def cron(self, meta, children):
        return ast.Cron(str(children[0]), **_pos(meta))

    def once(self, meta, children):
        token = children[0]
        try:
            value = parse_datetime(token)
        except ValueError as exc:
            self.collect.error(f"`{token}` is not a valid date-time: {exc}", token.line, token.column)
            value = dt.datetime(1970, 1, 1)
        return ast.Once(value, **_pos(meta))

    def _time(self, token) -> dt.time:
        try:
            return parse_time(token)
        except ValueError:
            self.collect.error(f"`{token}` is not a valid time of day", token.line, token.column,
                               "write HH:MM between 00:00 and 23:59")
            return dt.time(0, 0)

    def send_all(self, meta, children):
        return ("send_to", "all", meta)

    def send_new(self, meta, children):
        return ("send_to", "new", meta)

    def holdout(self, meta, children):
        return ("holdout", parse_number(children[0]), meta)

    def channel_step(self, meta, children):
        return ast.ChannelStep(str(children[0]), str(children[1]), **_pos(meta))

    def via(self, meta, children):
        return ("via", ast.Via(children, **_pos(meta)), meta)

    def transactional(self, meta, children):
        return ("transactional", True, meta)

    def quiet_hours(self, meta, children):
        return ("quiet_hours", ast.QuietHours(self._time(children[0]), self._time(children[1]), **_pos(meta)), meta)

    def quiet_hours_off(self, meta, children):
        return ("quiet_hours", ast.QuietHours(None, None, **_pos(meta)), meta)

    def on_event(self, meta, children):
        return ("on", ast.OnEvent(str(children[0]), children[1], **_pos(meta)), meta)

    def on_enter(self, meta, children):
        return ("on", ast.OnSegment("enter", str(children[0]), **_pos(meta)), meta)

    def on_leave(self, meta, children):
        return ("on", ast.OnSegment("leave", str(children[0]), **_pos(meta)), meta)

    def if_clause(self, meta, children):
        return ("condition", children[0], meta)

    def wait(self, meta, children):
        return ("wait", ast.Duration(self._int(children[0]), children[1], **_pos(meta)), meta)

    def reenter_once(self, meta, children):
        return ("reentry", ast.Reentry("once", None, **_pos(meta)), meta)

    def reenter_always(self, meta, children):
        return ("reentry", ast.Reentry("always", None, **_pos(meta)), meta)

    def reenter_once_per(self, meta, children):
        every = ast.Duration(self._int(children[0]), children[1], **_pos(children[0]))
        return ("reentry", ast.Reentry("once per", every, **_pos(meta)), meta)

    def _clauses(self, kind, clauses):
        clauses = [("scope", c, c) if isinstance(c, ast.ScopeDecl) else c for c in clauses]
        fields: dict = {"clause_positions": tuple((field, meta.line, meta.column) for field, _, meta in clauses)}
        for field, value, meta in clauses:
            if field in fields:
                word = {"send_to": "send to", "quiet_hours": "quiet hours", "condition": "if"}.get(field, field)
                self.collect.error(f"this {kind} has a second `{word}` clause", meta.line, meta.column,
                                   f"a {kind} takes each clause at most once; remove one of them")
                continue
            fields[field] = value
        return fields

    def campaign(self, meta, children):
        name, title, *clauses = children
        fields = self._clauses("campaign", clauses)
        return ast.Campaign(str(name), self._title(title), end_line=meta.end_line, **fields, **_pos(meta))

    def trigger(self, meta, children):
        name, title, *clauses = children
        fields = self._clauses("trigger", clauses)
        return ast.Trigger(str(name), self._title(title), end_line=meta.end_line, **fields, **_pos(meta))

    def start(self, meta, children):
        """Rules in order; a top-level ``scope`` line gives its scope to the rules after it that can have
        one and declare none of their own."""
        rules, file_scope = [], None
        for child in children:
            if isinstance(child, ast.ScopeDecl):
                file_scope = child
            elif file_scope is not None and hasattr(child, "scope") and child.scope is None:
                rules.append(attrs.evolve(child, scope=file_scope, scope_from_file=True))
            else:
                rules.append(child)
        return rules


# ---- syntax errors ----------------------------------------------------------------------------

_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": 'a "quoted string"',
    "NUMBER": "a number",
    "DATE": "a date (2026-01-31)",
    "DATETIME": "a date-time (2026-01-31 10:00)",
    "TIME": "a time of day (10:00)",
    "TRUE": "`true`",
    "FALSE": "`false`",
    "_AND": "`and`",
    "_OR": "`or`",
    "_NOT": "`not`",
    "$END": "end of file",
}

# Friendly labels for common mistakes (lark's match_examples: same parser state => same label).
_EXAMPLES = {
    "use `=` to compare, not `==`": ['segment a { where tag x == "y" }', "segment a { where profile.x == 1 }"],
    "a segment's condition starts with `where`": [
        'segment a { tag x = "y" }', "segment a \"t\" { did x }", "segment a { in segment b }",
    ],
    "a time window needs a unit, e.g. `in last 90 days`": ["segment a { where did x in last 90 }"],
    "a count/sum/avg/min/max/first/last needs a comparison, e.g. `count(share) in last 90 days >= 3`": [
        "segment a { where count(x) }", "segment a { where count(x) in last 9 days }",
        "segment a { where count(x) and did y }",
    ],
    "a list is written in brackets, e.g. [\"X3\", \"X5\"]": ['segment a { where tag x in "a" }'],
    "to test several events write `did any of [a, b]`": ["segment a { where did [a, b] }"],
    "`did` is followed by an event name, e.g. `did test_drive in last 30 days`": [
        "segment a { where did }", "segment a { where did and did x }"],
    "a rule's body is enclosed in `{ ... }`; is a closing `}` missing?": [
        "segment a { where did x", "segment a { where did x segment b { where did y }",
    ],
}


def _expected_words(expected: set[str]) -> str:
    parser = get_parser()
    by_name = {t.name: t for t in parser.terminals}
    words = set()
    for name in expected:
        if name in _TERMINAL_WORDS:
            words.add(_TERMINAL_WORDS[name])
        elif name in by_name and by_name[name].pattern.type == "str":
            words.add(f"`{by_name[name].pattern.value}`")
        else:
            words.add(name.lower())
    ordered = sorted(words)
    if len(ordered) > 12:
        ordered = ordered[:12] + ["..."]
    return ", ".join(ordered)


def _raw_parse(text: str):
    return get_parser().parse(text, start="start")


@functools.lru_cache(maxsize=1)
def _example_errors() -> list[tuple[str, UnexpectedInput]]:
    out = []
    for label, examples in _EXAMPLES.items():
        for example in examples:
            try:
                _raw_parse(example)
            except UnexpectedInput as exc:
                out.append((label, exc))
    return out


def _state_key(exc: UnexpectedInput):
    """The LALR state the parser was in (not the whole stack: earlier rules in a file deepen it)."""
    state = getattr(exc, "state", None)
    return getattr(state, "position", state)


_CHARACTER_LABELS = {
    "'": 'strings are written in double quotes, e.g. "high"',
    '"': 'this string has no closing `"` on the same line',
}


def _label(exc: UnexpectedInput) -> str | None:
    """The friendly label of the example that fails in the same parser state on the same kind of token
    (stricter than lark's ``match_examples``, which falls back to the state alone)."""
    if isinstance(exc, UnexpectedCharacters) and exc.char in _CHARACTER_LABELS:
        return _CHARACTER_LABELS[exc.char]
    for label, example in _example_errors():
        if type(example) is not type(exc) or _state_key(example) != _state_key(exc):
            continue
        if isinstance(exc, UnexpectedToken) and example.token.type != exc.token.type:
            continue
        if isinstance(exc, UnexpectedCharacters) and example.char != exc.char:
            continue
        return label
    return None


def _syntax_diagnostic(exc: UnexpectedInput, text: str, filename: str) -> Diagnostic:
    label = _label(exc)
    line, column = exc.line, exc.column
    at_end = False
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        message = f"unexpected character `{char}`"
        expected = exc.allowed or set()
    elif isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        message = "unexpected end of file"
        expected = set(getattr(exc, "expected", ()) or ())
        lines = text.split("\n")
        line, column, at_end = len(lines), len(lines[-1]) + 1, True
    else:
        message = f"unexpected `{exc.token}`"
        expected = set(exc.expected or ())
    if line is None or line < 1:
        line, column = 1, 1
    unclosed = _unclosed_rule(exc, text, at_end)
    if unclosed is not None:
        keyword, name, opened = unclosed
        where = "the end of the file" if at_end else f"line {line}"
        return make(ERROR, f"{keyword} `{name}` (line {opened}) is not closed", file=filename, source=text,
                    line=line, column=column, hint=f"add `}}` to close {keyword} `{name}` before {where}")
    hint_parts = []
    if label:
        hint_parts.append(label)
    if expected and not (at_end and label):
        hint_parts.append(f"expected {_expected_words(expected)}")
    return make(ERROR, message, file=filename, source=text, line=line, column=column,
                hint="; ".join(hint_parts) or None)


_RULE_START = re.compile(r"^(?:%s)\b" % "|".join(RULE_KEYWORDS), re.MULTILINE)
_RULE_HEAD = re.compile(r"^(%s)\s+([A-Za-z_][A-Za-z0-9_]*)" % "|".join(RULE_KEYWORDS), re.MULTILINE)


def _unclosed_rule(exc: UnexpectedInput, text: str, at_end: bool) -> tuple[str, str, int] | None:
    """``(keyword, name, line)`` of the rule a missing ``}`` leaves open: the error is the next rule's
    keyword at the start of a line, or the end of the file, while the last rule begun has more ``{``
    than ``}``. None otherwise."""
    if at_end:
        end = len(text)
    elif (isinstance(exc, UnexpectedToken) and exc.column == 1 and str(exc.token) in RULE_KEYWORDS
          and exc.pos_in_stream is not None):
        end = exc.pos_in_stream
    else:
        return None
    heads = list(_RULE_HEAD.finditer(text, 0, end))
    if not heads:
        return None
    head = heads[-1]
    body = "\n".join(line[:comment_start(line)] if comment_start(line) is not None else line
                     for line in text[head.start():end].split("\n"))
    body = re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', body)  # braces inside strings do not count
    if body.count("{") <= body.count("}"):
        return None
    return head.group(1), head.group(2), text.count("\n", 0, head.start()) + 1


def _blank_before(text: str, offset: int) -> str:
    """Replace everything before ``offset`` by spaces, keeping new lines (so positions stay right)."""
    return re.sub(r"[^\n]", " ", text[:offset]) + text[offset:]


def comment_start(line: str) -> int | None:
    """Index of the ``#`` that starts a comment on ``line`` (outside strings), or None."""
    in_string = escaped = False
    for index, char in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "#":
            return index
    return None


def scan_comments(text: str) -> list[tuple[int, str]]:
    """``(line, text)`` of every ``#`` comment (outside strings)."""
    comments = []
    for number, line in enumerate(text.split("\n"), start=1):
        start = comment_start(line)
        if start is not None:
            comments.append((number, line[start:].rstrip()))
    return comments


def parse_text(text: str, filename: str = "<text>") -> ast.RuleFile:
    """Parse rule text into a :class:`~motorcade.dsl.ast.RuleFile`.

    Raises :class:`~motorcade.dsl.errors.DslError` listing every syntax error found: after an error the
    parser resumes at the next line that starts a rule (``segment``, ``campaign``, ...).
    """
    diagnostics: list[Diagnostic] = []
    offset = 0
    tree = None
    while True:
        try:
            tree = _raw_parse(_blank_before(text, offset) if offset else text)
            break
        except UnexpectedInput as exc:
            diagnostics.append(_syntax_diagnostic(exc, text, filename))
            line_start = _line_offset(text, (exc.line or 1))
            if isinstance(exc, UnexpectedEOF) or (exc.line or 0) < 1:
                break
            match = _RULE_START.search(text, line_start + 1 + max(0, (exc.column or 1) - 1))
            if match is None or match.start() <= offset:
                break
            offset = match.start()
            tree = None
    if diagnostics:
        raise DslError(diagnostics)
    too_deep = _too_deep(tree)
    if too_deep is not None:
        raise DslError([make(ERROR, f"this rule nests more than {MAX_TREE_DEPTH} levels deep", file=filename,
                             source=text, line=getattr(too_deep, "line", None),
                             column=getattr(too_deep, "column", None),
                             hint="conditions may nest at most 20 levels (and / or / not, subqueries, "
                                  "`in segment`); write it flatter: `not not x` is `x`")])
    collect = _Collect(filename, text)
    try:
        rules = ToAst(collect).transform(tree)
    except VisitError as exc:
        raise exc.orig_exc from None
    if collect.diagnostics:
        raise DslError(collect.diagnostics)
    return ast.RuleFile(rules, filename=filename, source=text, comments=scan_comments(text))


# Deeper parse trees are refused before they are turned into the AST (the Transformer recurses; ~450
# levels exhaust Python's stack). `check` refuses far less deep conditions (dsl/check.py MAX_NESTING).
MAX_TREE_DEPTH = 200


def _too_deep(tree):
    """The metadata (line, column) of the first parse-tree node deeper than MAX_TREE_DEPTH, or None."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            meta = node.meta
            return meta if not getattr(meta, "empty", True) else _first_token(node)
        stack.extend((child, depth + 1) for child in node.children if hasattr(child, "children"))
    return None


def _first_token(node):
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Token):
            return item
        if hasattr(item, "children"):
            stack.extend(reversed(item.children))
    return None


def _line_offset(text: str, line: int) -> int:
    offset = 0
    for _ in range(line - 1):
        nxt = text.find("\n", offset)
        if nxt < 0:
            return len(text)
        offset = nxt + 1
    return offset


def parse_cell(text: str, filename: str = "<cell>", line: int = 1, column: int = 1):
    """Parse one literal or list (a rule-test table cell). Returns a Literal or ListLit."""
    try:
        tree = get_parser().parse(text, start="cell")
    except UnexpectedInput as exc:
        raise DslError([Diagnostic(ERROR, f"`{text}` is not a value", filename, line, column + (exc.column or 1) - 1,
                                   None, 'write a "string", a number, true/false, a date, or [a list]')]) from None
    collect = _Collect(filename, text)
    try:
        node = ToAst(collect).transform(tree)
    except VisitError as exc:
        raise exc.orig_exc from None
    if collect.diagnostics:
        d = collect.diagnostics[0]
        raise DslError([Diagnostic(ERROR, d.message, filename, line, column, None, d.hint)])
    return node
