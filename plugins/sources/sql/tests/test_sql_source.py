"""The sql source: a SQLite database read incrementally by a cursor column."""

import sqlite3

import motorcade_sources_sql
from motorcade.project import Project
from motorcade.sources.ingest import ingest

CONFIG = """
[project]
name = "t"

[sources.crm_db]
type = "sql"
path = "crm.db"
table = "customers"
cursor_column = "updated_at"
key_column = "id"
batch_size = 2
[sources.crm_db.person]
key = "id"
identifiers = { crm_id = "id", phone = "mobile" }
attributes = { name = "name", birth_year = { column = "birth_year", type = "int" } }
"""


def test_incremental_reads_only_new_rows_and_quarantines_bad_ones(motorcade_project, register_plugin):
    register_plugin(motorcade_sources_sql, name="sql")
    d = motorcade_project.directory
    (d / "motorcade.toml").write_text(CONFIG, encoding="utf-8")
    db = sqlite3.connect(d / "crm.db")
    db.execute("CREATE TABLE customers (id TEXT, name TEXT, mobile TEXT, birth_year TEXT, updated_at INTEGER)")
    db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", [
        ("C1", "张伟", "13812345678", "1980", 1), ("C2", "李娜", "13900001111", "x", 2), ("C3", "王芳", "", "", 3)])
    db.commit()
    project = Project(d, plugin_manager=motorcade_project.plugins)
    first = ingest(project, "crm_db")
    assert (first.read, first.rejected) == (3, 1)
    q = project.store.list_quarantine(source="crm_db")[0]
    assert q.position == "row id C2" and "birth_year" in q.reason and '"李娜"' in q.raw
    assert project.store.get_source_cursor("crm_db") == "3"
    db.execute("INSERT INTO customers VALUES ('C4', '赵强', '138 1234 5678', '1990', 4)")
    db.commit()
    second = ingest(project, "crm_db")
    assert second.read == 1  # only the new row
    assert project.store.person_of_identifier("crm_id", "C4") == project.store.person_of_identifier("crm_id", "C1")
    project.close()
