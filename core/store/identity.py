"""One-ID: identity records, identifiers, links, merges and splits (every SQL statement on those tables).

The graph: an *identity record* (one CRM customer, one lead, one combination of identifiers seen
together on events) carries *identifiers* through *links*. People are the connected components of
records joined by identifiers that are not flagged (junk, over-shared, split off by an operator).

Stable ids: a person is created by one record (its ``origin_person_id``); a component's id is the
smallest origin id among its records. Merging two components therefore keeps the older id, and a
split hands every piece the id it had before the merge (``person_merges`` maps the others to it).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterable, Iterator, Sequence

from .codec import iso, loads, utc_now
from .people import CONSENT_PRECEDENCE

_CHUNK = 5000


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _marks(n: int) -> str:
    return ",".join("?" * n)


# Bulk rows go to SQLite as one JSON array per statement (``INSERT ... SELECT ... FROM json_each(?)``):
# binding a handful of parameters per row through ``executemany`` costs more than SQLite's own work.
# (json_extract, not ->>: several json_extract calls on one row's text share its parse.)
# SQLite's JSON functions end a string at an escaped NUL, so a batch holding one falls back to executemany.
_json = json.JSONEncoder(ensure_ascii=False, check_circular=False, allow_nan=False).encode
_NUL = "\\u0000"


def _fast_encoder():
    """codec.dumps (UTF-8, sorted keys, ``default=str``, NaN and Infinity refused) with its C encoder made once: JSONEncoder.encode
    makes one per call, which costs twice what encoding a small record does. (No check for circular
    structures: attributes parsed from rows have none.)"""
    encoder = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str, allow_nan=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator
        return encoder.encode
    # (markers, default, encoder, indent, key separator, item separator, sort_keys, skipkeys, allow_nan)
    one = make(None, str, json.encoder.encode_basestring, None, ": ", ", ", True, False, False)
    join = "".join

    def fast_dumps(value: Any) -> str:
        return join(one(value, 0))

    return fast_dumps


fast_dumps = _fast_encoder()
_scan = json.JSONDecoder().scan_once


def fast_loads(text: str | None) -> Any:
    """codec.loads of the JSON text the store wrote, without json.loads' per-call set-up."""
    if text:
        try:
            value, end = _scan(text, 0)
        except StopIteration:  # (leading white space, or not JSON: json.loads says which)
            return json.loads(text)
        if end == len(text):
            return value
    return loads(text)


def _json_rows(rows: Any) -> str | None:
    """``rows`` as JSON text for ``json_each``, or None when it cannot carry them exactly (a NUL)."""
    try:
        text = _json(rows)
    except ValueError:  # NaN / infinity: not JSON
        return None
    return None if _NUL in text else text


class IdentityMixin:
    # -- change tracking --------------------------------------------------------------------------

    @property
    def identity_epoch(self) -> int:
        """Bumped by every write to the identity graph made through this store object (records,
        identifiers, links, merges, splits): a cache of the graph compares it with the value it saw
        after its own writes (other connections' commits show in ``PRAGMA data_version``)."""
        return self.__dict__.get("_identity_epoch", 0)

    def _identity_changed(self) -> None:
        self.__dict__["_identity_epoch"] = self.__dict__.get("_identity_epoch", 0) + 1

    # -- id allocation (callers hold the write lock: BEGIN IMMEDIATE) -----------------------------

    def identity_next_ids(self) -> tuple[int, int, int]:
        """Next free (person id, record id, identifier id)."""
        one = lambda sql: (self.conn.execute(sql).fetchone()[0] or 0) + 1  # noqa: E731
        person = max(one("SELECT max(id) FROM people"), one("SELECT max(old_id) FROM person_merges"))
        return person, one("SELECT max(id) FROM identity_records"), one("SELECT max(id) FROM identifiers")

    # -- lookups (one statement per batch: the batch's keys as a JSON array joined to the index) ---

    def find_records(self, source: str, keys: Sequence[str]) -> dict[str, tuple[int, int, str]]:
        """``source_key -> (record id, person id, attributes JSON)`` for the keys that exist."""
        found: dict[str, tuple[int, int, str]] = {}
        keys = list(keys)
        text = _json_rows(keys) if keys else None
        if text is not None:
            for key, rid, pid, attributes in self.conn.execute(
                "SELECT j.value, r.id, r.person_id, r.attributes FROM json_each(?) AS j "
                "CROSS JOIN identity_records r ON r.source = ? AND r.source_key = j.value",
                (text, source),
            ):
                found[key] = (rid, pid, attributes)
            return found
        for chunk in _chunks(keys):
            for key, rid, pid, attributes in self.conn.execute(
                f"SELECT source_key, id, person_id, attributes FROM identity_records "
                f"WHERE source = ? AND source_key IN ({_marks(len(chunk))})",
                (source, *chunk),
            ):
                found[key] = (rid, pid, attributes)
        return found

    def record_link_ids(self, record_ids: Sequence[int]) -> dict[int, set[int]]:
        """``record id -> identifier ids`` it is linked to (removed links included: never re-added)."""
        links: dict[int, set[int]] = {}
        if record_ids:
            for rid, iid in self.conn.execute(
                "SELECT l.record_id, l.identifier_id FROM json_each(?) AS j "
                "CROSS JOIN identity_links l ON l.record_id = j.value",
                (_json(list(record_ids)),),
            ):
                links.setdefault(rid, set()).add(iid)
        return links

    def find_identifiers(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int | None, str | None]]:
        """``(type, value) -> (identifier id, person id, flag reason or None)`` for those that exist."""
        found: dict[tuple[str, str], tuple[int, int | None, str | None]] = {}
        by_type: dict[str, list[str]] = {}
        for type_, value in pairs:
            by_type.setdefault(type_, []).append(value)
        for type_, values in by_type.items():
            text = _json_rows(values)
            if text is not None:
                rows = self.conn.execute(
                    "SELECT j.value, i.id, i.person_id, i.flagged, i.flag_reason FROM json_each(?) AS j "
                    "CROSS JOIN identifiers i ON i.type = ? AND i.value = j.value",
                    (text, type_),
                ).fetchall()
            else:
                rows = []
                for chunk in _chunks(values):
                    rows += self.conn.execute(
                        f"SELECT value, id, person_id, flagged, flag_reason FROM identifiers "
                        f"WHERE type = ? AND value IN ({_marks(len(chunk))})",
                        (type_, *chunk),
                    ).fetchall()
            for value, iid, pid, flagged, reason in rows:
                found[(type_, value)] = (iid, pid, (reason or "flagged") if flagged else None)
        return found

    def identifier_link_counts(self, source: str, identifier_ids: Sequence[int]) -> dict[int, int]:
        """How many records of ``source`` carry each identifier (live links)."""
        counts: dict[int, int] = {}
        if identifier_ids:
            for iid, n in self.conn.execute(
                "SELECT l.identifier_id, count(*) FROM json_each(?) AS j CROSS JOIN identity_links l "
                "ON l.identifier_id = j.value WHERE l.source = ? AND l.removed_at IS NULL GROUP BY l.identifier_id",
                (_json(list(identifier_ids)), source),
            ):
                counts[iid] = n
        return counts

    def identifier_top_sources(self, identifier_ids: Sequence[int]) -> dict[int, tuple[str, int]]:
        """``identifier id -> (source, records)``: the source whose records carry it most (live links;
        ties: the first source by name)."""
        top: dict[int, tuple[str, int]] = {}
        if identifier_ids:
            for iid, source, n in self.conn.execute(
                "SELECT l.identifier_id, l.source, count(*) AS n FROM json_each(?) AS j CROSS JOIN identity_links l "
                "ON l.identifier_id = j.value WHERE l.removed_at IS NULL GROUP BY l.identifier_id, l.source "
                "ORDER BY l.identifier_id, n DESC, l.source",
                (_json(list(identifier_ids)),),
            ):
                top.setdefault(iid, (source, n))
        return top

    def identifier_flag_reason(self, identifier_id: int) -> tuple[bool, str | None]:
        """``(exists, flag reason or None)`` of one identifier (``(False, None)`` when there is no such id)."""
        row = self.conn.execute("SELECT flag_reason FROM identifiers WHERE id = ?", (identifier_id,)).fetchone()
        return (False, None) if row is None else (True, row[0])

    def update_flag_reasons(self, rows: Sequence[tuple[str, int]]) -> None:
        """``(reason, identifier id)`` of flagged identifiers whose reason changed."""
        if rows:
            self._identity_changed()
            self.conn.executemany("UPDATE identifiers SET flag_reason = ? WHERE id = ? AND flagged = 1", list(rows))

    def person_of_identifier(self, type_: str, value: str) -> int | None:
        row = self.conn.execute("SELECT person_id FROM identifiers WHERE type = ? AND value = ?", (type_, value)).fetchone()
        return None if row is None else row[0]

    def person_exists(self, person_id: int) -> bool:
        return self.conn.execute("SELECT 1 FROM people WHERE id = ?", (person_id,)).fetchone() is not None

    def identity_rows_of_people(self, person_ids: Iterable[int]) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
        """``(source, source_key, person id)`` of the records and ``(type, value, person id)`` of the
        identifiers that belong to these people (to refresh a cache after a re-derivation)."""
        text = _json(sorted(set(person_ids)))
        records = self.conn.execute(
            "SELECT r.source, r.source_key, r.person_id FROM json_each(?) AS j "
            "CROSS JOIN identity_records r ON r.person_id = j.value",
            (text,),
        ).fetchall()
        identifiers = self.conn.execute(
            "SELECT i.type, i.value, i.person_id FROM json_each(?) AS j CROSS JOIN identifiers i ON i.person_id = j.value",
            (text,),
        ).fetchall()
        return records, identifiers

    # -- writes -----------------------------------------------------------------------------------

    def insert_people_rows(self, rows: Iterable[tuple[int, str, str]]) -> None:
        """``(id, attributes JSON, at ISO)`` rows."""
        self.conn.executemany(
            "INSERT INTO people (id, attributes, created_at, updated_at) VALUES (?, ?, ?, ?)",
            [(pid, attributes, at, at) for pid, attributes, at in rows],
        )

    def insert_new_people(self, first_id: int, attributes: Sequence[str], at: str) -> None:
        """People ``first_id``, ``first_id + 1``, ... with these golden-record JSON texts."""
        if not attributes:
            return
        text = _json_rows(attributes)
        if text is None:
            self.insert_people_rows((first_id + n, a, at) for n, a in enumerate(attributes))
            return
        self.conn.execute(
            "INSERT INTO people (id, attributes, created_at, updated_at) SELECT ?1 + key, value, ?2, ?2 FROM json_each(?3)",
            (first_id, at, text),
        )

    def insert_identity_records(self, rows: Iterable[tuple]) -> None:
        """``(id, source, source_key, person_id, origin_person_id, attributes JSON, at ISO)`` rows."""
        self._identity_changed()
        self.conn.executemany(
            "INSERT INTO identity_records (id, source, source_key, person_id, origin_person_id, attributes, "
            "first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(*row[:6], row[6], row[6]) for row in rows],
        )

    def insert_new_identity_records(self, first_id: int, source: str, rows: Sequence[tuple[str, int, int | None, str]],
                                    at: str) -> None:
        """Records ``first_id``, ``first_id + 1``, ... of ``source``: ``(source_key, person_id,
        origin_person_id, attributes JSON)`` rows."""
        if not rows:
            return
        text = _json_rows(rows)
        if text is None:
            self.insert_identity_records((first_id + n, source, *row, at) for n, row in enumerate(rows))
            return
        self._identity_changed()
        self.conn.execute(
            "INSERT INTO identity_records (id, source, source_key, person_id, origin_person_id, attributes, "
            "first_seen, last_seen) SELECT ?1 + key, ?2, json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
            "json_extract(value, '$[2]'), json_extract(value, '$[3]'), ?3, ?3 "
            "FROM json_each(?4)",
            (first_id, source, at, text),
        )

    def update_record_attributes(self, rows: Iterable[tuple[str, str, int]]) -> None:
        """``(attributes JSON, at ISO, record id)``."""
        self._identity_changed()
        self.conn.executemany("UPDATE identity_records SET attributes = ?, last_seen = ? WHERE id = ?", list(rows))

    def insert_identifiers(self, rows: Iterable[tuple[int, str, str, int | None, str | None]]) -> None:
        """``(id, type, value, person_id, flag reason or None)`` rows."""
        self._identity_changed()
        self.conn.executemany(
            "INSERT INTO identifiers (id, type, value, person_id, flagged, flag_reason) VALUES (?, ?, ?, ?, ?, ?)",
            [(iid, t, v, pid, int(reason is not None), reason) for iid, t, v, pid, reason in rows],
        )

    def insert_new_identifiers(self, first_id: int, rows: Sequence[tuple[str, str, int | None, str | None]]) -> None:
        """Identifiers ``first_id``, ``first_id + 1``, ...: ``(type, value, person_id, flag reason or None)``."""
        if not rows:
            return
        text = _json_rows(rows)
        if text is None:
            self.insert_identifiers((first_id + n, *row) for n, row in enumerate(rows))
            return
        self._identity_changed()
        self.conn.execute(
            "INSERT INTO identifiers (id, type, value, person_id, flagged, flag_reason) "
            "SELECT ?1 + key, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
            "json_extract(value, '$[3]') IS NOT NULL, json_extract(value, '$[3]') FROM json_each(?2)",
            (first_id, text),
        )

    def set_identifier_people(self, rows: Iterable[tuple[int | None, int]]) -> None:
        """``(person id, identifier id)``."""
        self._identity_changed()
        self.conn.executemany("UPDATE identifiers SET person_id = ? WHERE id = ?", list(rows))

    def insert_identity_links(self, rows: Iterable[tuple]) -> None:
        """``(record_id, identifier_id, source, rule, at ISO, valid_from, valid_to)`` rows."""
        self._identity_changed()
        self.conn.executemany(
            "INSERT OR IGNORE INTO identity_links (record_id, identifier_id, source, rule, created_at, valid_from, "
            "valid_to) VALUES (?, ?, ?, ?, ?, ?, ?)",
            list(rows),
        )

    def insert_new_identity_links(self, source: str, rule: str, at: str, codes: Sequence[int], mult: int) -> None:
        """Links of one source and rule, in this order, without a validity period; each given as one
        integer ``record_id * mult + identifier_id`` (``identifier_id < mult``)."""
        if not codes:
            return
        self._identity_changed()
        if max(codes) < 1 << 63:  # SQLite's integers
            self.conn.execute(
                "INSERT OR IGNORE INTO identity_links (record_id, identifier_id, source, rule, created_at) "
                "SELECT value / ?1, value % ?1, ?2, ?3, ?4 FROM json_each(?5)",
                (mult, source, rule, at, _json(codes)),
            )
        else:
            self.insert_identity_links((*divmod(code, mult), source, rule, at, None, None) for code in codes)

    def flag_identifier(self, identifier_id: int, reason: str) -> int | None:
        """Flag an identifier so it stops linking; returns the person it belonged to (to re-derive)."""
        self._identity_changed()
        row = self.conn.execute("SELECT person_id FROM identifiers WHERE id = ?", (identifier_id,)).fetchone()
        self.conn.execute(
            "UPDATE identifiers SET flagged = 1, flag_reason = ?, person_id = NULL WHERE id = ?", (reason, identifier_id)
        )
        return None if row is None else row[0]

    def mark_identity_dirty(self, person_ids: Iterable[int]) -> None:
        self.conn.executemany("INSERT OR IGNORE INTO identity_dirty (person_id) VALUES (?)", [(p,) for p in person_ids])

    def merge_people(self, target: int, others: Sequence[int], *, reason: str, at: dt.datetime | None = None) -> None:
        """Merge ``others`` into ``target`` (the smallest id): records, identifiers and the merge log follow.

        Events, ownerships, relations, consents, tags and memberships follow in :meth:`settle_identity`.
        """
        others = [o for o in others if o != target]
        if not others:
            return
        self._identity_changed()
        now = iso(at or utc_now())
        conn = self.conn
        for chunk in _chunks(others):
            marks = _marks(len(chunk))
            conn.execute(f"UPDATE person_merges SET new_id = ? WHERE new_id IN ({marks})", (target, *chunk))
            conn.executemany(
                "INSERT INTO person_merges (old_id, new_id, merged_at, reason) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(old_id) DO UPDATE SET new_id = excluded.new_id, merged_at = excluded.merged_at, "
                "reason = excluded.reason",
                [(o, target, now, reason) for o in chunk],
            )
            conn.execute(f"UPDATE identity_records SET person_id = ? WHERE person_id IN ({marks})", (target, *chunk))
            conn.execute(f"UPDATE identifiers SET person_id = ? WHERE person_id IN ({marks})", (target, *chunk))
            conn.execute(
                f"UPDATE people SET created_at = min(created_at, (SELECT min(created_at) FROM people "
                f"WHERE id IN ({marks}))) WHERE id = ?",
                (*chunk, target),
            )
            conn.execute(f"DELETE FROM people WHERE id IN ({marks})", tuple(chunk))
        self.mark_identity_dirty([target, *others])

    def rederive_person(self, person_id: int, *, reason: str, at: dt.datetime | None = None) -> list[int]:
        """Recompute the people of ``person_id``'s records from the live graph (after a flag or a split).

        Every resulting component gets the smallest origin id among its records; ids that lost their
        merge-log entry come back to life. Returns the ids of the resulting people.
        """
        self._identity_changed()
        conn = self.conn
        now = iso(at or utc_now())
        records = conn.execute(
            "SELECT id, origin_person_id FROM identity_records WHERE person_id = ? ORDER BY id", (person_id,)
        ).fetchall()
        if not records:
            return []
        parent = {rid: rid for rid, _ in records}

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        by_identifier: dict[int, int] = {}
        for rid, iid in conn.execute(
            "SELECT l.record_id, l.identifier_id FROM identity_links l JOIN identifiers i ON i.id = l.identifier_id "
            "JOIN identity_records r ON r.id = l.record_id WHERE r.person_id = ? AND l.removed_at IS NULL "
            "AND i.flagged = 0",
            (person_id,),
        ):
            first = by_identifier.setdefault(iid, rid)
            a, b = find(first), find(rid)
            if a != b:
                parent[max(a, b)] = min(a, b)
        components: dict[int, list[tuple[int, int | None]]] = {}
        for rid, origin in records:
            components.setdefault(find(rid), []).append((rid, origin))
        attributes, created = conn.execute(
            "SELECT attributes, created_at FROM people WHERE id = ?", (person_id,)
        ).fetchone() or ("{}", now)
        consents = conn.execute(
            "SELECT channel, granted, ts, source, dated FROM consents WHERE person_id = ?", (person_id,)
        ).fetchall()
        result = []
        for members in components.values():
            origins = sorted(o for _, o in members if o is not None)
            new_id = origins[0] if origins else None
            if new_id is None:  # a record that never created a person (cannot happen via ingest): new id
                new_id = self.identity_next_ids()[0]
                conn.execute("UPDATE identity_records SET origin_person_id = ? WHERE id = ?", (new_id, members[0][0]))
            result.append(new_id)
            if new_id != person_id:
                conn.execute("DELETE FROM person_merges WHERE old_id = ?", (new_id,))
                conn.execute(
                    "INSERT OR IGNORE INTO people (id, attributes, created_at, updated_at) VALUES (?, ?, ?, ?)",
                    (new_id, attributes, created, now),
                )
                # Opt-outs must survive a split: every piece keeps the consent state it had.
                conn.executemany(
                    "INSERT OR IGNORE INTO consents (person_id, channel, granted, ts, source, dated) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(new_id, *c) for c in consents],
                )
            for other in origins[1:]:
                conn.execute(
                    "INSERT INTO person_merges (old_id, new_id, merged_at, reason) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(old_id) DO UPDATE SET new_id = excluded.new_id",
                    (other, new_id, now, reason),
                )
            rids = [rid for rid, _ in members]
            for chunk in _chunks(rids):
                conn.execute(
                    f"UPDATE identity_records SET person_id = ? WHERE id IN ({_marks(len(chunk))})", (new_id, *chunk)
                )
        if person_id not in result:
            conn.execute("DELETE FROM people WHERE id = ?", (person_id,))
            # the old id stands for the piece that holds its oldest record
            conn.execute(
                "INSERT INTO person_merges (old_id, new_id, merged_at, reason) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(old_id) DO UPDATE SET new_id = excluded.new_id",
                (person_id, result[0], now, reason),
            )
        # identifiers follow the records that carry them (flagged ones belong to nobody)
        conn.execute(
            "UPDATE identifiers SET person_id = (SELECT min(r.person_id) FROM identity_links l "
            "JOIN identity_records r ON r.id = l.record_id WHERE l.identifier_id = identifiers.id "
            "AND l.removed_at IS NULL) WHERE person_id = ? AND flagged = 0",
            (person_id,),
        )
        self.mark_identity_dirty([person_id, *result])
        return result

    def remove_identity_link(self, link_id: int, *, at: dt.datetime | None = None) -> int | None:
        """Mark one link removed (it never links again); returns the person to re-derive."""
        self._identity_changed()
        row = self.conn.execute(
            "SELECT r.person_id FROM identity_links l JOIN identity_records r ON r.id = l.record_id WHERE l.id = ?",
            (link_id,),
        ).fetchone()
        self.conn.execute(
            "UPDATE identity_links SET removed_at = ?, valid_to = coalesce(valid_to, ?) WHERE id = ?",
            (iso(at or utc_now()), iso(at or utc_now()), link_id),
        )
        return None if row is None else row[0]

    def restore_identity_link(self, link_id: int) -> tuple[int, int] | None:
        """Make a removed link live again (``valid_to`` set by its removal cleared); returns its
        ``(record id, identifier id)``, or None if there is no such link."""
        row = self.conn.execute(
            "SELECT record_id, identifier_id FROM identity_links WHERE id = ?", (link_id,)).fetchone()
        if row is None:
            return None
        self._identity_changed()
        self.conn.execute(
            "UPDATE identity_links SET valid_to = CASE WHEN valid_to = removed_at THEN NULL ELSE valid_to END, "
            "removed_at = NULL WHERE id = ?",
            (link_id,),
        )
        return row[0], row[1]

    def unflag_identifier(self, identifier_id: int) -> None:
        """Let a flagged identifier link again (its people are joined by :meth:`join_people_of_identifier`)."""
        self._identity_changed()
        self.conn.execute("UPDATE identifiers SET flagged = 0, flag_reason = NULL WHERE id = ?", (identifier_id,))

    def join_people_of_identifier(self, identifier_id: int, *, reason: str, at: dt.datetime | None = None) -> int | None:
        """Merge the people whose records carry an unflagged identifier (live links) into the oldest of
        them, and give the identifier to that person. Returns the person, or None if no record carries it."""
        conn = self.conn
        people = sorted({r[0] for r in conn.execute(
            "SELECT r.person_id FROM identity_links l JOIN identity_records r ON r.id = l.record_id "
            "JOIN identifiers i ON i.id = l.identifier_id WHERE l.identifier_id = ? AND l.removed_at IS NULL "
            "AND i.flagged = 0",
            (identifier_id,),
        )})
        if not people:
            return None
        self.merge_people(people[0], people[1:], reason=reason, at=at)
        self._identity_changed()
        conn.execute("UPDATE identifiers SET person_id = ? WHERE id = ? AND flagged = 0", (people[0], identifier_id))
        return people[0]

    # -- the split log ----------------------------------------------------------------------------

    def record_identity_split(self, person_id: int, *, identifier_id: int | None, link_id: int | None, reason: str,
                              people: Sequence[int], at: dt.datetime | None = None) -> int:
        """Log one split (the identifier it flagged or the link it removed); returns its number."""
        cur = self.conn.execute(
            "INSERT INTO identity_splits (person_id, identifier_id, link_id, reason, people, split_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (person_id, identifier_id, link_id, reason, _json(sorted(people)), iso(at or utc_now())),
        )
        return cur.lastrowid

    def mark_identity_split_undone(self, split_id: int, *, reason: str, at: dt.datetime | None = None) -> None:
        self.conn.execute("UPDATE identity_splits SET undone_at = ?, undo_reason = ? WHERE id = ?",
                          (iso(at or utc_now()), reason, split_id))

    def list_identity_splits(self, person_id: int | None = None, *, split_id: int | None = None) -> list[dict[str, Any]]:
        """Logged splits, oldest first: all, one (``split_id``), or those of a person (split from it or
        leaving it as one of the pieces)."""
        sql = ("SELECT s.id, s.person_id, s.identifier_id, s.link_id, s.reason, s.people, s.split_at, s.undone_at, "
               "s.undo_reason, i.type, i.value FROM identity_splits s LEFT JOIN identifiers i ON i.id = "
               "coalesce(s.identifier_id, (SELECT identifier_id FROM identity_links WHERE id = s.link_id))")
        params: tuple = ()
        if split_id is not None:
            sql += " WHERE s.id = ?"
            params = (split_id,)
        elif person_id is not None:
            sql += " WHERE s.person_id = ?1 OR EXISTS (SELECT 1 FROM json_each(s.people) WHERE value = ?1)"
            params = (person_id,)
        return [
            {"id": r[0], "person_id": r[1], "identifier_id": r[2], "link_id": r[3], "reason": r[4],
             "people": loads(r[5]), "split_at": r[6], "undone_at": r[7], "undo_reason": r[8], "type": r[9],
             "value": r[10]}
            for r in self.conn.execute(sql + " ORDER BY s.id", params)
        ]

    # -- golden record ----------------------------------------------------------------------------

    def recompute_golden_records(self, person_ids: Iterable[int], priority: Sequence[str]) -> int:
        """Rebuild people's attributes from their records: the record holding the highest-priority
        identifier type wins each attribute (ties: source name, then record key). Returns rows changed."""
        rank = {t: i for i, t in enumerate(priority)}
        worst = len(priority)
        rank_of: dict[str, int] = {}  # identifier type -> its rank
        ids = sorted(set(person_ids))
        changed = 0
        now = iso(utc_now())
        conn = self.conn
        for chunk in _chunks(ids, 20000):
            records, types = self._golden_record_rows(chunk)
            per_person: dict[int, list[tuple]] = {}
            for pid, rid, source, key, attributes in records:
                names = types.get(rid)
                best = worst + 1
                if names is not None:
                    for name in names:
                        r = rank_of.get(name)
                        if r is None:  # (as the type names were once read: joined by commas)
                            r = rank_of[name] = min((rank.get(t, worst) for t in name.split(",") if t), default=worst + 1)
                        if r < best:
                            best = r
                per_person.setdefault(pid, []).append((best, source, key, attributes))
            updates = []
            for pid, members in per_person.items():
                golden: dict[str, Any] = {}
                if len(members) > 1:
                    members.sort()
                for _best, _source, _key, attributes in members:
                    if attributes != "{}":
                        for name, value in fast_loads(attributes).items():
                            if value is not None and value != "" and name not in golden:
                                golden[name] = value
                golden["sources"] = sorted({r[1] for r in members})
                text = fast_dumps(golden)
                updates.append((text, now, pid, text))
            before = conn.total_changes
            conn.executemany("UPDATE people SET attributes = ?, updated_at = ? WHERE id = ? AND attributes != ?", updates)
            changed += conn.total_changes - before
        return changed

    def _golden_record_rows(self, person_ids: Sequence[int]) -> tuple[list[tuple], dict[int, list[str]]]:
        """The identity records of ``person_ids`` as ``(person_id, id, source, source_key, attributes)``, and
        the unflagged identifier types on each record's live links (``{record id: [type, ...]}``): the rows
        :meth:`recompute_golden_records` merges (the one engine-specific part of it)."""
        records = self.conn.execute(
            "SELECT r.person_id, r.id, r.source, r.source_key, r.attributes FROM json_each(?) AS j "
            "CROSS JOIN identity_records r ON r.person_id = j.value",
            (_json(list(person_ids)),),
        ).fetchall()
        types: dict[int, list[str]] = {}
        for rid, type_ in self.conn.execute(
            "SELECT l.record_id, i.type FROM json_each(?) AS j CROSS JOIN identity_links l ON l.record_id = j.value "
            "CROSS JOIN identifiers i ON i.id = l.identifier_id WHERE l.removed_at IS NULL AND i.flagged = 0",
            (_json([r[1] for r in records]),),
        ):
            types.setdefault(rid, []).append(type_)
        return records, types

    # -- settling: what follows people after merges and splits -------------------------------------

    def settle_identity(self) -> int:
        """Make events, ownerships, relations, consents, tags and memberships follow merges and splits.

        Works through ``identity_dirty`` (written with every merge/split) and empties it; safe to run
        again at any time. Returns how many dirty people were settled.
        """
        conn = self.conn
        n = conn.execute("SELECT count(*) FROM identity_dirty").fetchone()[0]
        if not n:
            return 0
        dirty = "(SELECT person_id FROM identity_dirty)"
        merged = "(SELECT d.person_id FROM identity_dirty d JOIN person_merges m ON m.old_id = d.person_id)"
        for table in ("events", "ownerships"):
            conn.execute(
                f"UPDATE {table} SET person_id = (SELECT r.person_id FROM identity_records r "
                f"WHERE r.id = {table}.record_id) WHERE person_id IN {dirty} AND record_id IS NOT NULL"
            )
        # rows written by other stages without a record (feedback events, ownerships added by hand)
        # follow the merge log
        for table in ("events", "ownerships"):
            conn.execute(
                f"UPDATE {table} SET person_id = (SELECT new_id FROM person_merges WHERE old_id = {table}.person_id) "
                f"WHERE person_id IN {merged} AND record_id IS NULL"
            )
        conn.execute(f"DELETE FROM person_relations WHERE person_id IN {dirty}")
        conn.execute(
            f"INSERT OR IGNORE INTO person_relations (person_id, kind, target_id, source, since) "
            f"SELECT r.person_id, rr.kind, rr.target_id, min(rr.source), min(rr.since) FROM record_relations rr "
            f"JOIN identity_records r ON r.id = rr.record_id WHERE r.person_id IN {dirty} "
            f"GROUP BY r.person_id, rr.kind, rr.target_id"
        )
        conn.execute(
            f"INSERT INTO consents (person_id, channel, granted, ts, source, dated) "
            f"SELECT m.new_id, c.channel, c.granted, c.ts, c.source, c.dated FROM consents c "
            f"JOIN person_merges m ON m.old_id = c.person_id WHERE c.person_id IN {merged} ORDER BY c.ts "
            f"ON CONFLICT(person_id, channel) DO UPDATE SET granted = excluded.granted, ts = excluded.ts, "
            f"source = excluded.source, dated = excluded.dated "
            f"WHERE {CONSENT_PRECEDENCE.format(after='NULL')}"  # the same precedence as set_consent
        )
        conn.execute(f"DELETE FROM consents WHERE person_id IN {merged}")
        for table, columns in (
            ("tag_values", "tag, {pid}, value, computed_at, calculator, calculator_version"),
            ("store_tag_values", "tag, store_id, {pid}, value, computed_at, calculator, calculator_version"),
            ("segment_members", "segment, {pid}, entered_at, computed_at, revision"),
        ):
            names = columns.format(pid="person_id")
            conn.execute(
                f"INSERT OR IGNORE INTO {table} ({names}) SELECT {columns.format(pid='m.new_id')} FROM {table} t "
                f"JOIN person_merges m ON m.old_id = t.person_id WHERE t.person_id IN {merged}"
            )
            conn.execute(f"DELETE FROM {table} WHERE person_id IN {merged}")
        conn.execute("DELETE FROM identity_dirty")
        return n

    # -- reading the graph (explain, stats) -------------------------------------------------------

    def identity_records_of(self, person_id: int) -> list[dict[str, Any]]:
        return [
            {"id": r[0], "source": r[1], "source_key": r[2], "attributes": loads(r[3]), "first_seen": r[4],
             "origin_person_id": r[5]}
            for r in self.conn.execute(
                "SELECT id, source, source_key, attributes, first_seen, origin_person_id FROM identity_records "
                "WHERE person_id = ? ORDER BY id",
                (person_id,),
            )
        ]

    def identity_links_of(self, person_id: int) -> list[dict[str, Any]]:
        """Every link of the person's records, with the identifier and its flag."""
        return [
            {"link_id": r[0], "record_id": r[1], "identifier_id": r[2], "type": r[3], "value": r[4],
             "flagged": bool(r[5]), "flag_reason": r[6], "source": r[7], "rule": r[8], "created_at": r[9],
             "valid_from": r[10], "valid_to": r[11], "removed_at": r[12]}
            for r in self.conn.execute(
                "SELECT l.id, l.record_id, l.identifier_id, i.type, i.value, i.flagged, i.flag_reason, l.source, "
                "l.rule, l.created_at, l.valid_from, l.valid_to, l.removed_at FROM identity_links l "
                "JOIN identifiers i ON i.id = l.identifier_id JOIN identity_records r ON r.id = l.record_id "
                "WHERE r.person_id = ? ORDER BY l.record_id, l.id",
                (person_id,),
            )
        ]

    def find_identifier(self, type_: str | None, value: str) -> list[tuple[int, str, str, int | None, str | None]]:
        """Identifiers with this value (of this type, or any type): (id, type, value, person, flag reason)."""
        if type_ is None:
            rows = self.conn.execute(
                "SELECT id, type, value, person_id, flag_reason FROM identifiers WHERE value = ?", (value,)
            )
        else:
            rows = self.conn.execute(
                "SELECT id, type, value, person_id, flag_reason FROM identifiers WHERE type = ? AND value = ?",
                (type_, value),
            )
        return [tuple(r) for r in rows]

    def records_of_identifier(self, identifier_id: int) -> list[tuple[int, str, str, int]]:
        return [
            tuple(r)
            for r in self.conn.execute(
                "SELECT r.id, r.source, r.source_key, r.person_id FROM identity_links l "
                "JOIN identity_records r ON r.id = l.record_id WHERE l.identifier_id = ? ORDER BY r.id",
                (identifier_id,),
            )
        ]

    def person_merges_into(self, person_id: int) -> list[tuple[int, str, str]]:
        """(old id, merged_at, reason) of ids that resolve to ``person_id``."""
        return [
            tuple(r)
            for r in self.conn.execute(
                "SELECT old_id, merged_at, reason FROM person_merges WHERE new_id = ? ORDER BY old_id", (person_id,)
            )
        ]

    def list_flagged_identifiers(self, *, type_: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Flagged identifiers (they link nobody): type, value, reason and how many records carry them,
        most carried first."""
        sql = ("SELECT i.id, i.type, i.value, i.flag_reason, (SELECT count(*) FROM identity_links l "
               "WHERE l.identifier_id = i.id AND l.removed_at IS NULL) AS n FROM identifiers i WHERE i.flagged = 1")
        params: list[Any] = []
        if type_ is not None:
            sql += " AND i.type = ?"
            params.append(type_)
        sql += " ORDER BY n DESC, i.type, i.value"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [{"id": r[0], "type": r[1], "value": r[2], "reason": r[3] or "flagged", "records": r[4]}
                for r in self.conn.execute(sql, params)]

    # -- identifiers that did not clean ------------------------------------------------------------

    def record_rejected_identifiers(self, source: str, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """``(type, value as read, lookup key, reason)`` of identifier values of ``source`` that did not
        clean; a value seen again keeps its first reason and moves ``last_seen``."""
        if not rows:
            return
        now = iso(utc_now())
        self.conn.executemany(
            "INSERT INTO rejected_identifiers (source, type, value, lookup, reason, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source, type, value) DO UPDATE SET last_seen = excluded.last_seen",
            [(source, t, v, k, r, now, now) for t, v, k, r in rows],
        )

    def list_rejected_identifiers(self, *, source: str | None = None, type_: str | None = None,
                                  lookup: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Rejected identifier values (newest first), optionally of one source, type or lookup key."""
        sql = "SELECT source, type, value, reason, first_seen, last_seen FROM rejected_identifiers WHERE 1 = 1"
        params: list[Any] = []
        for column, value in (("source", source), ("type", type_), ("lookup", lookup)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        sql += " ORDER BY last_seen DESC, source, type, value"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [{"source": r[0], "type": r[1], "value": r[2], "reason": r[3], "first_seen": r[4], "last_seen": r[5]}
                for r in self.conn.execute(sql, params)]

    def identity_stats(self, *, flagged_limit: int = 20) -> dict[str, Any]:
        one = lambda sql, *p: self.conn.execute(sql, p).fetchone()[0]  # noqa: E731
        return {
            "people": one("SELECT count(*) FROM people"),
            "records": one("SELECT count(*) FROM identity_records"),
            "identifiers": one("SELECT count(*) FROM identifiers"),
            "links": one("SELECT count(*) FROM identity_links WHERE removed_at IS NULL"),
            "removed_links": one("SELECT count(*) FROM identity_links WHERE removed_at IS NOT NULL"),
            "merged_ids": one("SELECT count(*) FROM person_merges"),
            "people_merged_from_several_records": one(
                "SELECT count(*) FROM (SELECT person_id FROM identity_records GROUP BY person_id HAVING count(*) > 1)"
            ),
            "identifiers_by_type": dict(self.conn.execute(
                "SELECT type, count(*) FROM identifiers GROUP BY type ORDER BY count(*) DESC").fetchall()),
            "records_by_source": dict(self.conn.execute(
                "SELECT source, count(*) FROM identity_records GROUP BY source ORDER BY source").fetchall()),
            "people_by_source_count": dict(self.conn.execute(
                "SELECT n, count(*) FROM (SELECT person_id, count(DISTINCT source) AS n FROM identity_records "
                "GROUP BY person_id) GROUP BY n ORDER BY n").fetchall()),
            "rejected_by_reason": dict(self.conn.execute(
                "SELECT reason, count(*) FROM rejected_identifiers GROUP BY reason ORDER BY count(*) DESC, reason"
            ).fetchall()),
            "flagged_by_reason": dict(self.conn.execute(
                "SELECT flag_reason, count(*) FROM identifiers WHERE flagged = 1 GROUP BY flag_reason "
                "ORDER BY count(*) DESC").fetchall()),
            "flagged": [
                {"type": r[0], "value": r[1], "reason": r[2], "records": r[3]}
                for r in self.conn.execute(
                    "SELECT i.type, i.value, i.flag_reason, (SELECT count(*) FROM identity_links l "
                    "WHERE l.identifier_id = i.id) AS n FROM identifiers i WHERE i.flagged = 1 "
                    "ORDER BY n DESC, i.type, i.value LIMIT ?",
                    (flagged_limit,),
                )
            ],
        }
