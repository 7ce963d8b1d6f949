"""Access control: scopes (group, stores, advisors' customers), users and roles, API tokens, the caller
object every read and action checks, and the hash-chained audit log. See docs/access.md."""

from .caller import Access, AccessDenied
from .roles import ACT, AUDIT, EXPORT, OPERATE, PII, PUBLISH, READ, ROLES, USERS, Grant
from .scope import Scope

__all__ = ["Access", "AccessDenied", "Grant", "ROLES", "Scope", "READ", "PII", "EXPORT", "ACT", "PUBLISH",
           "OPERATE", "USERS", "AUDIT"]
