"""The ingest core: records from a connector -> cleaned -> identities resolved -> written, or quarantined.

One batch from the connector is one write transaction: cleaning, identity resolution, people, cars,
ownerships, relations, events, consents and quarantined rows of the batch commit together, so a run
killed half-way leaves whole batches behind and a re-run (events dedup per source, records keyed per
source) ends in the same database as one clean run. Merges and splits mark people dirty in the same
transaction; :meth:`SQLiteStore.settle_identity` moves their events, tags and memberships at the end
of the run (and at the start of the next one, should a run die before its end).

A row that cannot be used goes to quarantine with its source, position, raw text and the reason; a
row is used whole or not at all (a DMS row with a bad VIN brings neither its person nor its car).

Large first loads of events (``bulk``) drop the events' indexes, the dedup index included, and
restore them at the end (:meth:`SQLiteStore.bulk_event_load`: duplicates removed keeping the first,
ids closed up, as ``INSERT OR IGNORE`` under the index would have left them). A connector that can
split its input into byte ranges (``column_ranges`` / ``read_column_range``) is then parsed by worker
processes (:meth:`Ingestor._run_parallel`): they clean whole batches into staging databases, this
process resolves identities and copies each batch in with one ``INSERT ... SELECT``. Every path
writes the same database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import attrs

from ..errors import MotorcadeError
from ..identity.guards import IdentityGuards
from ..identity.resolver import IdentityResolver, Observation, combination_key
from ..model import Advisor, Car, Consent, Identifier, Store
from .base import (
    AdvisorRecord,
    CarRecord,
    EventRecord,
    PersonRecord,
    RejectedRow,
    Source,
    SourceRecord,
    StoreRecord,
    TransferRecord,
)
from .batch import (STAGE_SCHEMA, EventBatch, ParseWorkers, StagedEvents, can_fork, default_workers,
                    properties_json)
from .clean import (NORMALISED_TYPES, CleanError, check_json_value, clean_identifier, clean_phone, clean_vin,
                    identifier_lookup_key, parse_date, parse_timestamp, zone)
from .mapping import attribute_types, source_tag_definitions

# Events that carry a consent change, unless the source maps its own (``consent_events``).
DEFAULT_CONSENT_EVENTS = {
    "unsubscribe": {"granted": False},
    "subscribe": {"granted": True},
}
_FROMISO = dt.datetime.fromisoformat


@attrs.define
class IngestSummary:
    """What one ingest run did."""

    source: str
    read: int = 0  # records read from the connector (rejected rows included)
    written: int = 0  # rows new in the store: identity records and events
    reference: int = 0  # stores, advisors and cars upserted (unchanged rows included)
    events: int = 0  # events new in the store
    duplicates: int = 0  # events already stored (re-ingest)
    people_created: int = 0  # people created
    merged: int = 0  # person ids merged into others
    flagged: int = 0  # identifiers flagged: junk, advisors' phones, shared too widely
    quarantined: int = 0  # rows sent to quarantine (new ones)
    rejected: int = 0  # rows rejected this run (new or already in quarantine)
    identifiers_dropped: int = 0  # identifier values that did not clean (bad phone, bad e-mail)
    tag_values: int = 0  # tag values imported through [sources.X.tags]
    # events of a first load (no event of the source stored before) that repeated an event read earlier
    # in the same load and were stored once: same dedup key, or, without one, same content
    collapsed: int = 0
    seconds: float = 0.0  # wall-clock time
    bulk: bool = False  # event indexes were dropped and rebuilt

    @property
    def rows_per_second(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "rows_per_second": round(self.rows_per_second, 1)}

    def warnings(self) -> list[str]:
        """What the operator should look at, one line each (the CLI and the pipeline print them)."""
        out = []
        if self.collapsed:
            out.append(
                f"{self.source}: warning: {self.collapsed:,} rows repeated an event read earlier in this first load "
                "and were stored once (same dedup_key, or without one the same name, time, identifiers and "
                "properties); if they are distinct events, map a dedup_key that tells them apart")
        return out


class Ingestor:
    """Writes connector records into one store. Reuse one instance for several sources of a run."""

    def __init__(self, store, *, guards: IdentityGuards | None = None, timezone: str = "Asia/Shanghai",
                 now: dt.datetime | None = None, workers: int | None = None,
                 tag_settings: dict[str, Any] | None = None):
        """``workers``: parse worker processes for large first loads of sources that can be read in
        parallel (None: the source's ``workers`` setting, else one per core; 0: parse in this process)."""
        self.store = store
        self.workers = workers
        self.tag_settings = tag_settings  # the [tags] table: drift thresholds for imported tags' health
        self.guards = guards or IdentityGuards.from_config({})
        self.timezone = timezone
        self.resolver = IdentityResolver(store, self.guards, now=now)
        # (type, raw, region) -> cleaned, or (type, value, lookup key, reason) when it did not clean
        self._cleaned: dict[tuple[str, str, str], Identifier | tuple] = {}
        self._rejected: dict[tuple, None] = {}  # the batch's identifier values that did not clean
        self._junk: dict[Identifier, bool] = {}  # cleaned identifier -> may link
        # region -> raw (type, value) pairs -> (identifiers, rejected values, unusable reason, combination key, hash text)
        self._id_sets: dict[str, dict[tuple, tuple]] = {}
        self._hours: dict[str, dict[str, int | None]] = {}  # time zone -> see _hour_epoch
        # seconds per stage of the last run's parallel load (see _run_parallel): what `make bench` prints
        self.timings: dict[str, float] = {}
        self._settled: dict = {}  # combination key -> unchanged_record entry (for one source and generation)

    # -- runs -------------------------------------------------------------------------------------

    def ingest(self, source: Source, *, progress: Callable[[int], None] | None = None,
               bulk: bool | None = None) -> IngestSummary:
        """Read ``source`` to the end (from its saved cursor) and write everything it yields.

        ``bulk``: load events without the events' indexes and build them at the end (None: when the
        source is large against the events stored), parsed by worker processes if the source can be
        read in byte ranges (see :meth:`_workers_for`). The result is the same either way.
        """
        store = self.store
        started = time.perf_counter()
        summary = IngestSummary(source=source.name)
        self.timings = {}
        store.ensure_event_indexes()  # a killed bulk load may have left them dropped
        with store.transaction():
            store.settle_identity()
        hint = source.size_hint() or 0
        if bulk is None:
            bulk = "events" in source.yields and hint >= max(50_000, 2 * store.event_count())
        summary.bulk = bulk
        cursor = store.get_source_cursor(source.name)
        settings = _SourceSettings.of(source, self.timezone)
        # a date column stays a date in rules (JSON keeps it as text): record the declared types
        for scope, kind in (("attribute", "person"), ("property", "event")):
            typed = attribute_types(source.settings, kind)
            if typed:
                with store.transaction():
                    store.define_value_types(typed, scope=scope, source=source.name)
        if settings.tags:  # [sources.X.tags]: tags computed by another system, in the tag catalogue
            from ..tags import imported as imported_tags

            imported_tags.define(store, source.name, settings.tags)
        tags_started = dt.datetime.now(dt.timezone.utc)
        first_load = not store.source_has_events(source.name)
        merged0, created0, flagged0 = self.resolver.merged, self.resolver.created, self.resolver.flagged
        try:
            if bulk:
                load = None
                try:
                    # Deduplicating at the end renumbers the ids after a duplicate: only for a first load
                    # (no event stored yet), never under the ids that triggers and tag runs already hold.
                    with store.bulk_event_load(defer_dedup=store.event_count() == 0) as load:
                        self._run(source, cursor, settings, summary, progress)
                        finishing = time.perf_counter()
                    self.timings["main: indexes"] = time.perf_counter() - finishing
                finally:
                    if load is not None and load.removed:  # the load's duplicates, removed at its end
                        summary.events -= load.removed
                        summary.written -= load.removed
                        summary.duplicates += load.removed
            elif hint >= 50_000:  # a large load of records: commits without syncs, one synced checkpoint
                with store.unsynced_writes():
                    self._run(source, cursor, settings, summary, progress)
            else:
                self._run(source, cursor, settings, summary, progress)
            with store.transaction():
                store.set_source_cursor(source.name, source.next_cursor())
        finally:
            with store.transaction():
                store.settle_identity()
        if bulk:
            analyzing = time.perf_counter()
            store.analyze()
            self.timings["main: analyze"] = time.perf_counter() - analyzing
        if settings.tags:
            from ..tags import imported as imported_tags

            imported_tags.record_run(store, source.name, settings.tags, started=tags_started,
                                     rows_written=summary.tag_values, tags_table=self.tag_settings)
        if first_load:  # every duplicate repeated a row of this very load
            summary.collapsed = summary.duplicates
        summary.merged = self.resolver.merged - merged0
        summary.people_created = self.resolver.created - created0
        summary.flagged = self.resolver.flagged - flagged0
        summary.seconds = time.perf_counter() - started
        return summary

    def _run(self, source: Source, cursor, settings: "_SourceSettings", summary: IngestSummary,
             progress: Callable[[int], None] | None) -> None:
        # event-heavy connectors offer columnar batches (see motorcade.sources.batch)
        read_columns = getattr(source, "read_columns", None)
        workers = self._workers_for(source) if summary.bulk else 0
        with _gc_paused():  # the connector's parsing too: it allocates as much as the writing does
            if workers:
                self._run_parallel(source, cursor, settings, summary, progress, workers)
                return
            self._run_batches(read_columns(cursor) if read_columns is not None else source.read(cursor),
                              settings, summary, progress)

    def _workers_for(self, source: Source) -> int:
        """Parse workers for a bulk load of ``source``: 0 unless it can be read in parallel."""
        if getattr(source, "column_ranges", None) is None or getattr(source, "read_column_range", None) is None:
            return 0
        if not getattr(self.store, "supports_staged_ingest", True):  # (PostgreSQL: no staging database)
            return 0
        workers = self.workers
        if workers is None:
            workers = source.settings.get("workers")
        if workers is None:
            return default_workers()
        try:
            workers = int(workers)
        except (TypeError, ValueError):
            raise MotorcadeError(f"[sources.{source.name}] workers = {workers!r} is not a whole number",
                                 hint="workers = 2 (parse processes), 0 to parse in the ingest process") from None
        if workers < 0:
            raise MotorcadeError(f"[sources.{source.name}] workers = {workers} is negative",
                                 hint="workers = 2 (parse processes), 0 to parse in the ingest process")
        return workers if can_fork() else 0

    def _run_parallel(self, source: Source, cursor, settings: "_SourceSettings", summary: IngestSummary,
                      progress: Callable[[int], None] | None, workers: int) -> None:
        """A bulk load with worker processes: each parses and cleans whole batches (byte ranges of the
        source, :meth:`Source.column_ranges`) into a staging database, in parallel; this process
        resolves identities and copies each batch's rows into ``events`` in the source's order, one
        transaction per batch as on the other paths."""
        store = self.store

        def work(task: tuple) -> StagedEvents:  # runs in a worker
            started, cpu = time.perf_counter(), time.process_time()
            staged = self._stage(settings, source.read_column_range(*task))
            staged.seconds = (time.process_time() - cpu, time.perf_counter() - started)
            return staged

        timings = self.timings
        clock = time.perf_counter

        def add(key: str, seconds: float) -> None:
            timings[key] = timings.get(key, 0.0) + seconds

        load_started = clock()
        # parsed batches wait in memory (a few MB each): four per worker, sixteen at most on a big machine
        with ParseWorkers(workers, work, ahead=max(1, min(4, 16 // workers))) as pool:
            store.attach_stage(STAGE_SCHEMA)
            try:
                results = pool.map(source.column_ranges(cursor))
                while True:
                    waited = clock()
                    staged = next(results, None)
                    started = clock()
                    add("main: waiting for workers", started - waited)
                    if staged is None:
                        break
                    store.load_stage(STAGE_SCHEMA, staged.data)
                    try:
                        with store.transaction():
                            self.write_batch(settings, staged.records, summary, staged=staged)
                    except BaseException:
                        self.resolver.reset()
                        raise
                    add("main: writing batches", clock() - started)
                    add("workers: parse+clean CPU", staged.seconds[0])
                    add("workers: busy", staged.seconds[1])
                    if progress is not None:
                        progress(len(staged))
            finally:
                store.detach_stage(STAGE_SCHEMA)
        add("load phase", clock() - load_started)
        timings["workers"] = workers

    def _run_batches(self, batches, settings: "_SourceSettings", summary: IngestSummary,
                     progress: Callable[[int], None] | None) -> None:
        for batch in batches:
            if not batch:
                continue
            try:
                with self.store.transaction():
                    if isinstance(batch, EventBatch):
                        self.write_batch(settings, batch.records, summary, event_batch=batch)
                    else:
                        self.write_batch(settings, batch, summary)
            except BaseException:
                self.resolver.reset()
                raise
            if progress is not None:
                progress(len(batch))

    def ingest_records(self, source_name: str, batches: Iterable[list[SourceRecord]], *,
                       settings: dict[str, Any] | None = None) -> IngestSummary:
        """Write in-memory batches as if a connector named ``source_name`` yielded them."""

        class _Memory(Source):
            type_name = "memory"
            yields = ("people", "events", "cars", "stores", "advisors")

            def read(self, cursor=None):
                yield from batches

        return self.ingest(_Memory(source_name, dict(settings or {}), Path(".")), bulk=False)

    # -- one batch --------------------------------------------------------------------------------

    def write_batch(self, settings: "_SourceSettings", records: list[SourceRecord], summary: IngestSummary,
                    event_batch: EventBatch | None = None, staged: StagedEvents | None = None
                    ) -> list[tuple[str, str, str]]:
        """Clean, resolve and write one batch (inside a transaction). Returns the rows quarantined.

        ``event_batch``: events in columns (the connector's fast path), written with the same rules.
        ``staged``: events a parse worker cleaned already (:meth:`_stage`), in the attached staging database.
        """
        store, guards = self.store, self.guards
        name = settings.name
        self._rejected = {}
        summary.read += len(records)
        failed: dict[Any, tuple[str, str, str]] = {}
        persons, cars, events, stores, advisors, transfers = [], [], [], [], [], []

        def fail(rec, reason: str) -> None:
            group = rec.position or id(rec)
            failed.setdefault(group, (rec.position or "?", rec.raw or "", reason))

        for rec in records:
            try:
                kind = type(rec)
                if kind is EventRecord:
                    events.append(self._clean_event(
                        rec.position or id(rec), rec.name, rec.ts, tuple((i.type, i.value) for i in rec.identifiers),
                        properties_json(rec.properties), rec.dedup_key, settings, summary))
                elif kind is PersonRecord:
                    if rec.attributes:
                        _check_attributes(rec.attributes)
                    rejected: list = []
                    ids = self._clean_identifiers(rec.identifiers, settings, rejected)
                    if rejected:
                        self._dropped(rejected, summary)
                    if not rec.source_key and not self._usable(ids):
                        raise CleanError(_no_identifier([i.type for i in rec.identifiers], ids, guards))
                    persons.append((rec, ids))
                elif kind is CarRecord:
                    cars.append(self._clean_car(rec, settings, summary))
                elif kind is TransferRecord:
                    transfers.append(rec)
                elif kind is RejectedRow:
                    fail(rec, rec.reason)
                elif kind is StoreRecord:
                    if not rec.id or not rec.name:
                        raise CleanError("missing store " + ("code" if not rec.id else "name"))
                    stores.append(Store(rec.id, rec.name, rec.group, rec.city, rec.brand))
                elif kind is AdvisorRecord:
                    if not rec.id or not rec.name or not rec.store_id:
                        raise CleanError("missing advisor " + ("code" if not rec.id else "name" if not rec.name else "store"))
                    phone = None
                    if rec.phone:
                        try:
                            phone = clean_phone(rec.phone, settings.region, guards.accept_unknown_ranges)
                        except CleanError as exc:
                            raise CleanError(f"advisor phone: {exc}") from None
                    advisors.append(Advisor(rec.id, rec.name, rec.store_id, rec.role, phone))
                else:
                    raise CleanError(f"unknown record type {kind.__name__}")
            except CleanError as exc:
                fail(rec, str(exc))
        if transfers:  # after the loop: a transfer may name a car described earlier in the batch
            batch_vins = {c[1] for c in cars}
            cleaned_transfers = []
            for rec in transfers:
                try:
                    cleaned_transfers.append(self._clean_transfer(rec, settings, summary, batch_vins))
                except CleanError as exc:
                    fail(rec, str(exc))
            transfers = cleaned_transfers
        if failed:  # a row is used whole or not at all
            keep = lambda rec: (rec.position or id(rec)) not in failed  # noqa: E731
            persons = [p for p in persons if keep(p[0])]
            cars = [c for c in cars if keep(c[0])]
            events = [e for e in events if e[0] not in failed]
            stores_ok = {r.id for r in records if isinstance(r, StoreRecord) and keep(r)}
            stores = [s for s in stores if s.id in stores_ok]
            advisors_ok = {r.id for r in records if isinstance(r, AdvisorRecord) and keep(r)}
            advisors = [a for a in advisors if a.id in advisors_ok]
            transfers = [t for t in transfers if keep(t[0])]
        if event_batch is not None and event_batch.events:
            # the fast path: one line is one event, so a failure concerns that line alone
            summary.read += len(event_batch.events)
            fast = self._clean_event_rows(event_batch, settings, summary, failed)
            position = event_batch.position
            if failed and records:  # a record of the batch that failed may share a fast row's position
                fast = [e for e in fast if position(e[0]) not in failed]
            events.extend(fast)
        if staged is not None:  # cleaned by a worker with the rules of _clean_event; one line, one row
            summary.read += staged.events
            summary.identifiers_dropped += staged.identifiers_dropped
            self._rejected.update(dict.fromkeys(staged.rejected))
            for row in staged.failed:
                failed.setdefault(row[0], row)

        # -- reference data first: stores, advisors (their phones never link customers)
        if stores:
            store.upsert_stores(stores)
            summary.reference += len(stores)
        if advisors:
            store.ensure_stores(a.store_id for a in advisors)
            store.upsert_advisors(advisors)
            summary.reference += len(advisors)
            phones = [Identifier("phone", a.phone) for a in advisors if a.phone]
            if phones and not guards.advisor_phones_link:
                self.resolver.flag(phones, "an advisor's work phone")

        # -- identities: persons and car owners here; event actors below, one observation per distinct
        #    identifier set (a person's events repeat the same few identifiers)
        observations: list[Observation] = []
        rule = f"{name} record"
        for rec, ids in persons:
            observations.append(Observation(rec.source_key or None, ids, rec.attributes or None, rule))
        for car in cars:
            rec, owner_ids = car[0], car[5]
            if rec.owner_key:
                observations.append(Observation(rec.owner_key, (), None, rule))
            elif owner_ids:
                observations.append(Observation(None, owner_ids, None, f"{name} car owner"))
        for _rec, _vin, _date, seller_ids, buyer_ids in transfers:
            observations.append(Observation(None, seller_ids, None, f"{name} car seller"))
            observations.append(Observation(None, buyer_ids, None, f"{name} car buyer"))
        records_before = self.resolver.records_created
        resolved = self.resolver.resolve(name, observations) if observations else []
        summary.written += self.resolver.records_created - records_before
        it = iter(resolved)

        relations: list[tuple] = []
        tag_rows: list[tuple[int, dict[str, Any]]] = []
        for rec, _ids in persons:
            rid, pid = next(it)
            if rec.tags:
                tag_rows.append((pid, rec.tags))
            for kind, target in rec.relations:
                relations.append((rid, pid, kind, target, name, None))
            for channel, granted, at in rec.consents:
                ts = parse_timestamp(at, settings.tz) if at is not None else settings.now()
                store.set_consent(Consent(pid, channel, granted, ts, name), undated=at is None, record_id=rid)
        ownerships = []
        car_rows = []
        for rec, vin, purchase, owned_from, owned_to, owner_ids in cars:
            car_rows.append(Car(vin, rec.brand, rec.model, rec.model_year, purchase, rec.store_id))
            if rec.owner_key or owner_ids:
                rid, pid = next(it)
                start = owned_from or purchase
                ownerships.append((pid, vin, start.isoformat() if start else None,
                                   owned_to.isoformat() if owned_to else None, name, rid))
                since = start.isoformat() if start else None
                if rec.advisor_id:
                    relations.append((rid, pid, settings.car_advisor_relation, rec.advisor_id, name, since))
                if rec.store_id:
                    relations.append((rid, pid, settings.car_store_relation, rec.store_id, name, since))
        if car_rows:
            store.ensure_stores(c.store_id for c in car_rows if c.store_id)
            store.upsert_cars(car_rows)
            summary.reference += len(car_rows)
        if ownerships:
            store.upsert_ownership_rows(ownerships)
        if transfers:
            sales = []
            for _rec, vin, date, _seller_ids, _buyer_ids in transfers:
                (_srid, seller), (brid, buyer) = next(it), next(it)
                sales.append((vin, seller, buyer, date.isoformat() if date else None, name, brid))
            store.transfer_ownerships(sales, today=self._today(settings).isoformat())
            summary.reference += len(sales)
        if relations:
            store.add_record_relations(relations)
        if tag_rows and settings.tags:
            from ..tags import imported as imported_tags

            summary.tag_values += imported_tags.write(store, name, settings.tags, tag_rows,
                                                      at=dt.datetime.now(dt.timezone.utc))

        if events:
            self._write_events(settings, events, summary)
        if staged is not None and staged.idsets:
            self._write_staged(settings, staged, summary)

        quarantined = list(failed.values())
        if event_batch is not None and len(quarantined) > 1:  # in the order of the source's lines
            quarantined.sort(key=event_batch.order_of)
        elif staged is not None and len(quarantined) > 1:
            quarantined.sort(key=_line_order)
        if quarantined:
            summary.rejected += len(quarantined)
            summary.quarantined += store.quarantine_rows(name, quarantined)
        if self._rejected:
            store.record_rejected_identifiers(name, list(self._rejected))
        return quarantined

    # -- cleaning ---------------------------------------------------------------------------------

    def _clean_identifiers(self, raw, settings: "_SourceSettings", rejected: list) -> tuple[Identifier, ...]:
        """The cleaned identifiers of ``raw``; each value that does not clean is appended to ``rejected``
        as ``(type, value as read, lookup key, reason)`` (see :meth:`_dropped`)."""
        out = []
        region = settings.region
        cache = self._cleaned
        for ident in raw:
            type_, value = ident.type, ident.value
            if type_ not in NORMALISED_TYPES and type(value) is str:
                # a CRM or DMS id is only trimmed, and unique per record: caching it would only push the
                # phones (whose parse is worth caching) out of the cache
                text = value.strip()
                if text:
                    out.append(Identifier(type_, text))
                else:
                    rejected.append((type_, "", "", f"empty {type_}"))
                continue
            key = (type_, value, region)
            cleaned = cache.get(key)
            if cleaned is None:
                try:
                    cleaned = Identifier(ident.type, clean_identifier(
                        ident.type, ident.value, region=region, accept_unknown_ranges=self.guards.accept_unknown_ranges))
                except CleanError as exc:
                    text = str(value).strip() if value is not None else ""
                    cleaned = (type_, text, identifier_lookup_key(type_, text), str(exc))
                if len(cache) > 1_000_000:
                    cache.clear()
                cache[key] = cleaned
            if type(cleaned) is tuple:  # (an Identifier is an attrs class, not a tuple)
                rejected.append(cleaned)
            else:
                out.append(cleaned)
        if len(out) < 2:
            return tuple(out)
        # duplicates (two raw spellings of one number) dropped, first kept; keyed by (type, value)
        # tuples, whose hash is C, not by the attrs class's Python-level __hash__
        seen: dict[tuple[str, str], Identifier] = {}
        for i in out:
            seen.setdefault((i.type, i.value), i)
        return tuple(seen.values())

    def _dropped(self, rejected, summary: IngestSummary) -> None:
        """Count identifier values that did not clean and keep them for the batch's rejected_identifiers."""
        summary.identifiers_dropped += len(rejected)
        self._rejected.update(dict.fromkeys(rejected))

    def _usable(self, ids: tuple[Identifier, ...]) -> bool:
        junk = self._junk
        for i in ids:
            ok = junk.get(i)
            if ok is None:
                ok = junk[i] = self.guards.junk_reason(i.type, i.value) is None
            if ok:
                return True
        return False

    def _write_events(self, settings: "_SourceSettings", events: list[tuple], summary: IngestSummary) -> None:
        """Resolve cleaned events (one observation per distinct identifier set) and insert them."""
        name = settings.name
        event_rule = f"{name} event"
        index: dict[str, int] = {}
        observations: list[Observation] = []
        slots = []
        for ev in events:
            combo = ev[6]
            i = index.get(combo)
            if i is None:
                i = index[combo] = len(observations)
                observations.append(Observation(combo, ev[3], None, event_rule))
            slots.append(i)
        resolved = self._resolve_event_sets(name, observations, summary)
        people = [resolved[i] for i in slots]
        rows = [(pid, ev[1], ev[2], ev[4], name, ev[5], rid) for ev, (rid, pid) in zip(events, people)]
        for ev, (_rid, pid) in zip(events, people):
            if ev[1] in settings.consent_events:
                self._consent(settings, pid, ev[1], ev[2], ev[4])
        new = self.store.insert_event_rows(rows)
        summary.events += new
        summary.duplicates += len(rows) - new
        summary.written += new

    def _write_staged(self, settings: "_SourceSettings", staged: StagedEvents, summary: IngestSummary) -> None:
        """:meth:`_write_events` for rows a worker cleaned: the same resolution, then one INSERT ... SELECT."""
        name = settings.name
        event_rule = f"{name} event"
        observations = [Observation(combo, ids, None, event_rule) for combo, ids in staged.idsets]
        resolving = time.perf_counter()
        resolved = self._resolve_event_sets(name, observations, summary)
        inserting = time.perf_counter()
        timings = self.timings
        timings["main: resolving identities"] = timings.get("main: resolving identities", 0.0) + inserting - resolving
        for idset, event_name, epoch, props in staged.consents:
            self._consent(settings, resolved[idset][1], event_name, epoch, props)
        people = [(i, pid, rid) for i, (rid, pid) in enumerate(resolved)]
        rows = staged.events - len(staged.failed)
        new = self.store.insert_staged_events(STAGE_SCHEMA, name, people)
        timings["main: inserting rows"] = timings.get("main: inserting rows", 0.0) + time.perf_counter() - inserting
        summary.events += new
        summary.duplicates += rows - new
        summary.written += new

    def _resolve_event_sets(self, name: str, observations: list[Observation], summary: IngestSummary) -> list:
        """``(record id, person id)`` of each distinct identifier set of a batch's events."""
        resolver = self.resolver
        # identifier sets already stored as they are need no resolution, only their person after it;
        # once found so, a set stays so while the resolver's caches live (links are only added)
        generation = resolver.generation
        settled = self._settled
        if settled.get(None) != (name, generation):
            settled.clear()
            settled[None] = (name, generation)
        unchanged = []
        for o in observations:
            entry = settled.get(o.key)
            if entry is None:
                entry = resolver.unchanged_record(name, o.key, o.identifiers)
                if entry is not None:
                    settled[o.key] = entry
            unchanged.append(entry)
        todo = [o for o, entry in zip(observations, unchanged) if entry is None]
        records_before = resolver.records_created
        done = iter(resolver.resolve(name, todo) if todo else ())
        if resolver.generation != generation:  # the caches were reset meanwhile: resolve them all
            resolved = resolver.resolve(name, observations)
        else:
            resolved = [next(done) if entry is None else (entry[0], resolver.person_of(entry[1]))
                        for entry in unchanged]
        summary.written += resolver.records_created - records_before
        return resolved

    def _consent(self, settings: "_SourceSettings", pid: int, event_name: str, epoch: int, props: str) -> None:
        rule_ = settings.consent_events[event_name]
        channel = rule_.get("channel") or json.loads(props).get("channel") or "*"
        self.store.set_consent(Consent(pid, str(channel), bool(rule_.get("granted", False)),
                                       dt.datetime.fromtimestamp(epoch, dt.timezone.utc), settings.name))

    def _stage(self, settings: "_SourceSettings", batch: EventBatch) -> StagedEvents:
        """The work of a parse worker: :meth:`_clean_event` of every event of ``batch`` into a
        :class:`StagedEvents`, with a cheap path for ISO time stamps (an epoch per hour and offset)."""
        rows: list[tuple] = []
        append = rows.append
        idsets: list[tuple] = []
        numbers: dict[str, int] = {}  # combination key -> idset number
        consents: list[tuple] = []
        consent_events = settings.consent_events
        failed: list[tuple] = []
        region, tzinfo = settings.region, settings.tzinfo
        earliest, latest = settings.earliest, settings.latest
        id_sets = self._id_sets.setdefault(region, {})
        hours = self._hours.setdefault(settings.tz, {})
        by_object: dict[int, tuple] = {}
        sha256 = hashlib.sha256
        dropped = 0
        rejected: dict[tuple, None] = {}
        for where, name, ts, raw_ids, props_json, dedup, raw in batch.events:
            try:
                if not name:
                    raise CleanError("missing event name")
                epoch = _cached_epoch(ts, hours, tzinfo) if type(ts) is str else None
                if epoch is None:
                    epoch = _epoch(ts, tzinfo)
                if not earliest <= epoch <= latest:
                    raise CleanError(settings.out_of_range(ts))
                id_set = by_object.get(id(raw_ids))  # connectors reuse one tuple per identifier set
                if id_set is None:
                    id_set = id_sets.get(raw_ids)
                    if id_set is None:
                        id_set = self._identifier_set(raw_ids, settings)
                    by_object[id(raw_ids)] = id_set  # batch.events keeps raw_ids alive: ids stay unique
                if id_set[1]:
                    dropped += len(id_set[1])
                    rejected.update(dict.fromkeys(id_set[1]))
                if id_set[2] is not None:
                    raise CleanError(id_set[2])
            except CleanError as exc:
                failed.append((batch.position(where), batch.raw_text(raw), str(exc)))
                continue
            combo = id_set[3]
            if not dedup:
                text = f"{name}\x1f{epoch}\x1f{id_set[4]}\x1f{props_json}"
                dedup = "h:" + sha256(text.encode()).hexdigest()[:32]
            number = numbers.get(combo)
            if number is None:
                number = numbers[combo] = len(idsets)
                idsets.append((combo, id_set[0]))
            append((name, epoch, number, props_json, dedup))
            if name in consent_events:
                consents.append((number, name, epoch, props_json))
        return StagedEvents(StagedEvents.pack(rows), idsets, consents, failed, batch.records, len(batch.events),
                            dropped, list(rejected))

    def _clean_event_rows(self, batch: EventBatch, settings: "_SourceSettings", summary: IngestSummary,
                          failed: dict) -> list[tuple]:
        """:meth:`_clean_event` of every row of a columnar batch, with its common case inlined:
        ISO text time stamps and identifier sets seen before with a usable identifier."""
        out = []
        append = out.append
        region, tzinfo = settings.region, settings.tzinfo
        earliest, latest = settings.earliest, settings.latest
        id_sets = self._id_sets.setdefault(region, {})
        fromiso = _FROMISO
        hours = self._hours.setdefault(settings.tz, {})
        sha256 = hashlib.sha256
        for row in batch.events:
            where, name, ts, raw_ids, props_json, dedup, raw = row
            id_set = id_sets.get(raw_ids)
            if name and type(ts) is str and id_set is not None and id_set[2] is None:
                epoch = _cached_epoch(ts, hours, tzinfo)
                if epoch is None:
                    try:
                        value = fromiso(ts)
                    except ValueError:
                        value = None
                    if value is not None and value.year >= 1900:
                        if value.tzinfo is None:
                            value = value.replace(tzinfo=tzinfo)
                        epoch = int(value.timestamp())
                if epoch is not None and earliest <= epoch <= latest:
                    if id_set[1]:
                        self._dropped(id_set[1], summary)
                    if not dedup:
                        text = f"{name}\x1f{epoch}\x1f{id_set[4]}\x1f{props_json}"
                        dedup = "h:" + sha256(text.encode()).hexdigest()[:32]
                    append((where, name, epoch, id_set[0], props_json, dedup, id_set[3]))
                    continue
            try:  # everything else: the general path (and its error messages)
                append(self._clean_event(where, name, ts, raw_ids, props_json, dedup, settings, summary))
            except CleanError as exc:
                pos = batch.position(where)
                failed.setdefault(pos, (pos, batch.raw_text(raw), str(exc)))
        return out

    def _clean_event(self, where: Any, name: str, ts: Any, raw_ids: tuple[tuple[str, str], ...], props_json: str,
                     dedup: str | None, settings: "_SourceSettings", summary: IngestSummary) -> tuple:
        """``(where, name, epoch, identifiers, properties JSON, dedup key, combination key)`` of one event."""
        if not name:
            raise CleanError("missing event name")
        epoch = _epoch(ts, settings.tzinfo)
        if not settings.earliest <= epoch <= settings.latest:
            raise CleanError(settings.out_of_range(ts))
        id_set = self._id_sets.get(settings.region, {}).get(raw_ids)
        if id_set is None:
            id_set = self._identifier_set(raw_ids, settings)
        ids, rejected, unusable, combo, ids_text = id_set
        if rejected:
            self._dropped(rejected, summary)
        if unusable is not None:
            raise CleanError(unusable)
        if not dedup:
            text = f"{name}\x1f{epoch}\x1f{ids_text}\x1f{props_json}"
            dedup = "h:" + hashlib.sha256(text.encode()).hexdigest()[:32]
        return (where, name, epoch, ids, props_json, dedup, combo)

    def _identifier_set(self, raw_ids: tuple[tuple[str, str], ...], settings: "_SourceSettings") -> tuple:
        """Cleaned identifiers of an event, and what follows from them, cached per raw identifier set
        (a person's identifiers recur on every one of their events)."""
        rejected: list = []
        ids = self._clean_identifiers([Identifier(t, v) for t, v in raw_ids], settings, rejected)
        unusable = None if self._usable(ids) else _no_identifier([t for t, _ in raw_ids], ids, self.guards)
        ids_text = "\x1f".join(sorted(f"{i.type}={i.value}" for i in ids))
        entry = (ids, tuple(rejected), unusable, combination_key(ids) if ids else "", ids_text)
        cache = self._id_sets.setdefault(settings.region, {})
        if len(cache) > 1_000_000:
            cache.clear()
        cache[raw_ids] = entry
        return entry

    def _clean_car(self, rec: CarRecord, settings: "_SourceSettings", summary: IngestSummary) -> tuple:
        vin = clean_vin(rec.vin, check_digit=settings.vin_check_digit)
        purchase = parse_date(rec.purchase_date) if rec.purchase_date else None
        owned_from = parse_date(rec.owned_from) if rec.owned_from else None
        owned_to = parse_date(rec.owned_to) if rec.owned_to else None
        if owned_from and owned_to and owned_to < owned_from:
            raise CleanError(f"ownership ends ({owned_to}) before it starts ({owned_from})")
        owner_ids = ()
        if rec.owner and not rec.owner_key:
            rejected: list = []
            owner_ids = self._clean_identifiers(rec.owner, settings, rejected)
            if rejected:
                self._dropped(rejected, summary)
        if rec.owner and not rec.owner_key and not self._usable(owner_ids):
            raise CleanError("car owner: " + _no_identifier([i.type for i in rec.owner], owner_ids, self.guards))
        return (rec, vin, purchase, owned_from, owned_to, owner_ids)

    def _clean_transfer(self, rec: TransferRecord, settings: "_SourceSettings", summary: IngestSummary,
                        batch_vins: set[str]) -> tuple:
        vin = clean_vin(rec.vin, check_digit=settings.vin_check_digit)
        if vin not in batch_vins and self.store.get_car(vin) is None:
            raise CleanError(f"car {vin} is not known: load the source that describes it (brand, model) first, "
                             f"then `motorcade quarantine retry`")
        date = parse_date(rec.date) if rec.date else None
        sides = []
        for label, raw in (("seller", rec.seller), ("buyer", rec.buyer)):
            rejected: list = []
            ids = self._clean_identifiers(raw, settings, rejected)
            if rejected:
                self._dropped(rejected, summary)
            if not self._usable(ids):
                raise CleanError(f"car {label}: " + _no_identifier([i.type for i in raw], ids, self.guards))
            sides.append(ids)
        return (rec, vin, date, *sides)

    def _today(self, settings: "_SourceSettings") -> dt.date:
        """The date of the ingest in the source's time zone (an undated sale happened by then)."""
        now = self.resolver.now or dt.datetime.now(dt.timezone.utc)
        return now.astimezone(settings.tzinfo).date()

    # -- quarantine retry -------------------------------------------------------------------------

    def retry(self, source: Source, rows) -> tuple[int, int]:
        """Re-read quarantined rows of ``source`` with today's mapping and guards; returns (retried, fixed)."""
        settings = _SourceSettings.of(source, self.timezone)
        fixed = 0
        for row in rows:
            try:
                records = source.reparse(row.position, row.raw)
            except NotImplementedError:
                raise MotorcadeError(
                    f"source type {source.type_name!r} cannot re-read single rows",
                    hint=f"fix the data or mapping and run `motorcade ingest {source.name}` again",
                ) from None
            summary = IngestSummary(source=source.name)
            try:
                with self.store.transaction():
                    again = self.write_batch(settings, records, summary)
                    if again:
                        self.store.mark_quarantine_retried(row.id, resolved=False, reason=again[0][2])
                    else:
                        self.store.mark_quarantine_retried(row.id, resolved=True)
                        fixed += 1
            except BaseException:
                self.resolver.reset()
                raise
        with self.store.transaction():
            self.store.settle_identity()
        return len(rows), fixed


@contextlib.contextmanager
def _gc_paused():
    """No cyclic garbage collection while a source is read and written.

    Every batch allocates hundreds of thousands of small containers (rows, cache entries) and frees
    them by reference counting; the collector's scans of the resolver's large caches (millions of
    objects after a big load) cost more than the rest of the work and find next to nothing: the
    ingest path makes no reference cycles per row (a test checks), so memory stays flat.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_PLAIN_ATTRIBUTE = frozenset({str, int, bool, type(None)})


def _check_attributes(attributes: dict[str, Any]) -> None:
    """CleanError for attributes the store cannot keep as strict JSON (see ``check_json_value``);
    plain text, integers and booleans (most attributes) are not looked at twice."""
    for value in attributes.values():
        if type(value) not in _PLAIN_ATTRIBUTE:
            check_json_value(attributes, "attributes")
            return


def _epoch(ts: Any, tzinfo) -> int:
    """Seconds since the epoch of an event's time stamp: ISO 8601 text (what event logs carry) through
    ``datetime.fromisoformat``, everything else through :func:`parse_timestamp`."""
    if type(ts) is str:
        try:
            value = _FROMISO(ts)
        except ValueError:
            value = None
        if value is None or value.year < 1900:
            return int(parse_timestamp(ts, tzinfo).timestamp())
        if value.tzinfo is None:
            return int(value.replace(tzinfo=tzinfo).timestamp())
        return int(value.timestamp())
    return int(parse_timestamp(ts, tzinfo).timestamp())


# "MM:SS" of a time stamp (ASCII digits, 00-59 each) -> seconds into the hour
_MINUTES_SECONDS = {f"{m:02d}:{s:02d}": m * 60 + s for m in range(60) for s in range(60)}


def _cached_epoch(ts: str, hours: dict, tzinfo) -> int | None:
    """The epoch of ISO text ``ts`` from its hour's cached epoch (:func:`_hour_epoch`) plus ``MM:SS``;
    None when it must take the general path (:func:`_epoch`)."""
    if len(ts) >= 19 and ts[13] == ":":
        seconds = _MINUTES_SECONDS.get(ts[14:19])
        if seconds is not None:
            key = ts[:13] + ts[19:]
            base = hours.get(key, -1)
            if base == -1:
                base = _hour_epoch(hours, key, ts[:13], ts[19:], tzinfo)
            if base is not None:
                return base + seconds
    return None


def _hour_epoch(hours: dict, key: str, prefix: str, suffix: str, tzinfo) -> int | None:
    """The epoch of ``prefix:00:00suffix`` (``prefix`` = ``YYYY-MM-DDTHH``, ``suffix`` = offset or
    nothing), cached in ``hours`` under ``key``; None when time stamps of that hour must take
    :func:`_epoch`: the hour text is not ISO 8601, lies before 1970, or its offset changes within the
    hour (a daylight-saving change of a naive time). Otherwise every ``prefix:MM:SSsuffix`` with valid
    minutes and seconds is exactly this epoch plus ``MM * 60 + SS``, as :func:`_epoch` would compute
    it: the two ends of the hour are checked to be 3599 seconds apart."""
    try:
        start, end = _FROMISO(prefix + ":00:00" + suffix), _FROMISO(prefix + ":59:59" + suffix)
    except ValueError:
        start = end = None
    base = None
    if start is not None and start.year >= 1900:
        if start.tzinfo is None:
            start, end = start.replace(tzinfo=tzinfo), end.replace(tzinfo=tzinfo)
        first, last = int(start.timestamp()), int(end.timestamp())
        if first >= 0 and last - first == 3599:
            base = first
    if len(hours) > 100_000:
        hours.clear()
    hours[key] = base
    return base


def _line_order(quarantined: tuple[str, str, str]) -> tuple[int, int]:
    """Sort key of a quarantined ``(position, raw, reason)``: line or byte number (the source's order)."""
    number = quarantined[0].partition(" ")[2]
    return (0, int(number)) if number.isdigit() else (1, 0)


def _no_identifier(raw_types: list[str], cleaned, guards: IdentityGuards) -> str:
    if not raw_types:
        return "missing identifiers: the row names nobody"
    if not cleaned:
        return "no usable identifier: " + ", ".join(sorted(set(raw_types))) + " did not clean"
    reasons = sorted({f"{i.type} is a {guards.junk_reason(i.type, i.value)}" for i in cleaned})
    return "no usable identifier: " + "; ".join(reasons)


@attrs.frozen
class _SourceSettings:
    name: str
    tz: str
    tzinfo: Any
    region: str
    vin_check_digit: Any
    consent_events: dict[str, dict[str, Any]]
    car_advisor_relation: str
    car_store_relation: str
    earliest: int  # event times before this epoch are quarantined (min_event_time)
    latest: int  # ... and after this one (max_event_days_ahead after the ingest started)
    range_text: str  # the range in words, for the reason
    tags: tuple = ()  # TagDefinitions of [sources.X.tags]

    @classmethod
    def of(cls, source: Source, default_tz: str) -> "_SourceSettings":
        s = source.settings
        tz = s.get("timezone", default_tz)
        try:
            tzinfo = zone(tz)
        except CleanError as exc:
            raise MotorcadeError(f"[sources.{source.name}] timezone: {exc}", hint='e.g. timezone = "Asia/Shanghai"') from None
        consent = dict(DEFAULT_CONSENT_EVENTS)
        consent.update(s.get("consent_events", {}))
        earliest, latest, range_text = _event_time_range(source.name, s, tzinfo)
        return cls(
            name=source.name, tz=tz, tzinfo=tzinfo, region=s.get("phone_region", "CN"),
            vin_check_digit=s.get("vin_check_digit", True), consent_events=consent,
            car_advisor_relation=s.get("car_advisor_relation", "service_advisor"),
            car_store_relation=s.get("car_store_relation", "selling_store"),
            earliest=earliest, latest=latest, range_text=range_text,
            tags=source_tag_definitions(source.name, s),
        )

    def out_of_range(self, ts: Any) -> str:
        return f"time stamp {str(ts)!r} is outside the accepted range of event times ({self.range_text})"

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)


# Event times a source may carry (settings min_event_time, max_event_days_ahead): outside them a time
# is a typo, a placeholder (9999-12-31, 1900-01-01) or a clock fault, and a time beyond the year 9999
# in UTC cannot even be read back.
DEFAULT_MIN_EVENT_TIME = "1990-01-01"
DEFAULT_MAX_EVENT_DAYS_AHEAD = 1


def _event_time_range(name: str, settings: dict[str, Any], tzinfo) -> tuple[int, int, str]:
    """``(earliest epoch, latest epoch, the range in words)`` of a source's event times."""
    raw_min = settings.get("min_event_time", DEFAULT_MIN_EVENT_TIME)
    try:
        earliest = parse_timestamp(raw_min if isinstance(raw_min, (str, dt.datetime)) else str(raw_min), tzinfo)
    except CleanError as exc:
        raise MotorcadeError(f"[sources.{name}] min_event_time = {raw_min!r}: {exc}",
                             hint=f'a date or time, e.g. min_event_time = "{DEFAULT_MIN_EVENT_TIME}"') from None
    days = settings.get("max_event_days_ahead", DEFAULT_MAX_EVENT_DAYS_AHEAD)
    if isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 <= days <= 36500:
        raise MotorcadeError(f"[sources.{name}] max_event_days_ahead = {days!r} is not a number of days from 0 to 36500",
                             hint=f"max_event_days_ahead = {DEFAULT_MAX_EVENT_DAYS_AHEAD}")
    latest = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)
    text = f"from {earliest.astimezone(tzinfo).isoformat(timespec='seconds')} to {days:g} day(s) after the ingest started; " \
           f"[sources.{name}] min_event_time and max_event_days_ahead set it"
    return int(earliest.timestamp()), int(latest.timestamp()), text


# -- project-level entry points (the CLI calls these) ---------------------------------------------

def open_source(project, name: str) -> Source:
    """Instantiate the configured source ``name`` of ``project`` through its plugin."""
    settings = dict(project.source_settings(name))
    settings.setdefault("timezone", project.config.timezone)
    cls = project.plugins.registry().source_class(settings["type"])
    return cls(name, settings, project.directory)


def project_ingestor(project) -> Ingestor:
    identity = project.config.identity
    guards = IdentityGuards.from_config(identity)
    return Ingestor(project.store, guards=guards, timezone=project.config.timezone, tag_settings=project.config.tags)


def ingest(project, name: str, *, progress: Callable[[int], None] | None = None,
           ingestor: Ingestor | None = None) -> IngestSummary:
    """Ingest one configured source of ``project``."""
    from ..analytics.ingest import ingest_opened  # ingest_into = "analytics": into the engine

    source = open_source(project, name)
    return ingest_opened(project, source, ingestor or project_ingestor(project), progress=progress)
