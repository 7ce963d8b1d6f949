"""Incremental identity resolution: union-find over records and identifiers, one batch at a time.

:meth:`IdentityResolver.resolve` takes the *observations* of one batch (a CRM row, the identifiers
seen together on an event, a car's owner), finds or creates their identity records, links them to
their identifiers and unites the people those identifiers already belong to. Everything is decided
in memory for the whole batch and written with a handful of ``executemany`` calls.

Guards (see :mod:`motorcade.identity.guards`): junk values are stored flagged and never link; an
identifier that more than N records of one source carry is flagged when it crosses the limit and the
person it had joined is re-derived without it, so the result does not depend on the order rows
arrive in: people are always the components of the graph over unflagged identifiers.

Callers hold the write transaction (``store.transaction()``) around :meth:`resolve`; if it fails,
call :meth:`reset` (the caches may hold ids of rows that were rolled back).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, Iterable, NamedTuple, Sequence

from ..model import Identifier
from ..store.codec import iso, loads, utc_now
from .guards import IdentityGuards

_CACHE_LIMIT = 3_000_000
# union-find node kinds (see resolve): identifier id, _PERSON + person id, _RECORD + record id
_PERSON = 1 << 48
_RECORD = 2 << 48
# codec.dumps with its settings made once (json.dumps builds an encoder per call when given options)
_dumps = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str).encode


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
        self.guards = guards or IdentityGuards()
        self.now = now
        self.merged = 0  # person ids merged away by this resolver
        self.created = 0  # people created
        self.flagged = 0  # identifiers flagged for crossing their limit
        self.records_created = 0  # identity records created
        self.reset()

    def reset(self) -> None:
        """Forget cached state (after a rollback, or when another writer may have changed the graph)."""
        self._records: dict[tuple[str, str], list] = {}  # (source, key) -> [record id, person id, attributes JSON]
        self._links: dict[int, set[int]] = {}  # record id -> identifier ids
        self._idents: dict[tuple[str, str], list] = {}  # (type, value) -> [id, person id, flag reason]
        self._counts: dict[tuple[int, str], int] = {}  # (identifier id, source) -> records carrying it
        self._redirect: dict[int, int] = {}  # person merged away in this run -> the id it merged into
        self.generation = getattr(self, "generation", 0) + 1  # entries of an earlier generation are stale

    def unchanged_record(self, source: str, key: str, identifiers: Sequence[Identifier]) -> list | None:
        """The cached ``[record id, person id, ...]`` entry of an attribute-less observation that
        :meth:`resolve` would leave as it is (a known record, every identifier linked already), else None.

        Callers skip resolving such observations and read the person after resolving the others
        (``person_of(entry[1])``), so merges made by those are followed; while :attr:`generation`
        is unchanged the entry is kept current.
        """
        entry = self._records.get((source, key))
        if entry is None:
            return None
        linked = self._links.get(entry[0])
        if linked is None:
            return None
        idents = self._idents
        for ident in identifiers:
            ie = idents.get((ident.type, ident.value))
            if ie is None or ie[0] not in linked:
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

    def resolve(self, source: str, observations: Sequence[Observation]) -> list[tuple[int, int]]:
        """``(record id, person id)`` for every observation, in order."""
        if len(self._records) > _CACHE_LIMIT or len(self._idents) > _CACHE_LIMIT:
            self.reset()
        store = self.store
        now = iso(self.now or utc_now())
        keys = [o.key if o.key else combination_key(o.identifiers) for o in observations]
        self._load(source, keys, observations)
        next_pid, next_rid, next_iid = store.identity_next_ids()
        guards = self.guards

        new_records: list[list] = []
        new_record_attrs: dict[int, str] = {}
        record_updates: dict[int, str] = {}
        new_idents: list[tuple[str, str, list]] = []
        new_links: list[tuple] = []
        newly_flagged: list[list] = []
        touched: list[tuple[list, Observation]] = []  # records with new links (or new records)
        entries: list[list] = []

        records, links, idents, counts = self._records, self._links, self._idents, self._counts
        limits: dict[str, int] = {}
        junk_reason = guards.junk_reason
        for obs, key in zip(observations, keys):
            entry = records.get((source, key))
            attrs_json = _dumps(obs.attributes) if obs.attributes else "{}"
            if entry is None:
                entry = [next_rid, None, attrs_json]
                next_rid += 1
                records[(source, key)] = entry
                links[entry[0]] = linked = set()
                new_records.append(entry)
                new_record_attrs[entry[0]] = key
                is_new = True
            else:
                is_new = False
                if obs.attributes and attrs_json != entry[2]:
                    entry[2] = attrs_json
                    if entry[0] not in new_record_attrs:
                        record_updates[entry[0]] = entry
                linked = links.get(entry[0])
                if linked is None:
                    linked = links[entry[0]] = set()
            entries.append(entry)
            new_link = False
            for ident in obs.identifiers:
                type_ = ident.type
                value = ident.value
                pair = (type_, value)
                ie = idents.get(pair)
                if ie is None:
                    ie = [next_iid, None, junk_reason(type_, value)]
                    next_iid += 1
                    idents[pair] = ie
                    counts[(ie[0], source)] = 0
                    new_idents.append((type_, value, ie))
                iid = ie[0]
                if iid in linked:
                    continue
                linked.add(iid)
                new_link = True
                new_links.append((entry[0], iid, source, obs.rule, now, None, None))
                count_key = (iid, source)
                count = counts.get(count_key)
                if count is None:  # preloaded by _load for every identifier of the batch; kept as a fallback
                    count = store.identifier_link_counts(source, [iid]).get(iid, 0)
                count += 1
                counts[count_key] = count
                if ie[2] is None:
                    limit = limits.get(type_)
                    if limit is None:
                        limit = limits[type_] = guards.limit(type_)
                    if count > limit:
                        ie[2] = guards.over_limit_reason(type_, source, count)
                        newly_flagged.append(ie)
            if is_new or new_link:
                touched.append((entry, obs))

        # Identifiers that crossed their limit stop linking: people they had joined are re-derived.
        rederived: set[int] = set()  # people re-derived here: their golden records are recomputed below
        if newly_flagged:
            self.flagged += len(newly_flagged)
            rederive = set()
            for ie in newly_flagged:
                if ie[0] < self._first_new_iid(new_idents):
                    pid = store.flag_identifier(ie[0], ie[2])
                    if pid is not None:
                        rederive.add(self._person(pid))
                ie[1] = None
            for pid in sorted(p for p in rederive if p is not None):
                rederived.update(store.rederive_person(pid, reason="identifier flagged: " + "; ".join(
                    sorted({ie[2] for ie in newly_flagged})), at=self.now))
            if rederive:
                self._refresh_persons()
        next_pid = store.identity_next_ids()[0]  # a re-derivation may have issued ids

        # Union-find over people (existing), new records and new identifiers. A node is an int that
        # orders like the (kind, id) pair it stands for: identifiers < people < records.
        parent: dict[int, int] = {}

        def find(x: int) -> int:
            root = x
            up = parent[root]
            while up != root:
                root = up
                up = parent[root]
            while x != root:  # path compression
                parent[x], x = root, parent[x]
            return root

        redirect = self._redirect
        person = self._person
        bridge: dict[int, str] = {}
        for entry, obs in touched:
            pid = entry[1]
            if pid is not None and pid in redirect:
                pid = person(pid)
            a = _PERSON + pid if pid is not None else _RECORD + entry[0]
            if a in parent:
                ra = find(a)
            else:
                parent[a] = ra = a
            for ident in obs.identifiers:
                ie = idents[(ident.type, ident.value)]
                if ie[2] is not None:
                    continue
                ipid = ie[1]
                if ipid is None:
                    b = ie[0]
                else:
                    if ipid in redirect:
                        ipid = person(ipid)
                    b = _PERSON + ipid
                if b in parent:
                    rb = find(b)
                else:
                    parent[b] = rb = b
                if ra != rb:
                    root, child = (ra, rb) if ra < rb else (rb, ra)
                    parent[child] = root
                    if _PERSON <= ra < _RECORD or _PERSON <= rb < _RECORD or ra in bridge or rb in bridge:
                        bridge.setdefault(root, f"{ident.type} identifier #{ie[0]} on a {source} record")
                    ra = root

        components: dict[int, list[int]] = {}
        for node in parent:
            components.setdefault(find(node), []).append(node)
        new_people: list[int] = []
        merges: list[tuple[int, list[int], str]] = []
        assign: dict[int, int] = {}
        for root, nodes in components.items():
            people = [n - _PERSON for n in nodes if _PERSON <= n < _RECORD]
            if people:
                people.sort()
                target = people[0]
                if len(people) > 1:
                    merges.append((target, people[1:], "linked by " + bridge.get(root, "a shared identifier")))
            else:
                target = next_pid
                next_pid += 1
                new_people.append(target)
            for n in nodes:
                assign[n] = target

        origin: dict[int, int] = {}
        for pid in new_people:
            origin[pid] = None  # filled below with the smallest new record of the component
        for entry in new_records:
            target = assign.get(_RECORD + entry[0])
            if target is None:  # an existing person reached through an identifier
                target = self._person(entry[1])
            entry[1] = target
            if target in origin and (origin[target] is None or entry[0] < origin[target]):
                origin[target] = entry[0]
        ident_updates = []
        for type_, value, ie in new_idents:
            if ie[2] is None:
                ie[1] = assign.get(ie[0])
        first_new_iid = self._first_new_iid(new_idents)
        for entry, obs in touched:
            for ident in obs.identifiers:
                ie = idents[(ident.type, ident.value)]
                if ie[2] is None and ie[1] is None:
                    ie[1] = entry[1] if entry[1] is not None else assign.get(ie[0])
                    if ie[0] < first_new_iid:
                        ident_updates.append((ie[1], ie[0]))

        # -- write ------------------------------------------------------------------------------
        new_golden = self._new_golden_records(source, new_people, new_records, new_record_attrs, touched)
        store.insert_people_rows([(pid, new_golden[pid], now) for pid in new_people])
        store.insert_identity_records([
            (e[0], source, new_record_attrs[e[0]], e[1], e[1] if origin.get(e[1]) == e[0] else None, e[2], now)
            for e in new_records
        ])
        if record_updates:
            store.update_record_attributes([(e[2], now, rid) for rid, e in record_updates.items()])
        store.insert_identifiers([(ie[0], t, v, ie[1], ie[2]) for t, v, ie in new_idents])
        if ident_updates:
            store.set_identifier_people(ident_updates)
        store.insert_identity_links(new_links)
        for target, others, reason in merges:
            store.merge_people(target, others, reason=reason, at=self.now)
            for other in others:
                self._redirect[other] = target
        self.merged += sum(len(o) for _, o, _ in merges)
        self.created += len(new_people)
        self.records_created += len(new_records)
        golden = {t for t, _, _ in merges}
        golden.update(self._person(p) for p in rederived)
        golden.update(self._person(e[1]) for e, _ in touched)
        if record_updates:
            golden.update(self._person(e[1]) for e in record_updates.values())
        golden.discard(None)
        golden.difference_update(new_golden)  # written with their golden record already
        if golden:
            store.recompute_golden_records(golden, guards.priority)
        return [(e[0], self._person(e[1])) for e in entries]

    def _new_golden_records(self, source: str, new_people: list[int], new_records: list[list],
                            new_record_attrs: dict[int, str], touched: list) -> dict[int, str]:
        """Golden-record JSON of the people created in this batch, without a query.

        A person created here is made of records created here only (every stored record already has
        a person), so the store's rule (:meth:`recompute_golden_records`) can be applied in memory: the
        record holding the highest-priority unflagged identifier type wins each attribute, ties broken
        by source and record key.
        """
        if not new_people:
            return {}
        fresh = set(new_people)
        rank = {t: i for i, t in enumerate(self.guards.priority)}
        worst = len(rank)
        best: dict[int, int] = {}
        idents = self._idents
        for entry, obs in touched:
            if entry[1] in fresh:
                b = best.get(entry[0], worst + 1)
                for ident in obs.identifiers:
                    if idents[(ident.type, ident.value)][2] is None:
                        r = rank.get(ident.type, worst)
                        if r < b:
                            b = r
                best[entry[0]] = b
        per_person: dict[int, list[tuple]] = {}
        for entry in new_records:
            if entry[1] in fresh:
                per_person.setdefault(entry[1], []).append(
                    (best.get(entry[0], worst + 1), source, new_record_attrs[entry[0]], entry[2]))
        out: dict[int, str] = {}
        for pid in new_people:
            golden: dict[str, Any] = {}
            for _best, _source, _key, attributes in sorted(per_person.get(pid, ())):
                if attributes != "{}":
                    for name, value in loads(attributes).items():
                        if value is not None and value != "" and name not in golden:
                            golden[name] = value
            golden["sources"] = [source]
            out[pid] = _dumps(golden)
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
        for pair in dict.fromkeys(pairs):
            if pair in found:
                iid, pid, existing = found[pair]
                if existing is not None:
                    continue
                pid = store.flag_identifier(iid, reason)
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
        return len(new_rows) + len(rederive)

    def _first_new_iid(self, new_idents: list) -> float:
        return new_idents[0][2][0] if new_idents else float("inf")

    def _load(self, source: str, keys: list[str], observations: Sequence[Observation]) -> None:
        store = self.store
        missing = [k for k in dict.fromkeys(keys) if (source, k) not in self._records]
        if missing:
            found = store.find_records(source, missing)
            for key, (rid, pid, attributes) in found.items():
                self._records[(source, key)] = [rid, pid, attributes]
            if found:
                links = store.record_link_ids([v[0] for v in found.values()])
                for rid, _pid, _a in found.values():
                    self._links[rid] = links.get(rid, set())
        idents = self._idents
        pairs = {(i.type, i.value) for o in observations for i in o.identifiers}
        missing_pairs = [p for p in pairs if p not in idents]
        if missing_pairs:
            for pair, (iid, pid, reason) in store.find_identifiers(missing_pairs).items():
                idents[pair] = [iid, pid, reason]
        # how many records of this source carry each stored identifier: one query per batch, not per link
        counts = self._counts
        uncounted = [ie[0] for p in pairs if (ie := idents.get(p)) is not None and (ie[0], source) not in counts]
        if uncounted:
            found = store.identifier_link_counts(source, uncounted)
            for iid in uncounted:
                counts[(iid, source)] = found.get(iid, 0)

    def _refresh_persons(self) -> None:
        """After a re-derivation in the store: reload the people of cached records and identifiers."""
        self._redirect.clear()
        conn = self.store.conn
        by_id = {}
        for entry in self._records.values():
            by_id[entry[0]] = entry
        ids = [rid for rid in by_id]
        for start in range(0, len(ids), 5000):
            chunk = ids[start:start + 5000]
            for rid, pid in conn.execute(
                f"SELECT id, person_id FROM identity_records WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ):
                by_id[rid][1] = pid
        pairs = list(self._idents)
        for pair, (iid, pid, reason) in self.store.find_identifiers(pairs).items():
            entry = self._idents[pair]
            entry[1] = pid
            if reason is not None:
                entry[2] = reason
