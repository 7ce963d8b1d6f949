"""The analytics engines on the example dealer group: the same segment members on SQLite, DuckDB and
ClickHouse (chdb, in-process), through the mirror and through the `[project] analytics` setting."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from motorcade.analytics import open_engine
from motorcade.analytics.tables import TABLE_NAMES
from motorcade.config import load_config
from motorcade.errors import ConfigError
from motorcade.segments.compute import compute_segments, evaluate_members

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "dealer_group"
AS_OF = dt.datetime(2026, 11, 20, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # the example data's as-of
# the example's store setting (SQLite unless MOTORCADE_DATABASE names another)
DATABASE_LINE = 'database = "${MOTORCADE_DATABASE:-motorcade.db}"'


def set_analytics(config: Path, url: str) -> None:
    """Give the example project's motorcade.toml the ``analytics`` setting ``url`` (failing loudly if the
    example's store line has changed, so no test silently runs without its engine)."""
    text = config.read_text(encoding="utf-8")
    assert DATABASE_LINE in text, "the example's database line changed: update DATABASE_LINE"
    config.write_text(text.replace(DATABASE_LINE, f'database = "motorcade.db"\nanalytics = "{url}"', 1),
                      encoding="utf-8")
MOTORCADE = [sys.executable, "-c", "import sys; from motorcade.cli import run; sys.argv[0] = 'motorcade'; run()"]
TAG_PLUGINS = ("activity", "intent", "lifecycle", "quadrant", "value")
ENGINES = {"duckdb": "duckdb:///analytics.duckdb", "clickhouse": "chdb:///analytics-ch"}
# and "clickhouse-server": ClickHouse's HTTP interface through clickhouse-connect (motorcade.analytics.testing)


def plugin_manager():
    from motorcade.plugins import load_plugins

    pm = load_plugins(entry_points=False)
    for name in TAG_PLUGINS:
        pm.register(importlib.import_module(f"motorcade_tags_{name}"), name=name)
    return pm


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example project on 400 generated people: ingested and tags computed, as of the data's as-of."""
    project_dir = tmp_path_factory.mktemp("dealer_group") / "project"
    project_dir.mkdir()
    shutil.copy(EXAMPLE / "motorcade.toml", project_dir / "motorcade.toml")
    shutil.copytree(EXAMPLE / "rules", project_dir / "rules")
    subprocess.run([sys.executable, str(EXAMPLE / "generate.py"), "--size", "small", "--people", "400",
                    "--seed", "7", "--out", str(project_dir / "data")], check=True, capture_output=True)
    env = {**os.environ, "MOTORCADE_LOAD_PLUGINS": ",".join(("csv", "jsonl", *TAG_PLUGINS))}
    for args in (["ingest", "--all"], ["tags", "compute", "--as-of", AS_OF.isoformat()]):
        done = subprocess.run([*MOTORCADE, "--project", str(project_dir), *args], env=env, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr
    return project_dir


@pytest.fixture
def project(example):
    from motorcade.project import Project

    p = Project(example, plugin_manager=plugin_manager())
    yield p
    p.close()


def _needs(engine: str):
    pytest.importorskip("duckdb" if engine == "duckdb" else "chdb")
    if engine == "clickhouse-server":
        pytest.importorskip("clickhouse_connect")


@pytest.fixture
def engine_url(request):
    """The ``analytics`` setting of the engine a test is parametrised with (``engine_name``)."""
    name = request.node.callspec.params["engine_name"]
    _needs(name)
    if name != "clickhouse-server":
        return ENGINES[name]
    from motorcade.analytics.testing import ChdbHTTPServer

    server = ChdbHTTPServer(user="analyst", password="pa:ss@word", database="mc_analytics")
    request.addfinalizer(server.__exit__)
    return server.__enter__().url


SERVER_TOO = [*sorted(ENGINES), "clickhouse-server"]


@pytest.mark.parametrize("engine_name", SERVER_TOO)
def test_every_example_segment_has_the_same_members_on_the_engine(project, tmp_path, engine_name, engine_url):
    store, rules, tz = project.store, project.rules(), project.timezone
    on_sqlite = {name: evaluate_members(store, rules, name, AS_OF, tz) for name in sorted(rules.segments)}
    engine = open_engine(engine_url, base_dir=tmp_path)
    try:
        copied = engine.mirror(store)
        # the mirror is complete: every table's row count, and the engine counts the same
        for name in TABLE_NAMES:
            assert copied[name] == store.query(f"SELECT count(*) FROM {name}")[0][0], name
        assert engine.counts() == copied
        assert copied["events"] > 1000 and copied["tag_values"] > 400 and copied["store_tag_values"] > 400
        for name, (members, _plan, _query) in on_sqlite.items():
            there, plan, query = evaluate_members(store, rules, name, AS_OF, tz, engine=engine)
            assert there == members, name
            if query is not None:  # compiled (not the evaluator's fallback): it ran on the engine
                assert plan.startswith(f"on {engine.name}: ") and query.dialect == engine.dialect
        assert sum(len(m) for m, _, _ in on_sqlite.values()) > 400  # the segments are not all empty
    finally:
        engine.close()


@pytest.mark.parametrize("engine_name", SERVER_TOO)
def test_the_analytics_setting_runs_the_segment_stage_on_the_engine(example, tmp_path, engine_name, engine_url):
    from motorcade.project import Project

    directory = tmp_path / "project"
    shutil.copytree(example, directory, ignore=shutil.ignore_patterns("analytics*"))
    plain = Project(directory, plugin_manager=plugin_manager())
    try:
        expected = {r.name: r.member_ids for r in compute_segments(plain, as_of=AS_OF)}
    finally:
        plain.close()
    set_analytics(directory / "motorcade.toml", engine_url)
    project = Project(directory, plugin_manager=plugin_manager())
    try:
        results = compute_segments(project, as_of=AS_OF)
        assert {r.name: r.member_ids for r in results} == expected
        assert all(r.plan.startswith(f"on {project.analytics.name}: ") or r.plan.startswith("reference evaluator")
                   for r in results)
        # the memberships came back to the operational store
        for r in results:
            assert sorted(project.store.segment_member_ids(r.name)) == sorted(expected[r.name])
    finally:
        project.close()


def test_an_unknown_engine_is_a_config_error_naming_the_forms(tmp_path):
    with pytest.raises(ConfigError, match="no engine for 'mysql'") as info:
        open_engine("mysql://localhost/x")
    assert "duckdb:///" in info.value.hint
    with pytest.raises(ConfigError, match="not an engine URL"):
        open_engine("analytics.duckdb")


def test_a_clickhouse_server_setting_takes_credentials_and_never_shows_the_password(monkeypatch):
    pytest.importorskip("chdb")
    pytest.importorskip("clickhouse_connect")
    from motorcade.analytics.testing import ChdbHTTPServer

    with ChdbHTTPServer(user="analyst", password="s3cret", database="mc") as server:
        port = server.server_address[1]
        with pytest.raises(ConfigError, match="cannot reach ClickHouse: .*AUTHENTICATION_FAILED") as info:
            open_engine(f"clickhouse://analyst:wrong@127.0.0.1:{port}/mc")
        assert "wrong" not in str(info.value) and "analyst:***@" in str(info.value)
        monkeypatch.setenv("CLICKHOUSE_PASSWORD", "s3cret")  # the password from the environment
        engine = open_engine(f"clickhouse://analyst@127.0.0.1:{port}/mc")
        try:
            assert engine.query("SELECT currentDatabase()") == [("mc",)]
            assert engine.counts()["events"] == 0
        finally:
            engine.close()
        sent = [r["parameters"] for r in server.requests if r["parameters"].get("database")]
        assert sent and all(p["database"] == "mc" for p in sent)
    with pytest.raises(ConfigError, match="unknown option 'tls'") as info:
        open_engine("clickhouse://u:pw@127.0.0.1:1/mc?tls=1")
    assert "pw" not in str(info.value)


def test_the_setting_is_validated_and_documented():
    assert "analytics" in (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert load_config  # the schema check itself: tests/test_config_schema.py


def test_a_failing_engine_query_names_the_segment_and_the_engine(project):
    pytest.importorskip("duckdb")
    from motorcade.errors import MotorcadeError

    engine = open_engine("duckdb:///:memory:")
    try:
        engine.mirror(project.store)
        engine.query("DROP TABLE events")  # the engine lost a table under the plan
        with pytest.raises(MotorcadeError) as info:
            evaluate_members(project.store, project.rules(), "lapsed_owners", AS_OF, project.timezone, engine=engine)
        assert "segment `lapsed_owners`: the query failed on DuckDB" in str(info.value)
        assert "[project] analytics" in info.value.hint
    finally:
        engine.close()


@pytest.mark.parametrize("engine_name", SERVER_TOO)
def test_the_mirror_appends_new_events_and_copies_whole_after_a_merge(tmp_path, engine_name, engine_url):
    from motorcade.model import Event
    from motorcade.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "m.db")
    engine = open_engine(engine_url, base_dir=tmp_path)
    at = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)

    def events(pids, first):
        store.insert_events([Event(person_id=p, name="view", ts=at + dt.timedelta(minutes=i), source="t",
                                   dedup_key=str(first + i)) for i, p in enumerate(pids)])

    def mirrored():
        return sorted(engine.query("SELECT id, person_id FROM events"))

    try:
        a, b = store.create_person({}), store.create_person({})
        events([a, b, a], 0)
        assert engine.mirror(store)["events"] == 3 and engine.last_mirror == "full"
        events([b, b], 10)
        assert engine.mirror(store)["events"] == 2 and engine.last_mirror == "incremental"
        assert mirrored() == sorted(tuple(r) for r in store.query("SELECT id, person_id FROM events"))
        assert engine.mirror(store)["events"] == 0 and engine.last_mirror == "incremental"
        # a merge: settle_identity rewrites existing events, so the next mirror copies them all again
        store.merge_people(a, [b], reason="test")
        assert engine.mirror(store)["events"] == 5 and engine.last_mirror == "full"  # not settled yet
        store.settle_identity()
        assert engine.mirror(store)["events"] == 5 and engine.last_mirror == "full"
        assert {p for _, p in mirrored()} == {a}
        assert mirrored() == sorted(tuple(r) for r in store.query("SELECT id, person_id FROM events"))
    finally:
        engine.close()
        store.close()


def _summary(output: str) -> str:
    """The demo's "N. Summary" section up to its timings (which vary from run to run)."""
    start = re.search(r"\d+\. Summary", output).start()
    return output[start:output.index("Time per stage", start)]


@pytest.mark.slow
def test_the_demo_gives_the_same_report_on_sqlite_duckdb_and_clickhouse(tmp_path):
    pytest.importorskip("duckdb")
    pytest.importorskip("chdb")
    runs = {}
    for name, url in (("sqlite", None), *ENGINES.items()):
        directory = tmp_path / name
        shutil.copytree(EXAMPLE, directory, ignore=shutil.ignore_patterns("data", "out", "motorcade.db*",
                                                                          "__pycache__", "analytics*"))
        if url is not None:
            set_analytics(directory / "motorcade.toml", url)
        # the three demos side by side (each is mostly waiting on its own stages)
        runs[name] = subprocess.Popen([sys.executable, str(directory / "demo.py")], cwd=directory, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      env={**os.environ, "COLUMNS": "150"})
    outputs = {}
    for name, process in runs.items():
        out, _ = process.communicate(timeout=1200)
        assert process.returncode == 0, out[-3000:]
        outputs[name] = out
    # the segment stage really ran on each engine (the runs' plans say where)
    import sqlite3

    for name, engine in (("duckdb", "DuckDB"), ("clickhouse", "ClickHouse")):
        with sqlite3.connect(tmp_path / name / "motorcade.db") as conn:
            plans = [r[0] for r in conn.execute("SELECT plan FROM segment_runs")]
        assert plans and all(p.startswith(f"on {engine}: ") or p.startswith("reference evaluator") for p in plans)
        assert any(p.startswith(f"on {engine}: ") for p in plans)
    expected = _summary(outputs["sqlite"])
    assert "e-mails received by the SMTP server" in expected
    for name in ENGINES:
        assert _summary(outputs[name]) == expected, name


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
def test_every_tag_of_the_example_has_the_same_value_computed_on_the_engine(project, tmp_path, engine_name):
    """All the example's tags (the bundled calculators and the rules' own tags) computed on the engine over its
    mirror equal those computed on SQLite, in the operational store and in the engine's tag table."""
    _needs(engine_name)
    import sqlite3

    from motorcade.store.sqlite import SQLiteStore
    from motorcade.tags.engine import compute_tags, imported_tags, project_calculators

    copy = tmp_path / "copy.db"
    with sqlite3.connect(copy) as target:
        project.store.conn.backup(target)  # a copy: the module's store keeps its SQLite-computed values
    target.close()
    store = SQLiteStore(copy)
    engine = open_engine(ENGINES[engine_name], base_dir=tmp_path)

    def values():
        return {(r[0], r[1]): r[2] for r in store.query("SELECT person_id, tag, value FROM tag_values")}

    try:
        on_sqlite = values()
        calculators = project_calculators(project)
        assert {"activity", "intent", "lifecycle", "quadrant", "value"} <= set(calculators)
        results = compute_tags(store, calculators, as_of=AS_OF, settings=project.config.tags,
                               imported=imported_tags(project), timezone=project.timezone, analytics=engine)
        assert {r.calculator for r in results} == set(calculators)
        assert len(on_sqlite) > 4000
        assert values() == on_sqlite
        kinds = {int: "integer", float: "real", str: "text"}
        in_engine = {(int(p), t): (k, n, x) for t, p, k, n, x in engine.query(
            "SELECT tag, person_id, value_kind, value_num, value_text FROM tag_values")}
        assert in_engine == {key: (kinds[type(v)], None, v) if isinstance(v, str) else (kinds[type(v)], float(v), None)
                             for key, v in on_sqlite.items()}
    finally:
        engine.close()
        store.close()


def test_tags_compute_with_the_analytics_setting_runs_on_the_engine(example, tmp_path):
    """`motorcade tags compute` in a project with `[project] analytics`: the values written to the operational
    store equal SQLite's, and the engine's tag table holds them too."""
    pytest.importorskip("duckdb")
    import sqlite3

    directory = tmp_path / "project"
    shutil.copytree(example, directory, ignore=shutil.ignore_patterns("analytics*"))

    def values():
        with sqlite3.connect(directory / "motorcade.db") as conn:
            return dict(((p, t), v) for p, t, v in conn.execute("SELECT person_id, tag, value FROM tag_values"))

    on_sqlite = values()
    set_analytics(directory / "motorcade.toml", "duckdb:///analytics.duckdb")
    env = {**os.environ, "MOTORCADE_LOAD_PLUGINS": ",".join(("csv", "jsonl", *TAG_PLUGINS))}
    done = subprocess.run([*MOTORCADE, "--project", str(directory), "tags", "compute", "--as-of", AS_OF.isoformat(),
                           "--json"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert values() == on_sqlite
    import duckdb

    with duckdb.connect(str(directory / "analytics.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM tag_values").fetchone()[0] == len(on_sqlite)
