"""The store interface: every named function a stage, tag calculator or report may call on a store.

:class:`Store` is a typing ``Protocol`` composed of one protocol per pipeline stage (the same grouping as
the SQLite store's mixins: people, events, quarantine, identity, ingest, tags, segments, outbox, reports,
stats, inbox, access, tracking, journeys) plus :class:`StoreBase` (connection, transactions, migrations, the read-only query seam).
:class:`~motorcade.store.sqlite.SQLiteStore` implements it; a second engine (PostgreSQL) implements the
same functions and is checked the same way (:func:`motorcade.testing.store_conformance_problems`).

Contracts that hold for every function unless its docstring says otherwise:

* **Transactions.** A write function called inside :meth:`StoreBase.transaction` joins that
  transaction: it commits or rolls back with it, and readers on other connections see all of it or none
  of it. Called outside one, a function that says "in one transaction" is atomic by itself; any other
  write function commits each statement as it runs (autocommit), so a caller that needs several writes
  to land together opens a transaction around them.
* **Ordering.** Lists come back in the order the docstring names; "by id" means ascending. Ids of
  events, segment changes, inbox messages and quarantine rows grow in insertion order, so a reader can
  keep a high-water mark and ask for what came after it.
* **Idempotency.** Functions documented as idempotent on a key (events on ``(source, dedup_key)``,
  sends on ``idempotency_key``, inbox messages on ``(source, message_id)``, advisor tasks on their key)
  keep the first row written under that key; writing it again changes nothing and is not an error.
* **Times.** Datetimes passed in are timezone-aware; epoch seconds are whole seconds UTC; ISO text is
  the store's format (:func:`motorcade.store.codec.iso`).
* **Person ids** written through these functions follow the merge log (:meth:`PeopleStore.live_person_id`)
  where the docstring says so; :meth:`SegmentsStore.identity_settled` states the invariant.

Nothing outside a store implementation writes SQL for the operational tables. Code that genuinely builds
a query per rule (the segment compiler, a tag calculator's logic) builds a sqlglot tree, renders it with
``store.dialect`` and runs it with :meth:`StoreBase.query`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from motorcade.dsl.data import ValueTypes

    from .. import model
    from ..model import Advisor, Car, Consent, Event, Ownership, Person, TagValue
    from .events import BulkEventLoad
    from .quarantine import QuarantinedRow


@runtime_checkable
class StoreBase(Protocol):
    """Connection, transactions, schema and the read-only query seam every store offers."""

    dialect: str
    """The engine's name as sqlglot spells its dialect: ``"sqlite"``, ``"postgres"``, ... . Code that renders
    a sqlglot tree for :meth:`query` renders it with this dialect; a tag calculator that only runs on some
    engines declares ``supported_engines`` (see docs/plugins.md) and the tag engine compares it with this."""

    @property
    def location(self) -> str:
        """Where the data lives, for messages to an operator: a file path, or a URL without its password."""
        ...

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = True) -> Iterator[Any]:
        """One write transaction: everything the named functions write inside commits together when the
        block ends, or rolls back when it raises. ``immediate=True`` takes the write lock up front (so the
        reads inside see what the writes will be applied to); ``immediate=False`` starts as a reader.
        Nests: an inner ``transaction()`` is a savepoint of the outer one (its failure rolls back only the
        inner block). What it yields is engine-specific and is not to be used outside the store."""
        ...

    def external_change_mark(self) -> tuple[Any, ...]:
        """A value equal between two calls on this thread exactly when no other connection (another thread,
        process or host) has committed a write in between; this connection's own writes leave it alone (a
        cache tracks those itself, e.g. :attr:`IdentityStore.identity_epoch`). A reconnect changes it."""
        ...

    def close(self) -> None:
        """Close this thread's connection (the store may be used again: it reconnects on demand)."""
        ...

    def schema_version(self) -> int:
        """How many of :data:`motorcade.store.migrations.MIGRATIONS` are applied (0 for an empty database)."""
        ...

    def migrate(self, *, upto: int | None = None) -> list[str]:
        """Apply pending migrations in order, each in its own transaction and recorded once, up to number
        ``upto`` (all by default); return the names applied. Safe to run from several processes at once:
        a migration another process applied meanwhile is skipped. A database newer than this code raises."""
        ...

    def query(self, sql: str, params: tuple | dict = ()) -> list[Any]:
        """Run one read-only statement (``SELECT``/``WITH``/``EXPLAIN``) written in :attr:`dialect` and return
        its rows; each row is indexable by position (and by column name) and unpacks like a tuple. Writes
        are refused with ValueError. SQL text must come from a sqlglot tree rendered with :attr:`dialect`
        or from the store's own code; values always travel as ``params`` (named, as sqlglot renders a
        placeholder in :attr:`dialect`: ``:name`` for SQLite), never inside the text."""
        ...

    def status_counts(self) -> dict[str, int]:
        """Headline counts for `motorcade status` (people, identifiers, cars, events, unresolved quarantine,
        tag values, tags, segments, segment members, sends)."""
        ...

    def analyze(self) -> None:
        """Refresh the engine's query-planner statistics (after bulk loads)."""
        ...


@runtime_checkable
class PeopleStore(Protocol):
    """People, their golden-record attributes, stores, advisors, cars, ownerships, relations and consents."""

    def create_person(self, attributes: dict[str, Any] | None = None, *, at: dt.datetime | None = None) -> int:
        """Insert a new person and return their id."""
        ...

    def update_person_attributes(self, person_id: int, attributes: dict[str, Any], *, replace: bool = False) -> None:
        """Merge ``attributes`` into the person's (or replace them all with ``replace=True``)."""
        ...

    def resolve_person_id(self, person_id: int) -> int:
        """Follow the merge log: the id that ``person_id`` stands for today."""
        ...

    def live_person_id(self, person_id: int | None) -> int | None:
        """The person ``person_id`` stands for today (following the merge log), or None when there is none.

        Writers of rows that name a person outside the identity stage (feedback events, consents,
        relations, ownerships added by hand) go through it, so every person id stored names a row of
        ``people`` once identity is settled (segment plans rely on it: ``SegmentsMixin.identity_settled``)."""
        ...

    def get_person(self, person_id: int) -> Person | None:
        """The person (following merges), with identifiers, or None."""
        ...

    def attribute_names(self, *, limit: int = 10000) -> set[str]:
        """Names of the profile attributes stored on people (at most ``limit`` distinct names: a catalogue
        for spelling checks, not an inventory)."""
        ...

    def person_ids(self) -> list[int]:
        """Every live person's id, ascending."""
        ...

    def upsert_stores(self, stores: Iterable[model.Store]) -> int:
        """Insert stores or update them by id (name, group, city, brand replaced); returns the rows given."""
        ...

    def get_store(self, store_id: str) -> model.Store | None:
        """The store (dealership) with this id, or None."""
        ...

    def list_stores(self) -> list[model.Store]:
        """Every store, by id."""
        ...

    def upsert_advisors(self, advisors: Iterable[Advisor]) -> int:
        """Insert advisors or update them by id (every field replaced); returns the rows given."""
        ...

    def get_advisor(self, advisor_id: str) -> Advisor | None:
        """The advisor with this id, or None."""
        ...

    def upsert_cars(self, cars: Iterable[Car]) -> int:
        """Insert cars or update them by VIN: brand and model replaced; a known model year, purchase date or
        selling store is kept over a new one (the first statement wins). Returns the rows given."""
        ...

    def get_car(self, vin: str) -> Car | None:
        """The car with this VIN, or None."""
        ...

    def add_ownership(self, ownership: Ownership) -> None:
        """Record that a person owns a car from a date. A later owner closes the previous ownership."""
        ...

    def ownerships_of(self, person_id: int) -> list[Ownership]:
        """The person's ownerships (open and closed), by ``valid_from``."""
        ...

    def set_relation(self, person_id: int, kind: str, target_id: str, *, source: str | None = None,
                     since: dt.date | None = None) -> None:
        """Link a person to an advisor or store: kind is sales_advisor, service_advisor, selling_store, ..."""
        ...

    def relations_of(self, person_id: int) -> list[tuple[str, str]]:
        """``(kind, target id)`` of the person's relations, by kind then target."""
        ...

    def set_consent(self, consent: Consent, *, undated: bool = False, record_id: int | None = None) -> bool:
        """Record a consent state unless the stored one takes precedence; True if the stored state changed.

        Precedence (:data:`CONSENT_PRECEDENCE`; the reliability section of the README states it for
        operators): a refusal stands until a grant certainly made after it arrives -- a grant with its own
        later time, or a source row that had stated the refusal (or stated a refusal read after it) and then
        changed to a grant. A grant without a time of its own never outranks a refusal, and a refusal
        received later beats it whatever the refusal's time.

        ``undated``: the source states the consent without a time (``consent.ts`` is when it was read).
        ``record_id`` names the source row (its identity record): the row read again unchanged states
        nothing (its first time is kept); without a record id, the same state from the same source as the
        stored one changes nothing. A consent given for a merged-away id is the surviving person's (an
        opt-out is never lost); one for an id that names nobody is not stored."""
        ...

    def consents_of(self, person_id: int) -> list[Consent]:
        """The person's stored consent state per channel, by channel."""
        ...

    def define_value_types(self, types: dict[str, str], *, scope: str, source: str) -> None:
        """Record the declared types (``{"birth_date": "date"}``) of the profile attributes (``scope`` =
        "attribute") or event properties ("property") that ``source`` maps with a typed column."""
        ...

    def value_types(self) -> ValueTypes:
        """The types rules compare stored values as (:class:`motorcade.dsl.data.ValueTypes`): profile
        attributes and event properties from the sources' typed columns, tags from the tag catalogue."""
        ...



@runtime_checkable
class EventsStore(Protocol):
    """Behavioural events: idempotent inserts and the bulk first load."""

    def insert_events(self, events: Iterable[Event]) -> int:
        """Insert events, ignoring ones whose (source, dedup_key) is already stored; return the number new.

        Call inside :meth:`transaction` for bulk loads (one executemany per call)."""
        ...

    @contextlib.contextmanager
    def bulk_event_load(self, *, defer_dedup: bool = False) -> Iterator[BulkEventLoad]:
        """Drop the events' secondary indexes for a large first load and rebuild them afterwards.

        ``defer_dedup=False``: the dedup index stays, so ``INSERT OR IGNORE`` keeps idempotency during the
        load. ``defer_dedup=True`` drops it too (inserting into a table without any index is about twice
        as fast) and restores it at the end: duplicates of (source, dedup_key) are deleted keeping the
        first (the lowest id, the row ``INSERT OR IGNORE`` would have kept) and the ids after them closed
        up, so the table is exactly what loading with the index would have left
        (:func:`remove_duplicate_events`). The yielded :class:`BulkEventLoad` says how many rows went.

        Each batch of the load still commits on its own. A run killed before the end leaves the
        indexes dropped (and perhaps duplicates): :meth:`ensure_event_indexes`, which every ingest
        run calls first, repairs that the same way. While such a load runs, other readers may see
        the duplicates it has not removed yet; the load is meant for large first loads.

        The load commits without syncs (:meth:`unsynced_writes`, which says why a killed process loses
        nothing) and ends with a synced checkpoint."""
        ...

    def events_of(self, person_id: int, *, name: str | None = None) -> list[Event]:
        """The person's events in time order (optionally one event name)."""
        ...

    def event_names(self) -> list[str]:
        """Distinct event names present (for the DSL catalogue)."""
        ...



@runtime_checkable
class QuarantineStore(Protocol):
    """Source rows that failed cleaning, kept for inspection and retry."""

    def quarantine_rows(self, source: str, rows: Iterable[tuple[str, str, str]]) -> int:
        """Store ``(position, raw, reason)`` rows; the same row twice is kept once. Returns rows added."""
        ...

    def list_quarantine(self, *, source: str | None = None, include_resolved: bool = False,
                        limit: int | None = None) -> list[QuarantinedRow]:
        """Quarantined rows in arrival (id) order: unresolved only unless ``include_resolved``; of one
        source when given; at most ``limit``."""
        ...

    def mark_quarantine_retried(self, row_id: int, *, resolved: bool, reason: str | None = None) -> None:
        """Note a retry of a quarantined row: ``retried_at`` now, ``resolved`` as given, and a new reason
        when one is given (else the old one stays)."""
        ...

    def quarantine_summary(self) -> list[tuple[str, str, int]]:
        """(source, reason, count) of unresolved rows, largest first."""
        ...



@runtime_checkable
class IdentityStore(Protocol):
    """The identity graph (One-ID): records, identifiers, links, merges and splits.

    The identity stage calls these inside one :meth:`StoreBase.transaction` per batch; merges and splits
    queue the people they touch for :meth:`settle_identity`, which moves their other rows."""

    @property
    def identity_epoch(self) -> int:
        """Bumped by every write to the identity graph made through this store object (records,
        identifiers, links, merges, splits): a cache of the graph compares it with the value it saw
        after its own writes (other connections' commits show in ``PRAGMA data_version``)."""
        ...

    def identity_next_ids(self) -> tuple[int, int, int]:
        """Next free (person id, record id, identifier id)."""
        ...

    def find_records(self, source: str, keys: Sequence[str]) -> dict[str, tuple[int, int, str]]:
        """``source_key -> (record id, person id, attributes JSON)`` for the keys that exist."""
        ...

    def record_link_ids(self, record_ids: Sequence[int]) -> dict[int, set[int]]:
        """``record id -> identifier ids`` it is linked to (removed links included: never re-added)."""
        ...

    def find_identifiers(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str],
                         tuple[int, int | None, str | None]]:
        """``(type, value) -> (identifier id, person id, flag reason or None)`` for those that exist."""
        ...

    def identifier_link_counts(self, source: str, identifier_ids: Sequence[int]) -> dict[int, int]:
        """How many records of ``source`` carry each identifier (live links)."""
        ...

    def identifier_top_sources(self, identifier_ids: Sequence[int]) -> dict[int, tuple[str, int]]:
        """``identifier id -> (source, records)``: the source whose records carry it most (live links;
        ties: the first source by name)."""
        ...

    def identifier_flag_reason(self, identifier_id: int) -> tuple[bool, str | None]:
        """``(exists, flag reason or None)`` of one identifier (``(False, None)`` when there is no such id)."""
        ...

    def update_flag_reasons(self, rows: Sequence[tuple[str, int]]) -> None:
        """``(reason, identifier id)`` of flagged identifiers whose reason changed."""
        ...

    def person_of_identifier(self, type_: str, value: str) -> int | None:
        """The person an identifier ``(type, value)`` belongs to, or None (unknown or owned by nobody)."""
        ...

    def person_exists(self, person_id: int) -> bool:
        """Whether ``person_id`` is a live row of ``people`` (a merged-away id is not)."""
        ...

    def identity_rows_of_people(self, person_ids: Iterable[int]) -> tuple[list[tuple[str, str, int]],
                                list[tuple[str, str, int]]]:
        """``(source, source_key, person id)`` of the records and ``(type, value, person id)`` of the
        identifiers that belong to these people (to refresh a cache after a re-derivation)."""
        ...

    def insert_people_rows(self, rows: Iterable[tuple[int, str, str]]) -> None:
        """``(id, attributes JSON, at ISO)`` rows."""
        ...

    def insert_new_people(self, first_id: int, attributes: Sequence[str], at: str) -> None:
        """People ``first_id``, ``first_id + 1``, ... with these golden-record JSON texts."""
        ...

    def insert_identity_records(self, rows: Iterable[tuple]) -> None:
        """``(id, source, source_key, person_id, origin_person_id, attributes JSON, at ISO)`` rows."""
        ...

    def insert_new_identity_records(self, first_id: int, source: str,
                                    rows: Sequence[tuple[str, int, int | None, str]], at: str) -> None:
        """Records ``first_id``, ``first_id + 1``, ... of ``source``: ``(source_key, person_id,
        origin_person_id, attributes JSON)`` rows."""
        ...

    def update_record_attributes(self, rows: Iterable[tuple[str, str, int]]) -> None:
        """``(attributes JSON, at ISO, record id)``."""
        ...

    def insert_identifiers(self, rows: Iterable[tuple[int, str, str, int | None, str | None]]) -> None:
        """``(id, type, value, person_id, flag reason or None)`` rows."""
        ...

    def insert_new_identifiers(self, first_id: int, rows: Sequence[tuple[str, str, int | None, str | None]]) -> None:
        """Identifiers ``first_id``, ``first_id + 1``, ...: ``(type, value, person_id, flag reason or None)``."""
        ...

    def set_identifier_people(self, rows: Iterable[tuple[int | None, int]]) -> None:
        """``(person id, identifier id)``."""
        ...

    def insert_identity_links(self, rows: Iterable[tuple]) -> None:
        """``(record_id, identifier_id, source, rule, at ISO, valid_from, valid_to)`` rows."""
        ...

    def insert_new_identity_links(self, source: str, rule: str, at: str, codes: Sequence[int], mult: int) -> None:
        """Links of one source and rule, in this order, without a validity period; each given as one
        integer ``record_id * mult + identifier_id`` (``identifier_id < mult``)."""
        ...

    def flag_identifier(self, identifier_id: int, reason: str) -> int | None:
        """Flag an identifier so it stops linking; returns the person it belonged to (to re-derive)."""
        ...

    def mark_identity_dirty(self, person_ids: Iterable[int]) -> None:
        """Queue people for :meth:`settle_identity` (a person queued twice is queued once)."""
        ...

    def merge_people(self, target: int, others: Sequence[int], *, reason: str, at: dt.datetime | None = None) -> None:
        """Merge ``others`` into ``target`` (the smallest id): records, identifiers and the merge log follow.

        Events, ownerships, relations, consents, tags and memberships follow in :meth:`settle_identity`."""
        ...

    def rederive_person(self, person_id: int, *, reason: str, at: dt.datetime | None = None) -> list[int]:
        """Recompute the people of ``person_id``'s records from the live graph (after a flag or a split).

        Every resulting component gets the smallest origin id among its records; ids that lost their
        merge-log entry come back to life. Returns the ids of the resulting people."""
        ...

    def remove_identity_link(self, link_id: int, *, at: dt.datetime | None = None) -> int | None:
        """Mark one link removed (it never links again); returns the person to re-derive."""
        ...

    def restore_identity_link(self, link_id: int) -> tuple[int, int] | None:
        """Make a removed link live again (``valid_to`` set by its removal cleared); returns its
        ``(record id, identifier id)``, or None if there is no such link."""
        ...

    def unflag_identifier(self, identifier_id: int) -> None:
        """Let a flagged identifier link again (its people are joined by :meth:`join_people_of_identifier`)."""
        ...

    def join_people_of_identifier(self, identifier_id: int, *, reason: str,
                                  at: dt.datetime | None = None) -> int | None:
        """Merge the people whose records carry an unflagged identifier (live links) into the oldest of
        them, and give the identifier to that person. Returns the person, or None if no record carries it."""
        ...

    def record_identity_split(self, person_id: int, *, identifier_id: int | None, link_id: int | None, reason: str,
                              people: Sequence[int], at: dt.datetime | None = None) -> int:
        """Log one split (the identifier it flagged or the link it removed); returns its number."""
        ...

    def mark_identity_split_undone(self, split_id: int, *, reason: str, at: dt.datetime | None = None) -> None:
        """Note that split ``split_id`` was undone (when and why); the log keeps the split itself."""
        ...

    def list_identity_splits(self, person_id: int | None = None, *,
                             split_id: int | None = None) -> list[dict[str, Any]]:
        """Logged splits, oldest first: all, one (``split_id``), or those of a person (split from it or
        leaving it as one of the pieces)."""
        ...

    def recompute_golden_records(self, person_ids: Iterable[int], priority: Sequence[str]) -> int:
        """Rebuild people's attributes from their records: the record holding the highest-priority
        identifier type wins each attribute (ties: source name, then record key). Returns rows changed."""
        ...

    def settle_identity(self) -> int:
        """Make events, ownerships, relations, consents, tags and memberships follow merges and splits.

        Works through ``identity_dirty`` (written with every merge/split) and empties it; safe to run
        again at any time. Returns how many dirty people were settled."""
        ...

    def identity_records_of(self, person_id: int) -> list[dict[str, Any]]:
        """The person's identity records (one per source row), by record id, attributes decoded."""
        ...

    def identity_links_of(self, person_id: int) -> list[dict[str, Any]]:
        """Every link of the person's records, with the identifier and its flag."""
        ...

    def find_identifier(self, type_: str | None, value: str) -> list[tuple[int, str, str, int | None, str | None]]:
        """Identifiers with this value (of this type, or any type): (id, type, value, person, flag reason)."""
        ...

    def records_of_identifier(self, identifier_id: int) -> list[tuple[int, str, str, int]]:
        """``(record id, source, source key, person id)`` of every record linked to the identifier
        (removed links included), by record id."""
        ...

    def person_merges_into(self, person_id: int) -> list[tuple[int, str, str]]:
        """(old id, merged_at, reason) of ids that resolve to ``person_id``."""
        ...

    def list_flagged_identifiers(self, *, type_: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Flagged identifiers (they link nobody): type, value, reason and how many records carry them,
        most carried first."""
        ...

    def record_rejected_identifiers(self, source: str, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """``(type, value as read, lookup key, reason)`` of identifier values of ``source`` that did not
        clean; a value seen again keeps its first reason and moves ``last_seen``."""
        ...

    def list_rejected_identifiers(self, *, source: str | None = None, type_: str | None = None,
                                  lookup: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Rejected identifier values (newest first), optionally of one source, type or lookup key."""
        ...

    def identity_stats(self, *, flagged_limit: int = 20) -> dict[str, Any]:
        """Headline figures of the identity graph for `motorcade identity stats`: counts of people, records,
        identifiers and links, per type/source/reason breakdowns and the ``flagged_limit`` most carried flagged
        identifiers."""
        ...



@runtime_checkable
class IngestStore(Protocol):
    """Writes and bookkeeping of the ingest stage: event rows, staged batches, ownerships, source cursors."""

    @contextlib.contextmanager
    def unsynced_writes(self) -> Iterator[None]:
        """Commits inside may skip the sync to disk for a large load, with one synced checkpoint at its end.

        A killed process still loses nothing that was committed, so the kill/re-run guarantee holds; only a
        power cut or kernel crash during the load could lose it, and such a load is repeated from its source
        anyway. An engine without such a switch does nothing here. (SQLite: ``synchronous=OFF`` in WAL mode,
        commits per batch cost half as much.)"""
        ...

    def insert_event_rows(self, rows: list[tuple]) -> int:
        """``(person_id, name, ts epoch, properties JSON, source, dedup_key, record_id)``; returns rows new.

        An event whose (source, dedup_key) is stored already is ignored: re-ingesting is a no-op."""
        ...

    def events_deduplicated(self) -> bool:
        """False while a first bulk load that defers deduplication runs (or after one was killed, until the
        next ingest repairs it): its duplicates are still stored and event ids may still move down.
        Readers that keep event ids or count events (event triggers, tag and segment runs) wait meanwhile."""
        ...

    def require_events_deduplicated(self) -> None:
        """Raise :class:`~motorcade.errors.MotorcadeError` (with a hint) unless :meth:`events_deduplicated`."""
        ...

    def ensure_event_indexes(self) -> int:
        """Recreate event indexes a bulk load dropped (at its end, or after a killed one); returns the
        duplicate events removed first (see :func:`motorcade.store.events.remove_duplicate_events`)."""
        ...

    def attach_stage(self, schema: str) -> None:
        """Prepare an empty staging area named ``schema`` for :meth:`load_stage` (outside a transaction;
        SQLite attaches an in-memory database)."""
        ...

    def load_stage(self, schema: str, data: bytes) -> None:
        """Replace the staging area's rows by ``data`` (between transactions): a staging database made by
        :func:`motorcade.store.ingest.pack_staged_events` (a serialized SQLite database, which an engine other
        than SQLite reads with :mod:`sqlite3` and copies in)."""
        ...

    def detach_stage(self, schema: str) -> None:
        """Detach the staging ``schema`` again; a no-op when it is not attached or a transaction is still
        open (after a failure, before its rollback)."""
        ...

    def insert_staged_events(self, schema: str, source: str, people: list[tuple[int, int, int]]) -> int:
        """Insert the events of a staging database attached as ``schema`` (see
        :class:`motorcade.sources.batch.StagedEvents`); returns rows inserted.

        ``people``: ``(identifier set number, person_id, record_id)`` of the sets the rows name; rows of
        a set not listed are left out. One ``INSERT ... SELECT`` in staging order (the source's order):
        no row crosses into Python. Duplicates are ignored only while the dedup index exists."""
        ...

    def source_has_events(self, source: str) -> bool:
        """Whether any event of ``source`` is stored (a first load of a source has none)."""
        ...

    def event_count(self) -> int:
        """The events' high-water mark (the largest event id; 0 when there are none)."""
        ...

    def ensure_stores(self, store_ids: Iterable[str]) -> None:
        """Placeholder rows for store codes named before the stores file is loaded (name = code)."""
        ...

    def upsert_ownership_rows(self, rows: list[tuple]) -> None:
        """``(person_id, vin, valid_from, valid_to, source, record_id)``; a later owner closes the earlier one."""
        ...

    def transfer_ownerships(self, sales: list[tuple], *, today: str) -> None:
        """``(vin, seller person, buyer person, date or None, source, buyer's record id)``: each sale
        closes the seller's open ownership of the car (on its date; undated: ``today``) and opens the
        buyer's (from its date; undated: from an unknown date). Reading a sale again changes nothing."""
        ...

    def add_record_relations(self, rows: list[tuple]) -> None:
        """``(record_id, person_id, kind, target_id, source, since)``: stored per record, shown per person."""
        ...

    def get_source_cursor(self, source: str) -> str | None:
        """The source's saved read position (opaque text), or None before its first run."""
        ...

    def set_source_cursor(self, source: str, cursor: str | None) -> None:
        """Save the source's read position; written only when it changed (``updated_at`` then moves)."""
        ...

    def quarantine_row(self, row_id: int) -> QuarantinedRow | None:
        """One quarantined row by id (a :class:`~motorcade.store.quarantine.QuarantinedRow`), or None."""
        ...



@runtime_checkable
class TagsStore(Protocol):
    """The tag catalogue, tag values, tag runs and the change marks incremental tag runs start from."""

    def define_tags(self, definitions: Iterable[Any], *, calculator: str, calculator_version: str) -> None:
        """Record tag definitions (:class:`motorcade.tags.base.TagDefinition`) in the catalogue."""
        ...

    def tag_definitions(self) -> list[dict[str, Any]]:
        """The tag catalogue, by name: each definition as a dict (allowed values and range decoded)."""
        ...

    def write_tag_values(self, values: Iterable[tuple[int, str, Any]], *, tags: Iterable[str], calculator: str,
                         calculator_version: str, computed_at: dt.datetime,
                         person_ids: Iterable[int] | None = None) -> int:
        """Replace the values of ``tags`` (for everyone, or only ``person_ids``) with ``values``.

        Runs in one transaction: readers see the old or the new values, never a mix."""
        ...

    def write_store_tag_values(self, values: Iterable[tuple[int, str, Any, str]], *, tags: Iterable[str],
                               calculator: str, calculator_version: str, computed_at: dt.datetime,
                               person_ids: Iterable[int] | None = None) -> int:
        """Replace the per-store values ``(person_id, tag, value, store_id)`` of ``tags`` (for everyone, or only
        ``person_ids``); like :meth:`write_tag_values`, in one transaction, dropping people merged away."""
        ...

    def store_tags_of(self, person_id: int) -> dict[str, dict[str, Any]]:
        """The person's per-store tag values: ``store_id -> {tag: value as stored}``."""
        ...

    def tags_of(self, person_id: int) -> list[TagValue]:
        """The person's current tag values, by tag name."""
        ...

    def record_tag_run(self, *, calculator: str, calculator_version: str, started_at: dt.datetime,
                       finished_at: dt.datetime, rows_written: int, health: dict[str, Any]) -> int:
        """Log one calculator run (times, rows written, the health figures); returns the run's id."""
        ...

    def tag_runs(self, calculator: str, *, limit: int = 2) -> list[dict[str, Any]]:
        """The calculator's most recent runs, newest first."""
        ...

    def max_event_id(self) -> int:
        """The events' high-water mark: ids are assigned in insertion order, so later events have larger ids
        (0 when there are none)."""
        ...

    def people_count(self) -> int:
        """How many live people are stored."""
        ...

    def people_update_mark(self, *, keep_ids: int = 10000) -> dict[str, Any]:
        """Where people's ``updated_at`` stands now: the latest value and the ids updated in that second
        (``updated_at`` has whole-second resolution) with a fingerprint of their attributes, or None for the
        ids when more than ``keep_ids``."""
        ...

    def changed_people(self, *, after_event_id: int, upto_event_id: int, event_names: Iterable[str] | None,
                       people_mark: dict[str, Any] | None) -> set[int]:
        """People whose inputs changed: events with ``after_event_id < id <= upto_event_id`` (only the given
        names, or any when ``event_names`` is None), plus people whose record was updated after
        ``people_mark`` (from :meth:`people_update_mark`: attributes, merges). Updates within the mark's own
        second count unless the mark listed them, so none is missed."""
        ...

    def tag_value_figures(self, tag: str, *, numeric: bool, top: int = 20) -> dict[str, Any]:
        """Health figures of one tag over all its stored values: count; the value counts (top ``top``) for
        categorical tags; min, max, mean, standard deviation and quartiles for numeric ones."""
        ...

    def tag_histogram(self, tag: str, low: float, high: float, bins: int = 10) -> list[int]:
        """Counts of the tag's values in ``bins`` equal-width bins over [low, high] (ends clamp)."""
        ...

    def latest_tag_runs(self) -> list[dict[str, Any]]:
        """The newest run of every calculator that has run, by calculator name."""
        ...

    def tag_value_pairs(self, first: str, second: str, *,
                        person_ids: Iterable[int] | None = None) -> list[tuple[int, Any, Any]]:
        """``(person_id, value of first, value of second)`` of the people who have both tags (only ``person_ids``
        when given), by person id."""
        ...

    def tag_value_count(self, tag: str) -> int:
        """How many people have a value of ``tag``."""
        ...



@runtime_checkable
class SegmentsStore(Protocol):
    """Segment computation: a read snapshot for plans, member ids of a compiled query, runs, memberships
    and their enter/leave history, and the rule text behind each revision."""

    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[Any]:
        """Statements inside see one snapshot of the file (a deferred read transaction), so a plan's
        probes, its checks of the store's state and its query agree. Inside a transaction: that one."""
        ...

    def query_person_ids(self, sql: str, params: dict | tuple = ()) -> list[int]:
        """The ``person_id`` column of a read query (a compiled segment), ascending.

        The ids leave SQLite as one JSON array: materialising a Python row per member costs more than
        the query itself for large segments (400,000 owners: 0.30 s as rows, 0.09 s as one array)."""
        ...

    def explain_query(self, sql: str, params: dict | tuple = ()) -> list[str]:
        """The engine's plan for a read query (``SELECT``/``WITH`` in :attr:`StoreBase.dialect`), as lines for
        an operator: one line per step, indented two spaces per level of the plan tree. Runs nothing."""
        ...

    def person_rule_rows(self, person_ids: Sequence[int]) -> dict[str, list[tuple]]:
        """The stored rows of these people that rules read, for the reference evaluator (ids not stored are left
        out): ``people`` ``(id, attributes dict)``; ``tags`` ``(person_id, tag, value as stored)``; ``cars``
        ``(person_id, vin, brand, model, model_year, purchase_date, store_id, valid_from, valid_to)`` of their
        ownerships in ownership order; ``relations`` ``(person_id, kind, target_id)``; ``consents``
        ``(person_id, channel, granted bool)``; ``events`` ``(id, person_id, name, ts epoch, properties dict)``,
        each person's in ``(ts, id)`` order. Dates stay ISO text. Read in one snapshot when called inside
        :meth:`read_snapshot`."""
        ...

    def identity_settled(self) -> bool:
        """True when no merge or split waits for :meth:`settle_identity`: then every person id in events,
        ownerships, relations, consents and tag values names a row of ``people``.

        That holds because every writer keeps it: the identity stage writes ids it has just resolved;
        ``insert_events``, ``set_consent``, ``set_relation`` and ``add_ownership`` follow the merge log
        (``live_person_id``; an event naming nobody is stored as nobody's); ``write_tag_values`` drops
        values of people that no longer exist; ``settle_identity`` moves what merges and splits left
        behind; migration 6 repaired stores written before."""
        ...

    def record_rule_revision(self, revision: str, files: dict[str, str], *, at: dt.datetime) -> None:
        """Keep the rule text (path -> content) a revision hash stands for (first write wins)."""
        ...

    def rule_revision_files(self, revision: str) -> dict[str, str] | None:
        """The rule text (path -> content) recorded for ``revision``, or None if it was never recorded."""
        ...

    def record_segment_run(self, segment: str, member_ids: Iterable[int], *, revision: str, as_of: dt.datetime,
                           computed_at: dt.datetime, duration_ms: float, plan: str | None) -> dict[str, Any]:
        """Replace the segment's members with ``member_ids`` in one transaction and log the run.

        People already in keep their ``entered_at``; new members get ``computed_at``; leavers are deleted.
        Every enter and leave is appended to ``segment_changes`` (what `send to new members only` and
        enter/leave triggers read). Returns ``{"run_id", "size", "entered", "left"}``."""
        ...

    def segment_member_ids(self, segment: str) -> list[int]:
        """The members stored by the segment's last computation, by id."""
        ...

    def segment_member_rows(self, segment: str, *, limit: int | None = None) -> list[tuple[int, str]]:
        """``(person_id, entered_at)`` of the members stored by the last computation, by id."""
        ...

    def segment_membership(self, segment: str, person_id: int) -> dict[str, Any] | None:
        """``{entered_at, computed_at, revision}`` of the person's current membership of the segment, or None."""
        ...

    def segment_changes_since(self, segment: str, after_id: int = 0) -> list[tuple[int, int, str, str]]:
        """``(change_id, person_id, "enter" | "leave", at)`` of the segment after change ``after_id``, in order."""
        ...

    def last_segment_change_id(self, segment: str) -> int:
        """The id of the segment's latest change (0 when it has none): a cursor for segment_changes_since."""
        ...

    def last_segment_run(self, segment: str) -> dict[str, Any] | None:
        """The segment's newest run (as :meth:`segment_runs` gives it), or None if it never ran."""
        ...

    def segment_runs(self, segment: str, *, limit: int = 10) -> list[dict[str, Any]]:
        """The segment's most recent runs, newest first."""
        ...

    def computed_segments(self) -> list[str]:
        """Names of the segments computed at least once, sorted."""
        ...



@runtime_checkable
class OutboxStore(Protocol):
    """Activation: runs, audience snapshots, the outbox, leases, cursors, channel tokens, advisor tasks.

    At most once: a send exists once per ``idempotency_key`` (:meth:`enqueue_sends` never plans it twice)
    and a worker hands a send to a channel only while it holds the claim (:meth:`update_send` with
    ``expect_status``/``expect_claimed_by`` to claim, :meth:`renew_claims` just before sending). A worker
    that dies leaves its claims to expire (``claimed_until``); :meth:`due_sends` offers them again under
    the same key, so a channel's own dedupe on that key absorbs a resend of a request that was in flight."""

    def create_run(self, run_id: str, *, origin_kind: str, origin: str, revision: str,
                   scheduled_for: dt.datetime | None, started_at: dt.datetime, status: str = 'planning') -> bool:
        """Insert an activation run; False if a run with this id already exists (it is never replaced)."""
        ...

    def finish_run(self, run_id: str, *, status: str, audience_size: int, finished_at: dt.datetime) -> None:
        """Record a run's outcome: its final status, audience size and finish time."""
        ...

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The activation run with this id (a dict of its columns), or None."""
        ...

    def run_origins(self, origin_kind: str) -> list[str]:
        """The campaigns (``origin_kind="campaign"``) or triggers that have at least one run, sorted."""
        ...

    def runs_of(self, origin_kind: str, origin: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` runs of one campaign or trigger (``origin_kind``, ``origin``), newest first."""
        ...

    def add_audience_snapshot(self, run_id: str, members: Iterable[tuple[int, str]]) -> int:
        """Record ``(person_id, arm)`` pairs of a run ('treatment' or 'holdout'); existing pairs are kept."""
        ...

    def audience_snapshot(self, run_id: str) -> dict[int, str]:
        """``{person_id: arm}`` of the run's audience snapshot."""
        ...

    def enqueue_sends(self, sends: Iterable[dict[str, Any]], *, at: dt.datetime | None = None) -> list[str]:
        """Insert planned sends; a send whose idempotency key exists is left untouched (never planned twice).

        Each dict has the outbox columns (``payload`` as a dict, ``not_before`` as an aware datetime or
        None). Returns the keys actually inserted. Call inside :meth:`transaction` with the snapshot."""
        ...

    def trigger_firings(self, trigger: str, person_id: int) -> list[dt.datetime]:
        """When ``trigger`` fired for the person (the firing event's time), for re-entry rules."""
        ...

    def due_sends(self, now: dt.datetime, *, limit: int) -> list[dict[str, Any]]:
        """Sends a dispatcher may claim now: claimable and due, or claimed by a worker whose lease expired.

        Ordered by ``not_before`` (none first), then ``created_at``, then the key: one order on every store,
        since which of a person's sends is claimed first decides which a frequency cap lets through."""
        ...

    def update_send(self, key: str, *, now: dt.datetime, expect_status: str | None = None,
                    expect_claimed_by: str | None = None, **fields: Any) -> bool:
        """Set columns of one send (``payload`` dict, ``not_before``/``claimed_until`` datetimes accepted).

        With ``expect_status`` / ``expect_claimed_by`` the update only happens if the row still has them,
        so a worker whose claim expired cannot overwrite the outcome recorded by the worker that took over."""
        ...

    def renew_claims(self, keys: list[str], worker: str, *, until: dt.datetime, now: dt.datetime,
                     count_attempt: bool = False) -> set[str]:
        """Extend this worker's claims on ``keys`` to ``until``; returns the keys it still owns.

        Called just before each batch is handed to a channel, so a worker slowed down by a slow provider
        never sends a row another worker has taken over meanwhile. ``count_attempt``: the batch is about
        to be sent, so add one to ``attempts`` of every row still owned (attempts count requests made,
        not claims: a claim that expires in a queue costs none)."""
        ...

    def release_claims(self, keys: list[str], worker: str, *, now: dt.datetime) -> int:
        """Give back this worker's claims on ``keys`` that were never sent (a worker stopping): the rows are
        ``planned`` again, claimable at once by any worker, their attempts unchanged. Returns the count."""
        ...

    def marketing_sends_since(self, person_id: int, since: dt.datetime, *, exclude_key: str | None = None) -> int:
        """Marketing (non-transactional) sends to the person claimed or sent since ``since``, all campaigns."""
        ...

    def get_send(self, key: str) -> dict[str, Any] | None:
        """One outbox row by idempotency key (payload decoded), or None."""
        ...

    def send_by_provider_message_id(self, channel: str, provider_message_id: str) -> dict[str, Any] | None:
        """The send a provider receipt refers to by the provider's own message id (Aliyun BizId, WeCom msgid)."""
        ...

    def next_due_at(self) -> dt.datetime | None:
        """The earliest time a pending send becomes claimable (None when nothing is pending)."""
        ...

    def list_sends(self, *, status: str | None = None, origin: str | None = None, person_id: int | None = None,
                   run_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Outbox rows for operators, filtered by whatever is given, most recently updated first, at most ``limit``."""
        ...

    def run_send_outcomes(self, run_ids: Iterable[str]) -> list[tuple[str, str, int]]:
        """``(status, reason, count)`` of the sends of these runs as they stand now (``reason`` '' for none;
        a deferral's time left out, so one rule is one line)."""
        ...

    def send_stats(self) -> list[dict[str, Any]]:
        """Counts per origin, channel and status."""
        ...

    def status_counts_of_sends(self) -> dict[str, int]:
        """``{status: count}`` over the whole outbox."""
        ...

    def retry_sends(self, *, keys: Iterable[str] | None = None, status: str = 'dead', origin: str | None = None,
                    now: dt.datetime | None = None) -> int:
        """Put dead (or other stopped) sends back to ``planned`` with a fresh attempt budget; returns the count."""
        ...

    def acquire_lease(self, name: str, holder: str, *, ttl_seconds: float, now: dt.datetime | None = None) -> bool:
        """Take or renew lease ``name`` for ``holder`` until now + ttl; False if someone else holds it."""
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """Give up lease ``name`` if ``holder`` holds it (someone else's lease is left alone)."""
        ...

    def lease_holder(self, name: str, *, now: dt.datetime | None = None) -> str | None:
        """Who holds lease ``name`` at ``now`` (an expired lease has no holder), or None."""
        ...

    def get_activation_cursor(self, name: str) -> str | None:
        """The activation stage's saved high-water mark ``name`` (a trigger's or incremental campaign's), or None."""
        ...

    def set_activation_cursor(self, name: str, value: str, *, at: dt.datetime | None = None) -> None:
        """Save high-water mark ``name`` (replacing the old value)."""
        ...

    def events_after(self, after_id: int, names: Iterable[str], *, limit: int) -> list[tuple]:
        """``(id, person_id, name, ts, properties)`` of events with id > ``after_id`` and one of ``names``."""
        ...

    def first_event_id_since(self, since: dt.datetime) -> int:
        """The id just before the first event at or after ``since`` (a starting high-water mark)."""
        ...

    def advisor_ids_of_store(self, store_id: str, role: str = 'sales') -> list[str]:
        """Advisors of a store with ``role``, by id (to assign a person who has no advisor of their own)."""
        ...

    def identifiers_of(self, person_id: int, type_: str) -> list[str]:
        """The person's unflagged identifier values of ``type_`` (a channel's addresses), sorted."""
        ...

    def get_channel_token(self, key: str, *, valid_at: dt.datetime) -> tuple[str, dt.datetime] | None:
        """The cached token for ``key`` if it is still valid at ``valid_at``."""
        ...

    def put_channel_token(self, key: str, token: str, expires_at: dt.datetime) -> None:
        """Cache a channel's access token for ``key`` until ``expires_at`` (replacing the old one)."""
        ...

    def drop_channel_token(self, key: str, token: str) -> bool:
        """Forget ``token`` for ``key`` -- only if it is still the cached one (never someone's fresh token)."""
        ...

    def add_advisor_tasks(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert call tasks ``{idempotency_key, advisor_id, store_id, person_id, note, created_at}``.

        Idempotent on ``idempotency_key``: a task written again (a retried send) is not duplicated.
        ``created_at`` may be an aware datetime or ISO text. Returns the number of new tasks."""
        ...

    def advisor_tasks(self, *, store_id: str | None = None, open_only: bool = False) -> list[dict[str, Any]]:
        """Advisor call tasks (dicts of their columns), by store, advisor, creation time and key; of one
        store when given; only undone ones with ``open_only``."""
        ...



@runtime_checkable
class ReportsStore(Protocol):
    """Read-only aggregates behind `motorcade report` (funnels, campaign outcomes, cohorts, service histories)."""

    def store_names(self) -> dict[str, str]:
        """``{store id: display name}`` of every store."""
        ...

    def report_population(self, person_column: str, store: str | None) -> tuple[str, list]:
        """The people a report counts, as a condition on ``person_column`` and its parameters: ``store``'s
        (its home-store view) or everyone's, always narrowed to the caller's scope; a store outside the
        caller's scope is refused (AccessDenied)."""
        ...

    def home_stores(self, person_ids: Iterable[int]) -> dict[int, str | None]:
        """The home store of each person (None when they have no store relation)."""
        ...

    def segment_memberships(self, person_ids: Iterable[int]) -> dict[int, list[str]]:
        """The segments each person is currently a member of (sorted)."""
        ...

    def funnel_paths(self, steps: Sequence[str], *, within: tuple[int, str] | None = None, zone: str = 'UTC',
                     since: int | None = None, until: int | None = None, campaign: str | None = None,
                     store: str | None = None, by: str | None = None) -> list[tuple]:
        """Each person's best pass through the funnel: ``(person_id, key, t1, t2, ..., tk)``.

        A pass starts at an event of the first step (``since <= ts < until``, of ``campaign`` when
        given; later steps then skip events of other campaigns and triggers) and takes, for every next step, the first event of that step strictly later than the
        previous step's event, no later than the start plus ``within`` (``(amount, unit)``, inclusive;
        calendar units on the wall clock of time zone ``zone``; no limit when None) — the
        meaning of ``did A then B within N unit`` in the rule language. A person's best pass is the
        one that gets furthest, the earliest start on a tie (so step k is reached exactly when
        ``did s1 then ... then sk within N`` holds for a start in the period). ``t_i`` is None for steps
        not reached. ``key`` is the breakdown value ``by`` read from the first step's event properties
        (``store`` falls back to the person's home store); None without ``by``."""
        ...

    def campaign_runs(self, campaign: str, *, until: int | None = None) -> list[tuple]:
        """``(run id, started_at, status, audience_size)`` of a campaign's runs (started at or before ``until``,
        epoch seconds), oldest first."""
        ...

    def campaign_outcomes(self, campaign: str, *, event: str, window_seconds: int, service_event: str,
                          run_id: str | None = None, store: str | None = None, until: int | None = None,
                          zone: str = 'UTC') -> list[tuple]:
        """One row per person in the campaign's audience snapshots (their first run only):

        ``(person_id, arm, run_id, t0, converted_at, last_service_before, owner_since, home_store)``

        ``t0`` is the run's start (the snapshot instant, the same for both arms: an intention-to-treat
        comparison). ``converted_at`` is the first ``event`` with ``t0 < ts <= t0 + window`` and ``ts <= until``;
        ``last_service_before`` the last ``service_event`` at or before t0; ``owner_since`` the earliest
        start of an ownership still held on t0's date in ``zone`` (the project's time zone: ownership dates
        are local dates; None for people who owned no car then). Runs that start after ``until`` are left out."""
        ...

    def campaign_send_counts(self, campaign: str, *, run_id: str | None = None, store: str | None = None,
                             until: int | None = None) -> dict[str, dict[str, int]]:
        """``{"outbox": {status: n}, "events": {feedback event name: distinct people}}`` for a campaign: the
        outbox rows of its runs started at or before ``until`` and the feedback events up to ``until``."""
        ...

    def cohort_activity(self, *, cohort_event: str | None, return_event: str, zone: str = 'UTC',
                        store: str | None = None, until: int | None = None) -> dict[str, list[tuple]]:
        """Monthly cohort counts.

        Cohort = the calendar month (local, in time zone ``zone``, at each instant's own UTC offset) of each
        person's first ``cohort_event`` (or, with ``cohort_event=None``, of their first ownership start). Period N
        of a return event = its local month minus the cohort month. Only return events after the cohort event
        in ``(ts, id)`` order count; nothing after ``until`` counts. Returns ``sizes`` ``(cohort, people)``,
        ``active`` ``(cohort, period, people with a return event in that period)``, ``first_return``
        ``(cohort, period, people whose first return falls in that period)`` and ``data_since``: the local
        month (``"YYYY-MM"``) of the earliest ``return_event`` in the store up to ``until`` (None when there is
        none), before which no period can be observed."""
        ...

    def owner_service_histories(self, *, service_event: str, as_of: int, store: str | None = None,
                                zone: str = 'UTC') -> list[tuple[int, str | None, str | None, list[int]]]:
        """Current owners at ``as_of``: ``(person_id, home store, earliest ownership start, visit times)``.

        An owner holds an ownership valid on ``as_of``'s date in ``zone`` (the project's time zone: ownership
        dates are local dates). Visit times are the person's ``service_event`` timestamps up to ``as_of``,
        ascending."""
        ...

    def contact_summaries(self, person_ids: Iterable[int]) -> dict[int, dict]:
        """``{person_id: {"name": ..., "phone": ...}}`` (unmasked: the caller masks for display)."""
        ...

    def attribution_events(self, conversion: str, touches: Sequence[str], *, until: int | None = None,
                           store: str | None = None) -> list[tuple]:
        """The conversion and touch events of every person, in ``(person, ts, id)`` order:
        ``(person_id, ts, id, name, campaign, channel, store)``.

        ``campaign`` and ``channel`` are read from the event's properties; ``store`` from ``store_id`` or
        ``store`` there, falling back to the person's home store (as the funnel's ``by store``). Only events up
        to ``until`` (inclusive) and, with ``store``, of the people whose home store it is."""
        ...

    def portrait_population(self, store: str | None = None) -> list[int]:
        """Every person the caller may read (``store``: those whose home store it is). Named apart from
        :meth:`AccessMixin.people_in_scope`, which narrows given ids and which this once shadowed."""
        ...

    def tags_with_values(self) -> list[str]:
        """The tags that have a value for someone, by name."""
        ...

    def tag_values_of(self, tag: str) -> dict[int, object]:
        """``{person_id: value}`` of one tag."""
        ...

    def profile_values(self, key: str) -> dict[int, object]:
        """``{person_id: value}`` of one key of the people's profile attributes (people without it are left out)."""
        ...


@runtime_checkable
class StatsStore(Protocol):
    """Planner statistics the segment planner reads instead of probing (event counts per day, tag value counts)."""

    def refresh_plan_stats(self) -> int:
        """Add the events written since the last refresh to ``event_day_counts`` and count the defined tags
        never counted yet (call inside a write transaction, e.g. before computing segments). Returns the
        events added."""
        ...

    def plan_stats_behind(self) -> int:
        """How many events :meth:`refresh_plan_stats` has still to count (by id)."""
        ...

    def event_range_estimate(self, names: Sequence[str], low: int | None, high: int) -> int | None:
        """About how many events named ``names`` have ``low <= ts <= high`` (epoch seconds; ``low`` None =
        no lower bound). None when the statistics are missing or too far behind (probe instead)."""
        ...

    def recount_tag_values(self, tags: Iterable[str]) -> None:
        """Rewrite ``tag_value_counts`` for ``tags`` (inside the transaction that wrote their values)."""
        ...

    def tag_range_estimate(self, tag: str, values: Sequence) -> int | None:
        """How many people have tag ``tag`` equal to one of ``values``; None when the tag is not counted."""
        ...

    def ownership_rows(self) -> int:
        """An upper bound of the ownership rows (ownerships are never deleted: the largest id)."""
        ...



@runtime_checkable
class InboxStore(Protocol):
    """The durable inbox of push sources (HTTP collectors): append first, process later."""

    def inbox_append(self, source: str, messages: Iterable[tuple[str, str, str]]) -> tuple[int, int]:
        """Store ``(message_id, received_at, body)`` messages of ``source`` in one transaction; a message id
        already stored for the source is kept once (the first body wins). Returns ``(stored, duplicates)``.
        When this returns, the messages are committed: a crash of the process afterwards loses none."""
        ...

    def inbox_read(self, source: str, *, after_id: int = 0, limit: int = 10000) -> list[tuple[int, str, str]]:
        """``(id, received_at, body)`` of the source's messages with an id above ``after_id``, in id order."""
        ...

    def inbox_last_id(self, source: str | None = None) -> int:
        """The highest inbox id (of one source, or of all); 0 when empty."""
        ...

    def inbox_purge(self, source: str, *, up_to_id: int, received_before: str) -> int:
        """Delete the source's messages already read (id ≤ ``up_to_id``) and received before the ISO time
        ``received_before`` (the deduplication window has passed). Returns the rows deleted."""
        ...



@runtime_checkable
class AccessStore(Protocol):
    """Users, grants and tokens, the caller's scope over people (one place decides who is in scope), and the
    append-only, hash-chained audit log."""

    access: Any
    """The caller (a ``motorcade.access.Access``) whose scope every people-reading function narrows to, or
    None for the library driven directly with no caller (everyone, as before scopes existed)."""

    def person_scope_filter(self, column: str) -> str:
        """A SQL condition on ``column`` (a person id) true only for people inside the caller's read scope:
        ``1`` for a group-wide caller; else membership of a temporary table filled with the scope's people
        (per connection, refreshed per caller)."""
        ...

    def people_in_scope(self, person_ids: Iterable[int]) -> list[int]:
        """``person_ids`` (in order) without those outside the caller's read scope (a list passed in may come
        back itself: change neither)."""
        ...

    def people_in(self, scope, person_ids: Iterable[int]) -> list[int]:
        """``person_ids`` (in order) without those outside ``scope`` (a ``motorcade.access.Scope``; a list
        passed in may come back itself: change neither)."""
        ...

    def require_person_in_scope(self, person_id: int, asked: str | None = None) -> None:
        """Raise AccessDenied when ``person_id`` lies outside the caller's read scope. The message is the
        same whether or not the person exists and names the person as asked (``asked``: an identifier looked
        up), so a scoped caller learns nothing about other stores' people."""
        ...

    def scope_denial(self, asked: str):
        """The one answer a scoped caller gets for a person outside their scope, or one that does not exist."""
        ...

    def require_access(self, permission: str, what: str, scope=None) -> None:
        """Raise AccessDenied unless the caller holds ``permission`` (over ``scope``)."""
        ...

    def get_user(self, name: str) -> dict[str, Any] | None:
        """The user ``name`` (name, display_name, created_at, created_by, disabled_at), or None."""
        ...

    def add_user(self, name: str, display_name: str | None, created_by: str) -> None:
        """Create user ``name`` with no grants; the name is unique (a second add raises the engine's integrity error)."""
        ...

    def disable_user(self, name: str) -> bool:
        """Disable a user: their tokens and ``--as`` stop working; grants and history stay."""
        ...

    def list_users(self) -> list[dict[str, Any]]:
        """Every user by name, with their live grants (as text) and the number of unrevoked tokens."""
        ...

    def user_grants(self, name: str) -> list:
        """The user's unrevoked grants (``motorcade.access.roles.Grant``) in the order they were given."""
        ...

    def add_grant(self, name: str, role: str, scope: str, granted_by: str) -> bool:
        """Grant ``role`` over ``scope``; False when the user already holds exactly that grant."""
        ...

    def revoke_grants(self, name: str, role: str, scope: str | None, revoked_by: str) -> int:
        """Revoke the user's grants of ``role`` (only over ``scope`` when given); the rows stay, dated."""
        ...

    def add_token(self, name: str, token_hash: str, prefix: str, label: str | None,
                  expires_at: dt.datetime | None) -> int:
        """Store a token by its hash (the token itself is never stored); returns the token's id."""
        ...

    def token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        """The token row whose hash is ``token_hash`` (revoked or expired ones too: the caller decides), or None."""
        ...

    def list_tokens(self, name: str | None = None) -> list[dict[str, Any]]:
        """Token rows by id (never their hashes), of user ``name`` or of everyone."""
        ...

    def revoke_token(self, token_id: int) -> bool:
        """Revoke a token; False when it was unknown or already revoked."""
        ...

    def touch_token(self, token_id: int) -> None:
        """Record that the token was just used (``last_used_at``)."""
        ...

    def audit(self, action: str, arguments: dict | None = None, affected: dict | None = None) -> int:
        """Append an entry for the current caller; returns its id. The previous hash is read under the write
        lock, so concurrent writers still form one chain."""
        ...

    def audit_entries(self, *, action: str | None = None, actor: str | None = None, since: str | None = None,
                      limit: int | None = None) -> list[dict[str, Any]]:
        """Entries, newest first, filtered by action (prefix), actor (substring) and time (``at >= since``)."""
        ...

    def audit_chain(self) -> Iterable[dict[str, Any]]:
        """Every entry in id order (for ``audit verify``)."""
        ...



@runtime_checkable
class TrackingStore(Protocol):
    """Tracked short links and open pixels, every hit on them, and provider receipts (deduplicated; refused ones counted)."""

    def add_links(self, links: Iterable[tuple[str, str, int, str, str | None]], *, at: dt.datetime) -> int:
        """Store ``(code, idempotency key, step, kind, target)`` rows; returns the number new."""
        ...

    def link(self, code: str) -> dict[str, Any] | None:
        """The link or open pixel with ``code``: idempotency_key, step, kind, target; None if unknown."""
        ...

    def links_of_send(self, idempotency_key: str) -> list[dict[str, Any]]:
        """The tracked links written for one send (see :meth:`link`), by step then in the order they were made."""
        ...

    def add_link_hit(self, code: str, *, at: dt.datetime, user_agent: str | None, bot: str | None) -> None:
        """Record one request for link ``code`` (``bot``: the rule that recognised a bot or scanner, or None for a person); in one transaction."""
        ...

    def link_hit_counts(self, origin_kind: str | None = None, origin: str | None = None) -> dict[str, int]:
        """Hits on links and pixels by what they were: ``click``, ``open``, ``bot`` (optionally of one
        campaign, trigger or journey ``origin``; ``origin_kind`` narrows it to that kind)."""
        ...

    def receipt_seen(self, provider: str, dedupe_key: str, *, at: dt.datetime) -> bool:
        """Remember a receipt; True if it had been handled before (a redelivery)."""
        ...

    def add_receipt_rejection(self, channel: str, reason: str, detail: str | None, *, at: dt.datetime) -> None:
        """Count a refused receipt (``reason``: signature, replayed, unknown_message or malformed); in one transaction."""
        ...

    def receipt_rejection_counts(self) -> dict[tuple[str, str], int]:
        """``{(channel, reason): count}`` of receipts refused."""
        ...

    def subscriptions_left(self, person_id: int, *, grant_event: str, template_id: str, channel: str,
                           templates: list[str]) -> int:
        """One-time subscriptions (WeChat mini-program ``subscribeMessage``) a person still has for
        ``template_id``: the ``grant_event`` events accepting it (property ``template_id``, ``result`` =
        "accept") minus the sends of ``channel`` already sent with one of ``templates`` (the rule template
        names that map to it)."""
        ...



@runtime_checkable
class JourneysStore(Protocol):
    """Per-person journey state (step, entry, due time, version), the path each person took, and the batches that advance them."""

    def record_journey_version(self, journey: str, version: str, text: str, *, at: dt.datetime) -> None:
        """Keep the text of a journey version (the first text recorded for a version stays)."""
        ...

    def journey_version_text(self, journey: str, version: str) -> str | None:
        """The rule text of ``journey`` at ``version`` (people in flight finish on the version they entered), or None."""
        ...

    def journey_entry_history(self, journey: str, person_ids: Iterable[int]) -> dict[int, tuple[int, int, bool]]:
        """``person -> (last entry number, when it was entered, whether the person is still in the journey)``
        for the people given who entered ``journey`` before."""
        ...

    def add_journey_states(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert new entries (a row whose key exists is left as it is). Returns how many were inserted."""
        ...

    def due_journey_states(self, journey: str, now: dt.datetime, *, limit: int,
                           after: tuple[int, int] = (0, 0)) -> list[dict[str, Any]]:
        """Active states whose step is due at ``now``, in (person, entry) order after ``after``."""
        ...

    def journey_waits_with_event(self, journey: str, step: str, event: str, now: dt.datetime) -> list[dict[str, Any]]:
        """Active states waiting at ``step`` (a ``wait for``) whose person has had ``event`` since the wait
        began, up to ``now``; not yet due (those come with :meth:`due_journey_states`)."""
        ...

    def journey_events(self, person_ids: Iterable[int], names: Iterable[str], *, since: int, until: int
                       ) -> dict[int, list[tuple[int, str, int, dict]]]:
        """``person -> [(event id, name, ts, properties)]`` of the named events in ``[since, until]``, by time."""
        ...

    def update_journey_states(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write each row's step, status, due_at, waiting_since and updated_at onto its (journey, person_id, entry); joins the caller's transaction (the engine writes a batch's states, path and sends in one)."""
        ...

    def add_journey_path(self, rows: Iterable[dict[str, Any]]) -> None:
        """Record steps taken: ``(journey, person_id, entry, step, outcome, next_step, at, detail)``."""
        ...

    def journey_state_counts(self, journey: str) -> list[tuple[str, str, str, int]]:
        """``(status, arm, step, people)`` for every combination present, over the caller's people only."""
        ...

    def journey_edge_counts(self, journey: str) -> list[tuple[str, str, str | None, int]]:
        """``(step, outcome, next step, people)``: how many took each edge (every entry counts), over the
        caller's people only."""
        ...

    def journey_states_of(self, journey: str, person_id: int) -> list[dict[str, Any]]:
        """Every entry of the person into ``journey`` (its state row), by entry."""
        ...

    def journey_path_of(self, journey: str, person_id: int) -> list[dict[str, Any]]:
        """The steps the person took in ``journey`` (entry, step, outcome, next_step, at, detail with the values seen), by entry then in the order taken."""
        ...

    def journey_entries(self, journey: str) -> list[tuple[int, int, str, int]]:
        """``(person, entry, arm, entered_at)`` of every entry of the caller's people."""
        ...

    def journey_active_versions(self, journey: str, *, besides: str) -> list[str]:
        """The versions of ``journey`` other than ``besides`` that people are still active on, by version."""
        ...

    def journey_names_with_state(self) -> list[str]:
        """The journeys anyone has entered, by name."""
        ...



@runtime_checkable
class Store(StoreBase, PeopleStore, EventsStore, QuarantineStore, IdentityStore, IngestStore, TagsStore, SegmentsStore,
            OutboxStore, ReportsStore, StatsStore, InboxStore, AccessStore,
            TrackingStore, JourneysStore, Protocol):
    """A project's operational store: every stage's named functions (see the module docstring for the
    contracts they share)."""


STAGE_PROTOCOLS: tuple[type, ...] = (StoreBase, PeopleStore, EventsStore, QuarantineStore, IdentityStore, IngestStore,
                                     TagsStore, SegmentsStore, OutboxStore, ReportsStore, StatsStore, InboxStore,
                                     AccessStore, TrackingStore, JourneysStore)
"""The protocols :class:`Store` is composed of, in order (for conformance checks and docs)."""
