"""Access control tables: users, grants, API tokens, the audit log; and the scope filter that every
people-reading function of the store applies (the one choke point of :mod:`motorcade.access`)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from .codec import iso, utc_now


class AccessMixin:
    """``access`` is the caller (``motorcade.access.Access``); None means the local owner, who sees all."""

    access = None

    # -- the choke point --------------------------------------------------------------------------

    def person_scope_filter(self, column: str) -> str:
        """A SQL condition on ``column`` (a person id) true only for people inside the caller's read scope:
        ``1`` for a group-wide caller; else membership of a temporary table filled with the scope's people
        (per connection, refreshed per caller)."""
        access = self.access
        if access is None or access.is_group:
            return "1"
        self._fill_scope_table(access.scope())
        return f"{column} IN (SELECT person_id FROM temp.motorcade_scope_people)"

    def _fill_scope_table(self, scope) -> None:
        conn = self.conn
        key = (str(scope), self._data_version())
        if getattr(self._local, "scope_key", None) == key:
            return
        sql, params = scope.people_sql()
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS motorcade_scope_people (person_id INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM temp.motorcade_scope_people")
        conn.execute(f"INSERT OR IGNORE INTO temp.motorcade_scope_people {sql}", params)
        self._local.scope_key = (str(scope), self._data_version())  # after the fill, which counts as changes

    def _data_version(self) -> tuple[int, int]:
        """Changes when people or relations change (another connection's commit, or this one's writes)."""
        return (self.conn.execute("PRAGMA data_version").fetchone()[0], self.conn.total_changes)

    def people_in_scope(self, person_ids: Iterable[int]) -> list[int]:
        """``person_ids`` (in order) without those outside the caller's read scope. A list passed in may come
        back itself (no scope to check: a segment's ids are not copied per check), so neither may be changed."""
        ids = person_ids if isinstance(person_ids, list) else list(person_ids)
        if self.access is None or self.access.is_group or not ids:
            return ids
        return self.people_in(self.access.scope(), ids)

    def people_in(self, scope, person_ids: Iterable[int]) -> list[int]:
        """``person_ids`` (in order) without those outside ``scope`` (a ``motorcade.access.Scope``). A list
        passed in may come back itself (a group scope), so neither may be changed."""
        ids = person_ids if isinstance(person_ids, list) else list(person_ids)
        if scope.group or not ids:
            return ids
        condition, params = scope.member_condition("j.value")
        inside: set[int] = set()
        for start in range(0, len(ids), 5000):
            source, listed = self._id_list_source(ids[start:start + 5000])
            rows = self.conn.execute(f"SELECT j.value FROM {source} WHERE {condition}", (listed, *params)).fetchall()
            inside.update(r[0] for r in rows)
        return [i for i in ids if i in inside]

    def _id_list_source(self, ids: list[int]) -> tuple[str, Any]:
        """A FROM item ``j`` with one row per id (column ``j.value``) for a list of ids, and its parameter."""
        return "json_each(?) j", json_list(ids)

    def require_person_in_scope(self, person_id: int, asked: str | None = None) -> None:
        """Raise AccessDenied when ``person_id`` lies outside the caller's read scope. The message is the
        same whether or not the person exists and names the person as asked (``asked``: an identifier looked
        up), so a scoped caller learns nothing about other stores' people."""
        if not self.people_in_scope([person_id]):
            raise self.scope_denial(asked or f"person {person_id}")

    def scope_denial(self, asked: str):
        """The one answer a scoped caller gets for a person outside their scope, or one that does not exist."""
        from ..access import AccessDenied

        return AccessDenied(f"{asked} is not in the scope of {self.access.user} ({self.access.scope()})",
                            hint="check the id; you see only your own customers")

    def require_access(self, permission: str, what: str, scope=None) -> None:
        """Raise AccessDenied unless the caller holds ``permission`` (over ``scope``)."""
        if self.access is not None:
            self.access.require(permission, what, scope)

    # -- users, grants, tokens --------------------------------------------------------------------

    def get_user(self, name: str) -> dict[str, Any] | None:
        """The user ``name`` (name, display_name, created_at, created_by, disabled_at), or None."""
        row = self.conn.execute("SELECT name, display_name, created_at, created_by, disabled_at FROM users "
                                "WHERE name = ?", (name,)).fetchone()
        return dict(zip(("name", "display_name", "created_at", "created_by", "disabled_at"), row)) if row else None

    def add_user(self, name: str, display_name: str | None, created_by: str) -> None:
        """Create user ``name`` with no grants; the name is unique (a second add raises the engine's integrity error)."""
        self.conn.execute("INSERT INTO users (name, display_name, created_at, created_by) VALUES (?, ?, ?, ?)",
                          (name, display_name, iso(utc_now()), created_by))

    def disable_user(self, name: str) -> bool:
        """Disable a user: their tokens and ``--as`` stop working; grants and history stay."""
        return self.conn.execute("UPDATE users SET disabled_at = ? WHERE name = ? AND disabled_at IS NULL",
                                 (iso(utc_now()), name)).rowcount == 1

    def list_users(self) -> list[dict[str, Any]]:
        """Every user by name, with their live grants (as text) and the number of unrevoked tokens."""
        rows = self.conn.execute("SELECT name, display_name, created_at, disabled_at FROM users ORDER BY name")
        users = [dict(zip(("name", "display_name", "created_at", "disabled_at"), r)) for r in rows]
        for user in users:
            user["grants"] = [str(g) for g in self.user_grants(user["name"])]
            user["tokens"] = self.conn.execute(
                "SELECT count(*) FROM api_tokens WHERE user = ? AND revoked_at IS NULL", (user["name"],)).fetchone()[0]
        return users

    def user_grants(self, name: str) -> list:
        """The user's unrevoked grants (``motorcade.access.roles.Grant``) in the order they were given."""
        from ..access.roles import Grant
        from ..access.scope import Scope

        rows = self.conn.execute("SELECT role, scope FROM user_grants WHERE user = ? AND revoked_at IS NULL "
                                 "ORDER BY id", (name,)).fetchall()
        return [Grant(role, Scope.parse(scope)) for role, scope in rows]

    def add_grant(self, name: str, role: str, scope: str, granted_by: str) -> bool:
        """Grant ``role`` over ``scope``; False when the user already holds exactly that grant."""
        if self.conn.execute("SELECT 1 FROM user_grants WHERE user = ? AND role = ? AND scope = ? AND "
                             "revoked_at IS NULL", (name, role, scope)).fetchone():
            return False
        self.conn.execute("INSERT INTO user_grants (user, role, scope, granted_at, granted_by) VALUES (?, ?, ?, ?, ?)",
                          (name, role, scope, iso(utc_now()), granted_by))
        return True

    def revoke_grants(self, name: str, role: str, scope: str | None, revoked_by: str) -> int:
        """Revoke the user's grants of ``role`` (only over ``scope`` when given); the rows stay, dated."""
        sql = "UPDATE user_grants SET revoked_at = ?, revoked_by = ? WHERE user = ? AND role = ? AND revoked_at IS NULL"
        params: list = [iso(utc_now()), revoked_by, name, role]
        if scope is not None:
            sql += " AND scope = ?"
            params.append(scope)
        return self.conn.execute(sql, params).rowcount

    def add_token(self, name: str, token_hash: str, prefix: str, label: str | None,
                  expires_at: dt.datetime | None) -> int:
        """Store a token by its hash (the token itself is never stored); returns the token's id."""
        cursor = self.conn.execute(
            "INSERT INTO api_tokens (user, token_hash, prefix, label, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            (name, token_hash, prefix, label, iso(utc_now()), iso(expires_at) if expires_at else None))
        return cursor.lastrowid

    _TOKEN_COLUMNS = ("id", "user", "prefix", "label", "created_at", "expires_at", "revoked_at", "last_used_at")

    def token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        """The token row whose hash is ``token_hash`` (revoked or expired ones too: the caller decides), or None."""
        row = self.conn.execute(f"SELECT {', '.join(self._TOKEN_COLUMNS)} FROM api_tokens WHERE token_hash = ?",
                                (token_hash,)).fetchone()
        return dict(zip(self._TOKEN_COLUMNS, row)) if row else None

    def list_tokens(self, name: str | None = None) -> list[dict[str, Any]]:
        """Token rows by id (never their hashes), of user ``name`` or of everyone."""
        sql = f"SELECT {', '.join(self._TOKEN_COLUMNS)} FROM api_tokens"
        rows = self.conn.execute(sql + (" WHERE user = ?" if name else "") + " ORDER BY id", (name,) if name else ())
        return [dict(zip(self._TOKEN_COLUMNS, r)) for r in rows]

    def revoke_token(self, token_id: int) -> bool:
        """Revoke a token; False when it was unknown or already revoked."""
        return self.conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                                 (iso(utc_now()), token_id)).rowcount == 1

    def touch_token(self, token_id: int) -> None:
        """Record that the token was just used (``last_used_at``)."""
        self.conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (iso(utc_now()), token_id))

    # -- the audit log ----------------------------------------------------------------------------

    def audit(self, action: str, arguments: dict | None = None, affected: dict | None = None) -> int:
        """Append an entry for the current caller; returns its id. The previous hash is read under the write
        lock, so concurrent writers still form one chain."""
        from ..access.audit import GENESIS, canonical_json, entry_hash

        actor = self.access.actor if self.access is not None else "local owner"
        args_text, affected_text = canonical_json(arguments or {}), canonical_json(affected or {})
        with self.transaction():
            last = self.conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
            entry_id, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
            at = iso(utc_now())
            digest = entry_hash(entry_id, at, actor, action, args_text, affected_text, prev_hash)
            self.conn.execute("INSERT INTO audit_log (id, at, actor, action, arguments, affected, prev_hash, hash) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                              (entry_id, at, actor, action, args_text, affected_text, prev_hash, digest))
        return entry_id

    _AUDIT_COLUMNS = ("id", "at", "actor", "action", "arguments", "affected", "prev_hash", "hash")

    def audit_entries(self, *, action: str | None = None, actor: str | None = None, since: str | None = None,
                      limit: int | None = None) -> list[dict[str, Any]]:
        """Entries, newest first, filtered by action (prefix), actor (substring) and time (``at >= since``)."""
        where, params = ["1"], []
        if action:
            where.append("(action = ? OR action LIKE ? ESCAPE '\\')")
            params += [action, action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ".%"]
        if actor:
            where.append("instr(actor, ?) > 0")
            params.append(actor)
        if since:
            where.append("at >= ?")
            params.append(since)
        sql = f"SELECT {', '.join(self._AUDIT_COLUMNS)} FROM audit_log WHERE {' AND '.join(where)} ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [dict(zip(self._AUDIT_COLUMNS, r)) for r in self.conn.execute(sql, params)]

    def audit_chain(self) -> Iterable[dict[str, Any]]:
        """Every entry in id order (for ``audit verify``)."""
        for row in self.conn.execute(f"SELECT {', '.join(self._AUDIT_COLUMNS)} FROM audit_log ORDER BY id"):
            yield dict(zip(self._AUDIT_COLUMNS, row))


def json_list(values: list[int]) -> str:
    import json

    return json.dumps(values)
