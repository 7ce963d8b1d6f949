"""What each command needs, checked in one place before it touches data, and what the audit log records.

``motorcade.cli`` calls :func:`authorize_command` when a command first reaches its project (after the caller
is known) and :func:`audit_command` when it ends. Data a permitted command reads is narrowed to the
caller's scope by the store (``AccessMixin.person_scope_filter``); rule-scoped actions (computing a store's
segment, running a store's campaign) check the rule's scope where the rule is used
(:func:`require_rule_scope`).
"""

from __future__ import annotations

from ..masking import without_password
from .caller import Access
from .roles import ACT, AUDIT, EXPORT, OPERATE, PUBLISH, READ, USERS  # noqa: F401 (ACT, PUBLISH: re-exported)
from .scope import Scope

# Command path (without "motorcade") -> the permission it needs. A command not listed (a plugin's, say)
# needs OPERATE: only group_admin may run what this table does not know.
COMMAND_PERMISSIONS: dict[str, str] = {
    "status": READ, "explain": READ, "diff": READ, "check": READ, "fmt": READ, "test": READ,
    "segments compute": PUBLISH, "segments members": EXPORT,
    "run": ACT, "sends list": READ, "sends stats": READ, "sends retry": ACT,
    "report funnel": READ, "report uplift": READ, "report retention": READ, "report churn": READ,
    "tags list": READ, "tags health": READ, "tags compute": OPERATE,
    "identity explain": READ, "identity split": OPERATE, "identity unsplit": OPERATE, "identity splits": OPERATE,
    "identity flagged": OPERATE, "identity rejected": OPERATE, "identity stats": OPERATE,
    "ingest": OPERATE, "quarantine list": OPERATE, "quarantine retry": OPERATE, "collect": OPERATE,
    "pipeline": OPERATE, "serve": OPERATE, "console": OPERATE, "config check": READ, "config reference": READ,
    "users whoami": READ, "users roles": READ, "audit": AUDIT, "audit verify": AUDIT,
    # a store user reads a journey scoped inside their stores and its people (checked by the command)
    "journeys status": READ, "journeys explain": READ,
    "report attribution": READ, "report portrait": READ, "sends tracking": READ,
    "store copy": OPERATE,
}
# Commands that read aggregates over everyone (no person rows to narrow): a store-scoped caller is refused.
GROUP_ONLY_READS = {"tags health", "report attribution", "sends tracking"}
# Commands whose run is recorded in the audit log (the users commands record their own, finer entries).
AUDITED = {"segments compute", "segments members", "run", "sends retry", "tags compute", "identity split",
           "identity unsplit", "ingest", "quarantine retry", "pipeline", "serve", "collect", "store copy"}
# Commands anyone may run whatever their grants (they only say who the caller is).
OPEN = {"users whoami"}


def command_key(command_path: str) -> str:
    """``motorcade segments compute`` -> ``segments compute``."""
    return command_path.split(" ", 1)[1] if " " in command_path else ""


def authorize_command(access: Access, key: str) -> None:
    """Raise AccessDenied unless ``access`` may run command ``key`` (in some scope of theirs)."""
    if key in OPEN:
        return
    permission = COMMAND_PERMISSIONS.get(key, OPERATE)
    if key.startswith("users ") and key not in COMMAND_PERMISSIONS:
        permission = USERS
    what = f"run `motorcade {key}`"
    access.require(permission, what)
    if key in GROUP_ONLY_READS:
        access.require(permission, what + " (figures over the whole group)", Scope.everyone())


def rule_scope(rule) -> Scope:
    """The scope a segment, campaign or trigger declares (``scope store "SH01"``); group when none."""
    decl = getattr(rule, "scope", None)
    if decl is None or decl.group:
        return Scope.everyone()
    return Scope(stores=frozenset(decl.stores))


def require_rule_scope(access: Access | None, permission: str, kind: str, rule) -> None:
    """A scoped caller may act only on rules whose declared scope lies inside their own."""
    if access is not None:
        access.require(permission, f"{'compute' if kind == 'segment' else 'run'} {kind} {rule.name}",
                       rule_scope(rule))


def audit_command(store, key: str, params: dict, outcome: str, affected: dict) -> None:
    """Append the audit entry of an audited command (arguments as given, what it affected, its outcome)."""
    if key not in AUDITED:
        return
    arguments = {k: list(v) if isinstance(v, tuple) else _without_password(v) for k, v in params.items()
                 if v not in (None, (), False)}
    store.audit(key.replace(" ", "."), arguments, {**affected, "outcome": outcome})


def _without_password(value):
    """A database URL argument (`store copy --to`) with its password replaced by ``***``."""
    return without_password(value) if isinstance(value, str) else value

