"""Parsing the issue's examples, golden error messages, several errors at once, semantic checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from motorcade.dsl import Catalogue, DslError, ast, check, load_rules, parse_text
from motorcade.dsl.rules import rule_set_from_text

FIXTURES = Path(__file__).parent / "fixtures" / "dsl"
CATALOGUE = Catalogue.from_names(
    events={"test_drive", "order", "share", "service_visit", "lead_submit", "reservation"},
    tags={"intent_level": "string", "purchase_power": "string", "score": "number"},
    attributes={"city", "is_owner"}, channels={"sms", "wecom"}, templates={"service_recall", "order_thanks"},
)


def errors_of(text: str) -> str:
    with pytest.raises(DslError) as info:
        parse_text(text, "rules/demo.mc")
    return str(info.value)


def test_issue_examples_parse_into_the_expected_ast():
    rule_file = parse_text((FIXTURES / "issue" / "issue_examples.mc").read_text(encoding="utf-8"), "issue.mc")
    kinds = [type(r).__name__ for r in rule_file.rules]
    assert kinds == ["Segment", "Segment", "Segment", "Campaign", "Trigger"]
    high = rule_file.rules[0]
    assert high.title == "高意向 & 高活跃"
    assert high.where.items[2] == ast.Compare(ast.Aggregate("count", "share", window=ast.LastN(90, "days")), ">=",
                                              ast.Literal(3))
    replacement = rule_file.rules[2]
    assert replacement.where == ast.And((
        ast.InSegment("owners"),
        ast.HasCar(ast.And((ast.Compare(ast.FieldRef("age"), ">=", ast.Duration(5, "years")),
                            ast.InList(ast.FieldRef("model"), (ast.Literal("X3"), ast.Literal("X5"))))))))
    campaign = rule_file.rules[3]
    assert campaign.schedule == ast.Daily(dt.time(10, 0)) and campaign.send_to == "new" and campaign.holdout == 10
    assert [s.channel for s in campaign.via.steps] == ["wecom", "sms"]
    trigger = rule_file.rules[4]
    assert trigger.on == ast.OnEvent("order", ast.Compare(ast.FieldRef("amount"), ">", ast.Literal(100000)))
    assert trigger.wait == ast.Duration(10, "minutes") and trigger.condition == ast.InSegment("vip_owners")


def test_every_fixture_file_parses_and_checks_clean_against_itself():
    rule_set = load_rules([FIXTURES / "dealer"])
    assert set(rule_set.segments) >= {"owners", "lapsed_owners", "early_engaged", "shanghai_prospects"}
    assert set(rule_set.campaigns) == {"lapsed_recall", "year_end_offer", "weekly_digest", "service_notice"}
    assert set(rule_set.triggers) == {"order_thanks", "welcome_owner", "test_drive_follow_up"}
    assert set(rule_set.tags) == {"owner_tier"} and set(rule_set.funnels) == {"purchase_funnel"}
    assert [d for d in check(rule_set) if d.severity == "error"] == []
    assert len(rule_set.revision) == 64


def test_revision_is_a_content_hash(tmp_path):
    (tmp_path / "a.mc").write_text("segment a { where did x }\n", encoding="utf-8")
    (tmp_path / "a.test.mc").write_text("not rules\n", encoding="utf-8")  # rule tests are not rules
    first = load_rules([tmp_path]).revision
    assert load_rules([tmp_path]).revision == first
    (tmp_path / "a.mc").write_text("segment a { where did y }\n", encoding="utf-8")
    assert load_rules([tmp_path]).revision != first


GOLDEN_SYNTAX = {
    'segment a { where tag x == "y" }': (
        "rules/demo.mc:1:26: error: unexpected `=`\n"
        '    segment a { where tag x == "y" }\n'
        "                             ^\n"
        "  hint: use `=` to compare, not `==`; expected `false`, `true`, a \"quoted string\", a date (2026-01-31), "
        "a date-time (2026-01-31 10:00), a number"
    ),
    "segment a {\n  where did x in last 90\n}": (
        "rules/demo.mc:3:1: error: unexpected `}`\n"
        "    }\n"
        "    ^\n"
        "  hint: a time window needs a unit, e.g. `in last 90 days`; expected `day`, `days`, `hour`, `hours`, "
        "`minute`, `minutes`, `month`, `months`, `week`, `weeks`, `year`, `years`"
    ),
    "segment a { where tag x = 'high' }": (
        "rules/demo.mc:1:27: error: unexpected character `'`\n"
        "    segment a { where tag x = 'high' }\n"
        "                              ^\n"
        '  hint: strings are written in double quotes, e.g. "high"; expected `false`, `true`, a "quoted string", '
        "a date (2026-01-31), a date-time (2026-01-31 10:00), a number"
    ),
    'segment a {\n  where tag x in ["a", "b]\n}': (
        "rules/demo.mc:2:24: error: unexpected character `\"`\n"
        '      where tag x in ["a", "b]\n'
        "                           ^\n"
        '  hint: this string has no closing `"` on the same line; expected `false`, `true`, a "quoted string", '
        "a date (2026-01-31), a date-time (2026-01-31 10:00), a number"
    ),
    "segment a { where did x": (
        "rules/demo.mc:1:24: error: segment `a` (line 1) is not closed\n"
        "    segment a { where did x\n"
        "                           ^\n"
        "  hint: add `}` to close segment `a` before the end of the file"
    ),
}


@pytest.mark.parametrize("text", list(GOLDEN_SYNTAX))
def test_golden_syntax_errors(text):
    assert errors_of(text) == GOLDEN_SYNTAX[text]


def test_several_syntax_errors_are_reported_at_once_with_positions_inside_the_source():
    text = (
        "segment a { tag x = 1 }\n"
        "segment ok { where did x }\n"
        "segment b { where did }\n"
        "campaign c { audience a audience b }\n"
    )
    with pytest.raises(DslError) as info:
        parse_text(text, "rules/demo.mc")
    diagnostics = info.value.diagnostics
    assert [(d.line, d.column) for d in diagnostics] == [(1, 13), (3, 23)]
    assert "a segment's condition starts with `where`" in diagnostics[0].hint
    assert "`did` is followed by an event name" in diagnostics[1].hint
    lines = text.split("\n")
    for d in diagnostics:
        assert d.source_line == lines[d.line - 1] and 1 <= d.column <= len(d.source_line) + 1


def test_errors_found_while_building_the_ast():
    message = errors_of('segment a { where profile.d = 2026-02-30 }\ncampaign c { audience a audience b }')
    assert "rules/demo.mc:1:31: error: `2026-02-30` is not a valid date" in message
    assert "rules/demo.mc:2:25: error: this campaign has a second `audience` clause" in message
    assert "a time window needs a date" in errors_of("segment a { where did x since 5 }")


def test_typo_in_event_name_gives_a_caret_error_with_a_suggestion():
    rule_set = rule_set_from_text('segment a "A" {\n  where did test_drvie in last 30 days\n}\n', "rules/demo.mc")
    [diagnostic] = check(rule_set, CATALOGUE)
    assert diagnostic.render() == (
        "rules/demo.mc:2:9: error: unknown event `test_drvie`\n"
        "      where did test_drvie in last 30 days\n"
        "            ^\n"
        "  hint: did you mean `test_drive`?"
    )


def test_check_reports_every_problem():
    rule_set = rule_set_from_text(
        "segment a { where tag intent_levl = \"high\" and profile.cty = 1 and city = 2 }\n"
        "segment b { where has car where modle = \"X5\" and tag score = \"x\" }\n"
        "segment c { where in segment nope and did order then share }\n"
        "trigger t { on order where count(x) > 1 via smss template \"order_thank\" }\n"
        "campaign k { audience a schedule cron \"0 10 * *\" holdout 100% }\n"
        "segment d { where sum(order) > 1 and count(order.amount) > 1 and first(order) > 3 "
        "and count(order) > 2026-01-01 and profile.x = 5 days }\n",
        "rules/demo.mc")
    messages = [(d.severity, d.line, d.message, d.hint) for d in check(rule_set, CATALOGUE)]
    text = "\n".join(str(m) for m in messages)
    expected = [
        ("error", 1, "unknown tag `intent_levl`", "did you mean `intent_level`?"),
        ("error", 1, "unknown profile attribute `cty`", "did you mean `city`?"),
        ("error", 1, "unknown name `city` in a person condition",
         "write `profile.city` for a profile attribute or `tag city` for a tag"),
        ("error", 2, "cars have no field `modle`", "did you mean `model`?"),
        ("error", 2, "a tag cannot be used inside a car condition",
         "a car condition only compares the car's own fields"),
        ("error", 3, "unknown segment `nope`", "define it with `segment NAME { ... }`"),
        ("warning", 3, "this sequence has no `within` and no time window: it is matched over every event the "
         "person ever had (unbounded cost)", "add `within 14 days` or a window such as `in last 90 days`"),
        ("error", 4, "`count(...)` cannot be used inside an event condition",
         "an event's `where` compares the event's own properties"),
        ("error", 4, "unknown channel `smss`", "did you mean `sms`?"),
        ("error", 4, "unknown template `order_thank`", "did you mean `order_thanks`?"),
        ("error", 5, "cron expression `0 10 * *` needs 5 fields, has 4",
         'minute hour day-of-month month day-of-week, e.g. "0 10 * * 1"'),
        ("error", 5, "holdout 100% is out of range", "use 0% to 99%"),
        ("error", 5, "campaign `k` has no `via` clause", 'add e.g. `via sms template "welcome"`'),
    ]
    for item in expected:
        assert item in messages, f"missing {item}\n{text}"
    assert any(m[2] == "`sum` needs a property: `sum(order.PROPERTY)`" for m in messages)
    assert any(m[2] == "`count` counts events and takes no property" for m in messages)
    assert any(m[2] == "`first(...)` is a time; compare it with a date or `N days ago`" for m in messages)
    assert any(m[2] == "`count(...)` is a number; compare it with a number" for m in messages)
    assert any(m[2] == "a duration can only be compared with a car's `age`" for m in messages)
    # the tag type mismatch inside `has car` is not reported twice, scope errors come first
    assert sum(1 for m in messages if m[0] == "error") >= len([e for e in expected if e[0] == "error"]) + 5


def test_segment_cycle_is_named_and_points_at_the_closing_reference():
    rule_set = rule_set_from_text(
        "segment a { where in segment b }\nsegment b { where did x and in segment c }\nsegment c { where in segment a }\n",
        "rules/demo.mc")
    [diagnostic] = check(rule_set)
    assert diagnostic.message == "segments refer to each other in a cycle: a -> b -> c -> a"
    assert (diagnostic.line, diagnostic.column) == (3, 19)


def test_rule_tag_cycle_is_named_and_a_calculator_tag_name_is_taken():
    rule_set = rule_set_from_text(
        'tag hot = case when tag warm = "yes" then "yes" else "no" end\n'
        'tag warm = case when tag hot = "yes" then "yes" else "no" end\n'
        'tag intent_level = case when (did x) then "high" else "low" end\n', "rules/tags.mc")
    found = [(d.severity, d.line, d.message) for d in check(rule_set, Catalogue(calculator_tags={"intent_level"}))]
    assert ("error", 3, "rule tag `intent_level` has the name of a tag an installed calculator produces") in found
    assert ("error", 2, "rule tags depend on each other in a cycle: hot -> warm -> hot") in found
    assert len(found) == 2


def test_duplicate_rule_names_are_errors_across_files(tmp_path):
    (tmp_path / "a.mc").write_text("segment a { where did x }\n", encoding="utf-8")
    (tmp_path / "b.mc").write_text("\nsegment a { where did y }\n", encoding="utf-8")
    with pytest.raises(DslError) as info:
        load_rules([tmp_path])
    [diagnostic] = info.value.diagnostics
    assert diagnostic.message == "segment `a` is defined twice" and diagnostic.line == 2
    assert "a.mc:1" in diagnostic.hint


def test_syntax_errors_of_several_files_are_all_reported(tmp_path):
    (tmp_path / "a.mc").write_text("segment a { where did }\n", encoding="utf-8")
    (tmp_path / "b.mc").write_text("segment b { where tag x = }\n", encoding="utf-8")
    with pytest.raises(DslError) as info:
        load_rules([tmp_path])
    assert [Path(d.file).name for d in info.value.diagnostics] == ["a.mc", "b.mc"]


def test_comments_unicode_names_and_case_insensitive_logic_words():
    rule_file = parse_text(
        "# 注释\nsegment 高意向 \"标题\" { # inside\n  where tag 意向 = \"高\" AND NOT did 试驾 Or did x\n}\n")
    rule = rule_file.rules[0]
    assert rule.name == "高意向"
    assert rule.where == ast.Or((ast.And((ast.Compare(ast.TagRef("意向"), "=", ast.Literal("高")),
                                          ast.Not(ast.Did("试驾")))), ast.Did("x")))
    assert rule_file.comments == ((1, "# 注释"), (2, "# inside"))


def test_catalogue_from_names_treats_empty_collections_as_unknown():
    rule_set = rule_set_from_text("segment a { where did anything and profile.whatever = 1 }")
    assert check(rule_set, Catalogue.from_names(events=set(), attributes=[])) == []
    assert len(check(rule_set, Catalogue(events=set(), profile_attributes=set()))) == 2


@pytest.mark.parametrize("text, line, hint", [
    ("segment a {\n  where has car\n\nsegment b {\n  where did order\n}\n", 4,
     "add `}` to close segment `a` before line 4"),
    ("segment a {\n  where has car\n", 3, "add `}` to close segment `a` before the end of the file"),
    ('segment a {\n  where profile.x = "}" # a } in a comment\nsegment b { where did order }\n', 3,
     "add `}` to close segment `a` before line 3"),
    ('campaign c {\n  audience a\n  via sms template "t"\ntrigger t { on order via sms template "t" }\n', 4,
     "add `}` to close campaign `c` before line 4"),
])
def test_a_missing_closing_brace_explains_itself(text, line, hint):
    message = errors_of(text)
    assert f"rules/demo.mc:{line}:1: error:" in message and "is not closed" in message
    assert hint in message
    assert "`reenter`" not in message  # no list of trigger keywords inside a segment


def test_campaign_clause_errors_point_at_the_clause_line():
    text = ('segment a { where has car }\n'
            'campaign c {\n'
            '  schedule daily at 10:00\n'
            '  audience nope\n'
            '  holdout 150%\n'
            '  via sms template "service_recall"\n'
            '}\n')
    found = {d.message: (d.line, d.column) for d in check(rule_set_from_text(text, "rules/demo.mc"), CATALOGUE)}
    assert found["unknown segment `nope`"] == (4, 3)
    assert found["holdout 150% is out of range"] == (5, 3)
