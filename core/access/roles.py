"""Roles and the permissions they carry.

A user holds grants; a grant is a role, for a scope where the role is tied to one (a ``store_manager`` of
given stores, an ``advisor`` for their own customers). What a caller may do with a permission is limited to
the union of the scopes of the grants that carry it.
"""

from __future__ import annotations

import attrs

from ..errors import UsageError
from .scope import Scope

# Permissions (what an action needs):
READ = "read"              # see people, members, explain, reports, sends of the scope
PII = "pii"                # see personal data unmasked (with MOTORCADE_SHOW_PII=1)
EXPORT = "export"          # export a segment's members
ACT = "act"                # run a campaign, retry sends
PUBLISH = "publish"        # compute segments from the rules (publishes a rules revision)
OPERATE = "operate"        # ingest, quarantine, tags compute, pipeline, identity repairs, serve, collect
USERS = "users"            # manage users, grants and tokens
AUDIT = "audit"            # read and verify the audit log

PERMISSIONS = (READ, PII, EXPORT, ACT, PUBLISH, OPERATE, USERS, AUDIT)


@attrs.frozen
class Role:
    name: str
    permissions: frozenset[str]
    scoped_by: str | None  # None: group-wide; "store": needs store codes; "advisor": needs an advisor id
    description: str


ROLES: dict[str, Role] = {r.name: r for r in (
    Role("group_admin", frozenset(PERMISSIONS), None,
         "everything, group-wide: data, actions, users and the audit log (the project's local owner)"),
    Role("group_marketer", frozenset({READ, PII, EXPORT, ACT, PUBLISH}), None,
         "group-wide: see people, export, publish rules, run campaigns and retry sends"),
    Role("store_manager", frozenset({READ, PII, EXPORT, ACT, PUBLISH}), "store",
         "the given stores' customers: see, export, publish and run rules scoped to those stores"),
    Role("advisor", frozenset({READ, PII}), "advisor",
         "the advisor's own customers (people related to the advisor id): see only"),
    Role("analyst", frozenset({READ, EXPORT}), None,
         "group-wide, read-only (exports included), personal data always masked"),
)}


@attrs.frozen
class Grant:
    """One role held by a user, for a scope."""

    role: str
    scope: Scope

    @property
    def permissions(self) -> frozenset[str]:
        return ROLES[self.role].permissions

    @classmethod
    def make(cls, role: str, targets: tuple[str, ...] | list[str] = ()) -> "Grant":
        """Validate ``role`` and its targets (store codes or an advisor id) into a grant."""
        if role not in ROLES:
            import difflib

            close = difflib.get_close_matches(role, list(ROLES), n=1)
            raise UsageError(f"no role named {role!r}",
                             hint=f"did you mean {close[0]!r}?" if close else f"roles: {', '.join(ROLES)}")
        kind = ROLES[role].scoped_by
        targets = tuple(t.strip() for t in targets if t.strip())
        if kind is None:
            if targets:
                raise UsageError(f"role {role} is group-wide and takes no store or advisor",
                                 hint="leave out --store / --advisor")
            return cls(role, Scope.everyone())
        if not targets:
            raise UsageError(f"role {role} needs the {kind}{'s' if kind == 'store' else ''} it covers",
                             hint=f"pass --{kind} {'CODE' if kind == 'store' else 'ID'}")
        return cls(role, Scope(stores=targets) if kind == "store" else Scope(advisors=targets))

    def __str__(self) -> str:
        return self.role if self.scope.group else f"{self.role} ({self.scope})"
