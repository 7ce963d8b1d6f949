"""docs/plugins.md cannot drift from the code: every hook is there with its exact signature and a worked example
that runs; every field of the plugin-facing classes, every result status, fixture and switch is documented."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import re
import types
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

from motorcade import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
HOOKS = {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")}


def example(hook: str) -> types.ModuleType:
    """The worked example of ``hook`` (the python block marked ``# plugins.md example: HOOK``), as a module."""
    blocks = re.findall(r"```python\n(# plugins\.md example: (\w+)\n.*?)```", DOCS, flags=re.S)
    [code] = [code for code, name in blocks if name == hook]
    module = types.ModuleType(f"plugins_md_{hook}")
    exec(compile(code, f"docs/plugins.md ({hook})", "exec"), module.__dict__)
    return module


def test_every_hook_has_a_heading_with_its_exact_signature_and_a_worked_example():
    assert set(HOOKS) == {"register_sources", "register_tag_calculators", "register_channels", "register_commands"}
    for name, fn in HOOKS.items():
        signature = f"{name}{inspect.signature(fn)}".replace("'", "")
        assert f"### `{signature}`" in DOCS, signature
        assert hasattr(example(name), name), f"the {name} example does not implement {name}"


def documented(name: str, owner: str | None = None) -> bool:
    """``name`` appears as `name`, `name(...)`, `name: ...`, or as a parameter of `Owner(a, b=...)`."""
    if f"`{name}`" in DOCS or re.search(rf"`{re.escape(name)}[(: =]", DOCS):
        return True
    for params in re.findall(rf"`{owner}\(([^`]*)\)`", DOCS) if owner else ():
        if name in re.findall(r"(\w+)\s*(?:=|,|$)", params):
            return True
    return False


@pytest.mark.parametrize("cls", [
    "motorcade.activation.channel.OutboundMessage", "motorcade.activation.channel.DeliveryResult",
    "motorcade.activation.channel.ChannelCapabilities", "motorcade.activation.channel.ChannelContext",
    "motorcade.tags.base.TagContext", "motorcade.tags.base.TagDefinition",
    "motorcade.sources.base.PersonRecord", "motorcade.sources.base.EventRecord",
    "motorcade.sources.base.RejectedRow", "motorcade.sources.base.RawIdentifier",
])
def test_every_field_of_the_plugin_facing_records_is_documented(cls):
    module, name = cls.rsplit(".", 1)
    record = getattr(__import__(module, fromlist=[name]), name)
    assert f"`{name}" in DOCS, name
    for field in attrs.fields(record):
        assert documented(field.name, name), f"{name}.{field.name}"


@pytest.mark.parametrize("cls", ["motorcade.sources.base.Source", "motorcade.tags.base.TagCalculator",
                                 "motorcade.activation.channel.Channel", "motorcade.tags.base.TagContext"])
def test_every_public_member_of_the_base_classes_is_documented(cls):
    module, name = cls.rsplit(".", 1)
    base = getattr(__import__(module, fromlist=[name]), name)
    members = {m for m in vars(base) if not m.startswith("_")} | set(getattr(base, "__annotations__", {}))
    members |= {"__init__"} if "__init__" in vars(base) and not attrs.has(base) else set()
    for member in members:
        assert documented(member), f"{name}.{member}"


def test_result_statuses_fixtures_and_switches_are_documented():
    from motorcade.activation.channel import RESULT_STATES

    for status in RESULT_STATES:
        assert f"| `{status}` |" in DOCS, status
    import motorcade.testing as testing

    fixtures = [n for n, f in vars(testing).items() if hasattr(f, "_fixture_function_marker")
                or type(f).__name__ == "FixtureFunctionDefinition"]
    assert set(fixtures) >= {"motorcade_pm", "register_plugin", "motorcade_project"}
    for fixture in fixtures:
        assert f"| `{fixture}` |" in DOCS, fixture
    plugin_source = (ROOT / "core" / "plugins.py").read_text() + (ROOT / "core" / "cli.py").read_text()
    for switch in set(re.findall(r"MOTORCADE_[A-Z_]*PLUGINS[A-Z_]*", plugin_source)):
        assert f"`{switch}" in DOCS, switch


# -- the worked examples run ------------------------------------------------------------------------------


def test_source_example_reads_resumes_and_ingests(tmp_path, register_plugin, motorcade_pm, motorcade_project):
    plugin = example("register_sources")
    register_plugin(plugin, name="order_log")
    lines = [json.dumps({"order_id": 1, "phone": "13761982345", "ts": "2026-05-01 10:00", "amount": 100}),
             "{not json", json.dumps({"order_id": 2, "phone": "13912345678", "ts": "2026-05-02 11:00"})]
    (motorcade_project.directory / "orders.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = motorcade_project.directory / "motorcade.toml"
    config.write_text(config.read_text() + '\n[sources.shop]\ntype = "order_log"\npath = "orders.jsonl"\n')
    from motorcade.project import Project
    from motorcade.sources.ingest import ingest

    project = Project(motorcade_project.directory, plugin_manager=motorcade_pm)
    try:
        summary = ingest(project, "shop")
        assert (summary.events, summary.rejected) == (2, 1)
        source = motorcade_pm.registry().source_class("order_log")("shop", {"path": "orders.jsonl"},
                                                                   project.directory)
        list(source.read())
        cursor = source.next_cursor()
        assert [r for batch in source.read(cursor) for r in batch] == []  # resumes after what it read
    finally:
        project.close()


def test_tag_example_computes_full_and_incremental(register_plugin, motorcade_pm, motorcade_project):
    from motorcade.model import Event
    from motorcade.tags.base import TagContext

    register_plugin(example("register_tag_calculators"), name="order_recency")
    calculator = motorcade_pm.registry().tag_calculator("order_recency")
    store = motorcade_project.store
    as_of = dt.datetime(2026, 6, 1, 12, tzinfo=dt.timezone.utc)
    a, b = store.create_person({"name": "a"}), store.create_person({"name": "b"})
    store.insert_events([Event("order", as_of - dt.timedelta(days=3), person_id=a, source="t", dedup_key="1"),
                         Event("order", as_of - dt.timedelta(days=10), person_id=b, source="t", dedup_key="2"),
                         Event("order", as_of + dt.timedelta(days=1), person_id=b, source="t", dedup_key="3")])
    settings = dict(calculator.default_settings)
    full = sorted(calculator.compute(TagContext(store=store, as_of=as_of, settings=settings)))
    assert full == [(a, "days_since_order", 3), (b, "days_since_order", 10)]
    only_b = list(calculator.compute(TagContext(store=store, as_of=as_of, settings=settings,
                                                person_ids=frozenset({b}))))
    assert only_b == [(b, "days_since_order", 10)]
    from motorcade.tags.engine import compute_tags

    compute_tags(store, {"order_recency": calculator}, as_of=as_of)  # the engine accepts its values
    assert {t.tag: t.value for t in store.tags_of(a)}["days_since_order"] == 3


def test_channel_example_delivers_once_per_key(tmp_path, register_plugin, motorcade_pm):
    from motorcade.activation.channel import ChannelContext, OutboundMessage
    from motorcade.errors import ConfigError

    register_plugin(example("register_channels"), name="jsonfile")
    channel_class = motorcade_pm.registry().channel_class("jsonfile")
    with pytest.raises(ConfigError, match="has no path"):
        channel_class({}, ChannelContext(project_dir=tmp_path))
    channel = channel_class({"path": "outbox.jsonl"}, ChannelContext(project_dir=tmp_path))
    batch = [OutboundMessage("k1", 1, "+8613800138000", "welcome", "你好"),
             OutboundMessage("k2", 2, "", "welcome", "hi")]
    assert [(r.idempotency_key, r.status) for r in channel.send(batch)] == [("k1", "sent"), ("k2", "permanent")]
    channel.send(batch[:1])  # a retry of a delivered key
    lines = (tmp_path / "outbox.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["k1"]


def test_command_example_runs_in_a_project(register_plugin, motorcade_project):
    from motorcade.cli import build_cli
    from motorcade.model import Event

    register_plugin(example("register_commands"), name="orders_per_day")
    store = motorcade_project.store
    person = store.create_person({"name": "a"})
    store.insert_events([Event("order", dt.datetime.now(dt.timezone.utc), person_id=person, source="t",
                               dedup_key="1")])
    store.close()
    try:
        result = CliRunner().invoke(build_cli(), ["--project", str(motorcade_project.directory), "orders-per-day"])
        assert result.exit_code == 0, result.output
        assert re.fullmatch(r"\d{4}-\d\d-\d\d\s+1\n", result.output), result.output
    finally:
        build_cli()
