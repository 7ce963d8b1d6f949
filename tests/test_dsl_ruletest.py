"""Rule test files (*.test.mc), the runner's report and coverage, and the check/fmt/test commands."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from motorcade.dsl import DslError, load_rules, run_rule_tests
from motorcade.dsl.commands import check_command, fmt_command
from motorcade.dsl.commands import test_command as rule_test_command

FIXTURES = Path(__file__).parent / "fixtures" / "dsl"

RULES = """\
segment owners { where has car }
segment lapsed { where in segment owners and not did service_visit in last 365 days }
tag tier = case when count(order) >= 2 then "gold" else "basic" end
trigger thanks { on order where amount > 100 via sms template "t" }
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_fixture_rule_tests_pass_and_report_coverage():
    report = run_rule_tests([FIXTURES / "dealer"])
    assert report.summary() == f"{len(report.results)} passed, 0 failed"
    assert len(report.results) == 16
    lapsed = [c for c in report.coverage if c.text == "did service_visit in last 365 days"]
    assert lapsed and lapsed[0].seen_true and lapsed[0].seen_false
    assert report.render().splitlines()[-1] == report.summary()


def test_failures_are_counted_and_explained(tmp_path):
    write(tmp_path, "rules.mc", RULES)
    write(tmp_path, "rules.test.mc", """\
as of 2026-06-01 10:00

people:
  | id | profile.name |
  | 1  | "车主 | 甲"   |
  | 2  |              |

cars:
  person | vin
  1      | "V1"

events:
  id | person | event         | at               | amount
  10 | 1      | order         | 2026-05-01 10:00 | 150
  11 | 1      | order         | 2026-05-02 10:00 | 50
  12 | 2      | service_visit | 2025-06-01 10:00 |

expect segment lapsed exactly [1]
expect segment lapsed members [1, 2]
expect segment owners non-members [1]
expect tag tier of 1 = "gold"
expect tag tier of 2 = "gold"
expect trigger thanks fires on event 10
expect trigger thanks fires on event 11
expect trigger thanks does not fire on event 11
""")
    report = run_rule_tests([tmp_path])
    assert report.summary() == "4 passed, 4 failed"
    failed = {r.name.split(" ", 1)[1]: r.message for r in report.results if not r.passed}
    assert failed == {
        "expect segment lapsed members [1, 2]": "not members: [2] (members are [1])",
        "expect segment owners non-members [1]": "unexpected members: [1]",
        'expect tag tier of 2 = "gold"': "tag value is 'basic', expected 'gold'",
        "expect trigger thanks fires on event 11": "trigger does not fire: event does not match `where`",
    }
    amount = next(c for c in report.coverage if c.text == "amount > 100")
    assert amount.seen_true and amount.seen_false


def test_the_exactly_90_days_edge_in_a_rule_test(tmp_path):
    write(tmp_path, "r.mc", "segment recent { where did share in last 90 days }\n")
    write(tmp_path, "r.test.mc", """\
as of 2026-06-01 10:00:00
people:
  id
  1
  2
events:
  person | event | at
  1      | share | 2026-03-03 10:00
  2      | share | 2026-03-03 09:59:59
expect segment recent exactly [1]
""")
    assert run_rule_tests([tmp_path]).summary() == "1 passed, 0 failed"


def test_test_file_errors_have_positions(tmp_path):
    write(tmp_path, "r.mc", RULES)
    path = write(tmp_path, "bad.test.mc", "people:\n  id | tag x\n  1  | 'x'\nexpect segment owners sometimes [1]\n")
    with pytest.raises(DslError) as info:
        run_rule_tests([path])
    found = [(d.line, d.message) for d in info.value.diagnostics]
    assert (3, "`'x'` is not a value") in found
    assert (4, "cannot read this expectation: `expect segment owners sometimes [1]`") in found
    assert (1, "a rule test file needs an `as of` line") in found


@pytest.mark.parametrize("cell, shown", [("1", "1"), ('"yes"', '"yes"'), ("[true]", "[true]"), ("0.0", "0.0")])
def test_a_consent_cell_is_true_false_or_empty(tmp_path, cell, shown):
    """A consent of `1` or "yes" is refused where it is written: the evaluator asks `is True` of consents, so it
    would be read as no consent, silently (the line-299/605/611 mutants of dsl/evaluate.py in tests/MUTANTS.md)."""
    write(tmp_path, "r.mc", RULES)
    path = write(tmp_path, "c.test.mc", "as of 2026-06-01 10:00\npeople:\n  id | consent sms\n"
                                        f"  1  | {cell}\n  2  | false\n  3  |\nexpect segment owners exactly []\n")
    with pytest.raises(DslError) as info:
        run_rule_tests([path])
    (found,) = info.value.diagnostics
    assert (found.line, found.column) == (4, 8)
    assert found.message == f"people column `consent sms`: a consent is `true` or `false`, not `{shown}`"
    assert "leave the cell empty" in found.hint
    write(tmp_path, "c.test.mc", path.read_text(encoding="utf-8").replace(f"| {cell}", "| true"))
    assert run_rule_tests([path]).summary() == "1 passed, 0 failed"


def test_check_command_reports_errors_and_exits_1(tmp_path):
    write(tmp_path, "a.mc", "segment a { where in segment b }\nsegment b { where in segment a }\n")
    write(tmp_path, "b.mc", "segment c { where did x }\n")
    result = CliRunner().invoke(check_command, [str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "error: segments refer to each other in a cycle: a -> b -> a" in result.output
    assert "2 files, 3 rules: 1 error, 0 warnings" in result.output


def test_check_command_uses_the_catalogue_from_the_context(tmp_path):
    from motorcade.dsl import Catalogue

    class Project:
        def catalogue(self):
            return Catalogue.from_names(events={"test_drive"})

    write(tmp_path, "a.mc", "segment a { where did test_drvie }\n")
    assert CliRunner().invoke(check_command, [str(tmp_path)]).exit_code == 0
    result = CliRunner().invoke(check_command, [str(tmp_path)], obj=Project())
    assert result.exit_code == 1 and "did you mean `test_drive`?" in result.output


def test_check_command_syntax_error_and_usage_error(tmp_path):
    write(tmp_path, "a.mc", "segment a { where did }\n")
    result = CliRunner().invoke(check_command, [str(tmp_path)])
    assert result.exit_code == 1 and "a.mc:1:23: error: unexpected `}`" in result.output
    assert CliRunner().invoke(check_command, [str(tmp_path / "missing")]).exit_code == 2


def test_fmt_check_and_rewrite(tmp_path):
    path = write(tmp_path, "a.mc", "# keep me\nsegment a{where did x and   did y}  # and me\n")
    result = CliRunner().invoke(fmt_command, ["--check", str(tmp_path)])
    assert result.exit_code == 1 and "would reformat" in result.output
    result = CliRunner().invoke(fmt_command, [str(tmp_path)])
    assert result.exit_code == 0
    assert path.read_text(encoding="utf-8") == (
        "# keep me\nsegment a {\n  # and me\n  where did x\n    and did y\n}\n")
    assert CliRunner().invoke(fmt_command, ["--check", str(tmp_path)]).exit_code == 0


def test_fmt_leaves_the_fixtures_unchanged_after_one_pass(tmp_path):
    assert CliRunner().invoke(fmt_command, ["--check", str(FIXTURES / "dealer")]).exit_code == 0  # canonical
    shutil.copytree(FIXTURES / "issue", tmp_path / "issue")
    CliRunner().invoke(fmt_command, [str(tmp_path / "issue")])
    assert load_rules([tmp_path / "issue"]).segments == load_rules([FIXTURES / "issue"]).segments
    shutil.copytree(FIXTURES / "dealer", tmp_path / "dealer")
    CliRunner().invoke(fmt_command, [str(tmp_path / "dealer")])
    assert CliRunner().invoke(fmt_command, ["--check", str(tmp_path / "dealer")]).exit_code == 0
    # formatting did not change what the rules mean
    assert run_rule_tests([tmp_path / "dealer"]).summary() == "16 passed, 0 failed"


def test_test_command_prints_summary_and_exit_code(tmp_path):
    result = CliRunner().invoke(rule_test_command, [str(FIXTURES / "dealer")])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "16 passed, 0 failed"
    assert "coverage:" in result.output
    write(tmp_path, "r.mc", RULES)
    write(tmp_path, "r.test.mc", "as of 2026-06-01 10:00\npeople:\n  id\n  1\nexpect segment owners members [1]\n")
    result = CliRunner().invoke(rule_test_command, ["--no-coverage", str(tmp_path)])
    assert result.exit_code == 1 and result.output.strip().endswith("0 passed, 1 failed")
    assert "coverage:" not in result.output
