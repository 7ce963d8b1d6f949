"""The engines bench's own loader (benchmarks/bench_engines.py): k shifted copies of the generated store in an
engine must hold every analytical table and give k x each seed segment's members, or the bench's figures are
for other data (it once failed outright: a table the engines gained later had no Parquet copy)."""

import sys
import zoneinfo
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks package, beside tests/


def test_the_parquet_copy_covers_every_table_an_engine_holds():
    from benchmarks.bench_engines import _PARQUET_COLUMNS, _SHIFTED
    from motorcade.analytics.tables import TABLES

    names = {t.name for t in TABLES}
    assert set(_PARQUET_COLUMNS) == names
    assert set(_SHIFTED) <= names
    # every table with a person id shifts it (a copy must be other people)
    assert {t.name for t in TABLES if "person_id" in t.names} <= set(_SHIFTED)


@pytest.mark.parametrize("engine_name", ["duckdb", "clickhouse"])
def test_two_scaled_copies_give_twice_each_seed_segments_members(tmp_path, engine_name):
    pytest.importorskip("chdb")  # the Parquet copy is written by chdb's sqlite() reader
    from benchmarks.bench_engines import _export, load_scaled
    from benchmarks.bench_segments import SEGMENTS
    from benchmarks.generate_store import AS_OF, generate
    from motorcade.analytics import ClickHouseEngine, DuckDBEngine
    from motorcade.dsl.rules import rule_set_from_text
    from motorcade.segments.compiler import property_keys
    from motorcade.segments.compute import evaluate_members
    from motorcade.store.sqlite import SQLiteStore

    tz = zoneinfo.ZoneInfo("Asia/Shanghai")
    path = generate(600, 12_000, 5, path=tmp_path / "store.db", log=lambda *a, **k: None)
    top = _export(str(path), tmp_path / "parquet")
    rule_set = rule_set_from_text(SEGMENTS, "bench_segments.mc")
    store = SQLiteStore(path)
    engine = DuckDBEngine(tmp_path / "x2.duckdb") if engine_name == "duckdb" else \
        ClickHouseEngine(chdb_path=str(tmp_path / "x2"))
    try:
        engine.materialise(property_keys(rule_set))
        load_scaled(engine, tmp_path / "parquet", top, 2)
        some = 0
        for name in rule_set.segments:
            expected = evaluate_members(store, rule_set, name, AS_OF, tz)[0]
            members = evaluate_members(store, rule_set, name, AS_OF, tz, engine=engine)[0]
            assert members == expected + [pid + top["P"] for pid in expected], name
            some += bool(expected)
        assert some >= 4  # the data gives most seed segments members
    finally:
        engine.close()
        store.close()
