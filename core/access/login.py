"""Who is calling: the project's local owner, the owner acting as a user (``--as``), or a token holder
(``MOTORCADE_TOKEN``)."""

from __future__ import annotations

import datetime as dt
import os

from .caller import Access, AccessDenied
from .tokens import hash_token


def is_local_owner(project) -> bool:
    """True when this process's user owns the project's motorcade.toml (or is root)."""
    if not hasattr(os, "geteuid"):
        return True  # no ownership model to compare with
    uid = os.geteuid()
    try:
        return uid == 0 or project.config.path.stat().st_uid == uid
    except OSError:
        return False


def resolve_caller(project, *, as_user: str | None = None, token: str | None = None) -> Access:
    """The caller of one command: a token names its user; without one, the local owner acts as
    group_admin, or as ``as_user`` when given; anyone else must present a token."""
    if token:
        return caller_from_token(project.store, token, as_user=as_user)
    if not is_local_owner(project):
        raise AccessDenied(f"you do not own {project.config.path}, so you are not its local owner",
                           hint="log in with a token: MOTORCADE_TOKEN=... (a group_admin creates one with "
                                "`motorcade users token create USER`)")
    if as_user is None:
        return Access.local_owner()
    user = project.store.get_user(as_user)
    if user is None:
        raise AccessDenied(f"no user named {as_user!r}", hint="list them with `motorcade users list`")
    if user["disabled_at"]:
        raise AccessDenied(f"user {as_user!r} is disabled")
    return Access(as_user, project.store.user_grants(as_user), how="as")


def caller_from_token(store, token: str, *, as_user: str | None = None,
                      now: dt.datetime | None = None) -> Access:
    """The user a token belongs to, if the token is known, not revoked and not expired."""
    row = store.token_by_hash(hash_token(token))
    now = now or dt.datetime.now(dt.timezone.utc)
    hint = "ask a group_admin for a new token (`motorcade users token create USER`)"
    if row is None:
        raise AccessDenied("the token in MOTORCADE_TOKEN is not known", hint=hint)
    if row["revoked_at"]:
        raise AccessDenied(f"the token {row['prefix']}… of {row['user']} was revoked at {row['revoked_at']}",
                           hint=hint)
    if row["expires_at"] and dt.datetime.fromisoformat(row["expires_at"]) <= now:
        raise AccessDenied(f"the token {row['prefix']}… of {row['user']} expired at {row['expires_at']}",
                           hint=hint)
    if as_user is not None and as_user != row["user"]:
        raise AccessDenied(f"the token belongs to {row['user']}, not {as_user}", hint="leave out --as")
    user = store.get_user(row["user"])
    if user is None or user["disabled_at"]:
        raise AccessDenied(f"user {row['user']!r} is disabled", hint=hint)
    store.touch_token(row["id"])
    return Access(row["user"], store.user_grants(row["user"]), how="token")
