"""Rule tests: ``*.test.mc`` files next to the rules, run by ``motorcade test``.

A test file gives people, events and cars as small ``|``-separated tables and states expectations::

    as of 2026-06-01 10:00            # the evaluation instant (required; naive = project time zone)
    timezone "Asia/Shanghai"          # optional

    people:
      id | profile.is_owner | tag intent_level | stores    | consent sms
      1  | true             | "high"           | ["SH001"] | true
      2  | false            |                  |           |

    events:
      id | person | event         | at               | amount
      1  | 1      | service_visit | 2025-01-10 09:00 |
      2  | 1      | order         | 2026-05-30 12:00 | 250000

    cars:
      person | vin   | brand | model | purchase_date | store
      1      | "V1"  | "BMW" | "X5"  | 2019-05-01    | "SH001"

    expect segment lapsed_owners members [1]
    expect segment lapsed_owners non-members [2]
    expect segment lapsed_owners exactly [1]
    expect tag owner_tier of 1 = "gold"
    expect tag owner_tier of 2 is null
    expect trigger order_thanks fires on event 2
    expect trigger order_thanks does not fire on event 1
    expect trigger welcome fires on enter segment owners for 1
    expect journey recall puts 1 at settle entering 2026-05-20 10:00
    expect journey recall puts 2 at converted
    expect journey recall takes 1 through [invite, reply, call, settle]
    expect recommendation service_package of 1 = ["major_service", "minor_service"]

An empty cell is a missing value. Cells are literals as in rules (strings in double quotes, numbers,
true/false, dates, date-times, [lists]); the ``event`` column may hold a bare event name. People
columns: ``id``, ``profile.NAME``, ``tag NAME``, ``tag NAME@STORE`` (a tag kept per store: the value at
that store, which a rule scoped to that store reads), ``stores``, ``advisors``, ``consent CHANNEL``
(``consent *`` = every channel). ``scenario "title"`` starts a new, empty data set in the same file.

A journey expectation simulates the person through the journey up to ``as of`` (the engine's stepper,
woken at the entry, at every due time and at every event a ``wait for`` waits for): ``puts ID at STEP``
names the step the person stands at, or ``completed``, ``exited``, ``converted``, ``holdout`` or
``not entered``; ``takes ID through [steps]`` lists the steps taken, in order. The person enters at
``entering TIME`` when given; otherwise at their first event that matches ``entry on EVENT [where ...]``,
or, for a segment entry, at ``as of`` minus nothing -- give ``entering`` for those (the person must be in
the segment then).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any, Iterable

import attrs

from motorcade.dsl import ast
from motorcade.dsl.data import CarData, Dataset, EventData, PersonData, ValueTypes
from motorcade.dsl.errors import ERROR, Diagnostic, DslError, did_you_mean, make
from motorcade.dsl.evaluate import (
    DEFAULT_TIMEZONE, EvaluationError, Evaluator, Scope, _in_rule_scope, get_zone, person_items, tag_value,
    trigger_fires,
)
from motorcade.dsl.format import fmt_cond
from motorcade.dsl.parser import comment_start, parse_cell, parse_datetime
from motorcade.dsl.rules import TEST_SUFFIX, RuleSet, load_rules

# ---- results ----------------------------------------------------------------------------------


@attrs.define
class TestResult:
    """One ``expect`` line."""

    __test__ = False  # not a pytest class

    name: str  # "file:line expect ..."
    passed: bool
    message: str = ""  # why it failed


@attrs.define
class CoverageEntry:
    """One condition of a tested rule and which outcomes the tests produced."""

    location: str  # file:line:column
    text: str
    seen_true: bool
    seen_false: bool
    seen_null: bool = False  # unknown (a null compared): neither true nor false


@attrs.define
class TestReport:
    """Results of a run; ``summary()`` is exactly ``N passed, N failed``."""

    __test__ = False
    results: list[TestResult] = attrs.field(factory=list)
    coverage: list[CoverageEntry] = attrs.field(factory=list)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.passed)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"

    def render(self, show_coverage: bool = True) -> str:
        lines = []
        for result in self.results:
            lines.append(f"{'PASS' if result.passed else 'FAIL'} {result.name}")
            if not result.passed:
                lines.append(f"     {result.message}")
        if show_coverage and self.coverage:
            both = sum(1 for c in self.coverage if c.seen_true and c.seen_false)
            lines.append("")
            lines.append(f"coverage: {both} of {len(self.coverage)} conditions seen both true and false")
            for entry in self.coverage:
                t = "true" if entry.seen_true else "    "
                f = "false" if entry.seen_false else "     "
                n = " null" if entry.seen_null else ""
                lines.append(f"  [{t} {f}{n}] {entry.location}  {entry.text}")
        lines.append(self.summary())
        return "\n".join(lines)


# ---- parsing test files -----------------------------------------------------------------------


@attrs.define
class Expectation:
    line: int
    text: str
    kind: str  # "segment" | "tag" | "trigger"
    name: str
    args: dict


@attrs.define
class Scenario:
    title: str | None
    dataset: Dataset = attrs.field(factory=Dataset)
    events_by_id: dict[int, tuple[int, EventData]] = attrs.field(factory=dict)
    expectations: list[Expectation] = attrs.field(factory=list)


@attrs.define
class TestFile:
    __test__ = False
    path: str
    as_of: dt.datetime | None
    timezone: str
    scenarios: list[Scenario]


_EXPECT_SEGMENT = re.compile(r"expect\s+segment\s+(\w+)\s+(members|non-members|exactly)\s+(.+)$")
_EXPECT_TAG = re.compile(r"expect\s+tag\s+(\w+)\s+of\s+(\d+)\s*(?:=\s*(.+)|is\s+null)$")
_EXPECT_RECOMMENDATION = re.compile(r"expect\s+recommendation\s+(\w+)\s+of\s+(\d+)\s*=\s*(.+)$")
_EXPECT_TRIGGER_EVENT = re.compile(r"expect\s+trigger\s+(\w+)\s+(fires|does not fire)\s+on\s+event\s+(\d+)$")
_EXPECT_TRIGGER_SEGMENT = re.compile(
    r"expect\s+trigger\s+(\w+)\s+(fires|does not fire)\s+on\s+(enter|leave)\s+segment\s+(\w+)\s+for\s+(\d+)$")
_EXPECT_JOURNEY = re.compile(
    r"expect\s+journey\s+(\w+)\s+(?:puts\s+(\d+)\s+at\s+(not entered|[\w@.]+)|takes\s+(\d+)\s+through\s+\[([^\]]*)\])"
    r"(?:\s+entering\s+(.+))?$")
_SECTIONS = ("people", "events", "cars")


def _strip_comment(line: str) -> str:
    start = comment_start(line)
    return line if start is None else line[:start]


def _split_cells(line: str, outer: bool) -> list[tuple[int, str]]:
    """``(column, text)`` of each ``|``-separated cell (``|`` inside strings or lists is kept). With
    ``outer``, the row is written ``| a | b |`` and the first and last ``|`` are dropped."""
    cells, start, in_string, escaped, depth = [], 0, False, False, 0
    for index, char in enumerate(line + "|"):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "|" and depth == 0:
            raw = line[start:index]
            cells.append((start + len(raw) - len(raw.lstrip()) + 1, raw.strip()))
            start = index + 1
    if outer:
        cells = cells[1:-1] if len(cells) >= 2 else cells
    return cells


_DIRECTIVE = re.compile(r"(as of |timezone |scenario|expect |(people|events|cars):)")


class _TestFileParser:
    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text
        self.diagnostics: list[Diagnostic] = []
        self.pending_events: list = []  # placed once the file's time zone is known

    def error(self, message, line, column=1, hint=None):
        self.diagnostics.append(make(ERROR, message, file=self.path, source=self.text, line=line,
                                     column=column, hint=hint))

    def cell(self, text: str, line: int, column: int):
        node = parse_cell(text, self.path, line, column)
        if isinstance(node, ast.ListLit):
            return [item.value for item in node.items]
        return node.value

    def parse(self) -> TestFile:
        as_of, timezone = None, DEFAULT_TIMEZONE
        scenarios = [Scenario(None)]
        lines = self.text.splitlines()
        index = 0
        while index < len(lines):
            number = index + 1
            stripped = _strip_comment(lines[index]).strip()
            index += 1
            if not stripped:
                continue
            try:
                if stripped.startswith("as of "):
                    value = stripped[len("as of "):].strip()
                    as_of = parse_datetime(value) if re.search(r"\d[ T]\d", value) else None
                    if as_of is None:
                        self.error("`as of` needs a date-time", number, hint="e.g. `as of 2026-06-01 10:00`")
                elif stripped.startswith("timezone "):
                    timezone = self.cell(stripped[len("timezone "):].strip(), number, 10)
                elif stripped.startswith("scenario"):
                    title = stripped[len("scenario"):].strip()
                    scenarios.append(Scenario(self.cell(title, number, 10) if title else None))
                elif stripped.rstrip(":") in _SECTIONS and stripped.endswith(":"):
                    index = self.table(stripped[:-1], lines, index, scenarios[-1])
                elif stripped.startswith("expect "):
                    scenarios[-1].expectations.append(self.expectation(stripped, number))
                else:
                    self.error(f"cannot read this line: `{stripped}`", number,
                               hint="lines start with `as of`, `timezone`, `scenario`, `people:`, `events:`, "
                                    "`cars:` or `expect`")
            except DslError as exc:
                self.diagnostics.extend(exc.diagnostics)
            except ValueError as exc:
                self.error(str(exc), number)
        if as_of is None and not any(d.message.startswith("`as of`") for d in self.diagnostics):
            self.error("a rule test file needs an `as of` line", 1, hint="e.g. `as of 2026-06-01 10:00`")
        if self.diagnostics:
            raise DslError(self.diagnostics)
        return TestFile(self.path, as_of, timezone, [s for s in scenarios if s.expectations or s.dataset.people])

    def table(self, section, lines, index, scenario: Scenario) -> int:
        """Read a table: a header line, then rows up to a blank line or the next directive."""
        header, outer, row_number = None, False, 0
        while index < len(lines):
            number = index + 1
            raw = _strip_comment(lines[index]).rstrip()
            if not raw.strip():
                if header is None:
                    index += 1
                    continue
                break
            if _DIRECTIVE.match(raw.strip()):
                break
            index += 1
            if header is None:
                outer = raw.strip().startswith("|")
                header = _split_cells(raw, outer)
                continue
            cells = _split_cells(raw, outer)
            row_number += 1
            if len(cells) != len(header):
                self.error(f"this row has {len(cells)} cells, the header has {len(header)}", number,
                           hint="separate cells with `|`; leave a cell empty for a missing value")
                continue
            row = {}
            for (_, column_name), (column, text) in zip(header, cells):
                if text == "":
                    continue
                if section == "events" and column_name == "event" and re.fullmatch(r"[^\W\d]\w*", text):
                    row[column_name] = text
                else:
                    row[column_name] = (self.cell(text, number, column), column)
            getattr(self, "row_" + section)(row, number, row_number, scenario)
        if header is None:
            self.error(f"the `{section}:` table has no header line", index)
        return index

    @staticmethod
    def _value(row, key, default=None):
        item = row.get(key)
        if item is None:
            return default
        return item[0] if isinstance(item, tuple) else item

    def _person(self, scenario, pid, number) -> PersonData | None:
        person = scenario.dataset.people.get(pid)
        if person is None:
            self.error(f"person {pid} is not in the `people:` table (give people before events and cars)", number)
        return person

    def row_people(self, row, number, _row_number, scenario):
        pid = self._value(row, "id")
        if not isinstance(pid, int):
            self.error("every person needs a whole-number `id`", number)
            return
        person = PersonData(pid)
        for key, item in row.items():
            value = item[0]
            if key == "id":
                continue
            if key.startswith("profile."):
                person.attributes[key[len("profile."):]] = value
            elif key.startswith("tag ") and "@" in key:  # `tag NAME@STORE`: the value at that store
                name, _, store = (part.strip() for part in key[4:].partition("@"))
                if not name or not store:
                    self.error(f"people column `{key}`: write `tag NAME@STORE`", number)
                    continue
                if value is not None:
                    person.store_tags.setdefault(store, {})[name] = value
                scenario.dataset.store_tags = scenario.dataset.store_tags | {name}
            elif key.startswith("tag "):
                person.tags[key[4:].strip()] = value
            elif key in ("stores", "advisors"):
                ids = set(value) if isinstance(value, list) else {value}
                setattr(person, "store_ids" if key == "stores" else "advisor_ids", ids)
            elif key.startswith("consent "):
                if value is not None and not isinstance(value, bool):  # `1`, "yes": which was meant is unclear
                    shown = json.dumps(value, ensure_ascii=False, default=str)
                    self.error(f"people column `{key}`: a consent is `true` or `false`, not `{shown}`",
                               number, item[1], hint="write true (consented), false (opted out) or leave the cell "
                                                     "empty (no consent given)")
                    continue
                person.consents[key[len("consent "):].strip()] = value
            else:
                self.error(f"unknown people column `{key}`", number,
                           hint="use id, profile.NAME, tag NAME, tag NAME@STORE, stores, advisors, consent CHANNEL")
        scenario.dataset.people[pid] = person

    def row_events(self, row, number, row_number, scenario):
        pid = self._value(row, "person")
        name = self._value(row, "event")
        at = self._value(row, "at")
        if pid is None or name is None or at is None:
            self.error("every event needs `person`, `event` and `at`", number)
            return
        if isinstance(at, dt.date) and not isinstance(at, dt.datetime):
            at = dt.datetime(at.year, at.month, at.day)
        if not isinstance(at, dt.datetime):
            self.error("`at` must be a date-time", number)
            return
        self.pending_events.append((scenario, pid, name, at, row, number, row_number))

    def row_cars(self, row, number, _row_number, scenario):
        person = self._person(scenario, self._value(row, "person"), number)
        if person is None:
            return
        known = {"person", "vin", "brand", "model", "model_year", "purchase_date", "store", "owned_from", "owned_to"}
        for key in row:
            if key not in known:
                self.error(f"unknown cars column `{key}`", number, hint=", ".join(sorted(known)))
        person.cars.append(CarData(
            vin=str(self._value(row, "vin", f"car{len(person.cars) + 1}")), brand=self._value(row, "brand"),
            model=self._value(row, "model"), model_year=self._value(row, "model_year"),
            purchase_date=self._value(row, "purchase_date"), store_id=self._value(row, "store"),
            owned_from=self._value(row, "owned_from"), owned_to=self._value(row, "owned_to")))

    def expectation(self, text, number) -> Expectation:
        if m := _EXPECT_SEGMENT.match(text):
            ids = self.cell(m.group(3), number, text.index(m.group(3)) + 1)
            ids = ids if isinstance(ids, list) else [ids]
            return Expectation(number, text, "segment", m.group(1), {"mode": m.group(2), "ids": ids})
        if m := _EXPECT_TAG.match(text):
            value = None if m.group(3) is None else self.cell(m.group(3), number, text.index(m.group(3)) + 1)
            return Expectation(number, text, "tag", m.group(1), {"person": int(m.group(2)), "value": value})
        if m := _EXPECT_RECOMMENDATION.match(text):
            items = self.cell(m.group(3), number, text.index(m.group(3)) + 1)
            return Expectation(number, text, "recommendation", m.group(1),
                               {"person": int(m.group(2)), "items": items if isinstance(items, list) else [items]})
        if m := _EXPECT_TRIGGER_EVENT.match(text):
            return Expectation(number, text, "trigger", m.group(1),
                               {"fires": m.group(2) == "fires", "event": int(m.group(3))})
        if m := _EXPECT_TRIGGER_SEGMENT.match(text):
            return Expectation(number, text, "trigger", m.group(1),
                               {"fires": m.group(2) == "fires", "change": (m.group(3), m.group(4)),
                                "person": int(m.group(5))})
        if m := _EXPECT_JOURNEY.match(text):
            entering = None
            if m.group(6):
                value = m.group(6).strip()
                entering = parse_datetime(value) if re.search(r"\d[ T]\d", value) else None
                if entering is None:
                    self.error("`entering` needs a date-time", number, text.index(value) + 1,
                               "e.g. `entering 2026-05-20 10:00`")
            if m.group(2):
                return Expectation(number, text, "journey", m.group(1),
                                   {"person": int(m.group(2)), "at": m.group(3), "entering": entering})
            steps = [part.strip() for part in m.group(5).split(",") if part.strip()]
            return Expectation(number, text, "journey", m.group(1),
                               {"person": int(m.group(4)), "through": steps, "entering": entering})
        raise DslError([make(ERROR, f"cannot read this expectation: `{text}`", file=self.path, source=self.text,
                             line=number, column=1,
                             hint="expect segment S members|non-members|exactly [ids] / expect tag T of ID = "
                                  "value / expect trigger T fires|does not fire on event ID / expect journey J "
                                  "puts ID at STEP|takes ID through [steps] [entering TIME] / "
                                  "expect recommendation R of ID = [items]")])


def parse_test_file(path: str, text: str) -> TestFile:
    parser = _TestFileParser(path, text)
    test_file = parser.parse()
    tz = get_zone(test_file.timezone)
    if test_file.as_of is not None and test_file.as_of.tzinfo is None:
        test_file.as_of = test_file.as_of.replace(tzinfo=tz)
    for scenario, pid, name, at, row, number, row_number in parser.pending_events:
        person = scenario.dataset.people.get(pid)
        if person is None:
            parser.error(f"person {pid} is not in the `people:` table", number)
            continue
        event_id = parser._value(row, "id", row_number)
        props = {k: v[0] for k, v in row.items() if k not in ("id", "person", "event", "at")}
        event = EventData(name, at if at.tzinfo else at.replace(tzinfo=tz), props, event_id)
        person.events.append(event)
        scenario.events_by_id[event_id] = (pid, event)
    if parser.diagnostics:
        raise DslError(parser.diagnostics)
    return test_file


# ---- running ----------------------------------------------------------------------------------


class _Coverage:
    def __init__(self):
        self.outcomes: dict[int, set] = {}
        self.nodes: dict[int, Any] = {}
        self.rules: list = []

    def record(self, node, result):
        self.nodes[id(node)] = node
        self.outcomes.setdefault(id(node), set()).add(result)

    def add_rule(self, rule):
        if all(r is not rule for r in self.rules):
            self.rules.append(rule)

    def entries(self, rule_sets: list[RuleSet]) -> list[CoverageEntry]:
        out = []
        for rule in self.rules:
            rule_file = next((f for rs in rule_sets if (f := rs.file_of(rule)) is not None), None)
            filename = rule_file.filename if rule_file else "<rules>"
            for node in _conditions_of(rule):
                seen = self.outcomes.get(id(node), set())
                out.append(CoverageEntry(f"{filename}:{node.line}:{node.column}", fmt_cond(node),
                                         True in seen, False in seen, None in seen))
        return out


def _conditions_of(rule):
    roots = []
    if isinstance(rule, ast.Segment):
        roots = [rule.where]
    elif isinstance(rule, ast.TagRule):
        roots = [c.when for c in rule.cases]
    elif isinstance(rule, ast.Trigger):
        roots = [c for c in (getattr(rule.on, "where", None), rule.condition) if c is not None]
    elif isinstance(rule, ast.Journey):
        from motorcade.dsl.journey import all_steps

        roots = [c for c in (getattr(rule.entry, "where", None), rule.exit_when) if c is not None]
        roots += [s.cond for s in all_steps(rule.steps) if isinstance(s, ast.IfStep)]
        roots += [s.where for s in all_steps(rule.steps) if isinstance(s, ast.WaitForStep) and s.where is not None]
    elif isinstance(rule, ast.Recommend):
        roots = [r.when for r in rule.rules]
    out = []

    def visit(node):
        out.append(node)
        for child in ast.children(node):
            if isinstance(child, (ast.And, ast.Or, ast.Not, ast.Compare, ast.InList, ast.Between, ast.IsNull,
                                  ast.TextMatch, ast.Did, ast.DidAny, ast.Sequence, ast.InSegment, ast.HasCar,
                                  ast.ConsentCond, ast.Recommended)):
                visit(child)
            elif isinstance(child, ast.Aggregate) and child.where is not None:
                visit(child.where)

    for root in roots:
        visit(root)
    return out


def _unknown(kind: str, name: str, known) -> str:
    """``unknown segment `vip_ownrs` (did you mean `vip_owners`?)``: the same hint `check` gives."""
    hint = did_you_mean(name, known)
    return f"unknown {kind} `{name}`" + (f" ({hint})" if hint else "")


def _run_expectation(exp: Expectation, scenario: Scenario, test_file: TestFile, rule_set: RuleSet,
                     coverage: _Coverage) -> str | None:
    """None when the expectation holds, else the reason it does not."""
    as_of, tz = test_file.as_of, test_file.timezone
    evaluator = Evaluator(rule_set, scenario.dataset, as_of, tz, on_result=coverage.record)
    if exp.kind == "segment":
        segment = rule_set.segments.get(exp.name)
        if segment is None:
            return _unknown("segment", exp.name, rule_set.segments)
        coverage.add_rule(segment)
        for name in _segments_used(rule_set, segment):
            coverage.add_rule(rule_set.segments[name])
        members = {pid for pid, p in scenario.dataset.people.items() if evaluator.segment_member(exp.name, p)}
        ids = set(exp.args["ids"])
        unknown = ids - set(scenario.dataset.people)
        if unknown:
            return f"people {sorted(unknown)} are not in the `people:` table"
        mode = exp.args["mode"]
        if mode == "members" and not ids <= members:
            return f"not members: {sorted(ids - members)} (members are {sorted(members)})"
        if mode == "non-members" and ids & members:
            return f"unexpected members: {sorted(ids & members)}"
        if mode == "exactly" and ids != members:
            return f"members are {sorted(members)}, expected {sorted(ids)}"
        return None
    if exp.kind == "tag":
        rule = rule_set.tags.get(exp.name)
        if rule is None:
            return _unknown("rule tag", exp.name, rule_set.tags)
        coverage.add_rule(rule)
        person = scenario.dataset.people.get(exp.args["person"])
        if person is None:
            return f"person {exp.args['person']} is not in the `people:` table"
        value = tag_value(evaluator, rule, person)
        if value != exp.args["value"] or type(value) is not type(exp.args["value"]):
            return f"tag value is {value!r}, expected {exp.args['value']!r}"
        return None
    if exp.kind == "journey":
        return _run_journey_expectation(exp, scenario, test_file, rule_set, coverage)
    if exp.kind == "recommendation":
        rule = rule_set.recommendations.get(exp.name)
        if rule is None:
            return _unknown("recommendation", exp.name, rule_set.recommendations)
        coverage.add_rule(rule)
        person = scenario.dataset.people.get(exp.args["person"])
        if person is None:
            return f"person {exp.args['person']} is not in the `people:` table"
        items = person_items(evaluator.recommendations(exp.name, person))
        if items != exp.args["items"]:
            return f"items are {items!r}, expected {exp.args['items']!r}"
        return None
    rule = rule_set.triggers.get(exp.name)
    if rule is None:
        return _unknown("trigger", exp.name, rule_set.triggers)
    coverage.add_rule(rule)
    if "event" in exp.args:
        found = scenario.events_by_id.get(exp.args["event"])
        if found is None:
            return f"event {exp.args['event']} is not in the `events:` table"
        pid, event = found
        decision = trigger_fires(rule_set, exp.name, scenario.dataset, pid, event=event, tz=tz,
                                 on_result=coverage.record)
    else:
        pid = exp.args["person"]
        decision = trigger_fires(rule_set, exp.name, scenario.dataset, pid,
                                 segment_change=exp.args["change"], as_of=as_of, tz=tz, on_result=coverage.record)
    person = scenario.dataset.people.get(pid)
    if decision.fires and person is not None and not _in_rule_scope(rule, person):
        # as the planner, which checks the person's stores before the trigger (`scope store`)
        decision = attrs.evolve(decision, fires=False, reason="the person is not in the trigger's stores")
    if decision.fires != exp.args["fires"]:
        return f"trigger {'fires' if decision.fires else 'does not fire'}: {decision.reason}"
    return None


class _ScenarioWorld:
    """What the journey stepper asks, answered from a rule test's tables at ``now``."""

    def __init__(self, rule_set, scenario: Scenario, tz, coverage: _Coverage):
        self.rule_set = rule_set
        self.scenario = scenario
        self.tz = tz
        self.coverage = coverage
        self.now: dt.datetime | None = None

    def _dataset(self) -> Dataset:
        people = {}
        for pid, person in self.scenario.dataset.people.items():
            people[pid] = attrs.evolve(person, events=[e for e in person.events if e.ts <= self.now])
        return Dataset(people, store_tags=self.scenario.dataset.store_tags)

    def condition(self, person_id, cond):
        dataset = self._dataset()
        evaluator = Evaluator(self.rule_set, dataset, self.now, self.tz, on_result=self.coverage.record)
        holds = evaluator.cond(cond, Scope(dataset.people[person_id])) is True
        return holds, {"condition": fmt_cond(cond), "result": holds}

    def first_event(self, person_id, event, where, after, until):
        person = self.scenario.dataset.people[person_id]
        for item in sorted(person.events, key=lambda e: e.ts):
            if item.name != event or not after < item.ts <= until:
                continue
            if where is not None:
                evaluator = Evaluator(self.rule_set, Dataset.of(PersonData(person_id)), self.now, self.tz,
                                      on_result=self.coverage.record)
                if evaluator.cond(where, Scope(PersonData(person_id), event=item)) is not True:
                    continue
            return item.ts
        return None


def simulate_journey(rule_set, journey, scenario: Scenario, person_id: int, entering: dt.datetime | None,
                     as_of: dt.datetime, tz, coverage: _Coverage | None = None):
    """Run one person through ``journey`` up to ``as_of``: ``(status, step, steps taken)`` where status is
    ``not entered`` when the person never enters."""
    from motorcade.dsl.journey import build_flow
    from motorcade.journeys.stepper import PersonState, advance
    from motorcade.activation.guardrails import in_holdout

    coverage = coverage or _Coverage()
    person = scenario.dataset.people[person_id]
    if not _in_rule_scope(journey, person):  # a store journey lets in only its stores' people
        return "not entered", None, []
    world = _ScenarioWorld(rule_set, scenario, tz, coverage)
    entry = journey.entry
    if entering is None and isinstance(entry, ast.EntryEvent):
        for item in sorted(person.events, key=lambda e: e.ts):
            if item.name == entry.event and item.ts <= as_of:
                world.now = item.ts
                if entry.where is None or Evaluator(rule_set, Dataset.of(PersonData(person_id)), item.ts, tz,
                                                    on_result=coverage.record).cond(
                        entry.where, Scope(PersonData(person_id), event=item)) is True:
                    entering = item.ts
                    break
    elif entering is None:
        raise EvaluationError(f"say when person {person_id} enters journey `{journey.name}`: add "
                              "`entering 2026-05-20 10:00` to the expectation")
    elif not isinstance(entry, ast.EntryEvent) and entry is not None:
        world.now = entering
        dataset = world._dataset()
        if not Evaluator(rule_set, dataset, entering, tz).segment_member(entry.segment, dataset.people[person_id]):
            return "not entered", None, []
    if entering is None or entering > as_of:
        return "not entered", None, []
    if in_holdout(person_id, f"journey:{journey.name}", journey.holdout):
        return "holdout", None, []
    flow = build_flow(journey)
    state = PersonState(person_id, 1, flow.start, "active", entering, entering)
    wake_names = {n.step.event for n in flow.nodes.values() if n.kind == "wait_for"}
    wakes = sorted({e.ts for e in person.events if e.name in wake_names and entering < e.ts <= as_of})
    taken_all = []
    now = entering
    while True:
        world.now = now
        taken, _ = advance(journey, flow, state, world)
        taken_all.extend(taken)
        if state.status != "active":
            break
        later = [t for t in wakes if t > now] + ([state.due_at] if state.due_at is not None else [])
        now = min(later, default=None)
        if now is None or now > as_of:
            break
    return state.status, state.step, taken_all


def _run_journey_expectation(exp: Expectation, scenario: Scenario, test_file: TestFile, rule_set: RuleSet,
                             coverage: _Coverage) -> str | None:
    journey = rule_set.journeys.get(exp.name)
    if journey is None:
        return _unknown("journey", exp.name, rule_set.journeys)
    coverage.add_rule(journey)
    pid = exp.args["person"]
    if pid not in scenario.dataset.people:
        return f"person {pid} is not in the `people:` table"
    entering = exp.args["entering"]
    tz = get_zone(test_file.timezone)
    if entering is not None and entering.tzinfo is None:
        entering = entering.replace(tzinfo=tz)
    status, step, taken = simulate_journey(rule_set, journey, scenario, pid, entering, test_file.as_of, tz,
                                           coverage)
    where = step if status == "active" else status
    if "at" in exp.args:
        if where != exp.args["at"]:
            at_step = f" at step `{step}`" if status in ("exited", "converted") else ""
            return f"person {pid} is at `{where}`{at_step}, expected `{exp.args['at']}`"
        return None
    steps = [t.step for t in taken]
    if steps != exp.args["through"]:
        return f"person {pid} took [{', '.join(steps)}], expected [{', '.join(exp.args['through'])}]"
    return None


def _segments_used(rule_set, segment, seen=None) -> list[str]:
    seen = set() if seen is None else seen
    for node in ast.walk(segment.where):
        if isinstance(node, ast.InSegment) and node.segment in rule_set.segments and node.segment not in seen:
            seen.add(node.segment)
            _segments_used(rule_set, rule_set.segments[node.segment], seen)
    return sorted(seen)


def find_test_files(paths: Iterable[str | Path]) -> list[Path]:
    found = []
    for given in paths:
        given = Path(given)
        if given.is_dir():
            found.extend(sorted(p for p in given.rglob("*" + TEST_SUFFIX) if p.is_file()))
        elif given.is_file():
            found.append(given)
        else:
            raise DslError([Diagnostic(ERROR, f"no such file or directory: {given}", str(given))])
    return found


def _type_values(dataset: Dataset, types: ValueTypes) -> None:
    dataset.store_tags = dataset.store_tags | types.store_tags  # the project's per-store tags are per store here too
    for person in dataset.people.values():
        person.attributes, person.tags = types.person(person.attributes, person.tags)
        for event in person.events:  # in place: the scenario's events by id are the same objects
            event.properties.update(types.event(event.properties))


def run_rule_tests(paths: Iterable[str | Path], rules: RuleSet | Iterable[str | Path] | None = None, *,
                   types: ValueTypes | None = None) -> TestReport:
    """Run every ``*.test.mc`` under ``paths``. Rules come from ``rules`` (a RuleSet or paths), or else
    from the ``.mc`` files in each test file's directory. Syntax errors raise :class:`DslError`.

    ``types``: the project's declared value types; the tests' values are then typed as stored values are
    (``"1996-05-04"`` in a date attribute is a date, ``1`` in a boolean tag is true), so a rule test gives
    the answer the same values loaded through a source give."""
    report = TestReport()
    coverage = _Coverage()
    fixed = rules if isinstance(rules, RuleSet) else (load_rules(rules) if rules is not None else None)
    by_dir: dict[Path, RuleSet] = {}
    rule_sets_used: list[RuleSet] = []
    for path in find_test_files(paths):
        test_file = parse_test_file(str(path), path.read_text(encoding="utf-8"))
        if types is not None:
            for scenario in test_file.scenarios:
                _type_values(scenario.dataset, types)
        rule_set = fixed or by_dir.get(path.parent)
        if rule_set is None:
            rule_set = by_dir[path.parent] = load_rules([path.parent])
        if all(r is not rule_set for r in rule_sets_used):
            rule_sets_used.append(rule_set)
        for scenario in test_file.scenarios:
            for exp in scenario.expectations:
                name = f"{path}:{exp.line} {exp.text}"
                if scenario.title:
                    name = f"{path}:{exp.line} [{scenario.title}] {exp.text}"
                try:
                    failure = _run_expectation(exp, scenario, test_file, rule_set, coverage)
                except EvaluationError as exc:
                    failure = str(exc)
                report.results.append(TestResult(name, failure is None, failure or ""))
    report.coverage = coverage.entries(rule_sets_used)
    return report
