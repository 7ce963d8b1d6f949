"""Writing tag values back to the operational store, on SQLite and PostgreSQL: what a replace keeps and drops
(people merged away, an incremental run's other people, a value given twice), the stored types, and that the
write is set-based (a fixed number of statements on the tag tables, however many values)."""

from __future__ import annotations

import datetime as dt

import pytest

from motorcade.store import open_store

T0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.timezone.utc)
T1 = T0 + dt.timedelta(hours=1)


@pytest.fixture
def store(store_database):
    s = open_store(store_database)
    yield s
    s.close()


def _values(store, tag, people):
    """person id -> the stored value of ``tag`` (through a named store read, the same on every store)."""
    return {p: v.value for p in people for v in store.tags_of(p) if v.tag == tag}


def test_a_full_replace_writes_only_existing_people_and_keeps_the_later_of_two_values(store):
    a, b, c = (store.create_person({"name": n}) for n in "ABC")
    store.write_tag_values([(a, "level", "old"), (b, "level", "old"), (c, "level", "old")], tags=["level"],
                           calculator="t", calculator_version="1", computed_at=T0)
    with store.transaction():
        store.merge_people(a, [c], reason="test", at=T0)
        store.settle_identity()
    written = store.write_tag_values(
        [(a, "level", "first"), (c, "level", "of a person merged away"), (a, "level", "second"), (b, "score", 2.5)],
        tags=["level", "score"], calculator="t", calculator_version="2", computed_at=T1)
    assert _values(store, "level", (a, b, c)) == {a: "second"}  # b's old value is replaced by nothing; c is gone
    assert _values(store, "score", (a, b, c)) == {b: 2.5}
    assert written == 3  # a twice (the later wins) and b; c's value dropped
    assert [(v.tag, v.value, v.calculator_version, v.computed_at) for v in store.tags_of(a)] == [
        ("level", "second", "2", T1)]


def test_an_incremental_replace_changes_only_the_given_people(store):
    a, b, c = (store.create_person() for _ in range(3))
    store.write_tag_values([(p, tag, 1) for p in (a, b, c) for tag in ("x", "y")], tags=["x", "y"],
                           calculator="t", calculator_version="1", computed_at=T0)
    store.write_tag_values([(a, "x", 2)], tags=["x", "y"], calculator="t", calculator_version="1",
                           computed_at=T1, person_ids=[a, b])
    assert _values(store, "x", (a, b, c)) == {a: 2, c: 1}  # b asked for and given nothing: its value is removed
    assert _values(store, "y", (a, b, c)) == {c: 1}


def test_stored_values_keep_their_types(store):
    a = store.create_person()
    store.write_tag_values([(a, "n", 3), (a, "r", 0.1 + 0.2), (a, "s", "高"), (a, "b", True), (a, "big", 2**62)],
                           tags=["n", "r", "s", "b", "big"], calculator="t", calculator_version="1", computed_at=T0)
    got = {v.tag: v.value for v in store.tags_of(a)}
    assert got == {"n": 3, "r": 0.1 + 0.2, "s": "高", "b": 1, "big": 2**62}
    assert type(got["n"]) is int and type(got["r"]) is float and type(got["big"]) is int


def test_per_store_values_drop_people_merged_away_and_replace_only_the_given_people(store):
    a, b, c = (store.create_person() for _ in range(3))
    store.write_store_tag_values([(a, "sv", 1.5, "S1"), (a, "sv", 2.5, "S2"), (b, "sv", 3.0, "S1")], tags=["sv"],
                                 calculator="t", calculator_version="1", computed_at=T0)
    with store.transaction():
        store.merge_people(a, [c], reason="test", at=T0)
        store.settle_identity()
    assert store.write_store_tag_values([(b, "sv", 4.0, "S2"), (c, "sv", 9.0, "S1")], tags=["sv"], calculator="t",
                                        calculator_version="1", computed_at=T1, person_ids=[b, c]) == 1
    assert store.store_tags_of(a) == {"S1": {"sv": 1.5}, "S2": {"sv": 2.5}}
    assert store.store_tags_of(b) == {"S2": {"sv": 4.0}}


@pytest.mark.parametrize("person_ids", [None, "half"])
def test_the_write_is_set_based_inside_an_enclosing_transaction(tmp_path, person_ids):
    """One statement per value on tag_values made a write inside compute_tags' transaction (a savepoint on
    SQLite) take time growing with the values already written: 100,000 people took over 20 minutes."""
    store = open_store(str(tmp_path / "store.db"))
    try:
        ids = [store.create_person() for _ in range(400)]
        ran: list[str] = []
        store.conn.set_trace_callback(ran.append)
        with store.transaction():
            store.write_tag_values([(p, tag, p * 0.5) for p in ids for tag in ("a", "b")], tags=["a", "b"],
                                   calculator="t", calculator_version="1", computed_at=T0,
                                   person_ids=None if person_ids is None else ids[:200])
            store.write_store_tag_values([(p, "s", 1, "S1") for p in ids], tags=["s"], calculator="t",
                                         calculator_version="1", computed_at=T0,
                                         person_ids=None if person_ids is None else ids[:200])
        store.conn.set_trace_callback(None)
        on_tag_tables = [s for s in ran if " tag_values" in s or " store_tag_values" in s]
        assert len(on_tag_tables) <= 12, on_tag_tables[:5]
        assert len(_values(store, "a", ids)) == 400 and len(_values(store, "b", ids)) == 400
    finally:
        store.close()


def test_a_value_of_a_tag_not_being_replaced_leaves_other_peoples_values(store):
    """``tags`` names what is replaced; a value of another tag is written over that person's only (tests and
    loaders write one person at a time this way)."""
    a, b = store.create_person(), store.create_person()
    for person, value in ((a, "x"), (b, "y")):
        store.write_tag_values([(person, "level", value)], tags=[], calculator="t", calculator_version="1",
                               computed_at=T0)
        store.write_store_tag_values([(person, "sv", value, "S1")], tags=[], calculator="t", calculator_version="1",
                                     computed_at=T0)
    assert _values(store, "level", (a, b)) == {a: "x", b: "y"}
    assert store.store_tags_of(a) == {"S1": {"sv": "x"}} and store.store_tags_of(b) == {"S1": {"sv": "y"}}


def test_the_engines_copy_is_typed_column_by_column_as_one_value_at_a_time():
    pytest.importorskip("pyarrow")
    from motorcade.analytics.tables import _batch
    from motorcade.analytics.tags import TAG_TABLE, _typed_batch, typed_row

    values = [1, 2.5, "x", True, False, 2**62, -0.0, "", 3, "2026-01-02"]
    tags = [f"t{i % 3}" for i in range(len(values))]
    people = list(range(len(values)))
    assert _typed_batch(tags, people, values).equals(
        _batch(TAG_TABLE, [typed_row(t, p, v) for t, p, v in zip(tags, people, values)]))
