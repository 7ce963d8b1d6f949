"""Activation: runs, audience snapshots, the outbox, leases, shared channel tokens, advisor tasks.

Every SQL statement on the activation tables lives here. The activation package
(:mod:`motorcade.activation`) talks to these named functions only.

Outbox states (``motorcade.model.SEND_STATES``)::

    planned --claim--> claimed --sent--> sent
       |                  |  \\--transient--> failed --(not_before passes)--> claimed ...
       |                  |  \\--permanent or retries exhausted--> dead
       |                  |  \\--released by a stopping worker before it was sent--> planned
       |                  \\--lease expires (worker died)--> claimable again, same idempotency key
       \\--guard rail--> suppressed | holdout | deferred (--not_before passes--> claimable again)
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from .codec import dumps, epoch, from_epoch, iso, loads, utc_now
from ..model import RETRYABLE_STATES

# States a dispatcher may claim once ``not_before`` has passed (plus ``claimed`` rows whose lease expired).
CLAIMABLE_STATES = ("planned", "deferred", "failed")
# States that still owe the person a delivery attempt.
PENDING_STATES = ("planned", "deferred", "failed", "claimed")
# Cursors (high-water marks) of the activation stage live in source_cursors under this prefix.
CURSOR_PREFIX = "activation:"

OUTBOX_COLUMNS = (
    "idempotency_key", "origin_kind", "origin", "run_id", "person_id", "step", "channel", "template", "revision",
    "status", "attempts", "not_before", "claimed_by", "claimed_until", "reason", "provider_message_id", "payload",
    "created_at", "updated_at",
)


_ENQUEUE_SQL = (
    "INSERT OR IGNORE INTO outbox (idempotency_key, origin_kind, origin, run_id, person_id, step, channel, template, "
    "revision, status, attempts, not_before, reason, payload, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)")


class _KeyTaken(Exception):
    """Raised inside :meth:`OutboxMixin.enqueue_sends` to undo a bulk insert that inserted fewer rows than expected."""


def _send_row(row: tuple) -> dict[str, Any]:
    send = dict(zip(OUTBOX_COLUMNS, row))
    send["payload"] = loads(send["payload"])
    return send



class OutboxMixin:
    # -- runs and audience snapshots ----------------------------------------------------------------

    def create_run(self, run_id: str, *, origin_kind: str, origin: str, revision: str,
                   scheduled_for: dt.datetime | None, started_at: dt.datetime, status: str = "planning") -> bool:
        """Insert an activation run; False if a run with this id already exists (it is never replaced)."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO activation_runs (id, origin_kind, origin, revision, scheduled_for, started_at, "
            "status) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, origin_kind, origin, revision, None if scheduled_for is None else iso(scheduled_for),
             iso(started_at), status),
        )
        return cur.rowcount > 0

    def finish_run(self, run_id: str, *, status: str, audience_size: int, finished_at: dt.datetime) -> None:
        self.conn.execute(
            "UPDATE activation_runs SET status = ?, audience_size = ?, finished_at = ? WHERE id = ?",
            (status, audience_size, iso(finished_at), run_id),
        )

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT id, origin_kind, origin, revision, scheduled_for, started_at, finished_at, audience_size, status "
            "FROM activation_runs WHERE id = ?", (run_id,),
        ).fetchone()
        keys = ("id", "origin_kind", "origin", "revision", "scheduled_for", "started_at", "finished_at",
                "audience_size", "status")
        return None if row is None else dict(zip(keys, row))

    def run_origins(self, origin_kind: str) -> list[str]:
        """The campaigns (``origin_kind="campaign"``) or triggers that have at least one run, sorted."""
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT origin FROM activation_runs WHERE origin_kind = ? ORDER BY origin", (origin_kind,))]

    def runs_of(self, origin_kind: str, origin: str, *, limit: int = 20) -> list[dict[str, Any]]:
        keys = ("id", "revision", "scheduled_for", "started_at", "finished_at", "audience_size", "status")
        return [
            dict(zip(keys, r))
            for r in self.conn.execute(
                "SELECT id, revision, scheduled_for, started_at, finished_at, audience_size, status FROM activation_runs "
                "WHERE origin_kind = ? AND origin = ? ORDER BY started_at DESC, id DESC LIMIT ?",
                (origin_kind, origin, limit),
            )
        ]

    def add_audience_snapshot(self, run_id: str, members: Iterable[tuple[int, str]]) -> int:
        """Record ``(person_id, arm)`` pairs of a run ('treatment' or 'holdout'); existing pairs are kept."""
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT OR IGNORE INTO audience_snapshots (run_id, person_id, arm) VALUES (?, ?, ?)",
            [(run_id, pid, arm) for pid, arm in members],
        )
        return self.conn.total_changes - before

    def audience_snapshot(self, run_id: str) -> dict[int, str]:
        return dict(self.conn.execute(
            "SELECT person_id, arm FROM audience_snapshots WHERE run_id = ? ORDER BY person_id", (run_id,)))

    # -- the outbox: planning -----------------------------------------------------------------------

    def enqueue_sends(self, sends: Iterable[dict[str, Any]], *, at: dt.datetime | None = None) -> list[str]:
        """Insert planned sends; a send whose idempotency key exists is left untouched (never planned twice).

        Each dict has the outbox columns (``payload`` as a dict, ``not_before`` as an aware datetime or
        None). Returns the keys actually inserted. Call inside :meth:`transaction` with the snapshot.
        The keys already stored are read 500 at a time and the rest inserted in one ``executemany`` (a
        round trip per statement would dominate planning on a PostgreSQL store).
        """
        now = iso(at or utc_now())
        rows: dict[str, tuple] = {}
        for s in sends:  # the first send of a key wins, as one INSERT OR IGNORE after another would keep it
            if s["idempotency_key"] not in rows:
                not_before = s.get("not_before")
                rows[s["idempotency_key"]] = (
                    s["idempotency_key"], s["origin_kind"], s["origin"], s["run_id"], s["person_id"], s.get("step", 0),
                    s["channel"], s["template"], s["revision"], s.get("status", "planned"),
                    None if not_before is None else epoch(not_before), s.get("reason"), dumps(s.get("payload", {})),
                    now, now)
        if not rows:
            return []
        with self.transaction():
            # one read of the keys already there and one executemany, instead of a statement per send
            keys = list(rows)
            present: set[str] = set()
            for start in range(0, len(keys), 900):
                chunk = keys[start:start + 900]
                present.update(r[0] for r in self.conn.execute(
                    f"SELECT idempotency_key FROM outbox WHERE idempotency_key IN ({', '.join('?' * len(chunk))})",
                    chunk))
            new = [key for key in keys if key not in present]
            try:
                with self.transaction():
                    before = self.conn.total_changes
                    self.conn.executemany(_ENQUEUE_SQL, [rows[key] for key in new])
                    if self.conn.total_changes - before != len(new):
                        raise _KeyTaken  # a writer outside this store's write lock took a key meanwhile
            except _KeyTaken:
                new = [key for key in keys if key not in present and self.conn.execute(_ENQUEUE_SQL, rows[key]).rowcount]
        return new

    def trigger_firings(self, trigger: str, person_id: int) -> list[dt.datetime]:
        """When ``trigger`` fired for the person (the firing event's time), for re-entry rules."""
        out = []
        for (payload,) in self.conn.execute(
            "SELECT payload FROM outbox WHERE origin_kind = 'trigger' AND origin = ? AND person_id = ? AND step = 0",
            (trigger, person_id),
        ):
            fired_at = loads(payload).get("fired_at")
            if fired_at:
                out.append(dt.datetime.fromisoformat(fired_at))
        return sorted(out)

    # -- the outbox: dispatching --------------------------------------------------------------------

    def due_sends(self, now: dt.datetime, *, limit: int) -> list[dict[str, Any]]:
        """Sends a dispatcher may claim now: claimable and due, or claimed by a worker whose lease expired.

        Ordered by ``not_before`` (none first), then ``created_at``, then the key: one order on every store,
        since which of a person's sends is claimed first decides which a frequency cap lets through."""
        t = epoch(now)
        placeholders = ", ".join("?" for _ in CLAIMABLE_STATES)
        rows = self.conn.execute(
            f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox WHERE status IN ({placeholders}) "
            f"AND coalesce(not_before, 0) <= ? "
            f"UNION ALL SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox WHERE status = 'claimed' AND claimed_until < ? "
            f"ORDER BY not_before, created_at, idempotency_key LIMIT ?",
            (*CLAIMABLE_STATES, t, t, limit),
        ).fetchall()
        return [_send_row(r) for r in rows]

    def update_send(self, key: str, *, now: dt.datetime, expect_status: str | None = None,
                    expect_claimed_by: str | None = None, **fields: Any) -> bool:
        """Set columns of one send (``payload`` dict, ``not_before``/``claimed_until`` datetimes accepted).

        With ``expect_status`` / ``expect_claimed_by`` the update only happens if the row still has them,
        so a worker whose claim expired cannot overwrite the outcome recorded by the worker that took over.
        """
        values: dict[str, Any] = {}
        for name, value in fields.items():
            if name not in OUTBOX_COLUMNS:
                raise ValueError(f"outbox has no column {name!r}")
            if name == "payload":
                value = dumps(value)
            elif name in ("not_before", "claimed_until") and isinstance(value, dt.datetime):
                value = epoch(value)
            values[name] = value
        values["updated_at"] = iso(now)
        sql = "UPDATE outbox SET " + ", ".join(f"{k} = ?" for k in values) + " WHERE idempotency_key = ?"
        params = [*values.values(), key]
        if expect_status is not None:
            sql += " AND status = ?"
            params.append(expect_status)
        if expect_claimed_by is not None:
            sql += " AND claimed_by = ?"
            params.append(expect_claimed_by)
        return self.conn.execute(sql, params).rowcount > 0

    def renew_claims(self, keys: list[str], worker: str, *, until: dt.datetime, now: dt.datetime,
                     count_attempt: bool = False) -> set[str]:
        """Extend this worker's claims on ``keys`` to ``until``; returns the keys it still owns.

        Called just before each batch is handed to a channel, so a worker slowed down by a slow provider
        never sends a row another worker has taken over meanwhile. ``count_attempt``: the batch is about
        to be sent, so add one to ``attempts`` of every row still owned (attempts count requests made,
        not claims: a claim that expires in a queue costs none).
        """
        if not keys:
            return set()
        placeholders = ", ".join("?" for _ in keys)
        with self.transaction():
            self.conn.execute(
                f"UPDATE outbox SET claimed_until = ?, updated_at = ?, attempts = attempts + ? "
                f"WHERE idempotency_key IN ({placeholders}) AND status = 'claimed' AND claimed_by = ?",
                (epoch(until), iso(now), 1 if count_attempt else 0, *keys, worker))
            return {r[0] for r in self.conn.execute(
                f"SELECT idempotency_key FROM outbox WHERE idempotency_key IN ({placeholders}) "
                "AND status = 'claimed' AND claimed_by = ?", (*keys, worker))}

    def release_claims(self, keys: list[str], worker: str, *, now: dt.datetime) -> int:
        """Give back this worker's claims on ``keys`` that were never sent (a worker stopping): the rows are
        ``planned`` again, claimable at once by any worker, their attempts unchanged. Returns the count."""
        if not keys:
            return 0
        placeholders = ", ".join("?" for _ in keys)
        with self.transaction():
            return self.conn.execute(
                f"UPDATE outbox SET status = 'planned', claimed_by = NULL, claimed_until = NULL, updated_at = ? "
                f"WHERE idempotency_key IN ({placeholders}) AND status = 'claimed' AND claimed_by = ?",
                (iso(now), *keys, worker)).rowcount

    def marketing_sends_since(self, person_id: int, since: dt.datetime, *, exclude_key: str | None = None) -> int:
        """Marketing (non-transactional) sends to the person claimed or sent since ``since``, all campaigns."""
        return self.conn.execute(
            "SELECT count(*) FROM outbox WHERE person_id = ? AND status IN ('claimed', 'sent') AND updated_at >= ? "
            "AND coalesce(json_extract(payload, '$.transactional'), 0) = 0 AND idempotency_key != ?",
            (person_id, iso(since), exclude_key or ""),
        ).fetchone()[0]

    def get_send(self, key: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox WHERE idempotency_key = ?", (key,)).fetchone()
        return None if row is None else _send_row(row)

    def send_by_provider_message_id(self, channel: str, provider_message_id: str) -> dict[str, Any] | None:
        """The send a provider receipt refers to by the provider's own message id (Aliyun BizId, WeCom msgid)."""
        row = self.conn.execute(
            f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox WHERE channel = ? AND provider_message_id = ? LIMIT 1",
            (channel, provider_message_id)).fetchone()
        return None if row is None else _send_row(row)

    def next_due_at(self) -> dt.datetime | None:
        """The earliest time a pending send becomes claimable (None when nothing is pending)."""
        placeholders = ", ".join("?" for _ in CLAIMABLE_STATES)
        row = self.conn.execute(
            f"SELECT min(t) FROM (SELECT min(coalesce(not_before, 0)) AS t FROM outbox WHERE status IN ({placeholders}) "
            "UNION ALL SELECT min(claimed_until) FROM outbox WHERE status = 'claimed')",
            CLAIMABLE_STATES,
        ).fetchone()
        return None if row[0] is None else from_epoch(row[0])

    # -- the outbox: operator views -----------------------------------------------------------------

    def list_sends(self, *, status: str | None = None, origin: str | None = None, person_id: int | None = None,
                   run_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox WHERE {self.person_scope_filter('person_id')}"
        params: list[Any] = []
        for column, value in (("status", status), ("origin", origin), ("person_id", person_id), ("run_id", run_id)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        sql += " ORDER BY updated_at DESC, idempotency_key LIMIT ?"
        params.append(limit)
        return [_send_row(r) for r in self.conn.execute(sql, params)]

    def run_send_outcomes(self, run_ids: Iterable[str]) -> list[tuple[str, str, int]]:
        """``(status, reason, count)`` of the sends of these runs as they stand now (``reason`` '' for none;
        a deferral's time left out, so one rule is one line)."""
        ids = sorted(set(run_ids))
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        counts: dict[tuple[str, str], int] = {}
        for status, reason, n in self.conn.execute(
                f"SELECT status, coalesce(reason, ''), count(*) FROM outbox WHERE run_id IN ({marks}) "
                f"GROUP BY status, coalesce(reason, '')", ids):
            key = (status, reason.split(", deferred to ")[0])
            counts[key] = counts.get(key, 0) + n
        return sorted((s, r, n) for (s, r), n in counts.items())

    def send_stats(self) -> list[dict[str, Any]]:
        """Counts per origin, channel and status."""
        return [
            {"origin_kind": r[0], "origin": r[1], "channel": r[2], "status": r[3], "count": r[4]}
            for r in self.conn.execute(
                "SELECT origin_kind, origin, channel, status, count(*) FROM outbox "
                f"WHERE {self.person_scope_filter('person_id')} "
                "GROUP BY origin_kind, origin, channel, status ORDER BY origin_kind, origin, channel, status"
            )
        ]

    def status_counts_of_sends(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT status, count(*) FROM outbox GROUP BY status"))

    def retry_sends(self, *, keys: Iterable[str] | None = None, status: str = "dead", origin: str | None = None,
                    now: dt.datetime | None = None) -> int:
        """Put dead (or other stopped) sends back to ``planned`` with a fresh attempt budget; returns the count."""
        if status not in RETRYABLE_STATES:
            raise ValueError(f"cannot retry sends in state {status!r}")
        now_text = iso(now or utc_now())
        sql = ("UPDATE outbox SET status = 'planned', attempts = 0, not_before = NULL, claimed_by = NULL, "
               "claimed_until = NULL, reason = 'retried by operator (was: ' || coalesce(reason, status) || ')', "
               f"updated_at = ? WHERE status = ? AND {self.person_scope_filter('person_id')}")
        params: list[Any] = [now_text, status]
        if origin is not None:
            sql += " AND origin = ?"
            params.append(origin)
        if keys is not None:
            keys = list(keys)
            total = 0
            for key in keys:
                total += self.conn.execute(sql + " AND idempotency_key = ?", [*params, key]).rowcount
            return total
        return self.conn.execute(sql, params).rowcount

    # -- leases -------------------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, *, ttl_seconds: float, now: dt.datetime | None = None) -> bool:
        """Take or renew lease ``name`` for ``holder`` until now + ttl; False if someone else holds it."""
        t = epoch(now or utc_now())
        with self.transaction():
            self.conn.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "holder = excluded.holder, expires_at = excluded.expires_at "
                "WHERE leases.expires_at <= ? OR leases.holder = excluded.holder",
                (name, holder, t + max(1, int(ttl_seconds)), t),
            )
            row = self.conn.execute("SELECT holder FROM leases WHERE name = ?", (name,)).fetchone()
        return row is not None and row[0] == holder

    def release_lease(self, name: str, holder: str) -> None:
        self.conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def lease_holder(self, name: str, *, now: dt.datetime | None = None) -> str | None:
        row = self.conn.execute(
            "SELECT holder FROM leases WHERE name = ? AND expires_at > ?", (name, epoch(now or utc_now()))).fetchone()
        return None if row is None else row[0]

    # -- cursors (high-water marks of triggers and incremental campaigns) ---------------------------

    def get_activation_cursor(self, name: str) -> str | None:
        row = self.conn.execute(
            "SELECT cursor FROM source_cursors WHERE source = ?", (CURSOR_PREFIX + name,)).fetchone()
        return None if row is None else row[0]

    def set_activation_cursor(self, name: str, value: str, *, at: dt.datetime | None = None) -> None:
        self.conn.execute(
            "INSERT INTO source_cursors (source, cursor, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            (CURSOR_PREFIX + name, value, iso(at or utc_now())),
        )

    # -- reads of other stages' tables that activation needs ----------------------------------------

    def events_after(self, after_id: int, names: Iterable[str], *, limit: int) -> list[tuple]:
        """``(id, person_id, name, ts, properties)`` of events with id > ``after_id`` and one of ``names``."""
        names = list(names)
        placeholders = ", ".join("?" for _ in names)
        return [
            (r[0], r[1], r[2], from_epoch(r[3]), loads(r[4]))
            for r in self.conn.execute(
                f"SELECT id, person_id, name, ts, properties FROM events WHERE id > ? AND name IN ({placeholders}) "
                "ORDER BY id LIMIT ?", (after_id, *names, limit),
            )
        ]

    def first_event_id_since(self, since: dt.datetime) -> int:
        """The id just before the first event at or after ``since`` (a starting high-water mark)."""
        row = self.conn.execute("SELECT min(id) FROM events WHERE ts >= ?", (epoch(since),)).fetchone()
        if row[0] is not None:
            return row[0] - 1
        return self.conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]

    def advisor_ids_of_store(self, store_id: str, role: str = "sales") -> list[str]:
        """Advisors of a store with ``role``, by id (to assign a person who has no advisor of their own)."""
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM advisors WHERE store_id = ? AND role = ? ORDER BY id", (store_id, role))]

    def identifiers_of(self, person_id: int, type_: str) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT value FROM identifiers WHERE person_id = ? AND type = ? AND flagged = 0 ORDER BY value",
            (person_id, type_))]

    # -- shared channel tokens ----------------------------------------------------------------------

    def get_channel_token(self, key: str, *, valid_at: dt.datetime) -> tuple[str, dt.datetime] | None:
        """The cached token for ``key`` if it is still valid at ``valid_at``."""
        row = self.conn.execute(
            "SELECT token, expires_at FROM channel_tokens WHERE key = ? AND expires_at > ?", (key, epoch(valid_at))
        ).fetchone()
        return None if row is None else (row[0], from_epoch(row[1]))

    def put_channel_token(self, key: str, token: str, expires_at: dt.datetime) -> None:
        self.conn.execute(
            "INSERT INTO channel_tokens (key, token, expires_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
            "token = excluded.token, expires_at = excluded.expires_at",
            (key, token, epoch(expires_at)),
        )

    def drop_channel_token(self, key: str, token: str) -> bool:
        """Forget ``token`` for ``key`` -- only if it is still the cached one (never someone's fresh token)."""
        return self.conn.execute(
            "DELETE FROM channel_tokens WHERE key = ? AND token = ?", (key, token)).rowcount > 0

    # -- advisor call tasks (the advisor_task channel) ----------------------------------------------

    def add_advisor_tasks(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert call tasks ``{idempotency_key, advisor_id, store_id, person_id, note, created_at}``.

        Idempotent on ``idempotency_key``: a task written again (a retried send) is not duplicated.
        ``created_at`` may be an aware datetime or ISO text. Returns the number of new tasks.
        """
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT OR IGNORE INTO advisor_tasks (idempotency_key, advisor_id, store_id, person_id, note, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (r["idempotency_key"], r.get("advisor_id"), r.get("store_id"), r["person_id"], r.get("note"),
                 iso(r["created_at"]) if isinstance(r.get("created_at"), dt.datetime)
                 else (r.get("created_at") or iso(utc_now())))
                for r in rows
            ],
        )
        return self.conn.total_changes - before

    def advisor_tasks(self, *, store_id: str | None = None, open_only: bool = False) -> list[dict[str, Any]]:
        sql = ("SELECT idempotency_key, advisor_id, store_id, person_id, note, created_at, done_at FROM advisor_tasks "
               "WHERE 1 = 1")
        params: list[Any] = []
        if store_id is not None:
            sql += " AND store_id = ?"
            params.append(store_id)
        if open_only:
            sql += " AND done_at IS NULL"
        sql += " ORDER BY store_id, advisor_id, created_at, idempotency_key"
        keys = ("idempotency_key", "advisor_id", "store_id", "person_id", "note", "created_at", "done_at")
        return [dict(zip(keys, r)) for r in self.conn.execute(sql, params)]
