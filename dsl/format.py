"""AST -> canonical text (``motorcade fmt``). Guarantee: ``parse_text(format_rules(f)) == f``.

Layout: one rule per block, blank line between rules, two-space indent, the top-level ``and``/``or``
chain of a segment one operand per line. Comments are kept: those before a rule stay before it,
those inside a rule are moved to just after its first line.
"""

from __future__ import annotations

import datetime as dt
import json

from motorcade.dsl import ast

_SINGULAR = {"minutes": "minute", "hours": "hour", "days": "day", "weeks": "week", "months": "month",
             "years": "year"}


def fmt_unit(amount: int, unit: str) -> str:
    return f"{amount} {_SINGULAR.get(unit, unit) if amount == 1 else unit}"


def fmt_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def fmt_datetime(value: dt.datetime) -> str:
    text = value.strftime("%Y-%m-%d %H:%M")
    if value.second or value.microsecond:
        text += f":{value.second:02d}"
        if value.microsecond:
            text += f".{value.microsecond:06d}"
    if value.tzinfo is not None:
        offset = value.utcoffset()
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        minutes = abs(minutes)
        text += f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return text


def fmt_literal_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return fmt_string(value)
    if isinstance(value, dt.datetime):
        return fmt_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"cannot format literal {value!r}")


def fmt_value(node) -> str:
    if isinstance(node, ast.Literal):
        return fmt_literal_value(node.value)
    if isinstance(node, ast.ListLit):
        return fmt_list(node.items)
    if isinstance(node, ast.Duration):
        return fmt_unit(node.amount, node.unit)
    if isinstance(node, ast.Ago):
        return fmt_unit(node.amount, node.unit) + " ago"
    raise TypeError(f"not a value: {type(node).__name__}")


def fmt_list(items) -> str:
    return "[" + ", ".join(fmt_value(i) for i in items) + "]"


def fmt_window(window) -> str:
    if isinstance(window, ast.LastN):
        return "in last " + fmt_unit(window.amount, window.unit)
    if isinstance(window, ast.BetweenTimes):
        return f"between {fmt_value(window.start)} and {fmt_value(window.end)}"
    if isinstance(window, ast.Before):
        return "before " + fmt_value(window.point)
    if isinstance(window, ast.After):
        return "after " + fmt_value(window.point)
    if isinstance(window, ast.Since):
        return "since " + fmt_value(window.point)
    raise TypeError(f"not a window: {type(window).__name__}")


def _with_window(text: str, window) -> str:
    return text if window is None else f"{text} {fmt_window(window)}"


def fmt_subject(subject) -> str:
    if isinstance(subject, ast.TagRef):
        return f"tag {subject.name}"
    if isinstance(subject, ast.ProfileRef):
        return f"profile.{subject.name}"
    if isinstance(subject, ast.FieldRef):
        return subject.name
    if isinstance(subject, ast.Aggregate):
        inner = subject.event if subject.prop is None else f"{subject.event}.{subject.prop}"
        if subject.where is not None:
            inner += " where " + fmt_cond(subject.where)
        return _with_window(f"{subject.func}({inner})", subject.window)
    raise TypeError(f"not a subject: {type(subject).__name__}")


# ``follow`` says what comes right after the condition in the enclosing text:
#   None   - the end of the condition (``}``, ``)``, a clause keyword)
#   "op"   - ``and`` / ``or`` (a ``has car where ...`` would swallow it: parenthesise)
#   "then" - ``then`` of a ``case when`` (a bare ``did E`` would read it as a sequence: parenthesise)


def fmt_cond(cond, follow: str | None = None) -> str:
    if isinstance(cond, ast.And):
        return _fmt_chain(cond, " and ", follow)
    if isinstance(cond, ast.Or):
        return _fmt_chain(cond, " or ", follow)
    if isinstance(cond, ast.Not):
        inner = cond.item
        text = fmt_cond(inner, follow)
        if isinstance(inner, (ast.And, ast.Or)):
            text = f"({fmt_cond(inner)})"
        return "not " + text
    if isinstance(cond, ast.HasCar):
        if cond.where is None:
            return "has car"
        if follow == "op":
            return f"(has car where {fmt_cond(cond.where)})"
        return "has car where " + fmt_cond(cond.where, follow)
    if isinstance(cond, ast.Did):
        text = _with_window(f"did {'not ' if cond.negated else ''}{cond.event}", cond.window)
        return f"({text})" if follow == "then" and cond.window is None else text
    if isinstance(cond, ast.DidAny):
        return _with_window(f"did any of [{', '.join(cond.events)}]", cond.window)
    if isinstance(cond, ast.Sequence):
        text = "did " + " then ".join(cond.steps)
        if cond.within is not None:
            text += " within " + fmt_value(cond.within)
        text = _with_window(text, cond.window)
        bare = cond.within is None and cond.window is None
        return f"({text})" if follow == "then" and bare else text
    if isinstance(cond, ast.InSegment):
        return f"in segment {cond.segment}"
    if isinstance(cond, ast.ConsentCond):
        return f"consented to {cond.channel}" if cond.state == "consented" else f"unsubscribed from {cond.channel}"
    if isinstance(cond, ast.Compare):
        return f"{fmt_subject(cond.subject)} {cond.op} {fmt_value(cond.value)}"
    if isinstance(cond, ast.InList):
        return f"{fmt_subject(cond.subject)} {'not in' if cond.negated else 'in'} {fmt_list(cond.items)}"
    if isinstance(cond, ast.Between):
        return f"{fmt_subject(cond.subject)} between {fmt_value(cond.low)} and {fmt_value(cond.high)}"
    if isinstance(cond, ast.IsNull):
        return f"{fmt_subject(cond.subject)} is {'not ' if cond.negated else ''}null"
    if isinstance(cond, ast.TextMatch):
        return f"{fmt_subject(cond.subject)} {cond.op} {fmt_string(cond.text)}"
    raise TypeError(f"not a condition: {type(cond).__name__}")


def _chain_parts(cond, follow):
    nested = (ast.And, ast.Or) if isinstance(cond, ast.And) else (ast.Or,)
    parts = []
    last = len(cond.items) - 1
    for index, item in enumerate(cond.items):
        if isinstance(item, nested):
            parts.append(f"({fmt_cond(item)})")
        else:
            parts.append(fmt_cond(item, follow if index == last else "op"))
    return parts


def _fmt_chain(cond, joiner, follow):
    return joiner.join(_chain_parts(cond, follow))


def _fmt_where(cond) -> str:
    """A rule's top-level condition, one operand per line for a top-level and/or chain."""
    if isinstance(cond, (ast.And, ast.Or)):
        word = "and" if isinstance(cond, ast.And) else "or"
        parts = _chain_parts(cond, None)
        return parts[0] + "".join(f"\n    {word} {p}" for p in parts[1:])
    return fmt_cond(cond)


def _fmt_time(value: dt.time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def _fmt_schedule(schedule) -> str:
    if isinstance(schedule, ast.Daily):
        return f"daily at {_fmt_time(schedule.at)}"
    if isinstance(schedule, ast.Every):
        return "every " + fmt_unit(schedule.amount, schedule.unit)
    if isinstance(schedule, ast.Cron):
        return "cron " + fmt_string(schedule.expr)
    if isinstance(schedule, ast.Once):
        return "at " + fmt_datetime(schedule.at)
    raise TypeError(type(schedule).__name__)


def _fmt_via(via: ast.Via) -> str:
    return "via " + " fallback ".join(f"{s.channel} template {fmt_string(s.template)}" for s in via.steps)


def _delivery_lines(rule) -> list[str]:
    lines = []
    if rule.via is not None:
        lines.append(_fmt_via(rule.via))
    if rule.transactional:
        lines.append("transactional")
    if rule.quiet_hours is not None:
        qh = rule.quiet_hours
        lines.append("quiet hours off" if qh.start is None else f"quiet hours {_fmt_time(qh.start)} to {_fmt_time(qh.end)}")
    return lines


def _header(kind: str, rule) -> str:
    text = f"{kind} {rule.name}"
    if rule.title is not None:
        text += " " + fmt_string(rule.title)
    return text


def _block(header: str, lines: list[str], inner_comments: list[str]) -> str:
    body = [f"  {c}" for c in inner_comments] + [f"  {line}" for line in lines]
    return header + " {\n" + "".join(b + "\n" for b in body) + "}"


def fmt_scope(scope: ast.ScopeDecl) -> str:
    return "scope group" if scope.group else "scope store " + ", ".join(fmt_string(s) for s in scope.stores)


def _own_scope(rule) -> list[str]:
    """A rule's own ``scope`` line (not one it took from the top of its file)."""
    scope = getattr(rule, "scope", None)
    return [fmt_scope(scope)] if scope is not None and not rule.scope_from_file else []


def format_rule(rule, inner_comments: list[str] = ()) -> str:
    """Canonical text of one rule (no trailing newline)."""
    inner_comments = list(inner_comments)
    if isinstance(rule, ast.Segment):
        return _block(_header("segment", rule), _own_scope(rule) + ["where " + _fmt_where(rule.where)],
                      inner_comments)
    if isinstance(rule, ast.Campaign):
        lines = []
        if rule.audience is not None:
            lines.append(f"audience {rule.audience}")
        if rule.schedule is not None:
            lines.append("schedule " + _fmt_schedule(rule.schedule))
        if rule.send_to is not None:
            lines.append("send to all members" if rule.send_to == "all" else "send to new members only")
        if rule.holdout is not None:
            lines.append(f"holdout {fmt_literal_value(rule.holdout)}%")
        return _block(_header("campaign", rule), _own_scope(rule) + lines + _delivery_lines(rule), inner_comments)
    if isinstance(rule, ast.Trigger):
        lines = []
        if isinstance(rule.on, ast.OnEvent):
            text = f"on {rule.on.event}"
            if rule.on.where is not None:
                text += " where " + fmt_cond(rule.on.where)
            lines.append(text)
        elif isinstance(rule.on, ast.OnSegment):
            lines.append(f"on {rule.on.change} segment {rule.on.segment}")
        if rule.condition is not None:
            lines.append("if " + fmt_cond(rule.condition))
        if rule.wait is not None:
            lines.append("wait " + fmt_value(rule.wait))
        if rule.reentry is not None:
            r = rule.reentry
            lines.append("reenter " + (f"once per {fmt_value(r.every)}" if r.kind == "once per" else r.kind))
        return _block(_header("trigger", rule), _own_scope(rule) + lines + _delivery_lines(rule), inner_comments)
    if isinstance(rule, ast.TagRule):
        out = _header("tag", rule) + " = case\n"
        out += "".join(f"  {c}\n" for c in inner_comments)
        for case in rule.cases:
            out += f"  when {fmt_cond(case.when, 'then')} then {fmt_value(case.then)}\n"
        if rule.default is not None:
            out += f"  else {fmt_value(rule.default)}\n"
        return out + "end"
    if isinstance(rule, ast.Funnel):
        lines = ["steps " + ", ".join(rule.steps)]
        if rule.within is not None:
            lines.append("within " + fmt_value(rule.within))
        if rule.by is not None:
            lines.append(f"by {rule.by}")
        return _block(_header("funnel", rule), lines, inner_comments)
    raise TypeError(f"not a rule: {type(rule).__name__}")


def _comment_lines(comments: list[tuple[int, str]], next_line: int | None) -> str:
    """Comment lines, keeping one blank line wherever the source had at least one."""
    out = ""
    for index, (line, text) in enumerate(comments):
        out += text + "\n"
        following = comments[index + 1][0] if index + 1 < len(comments) else next_line
        if following is not None and following - line > 1:
            out += "\n"
    return out


def format_rules(rule_file: ast.RuleFile) -> str:
    """Canonical text of a whole file, keeping its comments (see module docstring)."""
    comments = list(rule_file.comments)
    blocks = []
    file_scope = None  # the top-level `scope` line written last
    for rule in rule_file.rules:
        start = rule.line or 0
        end = rule.end_line or start
        if getattr(rule, "scope_from_file", False) and rule.scope != file_scope:
            file_scope = rule.scope
            scope_line = rule.scope.line or start
            before = [(line, text) for line, text in comments if line < scope_line]
            comments = [(line, text) for line, text in comments if line >= scope_line]
            blocks.append(_comment_lines(before, scope_line) + fmt_scope(rule.scope))
        leading = [(line, text) for line, text in comments if line < start]
        inner = [text for line, text in comments if start <= line <= end]
        comments = [(line, text) for line, text in comments if line > end]
        blocks.append(_comment_lines(leading, start) + format_rule(rule, inner))
    if comments:
        blocks.append(_comment_lines(comments, None).rstrip("\n"))
    return "\n\n".join(blocks) + "\n" if blocks else ""
