"""`motorcade fmt` pinned to exact text: comment placement and blank lines, parentheses a `then` needs,
send-to wording, UTC offsets. Mutation testing showed the round-trip properties cannot see these: a
comment moved or dropped, or ``-00:00`` for ``+00:00``, still parses back to the same rules."""

from __future__ import annotations

import datetime as dt

import pytest

from motorcade.dsl import format_rules, parse_text
from motorcade.dsl.format import fmt_datetime, fmt_unit

SOURCE = """\
# file header

# about the first segment
# second line, no blank before
segment a { where did x }
segment b {
  # inside b
  where did y
  # also inside b, after the where
}

# between b and trigger


# two blanks above
trigger t { on order where amount > 3 and channel = "wx"  if did x }
campaign c { audience a schedule daily at 10:00 send to all members }
campaign d { audience a send to new members only }
# trailing one

# trailing two
tag tier = case
  when (did a then b) then "seq"
  when (did a then b within 3 days) then "within"
  when did a then b in last 7 days then "window"
  when (did x) then "did"
  else "none"
end
tag chain = case when did a and (did b) then "and" when did a or did b in last 0 days then "or" end
segment e { # on the first line
  where did z }
# one
# two

# three
segment f { where did y and profile.city = "上海" } # on the last line
segment g { where did x }

# the very end
"""

FORMATTED = """\
# file header

# about the first segment
# second line, no blank before
segment a {
  where did x
}

segment b {
  # inside b
  # also inside b, after the where
  where did y
}

# between b and trigger

# two blanks above
trigger t {
  on order where amount > 3 and channel = "wx"
  if did x
}

campaign c {
  audience a
  schedule daily at 10:00
  send to all members
}

campaign d {
  audience a
  send to new members only
}

# trailing one

# trailing two
tag tier = case
  when (did a then b) then "seq"
  when did a then b within 3 days then "within"
  when did a then b in last 7 days then "window"
  when (did x) then "did"
  else "none"
end

tag chain = case
  when did a and (did b) then "and"
  when did a or did b in last 0 days then "or"
end

segment e {
  # on the first line
  where did z
}

# one
# two

# three
segment f {
  # on the last line
  where did y
    and profile.city = "上海"
}

segment g {
  where did x
}

# the very end
"""


def test_format_places_comments_and_parentheses_exactly():
    assert format_rules(parse_text(SOURCE)) == FORMATTED
    assert format_rules(parse_text(FORMATTED)) == FORMATTED


@pytest.mark.parametrize("minutes, text", [(0, "+00:00"), (1, "+00:01"), (-1, "-00:01"), (480, "+08:00"),
                                           (-330, "-05:30"), (23 * 60 + 59, "+23:59"), (-(23 * 60 + 59), "-23:59")])
def test_utc_offsets_are_written_with_their_sign(minutes, text):
    value = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone(dt.timedelta(minutes=minutes)))
    assert fmt_datetime(value) == "2026-01-02 03:04" + text
    assert fmt_datetime(value.replace(second=5, microsecond=60)) == "2026-01-02 03:04:05.000060" + text


def test_units_are_singular_only_for_one():
    assert [fmt_unit(n, "days") for n in (0, 1, 2)] == ["0 days", "1 day", "2 days"]
    assert fmt_unit(1, "months") == "1 month" and fmt_unit(0, "years") == "0 years"


# already canonical: written back as they are, after the segments
JOURNEYS = """\
journey j {
  entry on order_paid where amount > 3
  goal service_visit where amount > 100 within 30 days
  send via sms template "a"
}

journey k {
  entry on order_paid
  goal service_visit where (did a then b) within 30 days
  send via sms template "a"
}
"""

NEWER = """\
# head
scope store "S1"  # the north stores
segment and_in_or { where did a or did b and did c }
segment one_item { where recommendation next includes "A" }
segment two_items { where recommendation next includes any of ["A", "B"] }
""" + JOURNEYS

NEWER_FORMATTED = """\
# head
scope store "S1"

# the north stores
segment and_in_or {
  where did a
    or did b and did c
}

segment one_item {
  where recommendation next includes "A"
}

segment two_items {
  where recommendation next includes any of ["A", "B"]
}

""" + JOURNEYS


def test_format_of_scope_lines_recommendations_and_journey_clauses_is_exact():
    """A comment after the file's `scope` line stays after it (mutants moved it above, or dropped it); `and`
    inside `or` needs no parentheses; one recommended item is written without `any of [...]`; a journey's event
    entry keeps its `where`, and a goal's condition is parenthesized only when it holds a sequence (mutants did
    each of these otherwise; all of them parse back to the same rules)."""
    assert format_rules(parse_text(NEWER)) == NEWER_FORMATTED
    assert format_rules(parse_text(NEWER_FORMATTED)) == NEWER_FORMATTED
