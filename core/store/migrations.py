"""Numbered schema migrations, one list for every store.

Each migration is a function ``(db: sqlite_utils.Database) -> None`` appended to :data:`MIGRATIONS`;
its number is its position (1-based). The ``schema_version`` table records every applied migration
(version, name, applied_at). Never edit or reorder a migration that has shipped: add a new one.

The function is the SQLite body. Where PostgreSQL's DDL must differ, the same migration carries a
PostgreSQL body, registered with ``@postgresql(m0NN_name)``: a function ``(execute) -> None`` where
``execute(sql)`` runs one statement. A migration without one cannot run on PostgreSQL (the store refuses
to open rather than skip it): :func:`body_for` names the migration.
"""

from __future__ import annotations

from typing import Any, Callable

import sqlite_utils

from ..errors import MotorcadeError
from .codec import iso, utc_now

MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = []


def migration(fn: Callable[[sqlite_utils.Database], None]):
    """Register ``fn`` as the next numbered migration."""
    MIGRATIONS.append(fn)
    return fn


def postgresql(sqlite_body: Callable[..., None]):
    """Attach a PostgreSQL body to the migration ``sqlite_body`` (same number, same name)."""

    def register(fn: Callable[[Callable[[str], None]], None]):
        sqlite_body.postgresql = fn
        return fn

    return register


def body_for(fn: Callable[..., None], dialect: str) -> Callable[..., None]:
    """The body of migration ``fn`` for ``dialect`` ("sqlite" or "postgresql")."""
    if dialect == "sqlite":
        return fn
    body = getattr(fn, dialect, None)
    if body is None:
        raise NotImplementedError(f"migration {fn.__name__} has no {dialect} body: the {dialect} store cannot "
                                  f"be brought to this schema version")
    return body


def apply_pending(store: Any, apply: Callable[[Callable[..., None]], None], *, upto: int | None = None) -> list[str]:
    """Bring ``store`` to schema version ``upto`` (default: the last): each pending migration in its own
    transaction, run by ``apply(fn)`` (the store runs the body for its engine) and recorded in
    ``schema_version``; return the names applied. The store's ``schema_version`` table must exist."""
    target = len(MIGRATIONS) if upto is None else upto
    current = store.schema_version()
    if current > len(MIGRATIONS):
        raise MotorcadeError(
            f"{store.location} has schema version {current}, newer than this Motorcade knows ({len(MIGRATIONS)})",
            hint="upgrade Motorcade (and its plugins) before opening this project",
        )
    applied: list[str] = []
    for number, fn in enumerate(MIGRATIONS, start=1):
        if number <= current or number > target:
            continue
        with store.transaction():
            # Another process may have applied it since we looked: check again under the write lock.
            if store.schema_version() >= number:
                continue
            apply(fn)
            store.conn.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                               (number, fn.__name__, iso(utc_now())))
        applied.append(fn.__name__)
    return applied


@migration
def m001_initial(db: sqlite_utils.Database) -> None:
    """Operational tables for every pipeline stage."""
    db.executescript(
        """
        -- Stitched people (golden records). Attributes are a JSON object.
        CREATE TABLE people (
            id INTEGER PRIMARY KEY,
            attributes TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        -- A merged person id keeps resolving: old_id -> new_id (chains are followed).
        CREATE TABLE person_merges (
            old_id INTEGER PRIMARY KEY,
            new_id INTEGER NOT NULL,
            merged_at TEXT NOT NULL,
            reason TEXT NOT NULL
        );
        -- One row per source record that described a person (CRM customer, lead, DMS owner...).
        CREATE TABLE identity_records (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            source_key TEXT NOT NULL,
            person_id INTEGER NOT NULL,
            attributes TEXT NOT NULL DEFAULT '{}',
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            UNIQUE (source, source_key)
        );
        CREATE INDEX identity_records_person ON identity_records (person_id);
        -- Cleaned identifiers and the person they currently resolve to.
        CREATE TABLE identifiers (
            id INTEGER PRIMARY KEY,
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            person_id INTEGER,
            flagged INTEGER NOT NULL DEFAULT 0,
            flag_reason TEXT,
            UNIQUE (type, value)
        );
        CREATE INDEX identifiers_person ON identifiers (person_id);
        -- Edges of the identity graph: a record carries an identifier (with provenance and validity).
        CREATE TABLE identity_links (
            id INTEGER PRIMARY KEY,
            record_id INTEGER NOT NULL REFERENCES identity_records(id),
            identifier_id INTEGER NOT NULL REFERENCES identifiers(id),
            source TEXT NOT NULL,
            rule TEXT NOT NULL,
            created_at TEXT NOT NULL,
            valid_from TEXT,
            valid_to TEXT,
            removed_at TEXT,
            UNIQUE (record_id, identifier_id)
        );
        CREATE INDEX identity_links_identifier ON identity_links (identifier_id);
        CREATE TABLE stores (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            group_name TEXT NOT NULL,
            city TEXT,
            brand TEXT
        );
        CREATE TABLE advisors (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            store_id TEXT NOT NULL REFERENCES stores(id),
            role TEXT NOT NULL DEFAULT 'sales',
            phone TEXT
        );
        CREATE TABLE cars (
            vin TEXT PRIMARY KEY,
            brand TEXT NOT NULL,
            model TEXT NOT NULL,
            model_year INTEGER,
            purchase_date TEXT,
            store_id TEXT REFERENCES stores(id)
        );
        -- Person owns car from valid_from to valid_to (NULL = still owns it).
        CREATE TABLE ownerships (
            id INTEGER PRIMARY KEY,
            person_id INTEGER NOT NULL,
            vin TEXT NOT NULL REFERENCES cars(vin),
            valid_from TEXT,
            valid_to TEXT,
            source TEXT,
            UNIQUE (vin, valid_from)
        );
        CREATE INDEX ownerships_person ON ownerships (person_id);
        -- Person to advisor/store relations: sales_advisor, service_advisor, selling_store, service_store.
        CREATE TABLE person_relations (
            person_id INTEGER NOT NULL,
            kind TEXT NOT NULL,
            target_id TEXT NOT NULL,
            source TEXT,
            since TEXT,
            PRIMARY KEY (person_id, kind, target_id)
        );
        CREATE INDEX person_relations_target ON person_relations (kind, target_id);
        -- Behaviour and feedback events. ts = seconds since the epoch, UTC.
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            person_id INTEGER,
            name TEXT NOT NULL,
            ts INTEGER NOT NULL,
            properties TEXT NOT NULL DEFAULT '{}',
            source TEXT NOT NULL,
            dedup_key TEXT NOT NULL
        );
        CREATE UNIQUE INDEX events_dedup ON events (source, dedup_key);
        CREATE INDEX events_name_ts ON events (name, ts);
        CREATE INDEX events_person_name_ts ON events (person_id, name, ts);
        -- Current consent state per person and channel ('*' = all channels).
        CREATE TABLE consents (
            person_id INTEGER NOT NULL,
            channel TEXT NOT NULL,
            granted INTEGER NOT NULL,
            ts INTEGER NOT NULL,
            source TEXT,
            PRIMARY KEY (person_id, channel)
        );
        -- Rows a source could not use, with the reason. Never silently dropped.
        CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            position TEXT NOT NULL,
            raw TEXT NOT NULL,
            reason TEXT NOT NULL,
            created_at TEXT NOT NULL,
            retried_at TEXT,
            resolved INTEGER NOT NULL DEFAULT 0,
            UNIQUE (source, position, raw)
        );
        -- Incremental cursors of sources (e.g. the last updated_at read from a SQL source).
        CREATE TABLE source_cursors (
            source TEXT PRIMARY KEY,
            cursor TEXT,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE tag_definitions (
            name TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            description TEXT NOT NULL,
            title TEXT,
            allowed_values TEXT,
            value_range TEXT,
            calculator TEXT NOT NULL,
            calculator_version TEXT NOT NULL
        );
        CREATE TABLE tag_values (
            tag TEXT NOT NULL,
            person_id INTEGER NOT NULL,
            value,
            computed_at TEXT NOT NULL,
            calculator TEXT NOT NULL,
            calculator_version TEXT NOT NULL,
            PRIMARY KEY (tag, person_id)
        ) WITHOUT ROWID;
        CREATE INDEX tag_values_tag_value ON tag_values (tag, value);
        CREATE INDEX tag_values_person ON tag_values (person_id);
        -- One row per calculator run, with health figures (coverage, distribution) as JSON.
        CREATE TABLE tag_runs (
            id INTEGER PRIMARY KEY,
            calculator TEXT NOT NULL,
            calculator_version TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            rows_written INTEGER,
            health TEXT
        );
        -- The rule text a revision (content hash) stands for, so any send traces to its rules.
        CREATE TABLE rule_revisions (
            revision TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            files TEXT NOT NULL
        );
        CREATE TABLE segment_runs (
            id INTEGER PRIMARY KEY,
            segment TEXT NOT NULL,
            revision TEXT NOT NULL,
            as_of TEXT NOT NULL,
            computed_at TEXT NOT NULL,
            size INTEGER NOT NULL,
            entered INTEGER NOT NULL,
            left_count INTEGER NOT NULL,
            duration_ms REAL NOT NULL,
            plan TEXT
        );
        CREATE INDEX segment_runs_segment ON segment_runs (segment, id);
        CREATE TABLE segment_members (
            segment TEXT NOT NULL,
            person_id INTEGER NOT NULL,
            entered_at TEXT NOT NULL,
            computed_at TEXT NOT NULL,
            revision TEXT NOT NULL,
            PRIMARY KEY (segment, person_id)
        ) WITHOUT ROWID;
        -- Entered/left history per computation: feeds `new members only` and enter/leave triggers.
        CREATE TABLE segment_changes (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES segment_runs(id),
            segment TEXT NOT NULL,
            person_id INTEGER NOT NULL,
            change TEXT NOT NULL CHECK (change IN ('enter', 'leave')),
            at TEXT NOT NULL
        );
        CREATE INDEX segment_changes_segment ON segment_changes (segment, id);
        -- Campaign runs and trigger firings; the audience snapshot is written with the outbox rows.
        CREATE TABLE activation_runs (
            id TEXT PRIMARY KEY,
            origin_kind TEXT NOT NULL,
            origin TEXT NOT NULL,
            revision TEXT NOT NULL,
            scheduled_for TEXT,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            audience_size INTEGER,
            status TEXT NOT NULL
        );
        CREATE TABLE audience_snapshots (
            run_id TEXT NOT NULL REFERENCES activation_runs(id),
            person_id INTEGER NOT NULL,
            arm TEXT NOT NULL CHECK (arm IN ('treatment', 'holdout')),
            PRIMARY KEY (run_id, person_id)
        ) WITHOUT ROWID;
        -- The transactional outbox: one row per planned send, keyed by a deterministic idempotency key.
        CREATE TABLE outbox (
            idempotency_key TEXT PRIMARY KEY,
            origin_kind TEXT NOT NULL,
            origin TEXT NOT NULL,
            run_id TEXT NOT NULL,
            person_id INTEGER NOT NULL,
            step INTEGER NOT NULL DEFAULT 0,
            channel TEXT NOT NULL,
            template TEXT NOT NULL,
            revision TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            not_before INTEGER,
            claimed_by TEXT,
            claimed_until INTEGER,
            reason TEXT,
            provider_message_id TEXT,
            payload TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX outbox_status_not_before ON outbox (status, not_before);
        CREATE INDEX outbox_person ON outbox (person_id, created_at);
        -- Leases: at most one holder per name (scheduler, dispatcher) until expires_at.
        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at INTEGER NOT NULL
        );
        -- Shared provider access tokens (WeCom, WeChat) so workers never invalidate each other's token.
        CREATE TABLE channel_tokens (
            key TEXT PRIMARY KEY,
            token TEXT NOT NULL,
            expires_at INTEGER NOT NULL
        );
        -- Call tasks for sales advisors (the advisor_task channel).
        CREATE TABLE advisor_tasks (
            idempotency_key TEXT PRIMARY KEY,
            advisor_id TEXT,
            store_id TEXT,
            person_id INTEGER NOT NULL,
            note TEXT,
            created_at TEXT NOT NULL,
            done_at TEXT
        );
        """
    )


@migration
def m002_identity_provenance(db: sqlite_utils.Database) -> None:
    """One-ID provenance: which record an event, ownership or relation came from, so they follow splits.

    - ``identity_records.origin_person_id``: the person id this record created (if it created one).
      A person's id is the smallest origin id among its records: merges and splits keep ids stable.
    - ``events.record_id`` / ``ownerships.record_id``: the identity record that named the person.
    - ``record_relations``: advisor/store relations per record; ``person_relations`` is derived from it.
    - ``identity_dirty``: person ids whose events/ownerships/relations/tags must follow a merge or split
      (written in the same transaction as the merge, so a killed run is settled by the next one).
    """
    db.executescript(
        """
        ALTER TABLE identity_records ADD COLUMN origin_person_id INTEGER;
        CREATE INDEX identity_records_origin ON identity_records (origin_person_id);
        ALTER TABLE events ADD COLUMN record_id INTEGER;
        ALTER TABLE ownerships ADD COLUMN record_id INTEGER;
        CREATE TABLE record_relations (
            record_id INTEGER NOT NULL REFERENCES identity_records(id),
            kind TEXT NOT NULL,
            target_id TEXT NOT NULL,
            source TEXT,
            since TEXT,
            PRIMARY KEY (record_id, kind, target_id)
        ) WITHOUT ROWID;
        CREATE TABLE identity_dirty (
            person_id INTEGER PRIMARY KEY
        );
        """
    )


@migration
def m003_covering_event_index_and_outbox_lookups(db: sqlite_utils.Database) -> None:
    """events(name, ts, person_id) covers windowed event scans (no table lookup per row for the person);
    outbox lookups by provider message id (receipts) and by origin and person (re-entry, caps)."""
    db.executescript(
        """
        DROP INDEX IF EXISTS events_name_ts;
        CREATE INDEX IF NOT EXISTS events_name_ts_person ON events (name, ts, person_id);
        CREATE INDEX IF NOT EXISTS outbox_provider_message ON outbox (channel, provider_message_id);
        CREATE INDEX IF NOT EXISTS outbox_origin_person ON outbox (origin_kind, origin, person_id);
        """
    )


@migration
def m004_covering_ownership_index(db: sqlite_utils.Database) -> None:
    """ownerships(person_id, valid_from, valid_to, vin) covers `has car` (a segment plan walks it in person
    order: who owns a car today, with no table lookup per row) and replaces the person_id-only index."""
    db.executescript(
        """
        CREATE INDEX IF NOT EXISTS ownerships_person_current ON ownerships (person_id, valid_from, valid_to, vin);
        DROP INDEX IF EXISTS ownerships_person;
        """
    )


@migration
def m005_plan_statistics(db: sqlite_utils.Database) -> None:
    """Planner statistics (motorcade.store.stats): events per name and day, rows per tag value, and the
    marks saying how far they are up to date."""
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS event_day_counts (
            name TEXT NOT NULL,
            day INTEGER NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (name, day)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS tag_value_counts (
            tag TEXT NOT NULL,
            value,
            n INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS tag_value_counts_tag ON tag_value_counts (tag, value);
        CREATE TABLE IF NOT EXISTS plan_stats (
            key TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        );
        """
    )


@migration
def m006_every_person_id_names_a_person(db: sqlite_utils.Database) -> None:
    """Rows that name a person id with no row in ``people`` (written before the writers followed the merge
    log) are repaired once: they follow the merge log to the surviving person where there is one; else
    an event becomes nobody's (NULL) and an ownership, relation, consent or tag value of nobody is
    removed. From here on, writers keep it so (``live_person_id``) and segment plans rely on it."""
    gone = "person_id IS NOT NULL AND person_id NOT IN (SELECT id FROM people)"
    follow = "(SELECT new_id FROM person_merges WHERE old_id = {t}.person_id)"
    for table in ("events", "ownerships", "person_relations"):
        db.execute(f"UPDATE OR IGNORE {table} SET person_id = {follow.format(t=table)} "
                   f"WHERE {gone} AND {follow.format(t=table)} IN (SELECT id FROM people)")
    db.execute(  # a consent of a merged-away id is the survivor's unless the survivor's own is newer
        f"INSERT INTO consents (person_id, channel, granted, ts, source) "
        f"SELECT m.new_id, c.channel, c.granted, c.ts, c.source FROM consents c "
        f"JOIN person_merges m ON m.old_id = c.person_id WHERE c.{gone} AND m.new_id IN (SELECT id FROM people) "
        f"ORDER BY c.ts ON CONFLICT(person_id, channel) DO UPDATE SET granted = excluded.granted, ts = excluded.ts, "
        f"source = excluded.source WHERE excluded.ts >= consents.ts")
    db.execute(f"UPDATE events SET person_id = NULL WHERE {gone}")
    for table in ("ownerships", "person_relations", "consents", "tag_values"):
        db.execute(f"DELETE FROM {table} WHERE {gone}")


@migration
def m007_rejected_identifiers_and_split_log(db: sqlite_utils.Database) -> None:
    """One-ID repairs an operator can see and undo.

    - ``rejected_identifiers``: identifier values that did not clean (a phone of an unassigned range, an
      address without ``@``), once per source, type and value as read, with the reason; ``lookup`` is the
      value as :func:`motorcade.sources.clean.identifier_lookup_key` finds it again from any spelling.
    - ``identity_splits``: every ``identity split`` with its reason, the identifier it flagged or the link
      it removed, the people it left; ``undone_at`` / ``undo_reason`` once ``identity unsplit`` undid it.
    """
    db.executescript(
        """
        CREATE TABLE rejected_identifiers (
            source TEXT NOT NULL,
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            lookup TEXT NOT NULL,
            reason TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            PRIMARY KEY (source, type, value)
        ) WITHOUT ROWID;
        CREATE INDEX rejected_identifiers_lookup ON rejected_identifiers (type, lookup);
        CREATE TABLE identity_splits (
            id INTEGER PRIMARY KEY,
            person_id INTEGER NOT NULL,
            identifier_id INTEGER REFERENCES identifiers(id),
            link_id INTEGER REFERENCES identity_links(id),
            reason TEXT NOT NULL,
            people TEXT NOT NULL,
            split_at TEXT NOT NULL,
            undone_at TEXT,
            undo_reason TEXT
        );
        """
    )


@migration
def m008_inbox(db: sqlite_utils.Database) -> None:
    """A durable receive buffer for push sources (the HTTP collector): a message is stored here before
    its sender gets a 200, and the source's ingest reads it from here by id. ``(source, message_id)`` is
    unique, so a message sent twice is stored once."""
    db.execute(
        "CREATE TABLE inbox (id INTEGER PRIMARY KEY, source TEXT NOT NULL, message_id TEXT NOT NULL, "
        "received_at TEXT NOT NULL, body TEXT NOT NULL, UNIQUE (source, message_id))")
    db.execute("CREATE INDEX inbox_by_source ON inbox (source, id)")


@migration
def m009_consent_statements(db: sqlite_utils.Database) -> None:
    """Consent precedence (``PeopleMixin.set_consent``): ``consents.dated`` says whether a grant carries a
    time of its own (a grant read from a source without a time never outranks a refusal), and
    ``consent_statements`` keeps what each source row last said, so that reading an unchanged row again
    states nothing new. Grants stored before are taken as undated: any refusal received later wins."""
    db.executescript(
        """
        ALTER TABLE consents ADD COLUMN dated INTEGER NOT NULL DEFAULT 1;
        UPDATE consents SET dated = 0 WHERE granted = 1;
        -- What a source row (an identity record) last said about a channel without a time, and when that
        -- was first read.
        CREATE TABLE IF NOT EXISTS consent_statements (
            record_id INTEGER NOT NULL,
            channel TEXT NOT NULL,
            granted INTEGER NOT NULL,
            ts INTEGER NOT NULL,
            PRIMARY KEY (record_id, channel)
        ) WITHOUT ROWID;
        """
    )


@migration
def m010_value_types(db: sqlite_utils.Database) -> None:
    """The declared type of profile attributes and event properties that sources map with a typed column
    (date, datetime, number, boolean): JSON keeps a date as text, so rules need the type to compare it as
    a date. ``scope`` is "attribute" or "property"."""
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS value_types (
            scope TEXT NOT NULL,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            source TEXT NOT NULL,
            PRIMARY KEY (scope, name)
        );
        """
    )


@migration
def m011_access(db: sqlite_utils.Database) -> None:
    """Users, their role grants (kept after revocation, with who and when), API tokens (only a hash of each)
    and the audit log: append-only (triggers refuse UPDATE and DELETE), each entry carrying the hash of the
    one before it (``motorcade.access.audit``)."""
    db.executescript(
        """
        CREATE TABLE users (
            name TEXT PRIMARY KEY,
            display_name TEXT,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            disabled_at TEXT
        );
        CREATE TABLE user_grants (
            id INTEGER PRIMARY KEY,
            user TEXT NOT NULL REFERENCES users(name),
            role TEXT NOT NULL,
            scope TEXT NOT NULL,
            granted_at TEXT NOT NULL,
            granted_by TEXT NOT NULL,
            revoked_at TEXT,
            revoked_by TEXT
        );
        CREATE INDEX user_grants_user ON user_grants (user);
        CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY,
            user TEXT NOT NULL REFERENCES users(name),
            token_hash TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            label TEXT,
            created_at TEXT NOT NULL,
            expires_at TEXT,
            revoked_at TEXT,
            last_used_at TEXT
        );
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            arguments TEXT NOT NULL,
            affected TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX audit_log_action ON audit_log (action, at);
        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        """
    )


@migration
def m012_tracking(db: sqlite_utils.Database) -> None:
    """Tracked short links and open pixels (``links``: one row per send, step and link, the code random and
    unguessable), every hit on them (``link_hits``: clicks, opens, and bots recorded as such), provider
    receipts already handled (``receipts_seen``: Aliyun's and Tencent's are redelivered) and receipts
    refused (``receipt_rejections``: bad signature, replayed, unknown message id)."""
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS links (
            code TEXT PRIMARY KEY,
            idempotency_key TEXT NOT NULL,
            step INTEGER NOT NULL,
            kind TEXT NOT NULL,            -- 'link' or 'open'
            target TEXT,                   -- the URL a link redirects to (None for an open pixel)
            created_at INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS links_by_send ON links (idempotency_key);
        CREATE TABLE IF NOT EXISTS link_hits (
            id INTEGER PRIMARY KEY,
            code TEXT NOT NULL,
            at INTEGER NOT NULL,
            user_agent TEXT,
            bot TEXT                       -- the rule that took the hit for a bot or link scanner; NULL: a person
        );
        CREATE INDEX IF NOT EXISTS link_hits_by_code ON link_hits (code);
        CREATE TABLE IF NOT EXISTS receipts_seen (
            provider TEXT NOT NULL,
            dedupe_key TEXT NOT NULL,
            at INTEGER NOT NULL,
            PRIMARY KEY (provider, dedupe_key)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS receipt_rejections (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL,
            reason TEXT NOT NULL,          -- 'signature', 'replayed', 'unknown_message', 'malformed'
            detail TEXT,
            at INTEGER NOT NULL
        );
        """
    )


@migration
def m013_journeys(db: sqlite_utils.Database) -> None:
    """Journeys (``motorcade.journeys``): one state row per (journey, person, entry) -- the step the person is
    at and when it is due --, the path each took (with the condition values seen at branches), and every
    version of every journey people entered, so people in flight finish on the version they entered."""
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS journey_versions (
            journey TEXT NOT NULL,
            version TEXT NOT NULL,
            text TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (journey, version)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS journey_states (
            journey TEXT NOT NULL,
            person_id INTEGER NOT NULL,
            entry INTEGER NOT NULL,
            version TEXT NOT NULL,
            arm TEXT NOT NULL CHECK (arm IN ('treatment', 'holdout')),
            step TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('active', 'completed', 'exited', 'converted', 'holdout')),
            entered_at INTEGER NOT NULL,
            due_at INTEGER,
            waiting_since INTEGER,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (journey, person_id, entry)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS journey_states_due ON journey_states (journey, status, due_at);
        CREATE INDEX IF NOT EXISTS journey_states_step ON journey_states (journey, status, step);
        CREATE TABLE IF NOT EXISTS journey_path (
            id INTEGER PRIMARY KEY,
            journey TEXT NOT NULL,
            person_id INTEGER NOT NULL,
            entry INTEGER NOT NULL,
            step TEXT NOT NULL,
            outcome TEXT NOT NULL,
            next_step TEXT,
            at INTEGER NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}',
            UNIQUE (journey, person_id, entry, step, outcome)  -- also serves the look-up of a person's path
        );
        """
    )


@migration
def m014_store_tag_values(db: sqlite_utils.Database) -> None:
    """Tag values per (person, store) (seed 001: 门店价值 -> 加权 -> 企业级价值): a tag defined ``per_store``
    (the value tag plugin's ``store_value_score``) keeps, besides the person's value in ``tag_values``, the
    value at each store the person used; a store-scoped rule reads the value at its store."""
    db.executescript(
        """
        ALTER TABLE tag_definitions ADD COLUMN per_store INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE IF NOT EXISTS store_tag_values (
            tag TEXT NOT NULL,
            store_id TEXT NOT NULL,
            person_id INTEGER NOT NULL,
            value,
            computed_at TEXT NOT NULL,
            calculator TEXT NOT NULL,
            calculator_version TEXT NOT NULL,
            PRIMARY KEY (tag, store_id, person_id)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS store_tag_values_tag_value ON store_tag_values (tag, store_id, value);
        CREATE INDEX IF NOT EXISTS store_tag_values_person ON store_tag_values (person_id);
        """
    )


# -- PostgreSQL bodies ----------------------------------------------------------------------------------------
# Same tables, columns and indexes as the SQLite bodies above, in PostgreSQL's types: ids are BIGINT with an
# identity default (rows inserted with an explicit id move the sequence on, see motorcade.store.postgres);
# the documents rules read (people.attributes, events.properties) are jsonb, other JSON stays text; SQLite's
# untyped ``value`` of a tag value is jsonb, with the typed columns the segment compiler reads on typed
# engines (value_kind integer / real / text, value_num, value_text; motorcade.segments.dialects) generated
# from it; WITHOUT ROWID has no counterpart.

_PG_ID = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
# A boolean tag value is stored as the integer 0 / 1 (as SQLite keeps Python's True / False).
_PG_TAG_VALUE_COLUMNS = (
    "value_kind TEXT GENERATED ALWAYS AS (CASE jsonb_typeof(value) WHEN 'string' THEN 'text' "
    "WHEN 'boolean' THEN 'integer' WHEN 'number' THEN CASE WHEN (value #>> '{}') ~ '^-?[0-9]+$' THEN 'integer' "
    "ELSE 'real' END END) STORED, "
    "value_num DOUBLE PRECISION GENERATED ALWAYS AS (CASE jsonb_typeof(value) WHEN 'number' THEN "
    "(value #>> '{}')::double precision WHEN 'boolean' THEN CASE WHEN value = 'true'::jsonb THEN 1 ELSE 0 END "
    "END) STORED, "
    "value_text TEXT GENERATED ALWAYS AS (CASE WHEN jsonb_typeof(value) = 'string' THEN value #>> '{}' END) STORED"
)


@postgresql(m001_initial)
def _pg_m001_initial(execute: Callable[[str], None]) -> None:
    tag_value_columns = _PG_TAG_VALUE_COLUMNS
    for statement in f"""
        CREATE TABLE people (id {_PG_ID}, attributes JSONB NOT NULL DEFAULT '{{}}', created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL);
        CREATE TABLE person_merges (old_id BIGINT PRIMARY KEY, new_id BIGINT NOT NULL, merged_at TEXT NOT NULL,
            reason TEXT NOT NULL);
        CREATE TABLE identity_records (id {_PG_ID}, source TEXT NOT NULL, source_key TEXT NOT NULL,
            person_id BIGINT NOT NULL, attributes TEXT NOT NULL DEFAULT '{{}}', first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL, UNIQUE (source, source_key));
        CREATE INDEX identity_records_person ON identity_records (person_id);
        CREATE TABLE identifiers (id {_PG_ID}, type TEXT NOT NULL, value TEXT NOT NULL, person_id BIGINT,
            flagged INTEGER NOT NULL DEFAULT 0, flag_reason TEXT, UNIQUE (type, value));
        CREATE INDEX identifiers_person ON identifiers (person_id);
        CREATE TABLE identity_links (id {_PG_ID}, record_id BIGINT NOT NULL REFERENCES identity_records(id),
            identifier_id BIGINT NOT NULL REFERENCES identifiers(id), source TEXT NOT NULL, rule TEXT NOT NULL,
            created_at TEXT NOT NULL, valid_from TEXT, valid_to TEXT, removed_at TEXT,
            UNIQUE (record_id, identifier_id));
        CREATE INDEX identity_links_identifier ON identity_links (identifier_id);
        CREATE TABLE stores (id TEXT PRIMARY KEY, name TEXT NOT NULL, group_name TEXT NOT NULL, city TEXT,
            brand TEXT);
        CREATE TABLE advisors (id TEXT PRIMARY KEY, name TEXT NOT NULL, store_id TEXT NOT NULL REFERENCES stores(id),
            role TEXT NOT NULL DEFAULT 'sales', phone TEXT);
        CREATE TABLE cars (vin TEXT PRIMARY KEY, brand TEXT NOT NULL, model TEXT NOT NULL, model_year INTEGER,
            purchase_date TEXT, store_id TEXT REFERENCES stores(id));
        CREATE TABLE ownerships (id {_PG_ID}, person_id BIGINT NOT NULL, vin TEXT NOT NULL REFERENCES cars(vin),
            valid_from TEXT, valid_to TEXT, source TEXT, UNIQUE (vin, valid_from));
        CREATE INDEX ownerships_person ON ownerships (person_id);
        CREATE TABLE person_relations (person_id BIGINT NOT NULL, kind TEXT NOT NULL, target_id TEXT NOT NULL,
            source TEXT, since TEXT, PRIMARY KEY (person_id, kind, target_id));
        CREATE INDEX person_relations_target ON person_relations (kind, target_id);
        CREATE TABLE events (id {_PG_ID}, person_id BIGINT, name TEXT NOT NULL, ts BIGINT NOT NULL,
            properties JSONB NOT NULL DEFAULT '{{}}', source TEXT NOT NULL, dedup_key TEXT NOT NULL);
        CREATE UNIQUE INDEX events_dedup ON events (source, dedup_key);
        CREATE INDEX events_name_ts ON events (name, ts);
        CREATE INDEX events_person_name_ts ON events (person_id, name, ts);
        CREATE TABLE consents (person_id BIGINT NOT NULL, channel TEXT NOT NULL, granted INTEGER NOT NULL,
            ts BIGINT NOT NULL, source TEXT, PRIMARY KEY (person_id, channel));
        CREATE TABLE quarantine (id {_PG_ID}, source TEXT NOT NULL, position TEXT NOT NULL, raw TEXT NOT NULL,
            reason TEXT NOT NULL, created_at TEXT NOT NULL, retried_at TEXT, resolved INTEGER NOT NULL DEFAULT 0,
            UNIQUE (source, position, raw));
        CREATE TABLE source_cursors (source TEXT PRIMARY KEY, cursor TEXT, updated_at TEXT NOT NULL);
        CREATE TABLE tag_definitions (name TEXT PRIMARY KEY, type TEXT NOT NULL, description TEXT NOT NULL,
            title TEXT, allowed_values TEXT, value_range TEXT, calculator TEXT NOT NULL,
            calculator_version TEXT NOT NULL);
        CREATE TABLE tag_values (tag TEXT NOT NULL, person_id BIGINT NOT NULL, value JSONB,
            computed_at TEXT NOT NULL, calculator TEXT NOT NULL, calculator_version TEXT NOT NULL,
            {tag_value_columns}, PRIMARY KEY (tag, person_id));
        CREATE INDEX tag_values_tag_value ON tag_values (tag, value);
        CREATE INDEX tag_values_tag_num ON tag_values (tag, value_num, person_id);
        CREATE INDEX tag_values_tag_text ON tag_values (tag, value_text, person_id);
        CREATE INDEX tag_values_person ON tag_values (person_id);
        CREATE TABLE tag_runs (id {_PG_ID}, calculator TEXT NOT NULL, calculator_version TEXT NOT NULL,
            started_at TEXT NOT NULL, finished_at TEXT, rows_written BIGINT, health TEXT);
        CREATE TABLE rule_revisions (revision TEXT PRIMARY KEY, created_at TEXT NOT NULL, files TEXT NOT NULL);
        CREATE TABLE segment_runs (id {_PG_ID}, segment TEXT NOT NULL, revision TEXT NOT NULL, as_of TEXT NOT NULL,
            computed_at TEXT NOT NULL, size BIGINT NOT NULL, entered BIGINT NOT NULL, left_count BIGINT NOT NULL,
            duration_ms DOUBLE PRECISION NOT NULL, plan TEXT);
        CREATE INDEX segment_runs_segment ON segment_runs (segment, id);
        CREATE TABLE segment_members (segment TEXT NOT NULL, person_id BIGINT NOT NULL, entered_at TEXT NOT NULL,
            computed_at TEXT NOT NULL, revision TEXT NOT NULL, PRIMARY KEY (segment, person_id));
        CREATE TABLE segment_changes (id {_PG_ID}, run_id BIGINT NOT NULL REFERENCES segment_runs(id),
            segment TEXT NOT NULL, person_id BIGINT NOT NULL,
            change TEXT NOT NULL CHECK (change IN ('enter', 'leave')), at TEXT NOT NULL);
        CREATE INDEX segment_changes_segment ON segment_changes (segment, id);
        CREATE TABLE activation_runs (id TEXT PRIMARY KEY, origin_kind TEXT NOT NULL, origin TEXT NOT NULL,
            revision TEXT NOT NULL, scheduled_for TEXT, started_at TEXT NOT NULL, finished_at TEXT,
            audience_size BIGINT, status TEXT NOT NULL);
        CREATE TABLE audience_snapshots (run_id TEXT NOT NULL REFERENCES activation_runs(id),
            person_id BIGINT NOT NULL, arm TEXT NOT NULL CHECK (arm IN ('treatment', 'holdout')),
            PRIMARY KEY (run_id, person_id));
        CREATE TABLE outbox (idempotency_key TEXT PRIMARY KEY, origin_kind TEXT NOT NULL, origin TEXT NOT NULL,
            run_id TEXT NOT NULL, person_id BIGINT NOT NULL, step INTEGER NOT NULL DEFAULT 0, channel TEXT NOT NULL,
            template TEXT NOT NULL, revision TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            not_before BIGINT, claimed_by TEXT, claimed_until BIGINT, reason TEXT, provider_message_id TEXT,
            payload TEXT NOT NULL DEFAULT '{{}}', created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
        CREATE INDEX outbox_status_not_before ON outbox (status, not_before);
        CREATE INDEX outbox_person ON outbox (person_id, created_at);
        CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at BIGINT NOT NULL);
        CREATE TABLE channel_tokens (key TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at BIGINT NOT NULL);
        CREATE TABLE advisor_tasks (idempotency_key TEXT PRIMARY KEY, advisor_id TEXT, store_id TEXT,
            person_id BIGINT NOT NULL, note TEXT, created_at TEXT NOT NULL, done_at TEXT)
    """.split(";"):
        execute(statement)


@postgresql(m002_identity_provenance)
def _pg_m002_identity_provenance(execute: Callable[[str], None]) -> None:
    for statement in (
        "ALTER TABLE identity_records ADD COLUMN origin_person_id BIGINT",
        "CREATE INDEX identity_records_origin ON identity_records (origin_person_id)",
        "ALTER TABLE events ADD COLUMN record_id BIGINT",
        "ALTER TABLE ownerships ADD COLUMN record_id BIGINT",
        "CREATE TABLE record_relations (record_id BIGINT NOT NULL REFERENCES identity_records(id), kind TEXT NOT NULL, "
        "target_id TEXT NOT NULL, source TEXT, since TEXT, PRIMARY KEY (record_id, kind, target_id))",
        "CREATE TABLE identity_dirty (person_id BIGINT PRIMARY KEY)",
    ):
        execute(statement)


@postgresql(m003_covering_event_index_and_outbox_lookups)
def _pg_m003(execute: Callable[[str], None]) -> None:
    for statement in (
        "DROP INDEX IF EXISTS events_name_ts",
        "CREATE INDEX IF NOT EXISTS events_name_ts_person ON events (name, ts, person_id)",
        "CREATE INDEX IF NOT EXISTS outbox_provider_message ON outbox (channel, provider_message_id)",
        "CREATE INDEX IF NOT EXISTS outbox_origin_person ON outbox (origin_kind, origin, person_id)",
    ):
        execute(statement)


@postgresql(m004_covering_ownership_index)
def _pg_m004(execute: Callable[[str], None]) -> None:
    execute("CREATE INDEX IF NOT EXISTS ownerships_person_current ON ownerships (person_id, valid_from, valid_to, vin)")
    execute("DROP INDEX IF EXISTS ownerships_person")


@postgresql(m005_plan_statistics)
def _pg_m005(execute: Callable[[str], None]) -> None:
    for statement in (
        "CREATE TABLE IF NOT EXISTS event_day_counts (name TEXT NOT NULL, day BIGINT NOT NULL, n BIGINT NOT NULL, "
        "PRIMARY KEY (name, day))",
        "CREATE TABLE IF NOT EXISTS tag_value_counts (tag TEXT NOT NULL, value JSONB, n BIGINT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS tag_value_counts_tag ON tag_value_counts (tag, value)",
        "CREATE TABLE IF NOT EXISTS plan_stats (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    ):
        execute(statement)


@postgresql(m006_every_person_id_names_a_person)
def _pg_m006(execute: Callable[[str], None]) -> None:
    """Nothing to repair: a PostgreSQL store is created by writers that already keep every person id live
    (its data arrives by ingest or by ``store copy`` from a store migrated past this version)."""


@postgresql(m007_rejected_identifiers_and_split_log)
def _pg_m007(execute: Callable[[str], None]) -> None:
    for statement in (
        "CREATE TABLE rejected_identifiers (source TEXT NOT NULL, type TEXT NOT NULL, value TEXT NOT NULL, "
        "lookup TEXT NOT NULL, reason TEXT NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, "
        "PRIMARY KEY (source, type, value))",
        "CREATE INDEX rejected_identifiers_lookup ON rejected_identifiers (type, lookup)",
        f"CREATE TABLE identity_splits (id {_PG_ID}, person_id BIGINT NOT NULL, "
        "identifier_id BIGINT REFERENCES identifiers(id), link_id BIGINT REFERENCES identity_links(id), "
        "reason TEXT NOT NULL, people TEXT NOT NULL, split_at TEXT NOT NULL, undone_at TEXT, undo_reason TEXT)",
    ):
        execute(statement)


@postgresql(m008_inbox)
def _pg_m008(execute: Callable[[str], None]) -> None:
    execute(f"CREATE TABLE inbox (id {_PG_ID}, source TEXT NOT NULL, message_id TEXT NOT NULL, "
            "received_at TEXT NOT NULL, body TEXT NOT NULL, UNIQUE (source, message_id))")
    execute("CREATE INDEX inbox_by_source ON inbox (source, id)")


@postgresql(m009_consent_statements)
def _pg_m009(execute: Callable[[str], None]) -> None:
    execute("ALTER TABLE consents ADD COLUMN dated INTEGER NOT NULL DEFAULT 1")
    execute("UPDATE consents SET dated = 0 WHERE granted = 1")
    execute("CREATE TABLE IF NOT EXISTS consent_statements (record_id BIGINT NOT NULL, channel TEXT NOT NULL, "
            "granted INTEGER NOT NULL, ts BIGINT NOT NULL, PRIMARY KEY (record_id, channel))")


@postgresql(m010_value_types)
def _pg_m010(execute: Callable[[str], None]) -> None:
    execute("CREATE TABLE IF NOT EXISTS value_types (scope TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, "
            "source TEXT NOT NULL, PRIMARY KEY (scope, name))")


@postgresql(m011_access)
def _pg_m011_access(execute: Callable[[str], None]) -> None:
    for statement in (
        "CREATE TABLE users (name TEXT PRIMARY KEY, display_name TEXT, created_at TEXT NOT NULL, "
        "created_by TEXT NOT NULL, disabled_at TEXT)",
        f'CREATE TABLE user_grants (id {_PG_ID}, "user" TEXT NOT NULL REFERENCES users(name), role TEXT NOT NULL, '
        "scope TEXT NOT NULL, granted_at TEXT NOT NULL, granted_by TEXT NOT NULL, revoked_at TEXT, revoked_by TEXT)",
        'CREATE INDEX user_grants_user ON user_grants ("user")',
        f'CREATE TABLE api_tokens (id {_PG_ID}, "user" TEXT NOT NULL REFERENCES users(name), '
        "token_hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL, label TEXT, created_at TEXT NOT NULL, "
        "expires_at TEXT, revoked_at TEXT, last_used_at TEXT)",
        f"CREATE TABLE audit_log (id {_PG_ID}, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, "
        "arguments TEXT NOT NULL, affected TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
        "CREATE INDEX audit_log_action ON audit_log (action, at)",
        "CREATE FUNCTION motorcade_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$",
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION motorcade_audit_log_append_only()",
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION motorcade_audit_log_append_only()",
    ):
        execute(statement)


@postgresql(m012_tracking)
def _pg_m012_tracking(execute: Callable[[str], None]) -> None:
    for statement in (
        "CREATE TABLE links (code TEXT PRIMARY KEY, idempotency_key TEXT NOT NULL, step INTEGER NOT NULL, "
        "kind TEXT NOT NULL, target TEXT, created_at BIGINT NOT NULL)",
        "CREATE INDEX links_by_send ON links (idempotency_key)",
        f"CREATE TABLE link_hits (id {_PG_ID}, code TEXT NOT NULL, at BIGINT NOT NULL, user_agent TEXT, bot TEXT)",
        "CREATE INDEX link_hits_by_code ON link_hits (code)",
        "CREATE TABLE receipts_seen (provider TEXT NOT NULL, dedupe_key TEXT NOT NULL, at BIGINT NOT NULL, "
        "PRIMARY KEY (provider, dedupe_key))",
        f"CREATE TABLE receipt_rejections (id {_PG_ID}, channel TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT, "
        "at BIGINT NOT NULL)",
    ):
        execute(statement)


@postgresql(m013_journeys)
def _pg_m013_journeys(execute: Callable[[str], None]) -> None:
    for statement in (
        "CREATE TABLE journey_versions (journey TEXT NOT NULL, version TEXT NOT NULL, text TEXT NOT NULL, "
        "created_at TEXT NOT NULL, PRIMARY KEY (journey, version))",
        "CREATE TABLE journey_states (journey TEXT NOT NULL, person_id BIGINT NOT NULL, entry INTEGER NOT NULL, "
        "version TEXT NOT NULL, arm TEXT NOT NULL CHECK (arm IN ('treatment', 'holdout')), step TEXT NOT NULL, "
        "status TEXT NOT NULL CHECK (status IN ('active', 'completed', 'exited', 'converted', 'holdout')), "
        "entered_at BIGINT NOT NULL, due_at BIGINT, waiting_since BIGINT, updated_at BIGINT NOT NULL, "
        "PRIMARY KEY (journey, person_id, entry))",
        "CREATE INDEX journey_states_due ON journey_states (journey, status, due_at)",
        "CREATE INDEX journey_states_step ON journey_states (journey, status, step)",
        f"CREATE TABLE journey_path (id {_PG_ID}, journey TEXT NOT NULL, person_id BIGINT NOT NULL, "
        "entry INTEGER NOT NULL, step TEXT NOT NULL, outcome TEXT NOT NULL, next_step TEXT, at BIGINT NOT NULL, "
        "detail TEXT NOT NULL DEFAULT '{}', UNIQUE (journey, person_id, entry, step, outcome))",
    ):
        execute(statement)


@postgresql(m014_store_tag_values)
def _pg_m014_store_tag_values(execute: Callable[[str], None]) -> None:
    for statement in (
        "ALTER TABLE tag_definitions ADD COLUMN per_store INTEGER NOT NULL DEFAULT 0",
        "CREATE TABLE store_tag_values (tag TEXT NOT NULL, store_id TEXT NOT NULL, person_id BIGINT NOT NULL, "
        "value JSONB, computed_at TEXT NOT NULL, calculator TEXT NOT NULL, calculator_version TEXT NOT NULL, "
        f"{_PG_TAG_VALUE_COLUMNS}, PRIMARY KEY (tag, store_id, person_id))",
        "CREATE INDEX store_tag_values_tag_num ON store_tag_values (tag, store_id, value_num, person_id)",
        "CREATE INDEX store_tag_values_tag_text ON store_tag_values (tag, store_id, value_text, person_id)",
        "CREATE INDEX store_tag_values_person ON store_tag_values (person_id)",
    ):
        execute(statement)
