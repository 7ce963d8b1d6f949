"""The caller: who is acting, with which grants. The one object every read and action checks.

An :class:`Access` is attached to a project (``project.access``) and through it to the project's store
(``store.access``); the store's people-reading functions restrict their rows with
:meth:`motorcade.store.access.AccessMixin.person_scope_filter`, and actions call :meth:`Access.require`.
The CLI builds it once per command (:func:`motorcade.access.login.resolve_caller`); a web console would
build it once per request after a log-in with a token.
"""

from __future__ import annotations

import getpass
from typing import Iterable

from ..errors import MotorcadeError
from .roles import PII, READ, ROLES, Grant
from .scope import Scope


class AccessDenied(MotorcadeError):
    """The caller's grants do not allow an action or do not reach a person, store or rule."""


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in the environment (some containers)
        return "owner"


class Access:
    """A caller: a user name, how they were identified, and their grants."""

    def __init__(self, user: str, grants: Iterable[Grant], *, how: str = "owner"):
        self.user = user
        self.grants = tuple(grants)
        self.how = how  # "owner" (the project's local owner), "as" (owner acting as a user), "token"

    @classmethod
    def local_owner(cls, user: str | None = None) -> "Access":
        """The owner of the project's files: group_admin (today's single-user use)."""
        return cls(user or _os_user(), [Grant("group_admin", Scope.everyone())], how="owner")

    def __repr__(self) -> str:
        return f"Access({self.user!r}, {[str(g) for g in self.grants]}, how={self.how!r})"

    @property
    def actor(self) -> str:
        """How the audit log names the caller."""
        return {"owner": f"{self.user} (local owner)", "as": f"{self.user} (as, by the local owner)"}.get(
            self.how, self.user)

    def scope(self, permission: str = READ) -> Scope:
        """Whom the caller may reach with ``permission``: the union of the scopes of the grants carrying it."""
        scope = Scope()
        for grant in self.grants:
            if permission in grant.permissions:
                scope = scope.union(grant.scope)
        return scope

    @property
    def is_group(self) -> bool:
        """True when the caller reads everyone (no row needs filtering)."""
        return self.scope(READ).group

    @property
    def may_see_pii(self) -> bool:
        """Personal data may be unmasked only when every grant that reads people carries ``pii``."""
        readers = [g for g in self.grants if READ in g.permissions]
        return bool(readers) and all(PII in g.permissions for g in readers)

    def allows(self, permission: str, scope: Scope | None = None) -> bool:
        """True when the caller has ``permission`` over all of ``scope`` (over anything when None)."""
        held = self.scope(permission)
        return not held.empty and (scope is None or held.covers(scope))

    def require(self, permission: str, what: str, scope: Scope | None = None) -> None:
        """Raise :class:`AccessDenied` unless :meth:`allows`; ``what`` names the action for the message."""
        if self.allows(permission, scope):
            return
        holders = [name for name, role in ROLES.items() if permission in role.permissions]
        held = self.scope(permission)
        if held.empty:
            reason = f"it needs the {permission!r} permission (held: " \
                     f"{', '.join(str(g) for g in self.grants) or 'no grants'})"
        else:
            reason = f"its {permission!r} permission reaches {held}, not {scope}"
        raise AccessDenied(f"{self.user} may not {what}: {reason}",
                           hint=f"roles with {permission!r}: {', '.join(holders)}; a group_admin grants them with "
                                f"`motorcade users grant USER ROLE`")

    def require_stores(self, requested: Iterable[str]) -> None:
        """Every store code in ``requested`` must lie inside the caller's read scope."""
        wanted = Scope(stores=frozenset(requested))
        if not self.scope(READ).covers(wanted):
            raise AccessDenied(f"{self.user} may not read {wanted}: outside {self.scope(READ)}",
                               hint="ask for one of your own stores")
