"""One-ID properties: the partition depends on the data, not on order or batching; guards hold."""

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motorcade.identity.guards import IdentityGuards
from motorcade.sources.base import PersonRecord, RawIdentifier
from motorcade.sources.ingest import Ingestor
from motorcade.store import open_store

JUNK = "13800138000"
PHONES = [f"1391234{n:04d}" for n in range(6)] + [JUNK, "13911111111"]
EMAILS = [f"u{n}@163.com" for n in range(4)]
LIMIT = 3

identifier = st.one_of(
    st.sampled_from(PHONES).map(lambda v: ("phone", v)),
    st.sampled_from(EMAILS).map(lambda v: ("email", v)),
    st.integers(0, 5).map(lambda n: ("app_user_id", f"U{n}")),
)
record = st.tuples(st.sampled_from(["crm", "leads"]), st.lists(identifier, min_size=1, max_size=3))
datasets = st.lists(record, min_size=1, max_size=25)


def records_of(data):
    """(source, key, identifiers) with a unique key per record."""
    return [(source, f"{source}-{i}", ids) for i, (source, ids) in enumerate(data)]


def clean(type_, value):
    return "+86" + value if type_ == "phone" else value


def oracle(recs):
    """The partition the guards promise: components over identifiers that are neither junk nor over-shared."""
    carriers = {}
    for source, key, ids in recs:
        for t, v in set(ids):
            carriers.setdefault((t, v), {}).setdefault(source, set()).add(key)
    guards = IdentityGuards.from_config({"max_records_per_source": LIMIT})
    linking = {i for i, by_source in carriers.items()
               if guards.junk_reason(i[0], clean(*i)) is None and all(len(keys) <= LIMIT for keys in by_source.values())}
    parent = {key: key for _, key, _ in recs}

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for i in linking:
        keys = sorted(k for ks in carriers[i].values() for k in ks)
        for k in keys[1:]:
            parent[find(k)] = find(keys[0])
    groups = {}
    for _, key, _ in recs:
        groups.setdefault(find(key), set()).add(key)
    return {frozenset(g) for g in groups.values()}


def run(recs, batch_size):
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "p.db")
        ingestor = Ingestor(store, guards=IdentityGuards.from_config({"max_records_per_source": LIMIT}))
        by_source = {}
        for source, key, ids in recs:
            by_source.setdefault(source, []).append(
                PersonRecord(source_key=key, identifiers=tuple(RawIdentifier(t, v) for t, v in ids), position=key,
                             attributes={"name": key, "city": "" if len(ids) > 1 else source}))
        # interleave sources batch by batch, as separate ingest runs
        for source, items in by_source.items():
            batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
            ingestor.ingest_records(source, batches)
        groups = {}
        for key, pid in store.conn.execute("SELECT source_key, person_id FROM identity_records"):
            groups.setdefault(pid, set()).add(key)
        # every identifier belongs to the person of its records (or to nobody if flagged)
        for iid, pid, flagged in store.conn.execute("SELECT id, person_id, flagged FROM identifiers"):
            owners = {r[0] for r in store.conn.execute(
                "SELECT r.person_id FROM identity_links l JOIN identity_records r ON r.id = l.record_id "
                "WHERE l.identifier_id = ?", (iid,))}
            if flagged:
                assert pid is None
            else:
                assert owners == {pid}
        # an over-shared identifier's reason states its count now: the source carrying it most (ties: by name)
        for iid, type_, reason in store.conn.execute(
                "SELECT id, type, flag_reason FROM identifiers WHERE flag_reason LIKE 'shared by %'").fetchall():
            counts = store.conn.execute(
                "SELECT source, count(*) AS n FROM identity_links WHERE identifier_id = ? AND removed_at IS NULL "
                "GROUP BY source ORDER BY n DESC, source", (iid,)).fetchall()
            assert reason == ingestor.guards.over_limit_reason(type_, *counts[0])
        # golden records written while stitching (in memory for new people) are what the store's rule gives
        people = [r[0] for r in store.conn.execute("SELECT id FROM people")]
        assert store.recompute_golden_records(people, ingestor.guards.priority) == 0
        # every id ever issued resolves to a live person
        for (old,) in store.conn.execute("SELECT old_id FROM person_merges"):
            assert store.get_person(old) is not None
        store.close()
        return {frozenset(g) for g in groups.values()}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets, st.randoms(use_true_random=False), st.integers(1, 7))
def test_partition_is_independent_of_order_and_batches_and_guards_hold(data, rnd, batch_size):
    recs = records_of(data)
    expected = oracle(recs)
    assert run(recs, len(recs)) == expected
    shuffled = list(recs)
    rnd.shuffle(shuffled)
    assert run(shuffled, batch_size) == expected
    # the junk number never joins anyone: without it on any record, the engine finds the same people
    # (the check this replaces also failed on records rightly joined by a real phone they shared
    # besides the junk one)
    assert run([(s, k, [i for i in ids if i != ("phone", JUNK)]) for s, k, ids in shuffled], batch_size) == expected



# -- events: every event is an unkeyed record (its identifier set); the same properties hold -----------

event_ids = st.lists(identifier, min_size=1, max_size=3)


def event_oracle(events):
    """Event index groups: components of identifier sets over identifiers that may link (events with
    junk identifiers only are quarantined)."""
    guards = IdentityGuards.from_config({"max_records_per_source": LIMIT})
    usable = lambda ids: any(guards.junk_reason(t, clean(t, v)) is None for t, v in ids)  # noqa: E731
    events = [ids if usable(ids) else None for ids in events]
    combos = {frozenset((t, clean(t, v)) for t, v in ids) for ids in events if ids is not None}
    carriers = {}
    for combo in combos:
        for i in combo:
            carriers.setdefault(i, set()).add(combo)
    parent = {c: c for c in combos}

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for i, cs in carriers.items():
        if guards.junk_reason(*i) is None and len(cs) <= LIMIT:
            cs = sorted(cs, key=sorted)
            for c in cs[1:]:
                parent[find(c)] = find(cs[0])
    groups = {}
    for n, ids in enumerate(events):
        if ids is not None:
            groups.setdefault(find(frozenset((t, clean(t, v)) for t, v in ids)), set()).add(n)
    return {frozenset(g) for g in groups.values()}


def run_events(events, batch_size):
    from motorcade.sources.base import EventRecord

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "e.db")
        ingestor = Ingestor(store, guards=IdentityGuards.from_config({"max_records_per_source": LIMIT}))
        records = [EventRecord(name="view", ts=f"2025-01-01T00:00:{n % 60:02d}", position=f"e{n}", dedup_key=f"e{n}",
                               identifiers=tuple(RawIdentifier(t, v) for t, v in ids)) for n, ids in enumerate(events)]
        ingestor.ingest_records("app", [records[i:i + batch_size] for i in range(0, len(records), batch_size)])
        groups = {}
        for key, pid in store.conn.execute("SELECT dedup_key, person_id FROM events"):
            assert store.get_person(pid) is not None
            groups.setdefault(pid, set()).add(int(key[1:]))
        store.close()
        return {frozenset(g) for g in groups.values()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event_ids, min_size=1, max_size=25), st.integers(1, 7))
def test_events_resolve_to_the_same_people_in_one_batch_or_many(events, batch_size):
    expected = event_oracle(events)
    assert run_events(events, len(events)) == expected
    assert run_events(events, batch_size) == expected
