"""Templates at run time: an error while rendering for one person dead-letters that send only, rendering
has limits (time, size, loop iterations and calls), `serve` never dies from a pass's failure, and `run`
refuses templates that `motorcade check` reports broken. Real project, rule files and template files."""

from __future__ import annotations

import datetime as dt
import threading
import time
import zoneinfo

import pytest

from motorcade.activation.runner import run_once, serve
from motorcade.activation.settings import ActivationContext
from motorcade.activation.testing import memory_channel_plugin
from motorcade.cli import main
from motorcade.project import Project

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SH)

RULES = """
segment owners { where profile.is_owner = true }
campaign bad { audience owners  schedule daily at 10:00  via memory template "bad"  transactional }
campaign good { audience owners  schedule daily at 10:00  via memory template "good"  transactional }
"""

HOSTILE = {
    "division by zero": ("{{ 1/0 }}", "ZeroDivisionError"),
    "text plus number": ("{{ person.name + 1 }}", "TypeError"),
    "recursive macro": ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "calls itself too deeply"),
    "range(1e8)": ("{% for i in range(1e8) %}x{% endfor %}", "TypeError"),
    "range(10**8)": ("{% for i in range(100000000) %}x{% endfor %}", "Range too big"),
    "'x'*1e9": ("{{ 'x' * 1e9 }}", "TypeError"),
    "'x'*10**9": ("{{ 'x' * 1000000000 }}", "limit: builds a text or list of 1000000000 items"),
    "nested loops": ("{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}",
                     "limit: more than 10000 loop iterations and calls"),
    "doubling text": ("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
                      "{% endfor %}{{ ns.s }}", "limit: builds a text or list of 131072 items"),
    "padding filter": ("{{ person.name | center(1000000000) }}", "limit: builds a text or list of 1000000000"),
    "padding method": ("{{ person.name.ljust(1000000000) }}", "limit: builds a text or list of 1000000000"),
    "format width": ("{{ '{:>1000000000}'.format(person.name) }}", "limit: builds a text or list of 1000000000"),
    "huge power": ("{{ 2 ** 1000000000 }}", "limit: 2 ** 1000000000 is too large a number"),
    "macro fan-out": ("{% macro f(n) %}{% if n < 40 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}{{ f(0) }}",
                      "limit: more than 10000 loop iterations and calls"),
    "huge output": ("{% for i in range(9000) %}{{ person.name }}{{ '0123456789' * 2 }}{% endfor %}",
                    "limit: builds a text or list of"),
}


@pytest.fixture
def build(tmp_path, motorcade_pm, register_plugin):
    def make(rules: str, templates: dict[str, str], *, people: int = 3, settings: str = ""):
        memory = memory_channel_plugin()
        register_plugin(memory, name="memory")
        directory = tmp_path / "p"
        (directory / "rules").mkdir(parents=True, exist_ok=True)
        (directory / "templates").mkdir(exist_ok=True)
        (directory / "motorcade.toml").write_text(f"""
[project]
name = "t"
timezone = "Asia/Shanghai"

[activation]
poll_seconds = 0.1
{settings}
""", encoding="utf-8")
        (directory / "rules" / "main.mc").write_text(rules, encoding="utf-8")
        for name, text in templates.items():
            (directory / "templates" / name).write_text(text, encoding="utf-8")
        project = Project(directory, plugin_manager=motorcade_pm)
        store = project.store
        with store.transaction():
            ids = [store.create_person({"name": f"客户{i}", "is_owner": True, "count": i}) for i in range(people)]
        store.record_segment_run("owners", ids, revision="t", as_of=NOW, computed_at=NOW, duration_ms=0, plan=None)
        return project, memory, ids

    return make


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_template_runtime_error_dead_letters_that_send_and_the_others_go_on(build, case):
    template, expected = HOSTILE[case]
    project, memory, ids = build(RULES, {"bad.txt": template, "good.txt": "您好 {{ person.name }}"})
    ctx = ActivationContext.for_project(project, clock=lambda: NOW, worker_id="w")
    started = time.monotonic()
    report = run_once(ctx)
    assert time.monotonic() - started < 20
    assert report.errors == []
    sends = project.store.list_sends(limit=100)
    bad = [s for s in sends if s["origin"] == "bad"]
    assert {s["status"] for s in bad} == {"dead"} and len(bad) == len(ids)
    assert all(s["reason"].startswith("template: ") and expected in s["reason"] for s in bad), bad[0]["reason"]
    assert sorted(m.body for m in memory.sent) == sorted(f"您好 客户{i}" for i in range(len(ids)))
    failed = project.store.events_of(ids[0], name="failed")
    assert failed and failed[0].properties["campaign"] == "bad"
    project.close()


def test_a_template_that_fails_for_one_person_only_stops_that_persons_send(build):
    project, memory, ids = build(RULES, {"bad.txt": "每人 {{ 100 // person.count }} 分", "good.txt": "hi"})
    run_once(ActivationContext.for_project(project, clock=lambda: NOW, worker_id="w"))
    by_person = {s["person_id"]: s for s in project.store.list_sends(limit=100) if s["origin"] == "bad"}
    assert by_person[ids[0]]["status"] == "dead" and "ZeroDivisionError" in by_person[ids[0]]["reason"]
    assert {by_person[i]["status"] for i in ids[1:]} == {"sent"}
    assert sorted(m.body for m in memory.sent if m.template == "bad") == ["每人 100 分", "每人 50 分"]
    project.close()


def test_render_limits_are_settings(build):
    template = "{% for i in range(50) %}{{ i }}{% endfor %}"
    project, memory, _ = build(RULES, {"bad.txt": template, "good.txt": "hi"}, people=1,
                               settings="render_max_loops = 20")
    run_once(ActivationContext.for_project(project, clock=lambda: NOW, worker_id="w"))
    (bad,) = [s for s in project.store.list_sends() if s["origin"] == "bad"]
    assert bad["status"] == "dead" and "more than 20 loop iterations" in bad["reason"]
    project.close()


def test_serve_never_dies_from_a_template_or_an_unexpected_error(build):
    project, memory, ids = build(RULES, {"bad.txt": "{{ person.name + 1 }}", "good.txt": "hi"})
    calls = []
    log: list[str] = []

    def make_context():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database went away")  # an unexpected error in one pass
        return ActivationContext.for_project(project, clock=lambda: NOW, worker_id="w")

    stop = threading.Event()
    timer = threading.Timer(30, stop.set)
    timer.start()
    try:
        passes = serve(make_context, stop=stop, max_passes=3, log=log.append)
    finally:
        timer.cancel()
    assert passes == 3
    assert any("unexpected RuntimeError in pass 1: database went away" in line for line in log)
    assert len(memory.sent) == len(ids)  # the good campaign went out
    assert {s["status"] for s in project.store.list_sends(limit=100) if s["origin"] == "bad"} == {"dead"}
    project.close()


TRIGGER_RULES = RULES + """
trigger thanks { on order  via memory template "thanks"  transactional }
"""


def test_run_refuses_templates_check_reports_broken_and_plans_them_once_fixed(build):
    from motorcade.model import Event

    project, memory, ids = build(TRIGGER_RULES, {"bad.txt": "您好 {{ persn.name }}", "good.txt": "hi",
                                                 "thanks.txt": "谢谢 {% if %}"})
    store = project.store
    with store.transaction():
        store.insert_events([Event("order", NOW - dt.timedelta(minutes=5), ids[0], {}, "dms", "o1")])
    clock = [NOW]
    ctx = ActivationContext.for_project(project, clock=lambda: clock[0], worker_id="w")
    report = run_once(ctx)
    assert any(e.startswith("campaign bad: campaign 'bad' is not planned: its templates are broken:")
               and "unknown name `persn`" in e for e in report.errors), report.errors
    assert any(e.startswith("trigger thanks:") and "syntax error" in e for e in report.errors), report.errors
    origins = {s["origin"] for s in store.list_sends(limit=100)}
    assert origins == {"good"}  # nothing planned with an empty or broken body
    # fixed: the slot is still due and the order still fires
    (project.directory / "templates" / "bad.txt").write_text("您好 {{ person.name }}", encoding="utf-8")
    (project.directory / "templates" / "thanks.txt").write_text("谢谢 {{ person.name }}", encoding="utf-8")
    clock[0] = NOW + dt.timedelta(minutes=1)
    report = run_once(ActivationContext.for_project(project, clock=lambda: clock[0], worker_id="w"))
    assert report.errors == []
    assert sorted(m.body for m in memory.sent if m.template in ("bad", "thanks")) == sorted(
        [f"您好 客户{i}" for i in range(3)] + ["谢谢 客户0"])
    project.close()


def test_a_template_mistake_only_jinjas_compiler_sees_is_a_check_error_and_the_campaign_is_not_planned(build):
    """`{% for loop in ... %}` parses, but Jinja refuses to compile it. `motorcade check` only parsed, so the
    campaign was planned and every send dead-lettered with the same error, spending the slot; now check reports
    it and run refuses the campaign until it is fixed, as for any syntax error."""
    from motorcade.activation.check import check_project

    project, memory, ids = build(RULES, {"bad.txt": "{% for loop in [1, 2] %}x{% endfor %}", "good.txt": "hi"})
    (problem,) = [p for p in check_project(project) if p.template == "bad"]
    assert problem.severity == "error" and "Can't assign to special loop variable" in str(problem)
    report = run_once(ActivationContext.for_project(project, clock=lambda: NOW, worker_id="w"))
    assert any(e.startswith("campaign bad: campaign 'bad' is not planned: its templates are broken:")
               and "special loop variable" in e for e in report.errors), report.errors
    assert {s["origin"] for s in project.store.list_sends(limit=100)} == {"good"}
    project.close()


def test_the_run_command_exits_1_when_a_campaign_is_refused(build, capsys):
    project, memory, ids = build(RULES, {"bad.txt": "您好 {{ person.nmae }}", "good.txt": "hi"})
    code = main(["--project", str(project.directory), "run"])  # real time: today's 10:00 slot is due
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "is not planned: its templates are broken" in err and "`person.nmae` does not exist" in err
    assert len(memory.sent) == len(ids)  # the good campaign went out
    project.close()


def test_the_render_time_limit_stops_a_slow_template(build):
    template = "{% for i in range(9000) %}{{ range(5000) | list | sort | sum }}{% endfor %}"
    project, memory, _ = build(RULES, {"bad.txt": template, "good.txt": "hi"}, people=1,
                               settings="render_seconds = 0.05\nrender_max_loops = 100000\nrender_max_chars = 10000000")
    started = time.monotonic()
    run_once(ActivationContext.for_project(project, clock=lambda: NOW, worker_id="w"))
    assert time.monotonic() - started < 10
    (bad,) = [s for s in project.store.list_sends() if s["origin"] == "bad"]
    assert bad["status"] == "dead" and "rendering took longer than 0.05 s (render_seconds)" in bad["reason"]
    project.close()


# ---- fuzz: any template, planned and delivered without the engine raising ---------------------------------
# Issue 14: "anything `check` accepts, the engine evaluates without raising". Templates are drawn from pieces
# that exercise what goes wrong at run time (arithmetic on text and numbers, division, huge repetitions and
# ranges, loops, macros that call themselves, filters, missing fields, the event's properties). For each:
# `run_once` never raises and reports no error; every send is sent, or dead with a `template:` reason; the
# good campaign beside it is delivered to everyone.

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ATOMS = st.sampled_from(["person.name", "person.count", "person.missing", "0", "1", "3", "-2", "2.5", "1e9",
                          "'x'", "'客户'", "none", "[1, 2]", "{'a': 1}", "100000000", "person"])
_OPS = st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "~"])


def _expression(depth: int = 2):
    if depth == 0:
        return _ATOMS
    inner = _expression(depth - 1)
    return st.one_of(
        _ATOMS,
        st.builds(lambda a, op, b: f"({a} {op} {b})", inner, _OPS, inner),
        st.builds(lambda a, f: f"({a} | {f})", inner, st.sampled_from(
            ["length", "upper", "int", "float", "string", "center(1000000000)", "default('-')", "join(',')",
             "round", "abs", "first", "list", "sum", "replace('客', 'x')", "truncate(3)"])),
        st.builds(lambda a: f"range({a})", inner),
    )


_PIECES = st.one_of(
    st.builds(lambda e: "{{ " + e + " }}", _expression()),
    st.builds(lambda e: "{% for i in " + e + " %}{{ i }}{% endfor %}", _expression()),
    st.builds(lambda e: "{% if " + e + " %}yes{% else %}no{% endif %}", _expression()),
    st.builds(lambda n: "{% macro f(n) %}{% if n < " + n + " %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}"
                        "{% endmacro %}{{ f(0) }}", st.sampled_from(["3", "12", "60"])),
    st.sampled_from(["您好", "\n", "{{ person.name }}", "{% set ns = namespace(s='ab') %}{{ ns.s * 3 }}"]),
)


def _fresh_project(directory, template: str):
    """A project of its own per example (a function-scoped fixture would be shared by every example)."""
    from motorcade.plugins import load_plugins

    memory = memory_channel_plugin()
    pm = load_plugins(entry_points=False)
    pm.register(memory, name="memory")
    (directory / "rules").mkdir(parents=True)
    (directory / "templates").mkdir()
    (directory / "motorcade.toml").write_text('[project]\nname = "t"\ntimezone = "Asia/Shanghai"\n', encoding="utf-8")
    (directory / "rules" / "main.mc").write_text(RULES, encoding="utf-8")
    (directory / "templates" / "bad.txt").write_text(template, encoding="utf-8")
    (directory / "templates" / "good.txt").write_text("您好 {{ person.name }}", encoding="utf-8")
    project = Project(directory, plugin_manager=pm)
    store = project.store
    with store.transaction():
        ids = [store.create_person({"name": f"客户{i}", "is_owner": True, "count": i}) for i in range(3)]
    store.record_segment_run("owners", ids, revision="t", as_of=NOW, computed_at=NOW, duration_ms=0, plan=None)
    return project, memory, ids


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template=st.lists(_PIECES, min_size=1, max_size=4).map("".join))
def test_any_template_is_planned_and_delivered_without_the_engine_raising(template):
    import tempfile
    from pathlib import Path

    from motorcade.activation.check import check_project

    with tempfile.TemporaryDirectory() as tmp:
        project, memory, ids = _fresh_project(Path(tmp) / "p", template)
        try:
            problems = [p for p in check_project(project) if p.template == "bad"]
            ctx = ActivationContext.for_project(project, clock=lambda: NOW, worker_id="w")
            report = run_once(ctx)  # must not raise, whatever the template does
            bad = [s for s in project.store.list_sends(limit=100) if s["origin"] == "bad"]
            if problems:  # check rejects it: run refuses that campaign (reported), the other one goes on
                assert bad == [] and any("bad" in e for e in report.errors), report.errors
            else:
                assert report.errors == []
                assert len(bad) == len(ids)
                for send in bad:
                    assert send["status"] == "sent" or (send["status"] == "dead"
                                                        and send["reason"].startswith("template: ")), send
            assert sorted(m.body for m in memory.sent if m.template == "good") == \
                sorted(f"您好 客户{i}" for i in range(len(ids)))
        finally:
            project.close()


# ---- direct templates: text and lookups rendered without Jinja, the same as Jinja renders them -------------
# A template made only of text and `{{ name.attr["key"] }}` lookups is rendered by DirectTemplate (for speed: a
# journey's or campaign's sends). Property: for any such template and any context, what TemplateStore.render
# gives (text, or the error of a failed render) equals what it gives when Jinja renders the same text.

_KEYS = ["name", "plate", "id", "items", "keys", "get", "__class__", "mro", "upper", "0", "level", "x y", "客户"]
_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=False, allow_infinity=False),
              st.text(alphabet="ab<>&\"' 客户\n{}", max_size=6), st.just(dt.date(2026, 1, 2)), st.just(NOW)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4)),
    max_leaves=8)
_LOOKUP = st.builds(
    lambda root, path: root + "".join(f".{k}" if attribute else f"[{k!r}]" for attribute, k in path),
    st.sampled_from(["person", "person", "person", "profile", "tags", "car", "store", "event", "now", "origin",
                     "unknown", "loop"]),
    st.lists(st.tuples(st.booleans(), st.sampled_from(_KEYS + [0, 1])).filter(
        lambda p: not p[0] or (isinstance(p[1], str) and p[1].isidentifier())), max_size=3))
_TEXT = st.text(alphabet="您好 ab<&>\n\t.:,", max_size=8).filter(lambda t: "{" not in t)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.one_of(_TEXT, _LOOKUP.map(lambda e: "{{ " + e + " }}"),
                                 _LOOKUP.map(lambda e: "{{" + e + "}}{# note #}")), min_size=1, max_size=6),
       subject=st.one_of(st.none(), _LOOKUP.map(lambda e: "Subject: 提醒 {{ " + e + " }}\n\n")),
       html=st.booleans(), max_chars=st.sampled_from([5, 100_000]),
       context=st.fixed_dictionaries({"person": st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=5)}, optional={
           "profile": _VALUES, "tags": _VALUES, "car": _VALUES, "store": _VALUES, "now": _VALUES,
           "event": _VALUES, "origin": _VALUES}))
def test_a_direct_template_renders_what_jinja_renders(pieces, subject, html, max_chars, context):
    import tempfile
    from pathlib import Path
    from unittest import mock

    from motorcade.activation import templates

    text = (subject or "") + "".join(pieces)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / ("t.html" if html else "t.txt")).write_text(text, encoding="utf-8")
        limits = templates.RenderLimits(max_chars=max_chars)
        outcomes = []
        for direct in (True, False):
            store = templates.TemplateStore(Path(tmp), limits)
            if direct:
                # any template of these pieces is direct, unless it looks up a name that is not the context's own
                assert isinstance(store._compiled("t", "memory")[2], templates.DirectTemplate) or (
                    "loop" in text or "unknown" in text)
            else:
                with mock.patch.object(templates.DirectTemplate, "from_source", return_value=None):
                    assert not isinstance(store._compiled("t", "memory")[2], templates.DirectTemplate)
            try:
                outcomes.append(store.render("t", "memory", context))
            except templates.TemplateError as exc:
                outcomes.append((type(exc), exc.message))
        assert outcomes[0] == outcomes[1]
