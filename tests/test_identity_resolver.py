"""The resolver's own promises, one behaviour each: why people merged (the merge log), the keys of unkeyed
records, limits, flagging, the counts an ingest summary reports.

Fast unit tests, driving :class:`IdentityResolver` directly. Several were written for mutants of
``core/identity/resolver.py`` that the property tests let through (``make mutation``); their docstrings
name them by line and change.
"""

import datetime as dt
import hashlib
import json

import pytest

from motorcade.identity.guards import IdentityGuards
from motorcade.identity.resolver import IdentityResolver, Observation, combination_key
from motorcade.model import Identifier
from motorcade.store import open_store

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)
JUNK_PHONE = "+8613800138000"  # a default junk value: stored flagged, never links


def ids(*texts: str) -> tuple[Identifier, ...]:
    return tuple(Identifier(*t.split(":", 1)) for t in texts)


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "r.db")
    yield s
    s.close()


class Graph:
    """A resolver over ``store`` with helpers to read what it wrote."""

    def __init__(self, store, guards=None):
        self.store = store
        self.resolver = IdentityResolver(store, guards, now=NOW)

    def resolve(self, source, *observations):
        with self.store.transaction():
            return self.resolver.resolve(source, [Observation(key, ids(*texts)) for key, texts in observations])

    def iid(self, value):
        (row,) = self.store.conn.execute("SELECT id FROM identifiers WHERE value = ?", (value,)).fetchall()
        return row[0]

    def merges(self):
        return {old: (new, reason) for old, new, reason in
                self.store.conn.execute("SELECT old_id, new_id, reason FROM person_merges")}

    def person(self, type_, value):
        return self.store.person_of_identifier(type_, value)


def test_a_merge_names_the_identifier_that_joined_the_people(store):
    """The merge log says which identifier, on which source's record, joined the people; a flagged
    identifier on the same record never does.

    Mutants: line 506 ``ie[_REASON] is not None`` → ``is None`` and 507 ``continue`` → ``break`` (no reason, or
    the junk phone's); the replay's node kinds and unions (lines 494-529)."""
    g = Graph(store)
    g.resolve("crm", ("C1", ["crm_id:C1", "phone:+8613912340001"]))
    g.resolve("app", ("U7", ["app_user_id:U7", "email:a@b.cn"]))
    a, b = g.person("crm_id", "C1"), g.person("app_user_id", "U7")
    # an event carrying the junk phone first, then the app user's id, then the customer's phone
    g.resolve("events", (None, ["phone:" + JUNK_PHONE, "app_user_id:U7", "phone:+8613912340001"]))
    assert g.merges() == {b: (a, f"linked by phone identifier #{g.iid('+8613912340001')} on a events record")}


def test_merges_in_one_batch_each_name_their_own_identifier(store):
    """Two merges in one batch, next to records that merge nobody: each merge names the identifier of its
    own component (a stored record gaining another person's phone; an event whose new e-mail reaches one
    customer's id first)."""
    g = Graph(store)
    g.resolve("crm", *[(f"C{n}", [f"crm_id:C{n}", f"phone:+861391234000{n}"]) for n in range(1, 5)])
    p = {n: g.person("crm_id", f"C{n}") for n in range(1, 5)}
    g.resolve("crm", ("C2", ["crm_id:C2", "phone:+8613912340001"]),  # C2's record gains C1's phone
              (None, ["email:q@q.cn", "crm_id:C4", "crm_id:C3"]),  # an event of C4 and C3
              (None, ["email:z@z.cn"]))  # a new record merging nobody: a new person
    assert store.get_person(g.person("email", "z@z.cn")).attributes == {"sources": ["crm"]}
    assert g.merges() == {
        p[2]: (p[1], f"linked by phone identifier #{g.iid('+8613912340001')} on a crm record"),
        p[4]: (p[3], f"linked by crm_id identifier #{g.iid('C4')} on a crm record"),
    }


def test_a_person_merged_earlier_in_the_run_merges_again_under_the_id_it_merged_into(store):
    """The resolver remembers, for the rest of the run, where a merged person went: a record of the merged
    person that later joins a third person merges that one into the surviving id, with its reason."""
    g = Graph(store)
    g.resolve("crm", *[(f"C{n}", [f"crm_id:C{n}"]) for n in range(1, 4)])
    p1, p2, p3 = (g.person("crm_id", f"C{n}") for n in range(1, 4))
    g.resolve("crm", ("C2", ["crm_id:C2", "crm_id:C1"]))
    assert g.resolver.person_of(p2) == p1
    out = g.resolve("crm", ("C2", ["crm_id:C2", "crm_id:C3"]))
    assert [pid for _rid, pid in out] == [p1]
    assert g.merges()[p3] == (p1, f"linked by crm_id identifier #{g.iid('C3')} on a crm record")
    assert g.merges()[p2][0] == p1
    assert {g.person("crm_id", f"C{n}") for n in range(1, 4)} == {p1}


def test_an_unkeyed_record_is_keyed_by_its_sorted_identifiers_and_a_long_set_by_their_hash(store):
    """The key of an unkeyed record (an event's identifier set) is stored, so it must stay what it was: the
    sorted ``type=value`` pairs, or, past 120 characters, a SHA-256 prefix of them. The same set in another
    order is the same record."""
    short = ids("phone:+8613912340001", "email:a@b.cn")
    assert combination_key(short) == "ids:email=a@b.cn|phone=+8613912340001"
    at_limit = ids("crm_id:" + "x" * 113)  # "crm_id=" + 113 characters: 120
    assert combination_key(at_limit) == "ids:crm_id=" + "x" * 113
    over = ids("crm_id:" + "x" * 114)
    text = "crm_id=" + "x" * 114
    assert combination_key(over) == "ids:" + hashlib.sha256(text.encode()).hexdigest()[:40]
    g = Graph(store)
    long_set = ids("email:" + "e" * 60 + "@b.cn", "crm_id:" + "c" * 60)
    (first,) = g.resolver.resolve("app", [Observation(None, long_set)])
    (again,) = g.resolver.resolve("app", [Observation(None, long_set[::-1])])
    assert again == first
    keys = [k for (k,) in store.conn.execute("SELECT source_key FROM identity_records")]
    assert keys == [combination_key(long_set)] and len(keys[0]) == 44


@pytest.mark.parametrize("config", [{"max_records_per_source": 0}, {"email": {"max_records_per_source": 0}}],
                         ids=["default", "per type"])
def test_a_limit_of_zero_means_the_type_never_links(store, config):
    """``max_records_per_source = 0`` flags an e-mail on its first record (it never belongs to anyone), so
    records sharing it stay apart.

    Mutants: line 176 ``>= 1`` → ``>= 0`` and ``and`` → ``or`` (the new identifier's fast path, which links it
    once without checking the limit)."""
    g = Graph(store, IdentityGuards.from_config(config))
    ((_, u1),) = g.resolve("app", ("U1", ["app_user_id:U1", "email:a@b.cn"]))
    assert g.person("email", "a@b.cn") is None  # flagged on its first record already
    ((_, u2),) = g.resolve("app", ("U2", ["app_user_id:U2", "email:a@b.cn"]))
    assert u1 != u2
    assert g.person("email", "a@b.cn") is None
    flags = {f["value"]: f["reason"] for f in store.list_flagged_identifiers()}
    assert flags["a@b.cn"].startswith("shared by ")
    assert g.resolver.flagged == len(flags)


def test_people_joined_through_several_records_of_one_batch_are_one_person(store):
    """Stored customers C1, C2 and C3; one batch joins C1 and C2 through a new record, then C2's own record,
    sent again, lists C3's id first: all three are one person, the oldest id.

    Mutant: line 338 ``elif parent[c] != c`` → ``==`` (C2's component, already joined to C1's, is not
    followed to its root, gets re-parented to C3's and leaves C1 behind)."""
    g = Graph(store)
    g.resolve("crm", *[(f"C{n}", [f"crm_id:C{n}"]) for n in range(1, 4)])
    p1, p2, p3 = (g.person("crm_id", f"C{n}") for n in range(1, 4))
    out = g.resolve("crm", (None, ["crm_id:C3"]), (None, ["crm_id:C1"]), (None, ["crm_id:C2"]),
                    (None, ["crm_id:C1", "crm_id:C2"]), ("C2", ["crm_id:C3", "crm_id:C2"]))
    assert {pid for _rid, pid in out} == {p1}
    assert {g.person("crm_id", f"C{n}") for n in range(1, 4)} == {p1}
    assert {old: new for old, (new, _why) in g.merges().items()} == {p2: p1, p3: p1}


def test_an_identifier_whose_links_were_all_split_off_joins_the_next_record_that_carries_it(store):
    """A split that removes an identifier's last link leaves it without a person; the next record carrying
    it makes it that record's person's again (lines 349, 413-415, 430)."""
    from motorcade.identity.explain import split

    g = Graph(store)
    g.resolve("crm", ("C1", ["crm_id:C1", "phone:+8613912340001"]))
    a = g.person("crm_id", "C1")
    (link,) = [l for l in store.identity_links_of(a) if l["type"] == "phone"]
    split(store, a, link_id=link["link_id"])
    assert g.person("phone", "+8613912340001") is None
    ((_rid, lead),) = g.resolve("leads", ("L1", ["lead_id:L1", "phone:+8613912340001"]))
    assert lead != a
    assert g.person("phone", "+8613912340001") == lead == g.person("lead_id", "L1")


@pytest.mark.parametrize("first", [None, "app", "leads"])
def test_a_fresh_resolver_counts_the_records_each_source_stored_before_it(store, first):
    """The limit is per source and counts records stored before this resolver started: with a limit of 2,
    two stored CRM records share a phone; a new resolver (seeing the phone on a lead first, or not) meets
    it on a third CRM record, which crosses the CRM limit and flags the phone. (The other source's name sorts
    before ``crm`` or after it.)

    Mutants: line 663 ``ie[_COUNTED] is None`` → ``is not None`` (the first source's stored count is
    dropped) and line 666 ``counts[(iid, source)] = n`` (the second source's) lost."""
    guards = IdentityGuards.from_config({"max_records_per_source": 2})
    phone = "phone:+8613912340001"
    Graph(store, guards).resolve("crm", ("C1", ["crm_id:C1", phone]), ("C2", ["crm_id:C2", phone]))
    g = Graph(store, guards)
    if first:
        g.resolve(first, ("L1", ["lead_id:L1", phone]))
        assert g.person("phone", "+8613912340001") == g.person("crm_id", "C1") == g.person("lead_id", "L1")
    g.resolve("crm", ("C3", ["crm_id:C3", phone]))
    (flag,) = store.list_flagged_identifiers()
    assert flag["reason"] == "shared by 3 records of source crm (limit 2 for phone)"
    assert len({g.person("crm_id", f"C{n}") for n in range(1, 4)}) == 3


def test_flag_stops_identifiers_linking_and_splits_the_people_they_joined(store):
    """``flag`` (an advisor's work phone, say): a stored identifier is flagged and the people it joined
    are re-derived with golden records of their own; an unknown one is stored flagged; one flagged
    already keeps its reason; a value given twice counts once. Records carrying it later join nobody."""
    g = Graph(store)
    phone, other = "+8613912340001", "+8613912340002"
    with store.transaction():
        g.resolver.resolve("crm", [Observation("C1", ids("crm_id:C1", "phone:" + phone, "phone:" + JUNK_PHONE),
                                               {"name": "Zhang"})])
        g.resolver.resolve("app", [Observation("U7", ids("app_user_id:U7", "phone:" + phone), {"city": "SH"})])
    a = g.person("crm_id", "C1")
    assert g.person("app_user_id", "U7") == a
    assert g.resolver.flagged == 1  # the junk phone
    with store.transaction():
        changed = g.resolver.flag(ids("phone:" + JUNK_PHONE, "phone:" + phone, "phone:" + phone, "phone:" + other),
                                  "an advisor's work phone")
    assert changed == 2  # one identifier stored new, one person re-derived
    assert g.resolver.flagged == 3  # the junk phone, the phone, the new one
    flags = {f["value"]: f["reason"] for f in store.list_flagged_identifiers()}
    assert flags == {phone: "an advisor's work phone", other: "an advisor's work phone", JUNK_PHONE: "junk value"}
    b = g.person("app_user_id", "U7")
    assert g.person("crm_id", "C1") == a and b != a
    assert store.get_person(a).attributes == {"name": "Zhang", "sources": ["crm"]}
    assert store.get_person(b).attributes == {"city": "SH", "sources": ["app"]}
    ((_rid, lead),) = g.resolve("leads", ("L1", ["lead_id:L1", "phone:" + phone, "phone:" + other]))
    assert lead not in (a, b)


def test_a_person_made_of_several_new_records_takes_each_attribute_from_the_best_record(store):
    """A new person made of four new records: each attribute comes from the record holding the
    highest-priority identifier type (``crm_id`` before ``lead_id`` before a type the priority does not
    list), ties broken by record key, exactly as the store's rule recomputes it."""
    g = Graph(store)
    with store.transaction():
        out = g.resolver.resolve("crm", [
            Observation("z1", ids("crm_id:C1", "lead_id:L1"), {"name": "crm"}),
            Observation("y2", ids("lead_id:L1", "member_no:M1"), {"city": "Y", "tier": "silver"}),
            Observation("x3", ids("member_no:M1"), {"city": "X", "tier": "X", "age": 3}),
            Observation("w4", ids("member_no:M1", "lead_id:L1"), {"city": "W", "name": ""}),
        ])
    (pid,) = {pid for _rid, pid in out}
    assert store.get_person(pid).attributes == {"name": "crm", "city": "W", "tier": "silver", "age": 3,
                                                "sources": ["crm"]}
    assert store.recompute_golden_records([pid], g.resolver.guards.priority) == 0


def test_unchanged_record_answers_only_for_a_known_record_with_every_identifier_linked(store):
    """``unchanged_record``: the cached entry of a record that resolving would leave as it is, else None
    (an unknown source or key, an identifier never seen, or one seen on another record only)."""
    g = Graph(store)
    ((rid, pid),) = g.resolve("app", ("U1", ["app_user_id:U1", "email:a@b.cn"]))
    g.resolve("app", ("U2", ["app_user_id:U2", "phone:+8613912340001"]))
    unchanged = g.resolver.unchanged_record
    entry = unchanged("app", "U1", ids("email:a@b.cn", "app_user_id:U1"))
    assert entry is not None and (entry[0], entry[1]) == (rid, pid)
    assert unchanged("app", "U1", ()) is entry
    assert unchanged("crm", "U1", ids("app_user_id:U1")) is None
    assert unchanged("app", "U9", ids("app_user_id:U1")) is None
    assert unchanged("app", "U1", ids("app_user_id:U1", "email:new@b.cn")) is None
    assert unchanged("app", "U1", ids("app_user_id:U1", "wechat_unionid:W1")) is None
    assert unchanged("app", "U1", ids("phone:+8613912340001")) is None  # U2's


def test_person_of_follows_merges_across_batches(store):
    """An id handed out earlier in the run leads to where its person lives now, through several merges
    (3 into 2, then 2 into 1); an id never merged, or None, is itself."""
    g = Graph(store)
    g.resolve("crm", *[(f"C{n}", [f"crm_id:C{n}"]) for n in range(1, 5)])
    p1, p2, p3, p4 = (g.person("crm_id", f"C{n}") for n in range(1, 5))
    g.resolve("crm", ("C3", ["crm_id:C3", "crm_id:C2"]))
    g.resolve("crm", ("C2", ["crm_id:C2", "crm_id:C1"]))
    assert [g.resolver.person_of(p) for p in (p3, p3, p2, p1, p4, None)] == [p1, p1, p1, p1, p4, None]
    ((_rid, pid),) = g.resolve("crm", ("C3", ["crm_id:C3", "crm_id:C4"]))
    assert pid == p1 and g.person("crm_id", "C4") == p1


LOOKUPS = ("find_records", "find_identifiers", "record_link_ids", "identifier_link_counts")


def spy_on_lookups(store, monkeypatch) -> list[str]:
    calls: list[str] = []
    for name in LOOKUPS:
        def counted(*args, _lookup=getattr(store, name), _name=name, **kwargs):
            calls.append(_name)
            return _lookup(*args, **kwargs)
        monkeypatch.setattr(store, name, counted)
    return calls


def test_a_first_load_never_reads_back_what_it_wrote_until_someone_else_writes(store, tmp_path, monkeypatch):
    """Started on an empty store, the resolver's cache is the graph: batch after batch (new records, records
    sent again, merges) it looks nothing up. Once another connection has written, the next batch looks its
    keys and identifiers up and sees that writer's person."""
    calls = spy_on_lookups(store, monkeypatch)
    g = Graph(store)
    g.resolve("crm", ("C1", ["crm_id:C1", "phone:+8613912340001"]), ("C2", ["crm_id:C2"]))
    g.resolve("app", ("U1", ["app_user_id:U1", "phone:+8613912340001"]))
    g.resolve("crm", ("C2", ["crm_id:C2", "email:a@b.cn"]), ("C1", ["crm_id:C1", "email:a@b.cn"]))
    assert calls == []
    other = open_store(tmp_path / "r.db")
    Graph(other).resolve("dms", ("D1", ["dms_customer_id:D1", "phone:+8613912340002"]))
    other.close()
    ((_rid, pid),) = g.resolve("app", ("U2", ["app_user_id:U2", "phone:+8613912340002"]))
    assert "find_identifiers" in calls
    assert pid == g.person("dms_customer_id", "D1")


def test_a_resolver_started_on_records_without_identifiers_looks_them_up(store):
    """A store holding records but no identifier yet is not empty: a new resolver finds the stored record
    when its source sends it again (line 154: both next ids must be 1)."""
    ((rid, pid),) = Graph(store).resolve("crm", ("C1", []))
    g = Graph(store)
    assert g.resolve("crm", ("C1", ["crm_id:C1"])) == [(rid, pid)]
    assert store.conn.execute("SELECT count(*) FROM identity_records").fetchone()[0] == 1


@pytest.mark.parametrize("first, last", [({"name": "a"}, {"status": "vip"}), ({"status": "vip"}, {"name": "a"})])
@pytest.mark.parametrize("place", ["first in the batch", "after another new record"])
def test_a_key_sent_twice_in_one_batch_keeps_its_last_attributes(store, first, last, place):
    """The same record twice in one batch, the second time with other attributes (one of them a name sorting
    after ``sources``): one record with the last attributes, and a golden record the store's rule agrees with,
    whether the record is the batch's first new record or a later one.

    Mutants: line 214 ``entry[_RID] >= first_rid`` → ``>`` (the batch's first record would keep its first
    attributes for the golden record) and → ``==`` (so would every later one)."""
    g = Graph(store)
    before = [Observation("C0", ids("crm_id:C0"), {"name": "zero"})] if place != "first in the batch" else []
    with store.transaction():
        out = g.resolver.resolve("crm", [*before, Observation("C1", ids("crm_id:C1"), first),
                                         Observation("C1", ids("crm_id:C1"), last)])[len(before):]
    assert out[0] == out[1]
    attributes = dict(store.conn.execute("SELECT source_key, attributes FROM identity_records"))
    assert json.loads(attributes["C1"]) == last
    assert store.get_person(out[0][1]).attributes == {**last, "sources": ["crm"]}
    assert store.recompute_golden_records([out[0][1]], g.resolver.guards.priority) == 0


@pytest.mark.parametrize("ranges", [2, 3])
def test_each_link_keeps_the_rule_of_the_observation_that_made_it(store, ranges):
    """Observations of one batch with different rules, in runs (customer records, car owners, a customer
    record again): every link records its own observation's rule, which explain shows."""
    g = Graph(store)
    observations = [
        Observation("D1", ids("dms_customer_id:D1", "phone:+8613912340001"), None, "dms record"),
        Observation(None, ids("phone:+8613912340002"), None, "dms car owner"),
        Observation(None, ids("phone:+8613912340003", "email:a@b.cn"), None, "dms car owner"),
        Observation("D2", ids("dms_customer_id:D2"), None, "dms record"),
    ][:ranges + 1]
    with store.transaction():
        out = g.resolver.resolve("dms", observations)
    rules = {link["value"]: link["rule"] for _rid, pid in out for link in store.identity_links_of(pid)}
    expected = {"D1": "dms record", "+8613912340001": "dms record", "+8613912340002": "dms car owner",
                "+8613912340003": "dms car owner", "a@b.cn": "dms car owner", "D2": "dms record"}
    assert rules == {value: rule for value, rule in expected.items() if ranges == 3 or value != "D2"}
    assert store.conn.execute("SELECT count(*) FROM identity_links").fetchone()[0] == len(rules)


def test_new_people_get_ids_in_the_order_of_their_first_records_in_one_batch_or_many(tmp_path):
    """People created by a batch are numbered in the order their first records come, so one batch gives
    the ids that records sent one by one give: R0 and R3 share an e-mail, R1 and R2 another.

    Mutant: line 361 ``if d < c`` → ``if d == c`` (a component's root is then its last record, not its
    first, and the ids follow the roots)."""
    observations = [("R0", ["email:a@b.cn"]), ("R1", ["email:x@y.cn"]), ("R2", ["lead_id:L2", "email:x@y.cn"]),
                    ("R3", ["lead_id:L3", "email:a@b.cn"]), ("R4", ["lead_id:L4"])]
    results = []
    for batch_size in (len(observations), 1):
        store = open_store(tmp_path / f"{batch_size}.db")
        g = Graph(store)
        out = []
        for i in range(0, len(observations), batch_size):
            out += g.resolve("leads", *observations[i:i + batch_size])
        results.append(out)
        store.close()
    assert results[0] == results[1]
    assert [pid for _rid, pid in results[0]] == [1, 2, 2, 1, 3]


@pytest.mark.parametrize("grown", ["records", "identifiers", "at the limit"])
def test_a_cache_grown_past_its_limit_is_dropped_before_the_next_batch(store, monkeypatch, grown):
    """The cache holds at most ``_CACHE_LIMIT`` records and as many identifiers (plus one batch): past either,
    the next batch starts from an empty cache (a new :attr:`generation`, lookups again), with the same result;
    at the limit it is kept.

    Mutant: line 160 ``self._n_records > _CACHE_LIMIT`` → ``==`` (a cache that jumped past the limit in one
    batch would never be dropped)."""
    import motorcade.identity.resolver as resolver_module

    monkeypatch.setattr(resolver_module, "_CACHE_LIMIT", 2)
    calls = spy_on_lookups(store, monkeypatch)
    g = Graph(store)
    if grown == "records":
        g.resolve("crm", ("C1", []), ("C2", []), ("C3", []))
    elif grown == "identifiers":
        g.resolve("crm", ("C1", ["crm_id:C1", "phone:+8613912340001", "email:a@b.cn"]))
    else:  # two records, two identifiers
        g.resolve("crm", ("C1", ["crm_id:C1"]), ("C2", ["crm_id:C2"]))
    generation = g.resolver.generation
    ((_rid, pid),) = g.resolve("crm", ("C4", ["crm_id:C4", "crm_id:C1"] if grown == "identifiers" else ["crm_id:C4"]))
    if grown == "at the limit":
        assert g.resolver.generation == generation and calls == []
    else:
        assert g.resolver.generation != generation
        assert "find_records" in calls
    assert pid == g.person("crm_id", "C4")
    if grown == "identifiers":  # found again through the store: C4 joins C1's person
        assert pid == g.person("crm_id", "C1")


def test_a_merge_through_an_events_new_identifiers_names_the_first_that_reached_a_person(store):
    """An event carrying two e-mails never seen before, then the ids of two customers: the merge names
    the first identifier that reached a person (C4's id), not the new e-mails, which joined nobody.

    Mutant: line 522 ``_PERSON <= ra`` → ``_PERSON != ra`` (a union of two new identifiers would count as
    reaching a person)."""
    g = Graph(store)
    g.resolve("crm", ("C3", ["crm_id:C3"]), ("C4", ["crm_id:C4"]))
    p3, p4 = g.person("crm_id", "C3"), g.person("crm_id", "C4")
    g.resolve("app", (None, ["email:new1@b.cn", "email:new2@b.cn", "crm_id:C4", "crm_id:C3"]))
    assert g.merges() == {p4: (p3, f"linked by crm_id identifier #{g.iid('C4')} on a app record")}


def test_an_identifier_left_without_links_joins_a_person_merged_in_the_same_batch(store):
    """The identifier left without a person by a split comes back on a lead whose person, in the same batch,
    joins a customer: it belongs to that customer's id (line 414: the lead's component is no longer a root)."""
    from motorcade.identity.explain import split

    g = Graph(store)
    g.resolve("crm", ("C1", ["crm_id:C1", "phone:+8613912340001"]))
    a = g.person("crm_id", "C1")
    (link,) = [l for l in store.identity_links_of(a) if l["type"] == "phone"]
    split(store, a, link_id=link["link_id"])
    out = g.resolve("leads", (None, ["crm_id:C1"]), ("L1", ["lead_id:L1", "phone:+8613912340001"]),
                    (None, ["phone:+8613912340001", "crm_id:C1"]))
    assert {pid for _rid, pid in out} == {a}
    assert g.person("phone", "+8613912340001") == a == g.person("lead_id", "L1")


def test_identifiers_flagged_before_any_record_are_looked_up_by_a_new_resolver(store):
    """Advisors' phones flagged on an empty store (identifiers, no record yet): a new resolver does not take
    the store for empty, finds the flagged phone and never links it (line 154)."""
    Graph(store).resolver.flag(ids("phone:+8613912340001"), "an advisor's work phone")
    g = Graph(store)
    (_, a), (_, b) = g.resolve("leads", ("L1", ["lead_id:L1", "phone:+8613912340001"]),
                               ("L2", ["lead_id:L2", "phone:+8613912340001"]))
    assert a != b
    assert store.conn.execute("SELECT count(*) FROM identifiers WHERE type = 'phone'").fetchone()[0] == 1


def test_records_of_one_new_person_keep_one_origin_so_a_split_gives_the_others_new_ids(store):
    """Two records that make one new person in one batch: the first is the person's origin, so splitting
    the phone that joined them leaves the first with the person's id and gives the second a new one."""
    from motorcade.identity.explain import split

    g = Graph(store)
    out = g.resolve("leads", ("L1", ["lead_id:L1", "phone:+8613912340001"]),
                    ("L2", ["lead_id:L2", "phone:+8613912340001"]))
    ((pid,),) = [{p for _r, p in out}]
    origins = dict(store.conn.execute("SELECT source_key, origin_person_id FROM identity_records"))
    assert origins == {"L1": pid, "L2": None}
    people = split(store, pid, identifier="phone:13912340001")
    assert len(set(people)) == 2 and g.person("lead_id", "L1") == pid != g.person("lead_id", "L2")


def test_a_record_sent_twice_in_one_batch_joins_every_person_either_time_reached(store):
    """New record K carries C1's id, then a new record joins C1 and C3, then K comes again with C2's id:
    C1, C2 and C3 are one person (line 329: K's component, no longer a root, must be followed to it)."""
    g = Graph(store)
    g.resolve("crm", *[(f"C{n}", [f"crm_id:C{n}"]) for n in range(1, 4)])
    p1 = g.person("crm_id", "C1")
    out = g.resolve("app", (None, ["crm_id:C2"]), (None, ["crm_id:C3"]), ("K", ["crm_id:C1"]),
                    (None, ["crm_id:C1", "crm_id:C3"]), ("K", ["crm_id:C2", "crm_id:C1"]))
    assert {pid for _rid, pid in out} == {p1}
    assert {g.person("crm_id", f"C{n}") for n in range(1, 4)} == {p1}


def test_a_record_with_empty_attributes_makes_a_golden_record_of_its_sources_only(store):
    """Attributes given as an empty dict (not None): the new person's golden record is its sources."""
    g = Graph(store)
    with store.transaction():
        ((_rid, pid),) = g.resolver.resolve("crm", [Observation("C1", ids("crm_id:C1"), {})])
    assert store.get_person(pid).attributes == {"sources": ["crm"]}


def test_identifier_ids_past_two_to_the_32_still_link_the_right_records(store):
    """Links travel to the store packed as ``record id * mult + identifier id``, with ``mult`` above every
    identifier id of the batch: ids past 2**32 (a long-lived or copied store) still link correctly.

    Mutant: line 185 ``next_iid + sum(...)`` → ``next_iid - sum(...)`` (``mult`` would be at most the new ids)."""
    with store.transaction():
        store.insert_identifiers([(2**32, "email", "old@b.cn", None, "an advisor's work phone")])
    g = Graph(store)
    out = g.resolve("crm", ("C1", ["crm_id:C1", "phone:+8613912340001"]), ("C2", ["crm_id:C2", "email:a@b.cn"]))
    links = {(link["record_id"], link["value"]) for _rid, pid in out for link in store.identity_links_of(pid)}
    (r1, _), (r2, _) = out
    assert links == {(r1, "C1"), (r1, "+8613912340001"), (r2, "C2"), (r2, "a@b.cn")}
    assert g.iid("C1") == 2**32 + 1


def test_the_counters_say_what_the_resolver_did(store):
    """``created``, ``records_created``, ``merged`` and ``flagged`` count, from zero, the people and records
    created, the person ids merged away and the identifiers flagged by this resolver (an ingest summary reports
    their growth; a caller may read them directly). Mutants: lines 83-86, ``= 0`` → ``= 1``."""
    g = Graph(store)
    assert (g.resolver.created, g.resolver.records_created, g.resolver.merged, g.resolver.flagged) == (0, 0, 0, 0)
    g.resolve("crm", ("C1", ["crm_id:C1"]), ("C2", ["crm_id:C2", "phone:" + JUNK_PHONE]), ("C3", ["crm_id:C3"]))
    g.resolve("app", (None, ["crm_id:C1", "crm_id:C2", "crm_id:C3"]))
    assert (g.resolver.created, g.resolver.records_created, g.resolver.merged, g.resolver.flagged) == (3, 4, 2, 1)


def test_a_new_record_joining_the_newest_stored_person_leaves_the_new_peoples_golden_records_alone(store):
    """In one batch a new person N, then a new record of the newest stored person C1: N's golden record is
    N's own (line 550: the joining record's person is one below the first new id)."""
    g = Graph(store)
    g.resolve("crm", ("C1", ["crm_id:C1"]))
    with store.transaction():
        (_, n), (_, c1) = g.resolver.resolve("app", [Observation("N", ids("app_user_id:N"), {"name": "new"}),
                                                     Observation("J", ids("crm_id:C1"), {"name": "joiner"})])
    assert c1 == g.person("crm_id", "C1") != n
    assert store.get_person(n).attributes == {"name": "new", "sources": ["app"]}
    assert store.recompute_golden_records([n, c1], g.resolver.guards.priority) == 0


def test_people_created_after_a_flag_in_the_same_batch_take_the_next_person_ids(store):
    """A batch whose third CRM record pushes a stored phone over the limit (its people re-derived) and
    which creates a new person: that person takes the next person id (line 300; a WeChat record of C1's makes
    the next record id another number, for the mutant ``identity_next_ids()[1]``)."""
    g = Graph(store, IdentityGuards.from_config({"max_records_per_source": 2}))
    g.resolve("crm", ("C1", ["crm_id:C1", "phone:+8613912340001", "email:a@b.cn"]),
              ("C2", ["crm_id:C2", "phone:+8613912340001", "email:b@b.cn"]))
    g.resolve("wechat", ("W1", ["wechat_unionid:W1", "email:a@b.cn"]))
    ((_, c3), (_, n)) = g.resolve("crm", ("C3", ["crm_id:C3", "phone:+8613912340001"]), ("N", ["crm_id:N"]))
    people = sorted(p for (p,) in store.conn.execute("SELECT id FROM people"))
    assert people == [1, 2, 3, 4] and (c3, n) == (3, 4)


def test_every_new_person_of_a_batch_keeps_its_origin_and_all_its_records_attributes(store):
    """Not only the first person a batch creates: the second, made of two new records, takes attributes from
    both, and its first record is its origin, so splitting the phone that joined them leaves that record
    with the person's id and gives the other a new one.

    Mutants: line 400 ``target >= first_new_pid`` → ``==`` (the second person's records were neither
    counted as several nor given an origin) and line 422 ``e[_PID] >= first_new_pid`` → ``==`` (no origin
    stored for the second person)."""
    from motorcade.identity.explain import split

    g = Graph(store)
    with store.transaction():
        out = g.resolver.resolve("leads", [
            Observation("A1", ids("lead_id:A1"), {"name": "first"}),
            Observation("B1", ids("lead_id:B1", "phone:+8613912340001"), {"name": "b"}),
            Observation("B2", ids("lead_id:B2", "phone:+8613912340001"), {"city": "SH"}),
        ])
    (_, a), (_, b), (_, b2) = out
    assert a != b == b2
    assert store.get_person(b).attributes == {"name": "b", "city": "SH", "sources": ["leads"]}
    assert store.recompute_golden_records([a, b], g.resolver.guards.priority) == 0
    origins = dict(store.conn.execute("SELECT source_key, origin_person_id FROM identity_records"))
    assert origins == {"A1": a, "B1": b, "B2": None}
    people = split(store, b, identifier="phone:13912340001")
    assert len(set(people)) == 2 and g.person("lead_id", "B1") == b != g.person("lead_id", "B2")


def test_a_person_is_numbered_by_its_first_record_whichever_component_joins_it_last(store):
    """R0 and R2 are apart until R3 joins them, R1 stands alone between them: the joined person is numbered
    by its first record R0, so it is person 1 and R1 person 2, as records sent one by one would number them.

    Mutant: line 361 ``if d < c`` → ``if d != c`` (the union keeps the root met last, R2's, which is numbered
    after R1's)."""
    out = Graph(store).resolve("leads", ("R0", ["email:a@b.cn"]), ("R1", ["email:z@y.cn"]),
                               ("R2", ["email:b@b.cn"]), ("R3", ["email:a@b.cn", "email:b@b.cn"]))
    assert [pid for _rid, pid in out] == [1, 2, 1, 1]
    assert dict(store.conn.execute("SELECT source_key, origin_person_id FROM identity_records")) == {
        "R0": 1, "R1": 2, "R2": None, "R3": None}


def test_a_type_that_never_links_leaves_other_types_limits_as_they_are(store):
    """With e-mails never linking (limit 0) and phones allowed on one record each, a new phone links the
    record it first comes on, and is flagged only when a second record carries it.

    Mutant: line 240 a new identifier's count starting at 1 instead of 0 (a limit below 1 on any type sends
    every new identifier through the general count, which then counts its first record twice)."""
    g = Graph(store, IdentityGuards.from_config({"phone": {"max_records_per_source": 1},
                                                 "email": {"max_records_per_source": 0}}))
    ((_, l1),) = g.resolve("leads", ("L1", ["lead_id:L1", "phone:+8613912340001"]))
    assert g.person("phone", "+8613912340001") == l1
    assert store.list_flagged_identifiers() == []
    ((_, l2),) = g.resolve("leads", ("L2", ["lead_id:L2", "phone:+8613912340001"]))
    assert l2 != l1
    (flag,) = store.list_flagged_identifiers()
    assert flag["reason"] == "shared by 2 records of source leads (limit 1 for phone)"


def test_a_record_sent_again_after_a_split_stays_split(store):
    """An operator split C2 off C1 by removing the link of C2 to their shared phone; the CRM then sends
    C2 again, with the phone: the removed link is not made again, and C2 stays a person of its own.

    Mutant: line 275 ``len(linked) != n_linked`` → ``>=`` (a record that gained no link would be united
    again with the people of every identifier it carries, removed links included)."""
    from motorcade.identity.explain import split

    g = Graph(store)
    _c1, (c2, a) = g.resolve("crm", ("C1", ["crm_id:C1", "phone:+8613912340001"]),
                             ("C2", ["crm_id:C2", "phone:+8613912340001"]))
    (link,) = [l for l in store.identity_links_of(a) if l["type"] == "phone" and l["record_id"] == c2]
    split(store, a, link_id=link["link_id"])
    b = g.person("crm_id", "C2")
    assert b != a
    ((_rid, pid),) = g.resolve("crm", ("C2", ["crm_id:C2", "phone:+8613912340001"]))
    assert pid == b == g.person("crm_id", "C2")
    assert g.person("crm_id", "C1") == a == g.person("phone", "+8613912340001")
    assert g.merges().get(b) is None


def test_an_id_merged_away_in_the_run_still_leads_to_its_records_person_after_a_re_derivation(store):
    """C2 and C3 (joined by an e-mail) merge into C1 through a phone, all in this run; a fourth CRM record then
    pushes the phone over its limit, and the re-derivation leaves C1 alone and C2 with C3. An id handed out
    earlier in the run for C3's person must still lead, through the store's merge log (which callers' rows such
    as consents follow), to the person holding C3's record, not to C1.

    Mutant: line 673, ``_refresh_people``'s first loop made empty (C3's id kept its redirect to C1's)."""
    g = Graph(store, IdentityGuards.from_config({"phone": {"max_records_per_source": 2}}))
    g.resolve("crm", ("C1", ["crm_id:C1", "phone:+8613912340001"]), ("C2", ["crm_id:C2"]),
              ("C3", ["crm_id:C3", "email:c@b.cn"]))
    p1, p2, p3 = (g.person("crm_id", f"C{n}") for n in range(1, 4))
    g.resolve("crm", ("C2", ["crm_id:C2", "phone:+8613912340001", "email:c@b.cn"]))
    assert {g.resolver.person_of(p) for p in (p1, p2, p3)} == {p1}
    g.resolve("crm", ("C4", ["crm_id:C4", "phone:+8613912340001"]))
    assert g.person("crm_id", "C1") == p1 and g.person("crm_id", "C3") == g.person("crm_id", "C2") == p2
    for pid in (p1, p2, p3):
        assert store.resolve_person_id(g.resolver.person_of(pid)) == store.resolve_person_id(pid)
    assert store.resolve_person_id(g.resolver.person_of(p3)) == p2


def test_attribute_names_that_are_not_text_give_the_golden_record_the_stores_rule_gives(store):
    """Names a Python caller may give that are not text (``True``, ``2``: JSON writes them as ``"true"``,
    ``"2"``): the new person's golden record is the one the store's rule computes, ``"sources"`` in its
    sorted place.

    Mutant: line 704 ``except TypeError: return False`` → ``return True`` (``"sources"`` appended after
    ``"true"``, which sorts after it)."""
    g = Graph(store)
    with store.transaction():
        ((_rid, pid),) = g.resolver.resolve("crm", [Observation("C1", ids("crm_id:C1"), {True: "yes", 2: "two"})])
    assert store.get_person(pid).attributes == {"true": "yes", "2": "two", "sources": ["crm"]}
    assert store.recompute_golden_records([pid], g.resolver.guards.priority) == 0


def test_records_joined_in_a_chain_within_one_batch_are_one_person(store):
    """R2 joins R1 (through b) and brings c along; R3 then joins R0 (through a) to R2 (through c), whose
    component was by then part of R1's: the four records are one person, and so are their e-mails.

    Mutants: line 358 ``if parent[d] != d`` → ``==`` / ``>`` (c's component, no longer a root, was not
    followed to its root, and the union cut R1 off the others)."""
    out = Graph(store).resolve("leads", ("R0", ["email:a@b.cn"]), ("R1", ["email:b@b.cn"]),
                               ("R2", ["email:c@b.cn", "email:b@b.cn"]), ("R3", ["email:a@b.cn", "email:c@b.cn"]))
    assert {pid for _rid, pid in out} == {1}
    assert {store.person_of_identifier("email", f"{x}@b.cn") for x in "abc"} == {1}


def test_a_merge_through_an_event_of_two_new_e_mails_names_the_first_e_mail_joined_to_a_person(store):
    """C1 and C2 are sent again, each with a new e-mail, then an event carries both e-mails: the merge of
    C2 into C1 names C1's e-mail (the first of the two that had reached a person), not "a shared identifier".

    Mutant: line 522 ``_PERSON <= ra < _RECORD`` → ``_PERSON <= ra == _RECORD`` (a component that reached a
    person through the record's own person was not marked, so neither e-mail was named)."""
    g = Graph(store)
    g.resolve("crm", ("C1", ["crm_id:C1"]), ("C2", ["crm_id:C2"]))
    p1, p2 = g.person("crm_id", "C1"), g.person("crm_id", "C2")
    g.resolve("crm", ("C1", ["crm_id:C1", "email:e@b.cn"]), ("C2", ["crm_id:C2", "email:f@b.cn"]),
              (None, ["email:e@b.cn", "email:f@b.cn"]))
    assert g.merges() == {p2: (p1, f"linked by email identifier #{g.iid('e@b.cn')} on a crm record")}


def test_an_event_reaching_a_customer_through_another_events_e_mail_names_that_e_mail(store):
    """In one batch: an event with a new e-mail n; an event with a new e-mail m and C1's id; an event with n, m
    and C2's id. C2 merges into C1, and the merge log names m, through which the last event reached C1 before
    C2's id reached C2.

    Mutant: line 522 ``ra in bridge or rb in bridge`` → ``and`` (a union with a component that had reached a
    person, from a component that had not, named nothing, and C2's id was named instead)."""
    g = Graph(store)
    g.resolve("crm", ("C1", ["crm_id:C1"]), ("C2", ["crm_id:C2"]))
    p1, p2 = g.person("crm_id", "C1"), g.person("crm_id", "C2")
    g.resolve("app", (None, ["email:n@b.cn"]), (None, ["email:m@b.cn", "crm_id:C1"]),
              (None, ["email:n@b.cn", "email:m@b.cn", "crm_id:C2"]))
    assert g.merges() == {p2: (p1, f"linked by email identifier #{g.iid('m@b.cn')} on a app record")}
    assert {g.person("email", "n@b.cn"), g.person("email", "m@b.cn"), g.person("crm_id", "C2")} == {p1}


def test_a_stored_record_sent_again_with_new_attributes_updates_its_persons_golden_record(store):
    """A CRM customer sent again with the same identifiers and a new name: the record keeps the new attributes
    and the person's golden record follows, although the record gained no link.

    Mutants: line 426 ``if record_updates`` → ``if not record_updates`` (the record's new attributes were not
    written) and line 447, the same change (the person of a record whose attributes changed was left out of the
    golden records recomputed)."""
    g = Graph(store)
    with store.transaction():
        ((rid, pid),) = g.resolver.resolve("crm", [Observation("C1", ids("crm_id:C1"), {"name": "Zhang"})])
    with store.transaction():
        assert g.resolver.resolve("crm", [Observation("C1", ids("crm_id:C1"), {"name": "Li", "city": "SH"})]) == [
            (rid, pid)]
    (attributes,) = store.conn.execute("SELECT attributes FROM identity_records WHERE id = ?", (rid,)).fetchone()
    assert json.loads(attributes) == {"name": "Li", "city": "SH"}
    assert store.get_person(pid).attributes == {"name": "Li", "city": "SH", "sources": ["crm"]}


def test_after_a_phone_crosses_its_limit_each_record_sent_again_is_its_own_pieces(store):
    """C1 and C2, one person through a shared phone, then a third CRM record with the phone (limit 2): the phone
    is flagged and the person split. Sent again by the same resolver, with a new e-mail, C2 belongs to its own
    piece, and so does the e-mail; C1 keeps the old id.

    Mutant: line 679, ``_refresh_people``'s loop over the re-derived records made empty (the cache kept C2's
    person from before the split)."""
    g = Graph(store, IdentityGuards.from_config({"phone": {"max_records_per_source": 2}}))
    (_, a), (_, a2) = g.resolve("crm", ("C1", ["crm_id:C1", "phone:+8613912340001"]),
                                ("C2", ["crm_id:C2", "phone:+8613912340001"]))
    assert a == a2
    g.resolve("crm", ("C3", ["crm_id:C3", "phone:+8613912340001"]))
    b = g.person("crm_id", "C2")
    assert b != a == g.person("crm_id", "C1")
    ((_rid, pid),) = g.resolve("crm", ("C2", ["crm_id:C2", "email:c2@b.cn"]))
    assert pid == b == g.person("email", "c2@b.cn")
    assert g.person("crm_id", "C1") == a


def test_flag_stores_every_unknown_identifier_flagged(store):
    """``flag`` with several identifiers the store has never seen stores each of them, flagged with the reason,
    and none links later.

    Mutant: line 614 ``next_iid += 1`` → ``+= 0`` (the unknown identifiers of one call got one id)."""
    g = Graph(store)
    phones = ["+8613912340001", "+8613912340002", "+8613912340003"]
    with store.transaction():
        assert g.resolver.flag(ids(*("phone:" + p for p in phones)), "an advisor's work phone") == 3
    assert {f["value"]: f["reason"] for f in store.list_flagged_identifiers()} == dict.fromkeys(
        phones, "an advisor's work phone")
    (_, l1), (_, l2) = g.resolve("leads", ("L1", ["lead_id:L1", *("phone:" + p for p in phones)]),
                                 ("L2", ["lead_id:L2", *("phone:" + p for p in phones)]))
    assert l1 != l2


def test_a_resolver_keeps_working_after_the_store_reconnects(store, monkeypatch):
    """The store's connection is closed between two batches (it reconnects on demand): the resolver takes the
    new connection for a change by someone else, drops its cache and looks the batch up, with the same graph.

    Mutant: line 150 ``self._sync != (...)`` → ``<`` (the marks of two connections cannot be ordered: the batch
    raised ``TypeError``)."""
    calls = spy_on_lookups(store, monkeypatch)
    g = Graph(store)
    ((_rid, pid),) = g.resolve("crm", ("C1", ["crm_id:C1", "phone:+8613912340001"]))
    assert calls == []
    store.close()
    generation = g.resolver.generation
    ((_rid, lead),) = g.resolve("leads", ("L1", ["lead_id:L1", "phone:+8613912340001"]))
    assert lead == pid == g.person("lead_id", "L1")
    assert g.resolver.generation != generation and "find_identifiers" in calls


def test_new_identifiers_a_new_record_joins_before_the_merge_never_name_it(store):
    """In one batch a new record carries two new e-mails, and a second record one of them with C2's id and C1's
    phone: the merge of C1 and C2 is named by C2's id, the first identifier that reached a person, not by the
    e-mail, which reached only the new record (mutant at line 531, ``_PERSON <= ra < _RECORD`` ->
    ``_PERSON != ra < _RECORD``: the e-mails' own component counted as holding a person)."""
    g = Graph(store)
    g.resolve("crm", ("C1", ["crm_id:C1", "phone:+8613912340001"]), ("C2", ["crm_id:C2"]))
    p1, p2 = g.person("crm_id", "C1"), g.person("crm_id", "C2")
    g.resolve("app", ("A1", ["email:x@b.cn", "email:y@b.cn"]),
              ("A2", ["email:y@b.cn", "crm_id:C2", "phone:+8613912340001"]))
    assert g.merges() == {p2: (p1, f"linked by crm_id identifier #{g.iid('C2')} on a app record")}
    assert {g.person("email", "x@b.cn"), g.person("email", "y@b.cn"), g.person("crm_id", "C2")} == {p1}


@pytest.mark.parametrize("order", ["the new e-mail first", "the new e-mail between the two ids"])
def test_a_new_identifier_that_joins_nobody_never_names_a_merge(store, order):
    """A stored customer's record sent again with a new e-mail (no one else carries it) before the phone of
    another customer, or an event with one customer's id, a new e-mail and another customer's id: the merge
    log names the identifier that reached the other person, never the new e-mail. (Before the fix, a union
    of the record's own person with the new e-mail counted as reaching a person; the mutant at line 522
    ``_PERSON <= ra == _RECORD`` showed it, naming the phone in the first case.)"""
    g = Graph(store)
    g.resolve("crm", ("C1", ["crm_id:C1", "phone:+8613912340001"]), ("C2", ["crm_id:C2"]))
    p1, p2 = g.person("crm_id", "C1"), g.person("crm_id", "C2")
    if order == "the new e-mail first":
        g.resolve("crm", ("C2", ["email:new@b.cn", "crm_id:C2", "phone:+8613912340001"]))
        why = f"phone identifier #{g.iid('+8613912340001')} on a crm record"
    else:
        g.resolve("app", (None, ["crm_id:C2", "email:new@b.cn", "crm_id:C1"]))
        why = f"crm_id identifier #{g.iid('C2')} on a app record"
    assert g.merges() == {p2: (p1, "linked by " + why)}
    assert {g.person("crm_id", "C1"), g.person("crm_id", "C2"), g.person("email", "new@b.cn")} == {p1}
