"""Incremental identity resolution: union-find over records and identifiers, one batch at a time.

:meth:`IdentityResolver.resolve` takes the *observations* of one batch (a CRM row, the identifiers
seen together on an event, a car's owner), finds or creates their identity records, links them to
their identifiers and unites the people those identifiers already belong to. Everything is decided
in memory for the whole batch and written with a handful of statements (each table's new rows as one
JSON array, see :mod:`motorcade.store.identity`).

Guards (see :mod:`motorcade.identity.guards`): junk values are stored flagged and never link; an
identifier that more than N records of one source carry is flagged when it crosses the limit and the
person it had joined is re-derived without it, so the result does not depend on the order rows
arrive in: people are always the components of the graph over unflagged identifiers.

The resolver caches the part of the graph it has seen (records by source and key, identifiers by type
and value). While the store held no identity records when the cache was started and nobody else has
written to the graph since (the store's ``external_change_mark()`` and ``identity_epoch``
and the next free ids all as this resolver left them), the cache *is* the graph and a batch needs no
lookup at all: a first load runs without reading back what it wrote. Otherwise the batch's unknown
keys and identifiers are looked up with one statement each, and any change made by someone else
drops the cache.

Callers hold the write transaction (``store.transaction()``) around :meth:`resolve`; if it fails,
call :meth:`reset` (the caches may hold ids of rows that were rolled back).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Iterable, NamedTuple, Sequence

from ..model import Identifier
from ..store.codec import iso, utc_now
from ..store.identity import fast_dumps, fast_loads
from .guards import OVER_LIMIT, IdentityGuards

_CACHE_LIMIT = 3_000_000  # records, and identifiers, kept in the cache before it is dropped
# union-find node kinds of the merge-reason replay (see _merge_reasons): identifier id, _PERSON + person
# id, _RECORD + record id
_PERSON = 1 << 48
_RECORD = 2 << 48


_dumps = fast_dumps  # codec.dumps, faster

# Cache entries are lists (mutable, and cheaper than objects):
#   record:     [record id, person id, attributes JSON, identifier ids linked (tuple, removed links included)]
#   identifier: [identifier id, person id, flag reason or None, count, count's source, type]
# where count = how many records of that source carry the identifier (live links); the counts of
# other sources are in ``_counts``.
_RID, _PID, _ATTRS, _LINKED = 0, 1, 2, 3
_IID, _REASON, _COUNT, _COUNTED, _TYPE = 0, 2, 3, 4, 5


class Observation(NamedTuple):
    """Identifiers seen together, by one source, on one record (keyed) or one event (unkeyed).

    A named tuple, not an attrs class: a bulk load makes one per record, and a frozen attrs
    ``__init__`` costs several times as much.
    """

    key: str | None  # the record's key in the source; None = the record is this set of identifiers
    identifiers: tuple[Identifier, ...]  # cleaned identifiers
    attributes: dict[str, Any] | None = None  # profile attributes the record states (None = none)
    rule: str = "shared_identifier"  # why its links exist (shown by explain)


def combination_key(identifiers: Iterable[Identifier]) -> str:
    """The key of an unkeyed record: its identifiers, sorted (hashed when long)."""
    text = "|".join(sorted(f"{i.type}={i.value}" for i in identifiers))
    if len(text) > 120:
        return "ids:" + hashlib.sha256(text.encode()).hexdigest()[:40]
    return "ids:" + text


class IdentityResolver:
    """Resolves observations to identity records and people, keeping the store's graph consistent."""

    def __init__(self, store, guards: IdentityGuards | None = None, *, now: dt.datetime | None = None):
        self.store = store
        self.guards = guards or IdentityGuards.from_config({})
        self.now = now
        self.merged = 0  # person ids merged away by this resolver
        self.created = 0  # people created
        self.flagged = 0  # identifiers flagged: junk when first stored, or for crossing their limit
        self.records_created = 0  # identity records created
        self._limits: dict[str, int] = {}  # identifier type -> guards.limit(type)
        self._rank = {t: i for i, t in enumerate(self.guards.priority)}
        self.reset()

    def reset(self) -> None:
        """Forget cached state (after a rollback, or when another writer may have changed the graph)."""
        self._records: dict[str, dict[str, list]] = {}  # source -> key -> record entry (see above)
        self._idents: dict[str, dict[str, list]] = {}  # type -> value -> identifier entry (see above)
        self._counts: dict[tuple[int, str], int] = {}  # (identifier id, source) -> records carrying it
        self._redirect: dict[int, int] = {}  # person merged away in this run -> the id it merged into
        self._n_records = self._n_idents = 0  # cache sizes
        # ids issued since the cache started (record id, identifier id): rows from these on were all
        # written by this resolver, so their links and counts are all in the cache
        self._own: tuple[int, int] | None = None
        self._complete = False  # the cache holds the whole graph (the store had none when it started)
        self._sync: tuple | None = None  # (external change mark, epoch, next record id, next identifier id)
        self.generation = getattr(self, "generation", 0) + 1  # entries of an earlier generation are stale

    def unchanged_record(self, source: str, key: str, identifiers: Sequence[Identifier]) -> list | None:
        """The cached ``[record id, person id, ...]`` entry of an attribute-less observation that
        :meth:`resolve` would leave as it is (a known record, every identifier linked already), else None.

        Callers skip resolving such observations and read the person after resolving the others
        (``person_of(entry[1])``), so merges made by those are followed; while :attr:`generation`
        is unchanged the entry is kept current.
        """
        records = self._records.get(source)
        if records is None:
            return None
        entry = records.get(key)
        if entry is None:
            return None
        linked = entry[_LINKED]
        idents = self._idents
        for ident in identifiers:
            by_value = idents.get(ident.type)
            ie = by_value.get(ident.value) if by_value is not None else None
            if ie is None or ie[_IID] not in linked:
                return None
        return entry

    def person_of(self, pid: int | None) -> int | None:
        """Where a person id seen earlier in this run lives now (after merges in this run)."""
        return self._person(pid)

    def _person(self, pid: int | None) -> int | None:
        redirect = self._redirect
        if pid is None or pid not in redirect:
            return pid
        root = pid
        while root in redirect:
            root = redirect[root]
        while pid in redirect and redirect[pid] != root:  # path compression
            redirect[pid], pid = root, redirect[pid]
        return root

    # ------------------------------------------------------------------------------------------

    def _begin(self) -> tuple[int, int, int]:
        """Next free ids; drops the cache if the graph changed since this resolver last wrote it."""
        store = self.store
        mark = store.external_change_mark()
        next_ids = store.identity_next_ids()
        if self._sync is not None and self._sync != (mark, store.identity_epoch, *next_ids[1:]):
            self.reset()
        if self._own is None:
            self._own = next_ids[1], next_ids[2]
            self._complete = next_ids[1] == 1 and next_ids[2] == 1
        self._version = mark
        return next_ids

    def resolve(self, source: str, observations: Sequence[Observation]) -> list[tuple[int, int]]:
        """``(record id, person id)`` for every observation, in order."""
        if self._n_records > _CACHE_LIMIT or self._n_idents > _CACHE_LIMIT:
            self.reset()
        store = self.store
        now = iso(self.now or utc_now())
        next_pid, next_rid, next_iid = self._begin()
        first_rid, first_iid = next_rid, next_iid
        keys = [o.key or combination_key(o.identifiers) for o in observations]
        records = self._records.get(source)
        if records is None:
            records = self._records[source] = {}
        if not self._complete:
            self._load(source, records, keys, observations)
        guards = self.guards
        junk_reason = guards.junk_reason
        limits = self._limits
        # (a limit below 1 would flag an identifier on its first record)
        new_count_fits = guards.default_max_records >= 1 and all(v >= 1 for v in guards.max_records.values())
        idents, counts = self._idents, self._counts

        new_records: list[list] = []  # in id order (first_rid, first_rid + 1, ...)
        new_keys: list[str] = []
        new_attrs: list[Any] = []  # the attributes each new record's JSON was made from
        record_updates: dict[int, list] = {}
        new_idents: list[tuple[str, str, list]] = []  # in id order (first_iid, ...)
        # links in order, each as one integer: record id * mult + identifier id
        mult = max(1 << 32, next_iid + sum(len(o.identifiers) for o in observations))
        links: list[int] = []
        rules: list[tuple[int, str]] = []  # (index in links, rule) where the rule changes
        rule = None
        newly_flagged: list[list] = []
        junk_flagged = 0  # new identifiers stored flagged as junk
        recount: dict[int, list] = {}  # over-shared identifiers that gained links: their reason's count
        over_limit = OVER_LIMIT
        touched: list[tuple[list, list]] = []  # (record entry, identifier entries) with new links (or new)
        entries: list[list] = []

        # -- 1. records, identifiers, links, counts and guards -------------------------------------
        for obs, key in zip(observations, keys):
            attributes = obs.attributes
            entry = records.get(key)
            if entry is None:
                entry = [next_rid, None, _dumps(attributes) if attributes else "{}", ()]
                next_rid += 1
                records[key] = entry
                new_records.append(entry)
                new_keys.append(key)
                new_attrs.append(attributes)
                created = True
            else:
                created = False
                if attributes:
                    attrs_json = _dumps(attributes)
                    if attrs_json != entry[_ATTRS]:
                        entry[_ATTRS] = attrs_json
                        if entry[_RID] >= first_rid:  # created in this batch: inserted with these
                            new_attrs[entry[_RID] - first_rid] = attributes
                        else:
                            record_updates[entry[_RID]] = entry
            entries.append(entry)
            identifiers = obs.identifiers
            if not identifiers:
                if created:
                    touched.append((entry, []))
                continue
            if obs.rule != rule:
                rule = obs.rule
                rules.append((len(links), rule))
            code = entry[_RID] * mult
            linked = entry[_LINKED]
            n_linked = len(linked)
            ies = []
            for ident in identifiers:
                type_ = ident.type
                by_value = idents.get(type_)
                if by_value is None:
                    by_value = idents[type_] = {}
                value = ident.value
                ie = by_value.get(value)
                if ie is None:
                    reason = junk_reason(type_, value)
                    ie = by_value[value] = [next_iid, None, reason, 0, source, type_]
                    new_idents.append((type_, value, ie))
                    if reason is not None:
                        junk_flagged += 1
                    if new_count_fits:  # linked once, by this record: within any limit
                        ie[_COUNT] = 1
                        ies.append(ie)
                        linked += (next_iid,)
                        links.append(code + next_iid)
                        next_iid += 1
                        continue
                    next_iid += 1
                ies.append(ie)
                iid = ie[_IID]
                if iid in linked:
                    continue
                linked += (iid,)
                links.append(code + iid)
                if ie[_REASON] is None:  # counts matter to unflagged identifiers only (flags stay)
                    if ie[_COUNTED] == source:
                        count = ie[_COUNT] = ie[_COUNT] + 1
                    elif ie[_COUNTED] is None:  # no source counted yet: ours, or preloaded by _load
                        ie[_COUNTED] = source
                        count = ie[_COUNT] = 1
                    else:
                        count = counts[(iid, source)] = counts.get((iid, source), 0) + 1
                    limit = limits.get(type_)
                    if limit is None:
                        limit = limits[type_] = guards.limit(type_)
                    if count > limit:
                        ie[_REASON] = guards.over_limit_reason(type_, source, count)
                        newly_flagged.append(ie)
                        recount[iid] = ie
                elif ie[_REASON].startswith(over_limit):  # its reason states the count: restated below
                    recount[iid] = ie
            if len(linked) != n_linked:
                entry[_LINKED] = linked
                touched.append((entry, ies))
            elif created:
                touched.append((entry, ies))
        self._n_records += len(new_records)
        self._n_idents += len(new_idents)
        self.flagged += junk_flagged

        # Identifiers that crossed their limit stop linking: people they had joined are re-derived.
        rederived: set[int] = set()  # people re-derived here: their golden records are recomputed below
        if newly_flagged:
            self.flagged += len(newly_flagged)
            rederive = set()
            for ie in newly_flagged:
                if ie[_IID] < first_iid:
                    pid = store.flag_identifier(ie[_IID], ie[_REASON])
                    if pid is not None:
                        rederive.add(self._person(pid))
                ie[_PID] = None
            reason = "identifier flagged: " + "; ".join(sorted({ie[_REASON] for ie in newly_flagged}))
            for pid in sorted(p for p in rederive if p is not None):
                rederived.update(store.rederive_person(pid, reason=reason, at=self.now))
            if rederive:
                self._refresh_people(rederive | rederived)
                next_pid = store.identity_next_ids()[0]  # a re-derivation may have issued ids

        # -- 2. components: union-find over the touched records' people ----------------------------
        # A component is numbered by the touched record that started it, so the smallest number of a
        # component is its first record in batch order (new people get ids in that order).
        redirect = self._redirect
        person = self._person
        parent: list[int] = []
        comp_of_person: dict[int, int] = {}
        comp_of_ident: dict[int, int] = {}  # identifiers without a person yet (new ones) -> component
        unowned: list[list] = []  # identifiers stored earlier without a person (their links were removed)
        comp_of_record: dict[int, int] = {}  # records without a person yet (new ones) -> component
        record_comps: list[int] = []  # per touched record

        def find(x: int) -> int:
            root = x
            while parent[root] != root:
                root = parent[root]
            while parent[x] != root:  # path compression
                parent[x], x = root, parent[x]
            return root

        for entry, ies in touched:
            pid = entry[_PID]
            if pid is None:
                c = comp_of_record.get(entry[_RID])
                if c is None:
                    c = comp_of_record[entry[_RID]] = len(parent)
                    parent.append(c)
                elif parent[c] != c:
                    c = find(c)
            else:
                if pid in redirect:
                    pid = person(pid)
                c = comp_of_person.get(pid)
                if c is None:
                    c = comp_of_person[pid] = len(parent)
                    parent.append(c)
                elif parent[c] != c:
                    c = find(c)
            for ie in ies:
                if ie[_REASON] is not None:
                    continue
                ipid = ie[_PID]
                if ipid is None:
                    d = comp_of_ident.get(ie[_IID])
                    if d is None:
                        comp_of_ident[ie[_IID]] = c
                        if ie[_IID] < first_iid:
                            unowned.append(ie)
                        continue
                else:
                    if ipid in redirect:
                        ipid = person(ipid)
                    d = comp_of_person.get(ipid)
                    if d is None:
                        comp_of_person[ipid] = c
                        continue
                if parent[d] != d:
                    d = find(d)
                if d != c:
                    if d < c:
                        parent[c] = d
                        c = d
                    else:
                        parent[d] = c
            record_comps.append(c)

        people_of: dict[int, list[int]] = {}
        for pid, c in comp_of_person.items():
            people_of.setdefault(find(c), []).append(pid)
        target_of: list[int | None] = [None] * len(parent)  # component root -> its person
        first_new_pid = next_pid
        merges: list[tuple[int, list[int], int]] = []  # (target, others, component)
        for c in range(len(parent)):
            if parent[c] != c:
                continue
            people = people_of.get(c)
            if people is None:
                target_of[c] = next_pid
                next_pid += 1
            else:
                if len(people) > 1:
                    people.sort()
                    merges.append((people[0], people[1:], c))
                    target_of[c] = people[0]
                else:
                    target_of[c] = people[0]
        new_people = range(first_new_pid, next_pid)
        reasons = self._merge_reasons(source, touched, record_comps, merges, find) if merges else {}

        # -- 3. who is who now ---------------------------------------------------------------------
        # the first record of a new person (its smallest record id) is the record that created it
        origin = [0] * len(new_people)
        multi: set[int] = set()  # new people made of several records
        for (entry, _ies), c in zip(touched, record_comps):
            if entry[_PID] is None:
                if parent[c] != c:
                    c = find(c)
                target = entry[_PID] = target_of[c]
                if target >= first_new_pid:
                    n = target - first_new_pid
                    if origin[n]:
                        multi.add(target)
                    else:
                        origin[n] = entry[_RID]
        if comp_of_ident:
            for _type, _value, ie in new_idents:
                if ie[_REASON] is None:
                    c = comp_of_ident[ie[_IID]]
                    ie[_PID] = target_of[c if parent[c] == c else find(c)]
        ident_updates = []
        for ie in unowned:
            c = comp_of_ident[ie[_IID]]
            ie[_PID] = target_of[c if parent[c] == c else find(c)]
            ident_updates.append((ie[_PID], ie[_IID]))

        # -- 4. write ------------------------------------------------------------------------------
        new_golden = self._new_golden_records(source, first_new_pid, len(new_people), new_records, new_keys,
                                              new_attrs, multi, touched)
        store.insert_new_people(first_new_pid, new_golden, now)
        store.insert_new_identity_records(first_rid, source, [
            (key, e[_PID], e[_PID] if e[_PID] >= first_new_pid and origin[e[_PID] - first_new_pid] == e[_RID] else None,
             e[_ATTRS])
            for key, e in zip(new_keys, new_records)
        ], now)
        if record_updates:
            store.update_record_attributes([(e[_ATTRS], now, rid) for rid, e in record_updates.items()])
        store.insert_new_identifiers(first_iid, [(t, v, ie[_PID], ie[_REASON]) for t, v, ie in new_idents])
        if ident_updates:
            store.set_identifier_people(ident_updates)
        bounds = [start for start, _ in rules[1:]] + [len(links)]
        for (start, rule_), stop in zip(rules, bounds):
            store.insert_new_identity_links(source, rule_, now, links[start:stop] if len(rules) > 1 else links, mult)
        if recount:
            self._restate_counts(recount)
        for target, others, c in merges:
            store.merge_people(target, others, reason="linked by " + reasons.get(c, "a shared identifier"),
                               at=self.now)
            for other in others:
                redirect[other] = target
        self.merged += sum(len(o) for _, o, _ in merges)
        self.created += len(new_people)
        self.records_created += len(new_records)
        # golden records of existing people that changed: new records or links, merges, re-derivations
        golden = {target_of[c] for c in people_of}
        golden.update(person(p) for p in rederived)
        if record_updates:
            golden.update(person(e[_PID]) for e in record_updates.values())
        golden.discard(None)
        golden.difference_update(new_people)  # written with their golden record already
        if golden:
            store.recompute_golden_records(golden, guards.priority)
        self._sync = (self._version, store.identity_epoch, next_rid, next_iid)
        if redirect:
            return [(e[_RID], person(e[_PID])) for e in entries]
        return [(e[_RID], e[_PID]) for e in entries]

    def _restate_counts(self, recount: dict[int, list]) -> None:
        """Keep the count in over-shared identifiers' flag reasons current: the source whose records
        carry the identifier most (live links; ties: the first source by name) and how many do."""
        guards = self.guards
        updates = []
        for iid, (source, count) in self.store.identifier_top_sources(list(recount)).items():
            ie = recount[iid]
            reason = guards.over_limit_reason(ie[_TYPE], source, count)
            if reason != ie[_REASON]:
                ie[_REASON] = reason
                updates.append((reason, iid))
        self.store.update_flag_reasons(updates)

    def _merge_reasons(self, source: str, touched: list, record_comps: list[int], merges: list, find) -> dict[int, str]:
        """Why each merging component merged: the first identifier that joined people in it.

        Replays, for the touched records of merging components only, the union-find the reason is
        defined by (nodes ordered identifiers < people < records, the smaller root wins; the first
        union whose identifier's side holds a person names the component's final root). The record's
        own person does not count: an identifier no one else carries (a new e-mail) joins nobody and
        never names a merge; the root such a union leaves keeps the name found before it.
        """
        merging = {c for _, _, c in merges}
        redirect = self._redirect
        person = self._person
        parent: dict[int, int] = {}

        def root_of(x: int) -> int:
            root = x
            up = parent[root]
            while up != root:
                root = up
                up = parent[root]
            while x != root:
                parent[x], x = root, parent[x]
            return root

        bridge: dict[int, str] = {}
        peopled: set[int] = set()  # roots of components that hold a person node
        for (entry, ies), c in zip(touched, record_comps):
            if find(c) not in merging:
                continue
            pid = entry[_PID]
            if pid is not None and pid in redirect:
                pid = person(pid)
            a = _PERSON + pid if pid is not None else _RECORD + entry[_RID]
            if a in parent:
                ra = root_of(a)
            else:
                parent[a] = ra = a
            for ie in ies:
                if ie[_REASON] is not None:
                    continue
                ipid = ie[_PID]
                if ipid is None:
                    b = ie[_IID]
                else:
                    if ipid in redirect:
                        ipid = person(ipid)
                    b = _PERSON + ipid
                if b in parent:
                    rb = root_of(b)
                else:
                    parent[b] = rb = b
                if ra != rb:
                    root, child = (ra, rb) if ra < rb else (rb, ra)
                    parent[child] = root
                    if rb in peopled or _PERSON <= rb < _RECORD:  # the identifier reaches a person
                        bridge.setdefault(root, f"{ie[_TYPE]} identifier #{ie[_IID]} on a {source} record")
                        peopled.add(root)
                    else:
                        if child in bridge:
                            bridge.setdefault(root, bridge[child])
                        if ra in peopled or _PERSON <= ra < _RECORD:
                            peopled.add(root)
                    ra = root
        out = {}
        for target, _others, c in merges:
            text = bridge.get(root_of(_PERSON + target))
            if text is not None:
                out[c] = text
        return out

    def _new_golden_records(self, source: str, first_pid: int, n_people: int, new_records: list[list],
                            new_keys: list[str], new_attrs: list, multi: set[int], touched: list) -> list[str]:
        """Golden-record JSON of the people created in this batch (ids ``first_pid`` on), without a query.

        A person created here is made of records created here only (every stored record already has
        a person), so the store's rule (:meth:`recompute_golden_records`) can be applied in memory: the
        record holding the highest-priority unflagged identifier type wins each attribute, ties broken
        by source and record key.
        """
        if not n_people:
            return []
        out: list[str | None] = [None] * n_people
        empty = _dumps({"sources": [source]})
        per_person: dict[int, list[tuple]] = {}
        tail = ', "sources": ' + _dumps([source]) + "}"
        for entry, key, attributes in zip(new_records, new_keys, new_attrs):
            pid = entry[_PID]
            n = pid - first_pid
            if n < 0:
                continue  # joined an existing person
            if pid in multi:
                per_person.setdefault(pid, []).append((entry, key))
                continue
            text = entry[_ATTRS]
            if text == "{}":
                out[n] = empty
            elif _golden_is_record_plus_sources(text, attributes):
                out[n] = text[:-1] + tail
            else:  # as the store's rule reads the record back
                golden: dict[str, Any] = {}
                for name, value in fast_loads(text).items():
                    if value is not None and value != "":
                        golden[name] = value
                golden["sources"] = [source]
                out[n] = _dumps(golden)
        if per_person:
            rank = self._rank
            worst = len(rank)
            best: dict[int, int] = {}
            for entry, ies in touched:
                if entry[_PID] in per_person:
                    b = best.get(entry[_RID], worst + 1)
                    for ie in ies:
                        if ie[_REASON] is None:
                            r = rank.get(ie[_TYPE], worst)
                            if r < b:
                                b = r
                    best[entry[_RID]] = b
            for pid, members in per_person.items():
                ordered = sorted((best.get(e[_RID], worst + 1), source, key, e[_ATTRS]) for e, key in members)
                golden: dict[str, Any] = {}
                for _best, _source, _key, attributes in ordered:
                    if attributes != "{}":
                        for name, value in fast_loads(attributes).items():
                            if value is not None and value != "" and name not in golden:
                                golden[name] = value
                golden["sources"] = [source]
                out[pid - first_pid] = _dumps(golden)
        return out

    # ------------------------------------------------------------------------------------------

    def flag(self, identifiers: Iterable[Identifier], reason: str) -> int:
        """Flag identifiers (e.g. advisors' work phones) so they never link; re-derives who they joined."""
        store = self.store
        pairs = [(i.type, i.value) for i in identifiers]
        found = store.find_identifiers(pairs)
        next_iid = store.identity_next_ids()[2]
        new_rows = []
        rederive = set()
        flagged = 0
        for pair in dict.fromkeys(pairs):
            if pair in found:
                iid, pid, existing = found[pair]
                if existing is not None:
                    continue
                pid = store.flag_identifier(iid, reason)
                flagged += 1
                if pid is not None:
                    rederive.add(pid)
            else:
                new_rows.append((next_iid, pair[0], pair[1], None, reason))
                next_iid += 1
        store.insert_identifiers(new_rows)
        rederived: set[int] = set()
        for pid in sorted(rederive):
            rederived.update(store.rederive_person(pid, reason="identifier flagged: " + reason, at=self.now))
        if rederived:
            store.recompute_golden_records(rederived, self.guards.priority)
        self.reset()
        self.flagged += flagged + len(new_rows)
        return len(new_rows) + len(rederive)

    def _load(self, source: str, records: dict[str, list], keys: list[str], observations: Sequence[Observation]) -> None:
        """Bring the batch's records and identifiers the cache does not hold from the store (one query
        each), with the links of those records and the counts of those identifiers for ``source``."""
        store = self.store
        missing = [k for k in dict.fromkeys(keys) if k not in records]
        if missing:
            found = store.find_records(source, missing)
            if found:
                links = store.record_link_ids([v[0] for v in found.values()])
                for key, (rid, pid, attributes) in found.items():
                    records[key] = [rid, pid, attributes, tuple(sorted(links.get(rid, ())))]
                self._n_records += len(found)
        idents = self._idents
        wanted: dict[tuple[str, str], None] = {}
        for o in observations:
            for i in o.identifiers:
                by_value = idents.get(i.type)
                if by_value is None or i.value not in by_value:
                    wanted[(i.type, i.value)] = None
        if wanted:
            found_ids = store.find_identifiers(list(wanted))
            for (type_, value), (iid, pid, reason) in found_ids.items():
                idents.setdefault(type_, {})[value] = [iid, pid, reason, 0, None, type_]
            self._n_idents += len(found_ids)
        # how many records of this source carry each identifier stored before this cache started
        counts = self._counts
        own_iid = self._own[1]
        uncounted: dict[int, list] = {}
        for o in observations:
            for i in o.identifiers:
                ie = idents[i.type].get(i.value) if i.type in idents else None
                if (ie is not None and ie[_IID] < own_iid and ie[_REASON] is None and ie[_COUNTED] != source
                        and (ie[_IID], source) not in counts):
                    uncounted[ie[_IID]] = ie
        if uncounted:
            found_counts = store.identifier_link_counts(source, list(uncounted))
            for iid, ie in uncounted.items():
                n = found_counts.get(iid, 0)
                if ie[_COUNTED] is None:
                    ie[_COUNT], ie[_COUNTED] = n, source
                else:
                    counts[(iid, source)] = n

    def _refresh_people(self, people: set[int]) -> None:
        """After a re-derivation in the store: reload the people of the cached records and identifiers
        that belonged to ``people`` (the re-derived ids and the pieces they became)."""
        redirect = self._redirect
        affected = set(people)
        for old in [o for o in redirect if self._person(o) in affected]:
            affected.add(old)
        for old in affected:
            redirect.pop(old, None)
        record_rows, ident_rows = self.store.identity_rows_of_people(affected)
        records = self._records
        for source, key, pid in record_rows:
            entry = records.get(source, {}).get(key)
            if entry is not None:
                entry[_PID] = pid
        idents = self._idents
        for type_, value, pid in ident_rows:
            ie = idents.get(type_, {}).get(value)
            if ie is not None:
                ie[_PID] = pid


def _golden_is_record_plus_sources(text: str, attributes: dict) -> bool:
    """Whether a one-record person's golden record is that record's JSON ``text`` (made from
    ``attributes``) with ``"sources"`` added as its last name.

    It is when reading ``text`` back gives every value (no top-level ``null`` or ``""``, which the rule
    drops), encoding that again gives ``text`` (no nested object, whose names could come back in
    another order) and every name is text sorting before ``"sources"``. The text checks are
    conservative: a string merely containing ``null`` takes the general path, with the same result.
    """
    if "null" in text or '""' in text or "{" in text[1:]:
        return False
    try:
        return max(attributes) < "sources"
    except TypeError:  # a name that is not text
        return False
