"""Rule tests can state where a person ends up in a journey, given events (``expect journey ...``)."""

from __future__ import annotations

import pytest

from motorcade.dsl.errors import DslError
from motorcade.dsl.ruletest import run_rule_tests

RULES = '''
segment lapsed { where not did service_visit in last 365 days }

journey recall "召回" {
  entry on entering segment lapsed
  exit when unsubscribed from sms
  goal service_visit within 30 days
  invite: send via wecom template "invite"
  reply: wait for wecom_reply up to 7 days then {
    thanks: send via wecom template "thanks"
  } else {
    if tag value = "high" then {
      call: send via advisor_task template "call"
    } else {
      sms: send via sms template "sms"
    }
  }
  settle: wait 3 days
  last: send via sms template "last"
}

journey drive_nurture {
  entry on test_drive where model = "X5"
  holdout 0%
  first: send via sms template "thanks"
  wait 2 days
  done: exit
}
'''

TESTS = '''
as of 2026-06-20 10:00

people:
  id | tag value | consent sms
  1  | "high"    |
  2  | "low"     |
  3  | "low"     |
  4  | "low"     | false
  5  | "low"     |

events:
  id | person | event         | at               | model
  1  | 1      | service_visit | 2024-01-10 09:00 |
  2  | 2      | wecom_reply   | 2026-06-03 12:00 |
  3  | 3      | service_visit | 2026-06-05 09:00 |
  4  | 5      | test_drive    | 2026-06-10 09:00 | "X5"
  5  | 5      | service_visit | 2026-05-19 09:00 |

expect journey recall puts 1 at completed entering 2026-06-01 10:00
expect journey recall takes 1 through [invite, reply, if@2.else.1, call, settle, last] entering 2026-06-01 10:00
expect journey recall takes 2 through [invite, reply, thanks, settle, last] entering 2026-06-01 10:00
expect journey recall puts 1 at settle entering 2026-06-12 10:00
expect journey recall puts 3 at converted entering 2026-06-01 10:00
expect journey recall puts 4 at exited entering 2026-06-01 10:00
expect journey recall puts 5 at not entered entering 2026-06-01 10:00
expect journey drive_nurture puts 5 at exited
expect journey drive_nurture takes 5 through [first, wait@2, done]
expect journey drive_nurture puts 1 at not entered
'''


def test_expect_journey_lines_pass_when_the_simulation_agrees(tmp_path):
    (tmp_path / "flows.mc").write_text(RULES, encoding="utf-8")
    (tmp_path / "flows.test.mc").write_text(TESTS, encoding="utf-8")
    report = run_rule_tests([tmp_path])
    assert report.ok, report.render()
    assert report.passed == 10
    # the journey's conditions take part in the coverage report
    texts = {entry.text for entry in report.coverage}
    assert 'tag value = "high"' in texts and "unsubscribed from sms" in texts


@pytest.mark.parametrize("line, message", [
    ("expect journey recall puts 2 at settle entering 2026-06-01 10:00",
     "person 2 is at `completed`, expected `settle`"),
    ("expect journey recall takes 3 through [invite] entering 2026-06-01 10:00",
     "person 3 took [invite, reply], expected [invite]"),
    ("expect journey recal puts 2 at settle entering 2026-06-01 10:00",
     "unknown journey `recal` (did you mean `recall`?)"),
    ("expect journey recall puts 2 at settle", "say when person 2 enters journey `recall`"),
])
def test_a_wrong_expectation_fails_with_what_happened(tmp_path, line, message):
    (tmp_path / "flows.mc").write_text(RULES, encoding="utf-8")
    (tmp_path / "flows.test.mc").write_text(TESTS.split("expect")[0] + line + "\n", encoding="utf-8")
    report = run_rule_tests([tmp_path])
    assert report.failed == 1
    assert message in report.results[0].message


def test_entering_needs_a_time(tmp_path):
    (tmp_path / "flows.mc").write_text(RULES, encoding="utf-8")
    (tmp_path / "flows.test.mc").write_text(TESTS.split("expect")[0]
                                            + "expect journey recall puts 2 at settle entering soon\n")
    with pytest.raises(DslError, match="`entering` needs a date-time"):
        run_rule_tests([tmp_path])
