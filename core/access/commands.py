"""CLI commands of access control (added to the root CLI by motorcade.cli):

    motorcade users add|list|grant|revoke|disable|roles|whoami
    motorcade users token create|list|revoke
    motorcade audit [list] [--action A] [--actor U] [--since T] [--json]
    motorcade audit verify
"""

from __future__ import annotations

import datetime as dt
import json

import click

from ..cli_types import COUNT, ROW_ID
from .roles import AUDIT, ROLES, USERS


def _project():
    return click.get_current_context().find_root().obj.project


def _admin_store(what: str):
    store = _project().store
    store.require_access(USERS, what)
    return store


def _existing_user(store, name: str) -> dict:
    user = store.get_user(name)
    if user is None:
        import difflib

        from ..errors import MotorcadeError

        names = [u["name"] for u in store.list_users()]
        close = difflib.get_close_matches(name, names, n=1)
        raise MotorcadeError(f"no user named {name!r}", hint=f"did you mean {close[0]!r}?" if close else
                             "add one with `motorcade users add NAME`")
    return user


@click.group(name="users")
def users_group() -> None:
    """Users, their roles and API tokens (group_admin only)."""


@users_group.command(name="add")
@click.argument("name")
@click.option("--display-name", help="A name to show (e.g. the person's real name).")
@click.option("--role", help="Grant this role at once (see `motorcade users roles`).")
@click.option("--store", "stores", multiple=True, metavar="CODE", help="Store(s) of a store_manager. Repeatable.")
@click.option("--advisor", "advisors", multiple=True, metavar="ID", help="Advisor id of an advisor.")
def users_add(name: str, display_name: str | None, role: str | None, stores, advisors) -> None:
    """Add a user NAME (optionally with a first role)."""
    from ..errors import UsageError
    from .roles import Grant

    store = _admin_store("add users")
    if not name.strip() or name != name.strip() or any(c.isspace() for c in name):
        raise UsageError(f"{name!r} is not a user name", hint="use letters, digits, . _ - without spaces")
    grant = Grant.make(role, (*stores, *advisors)) if role else None
    if store.get_user(name) is not None:
        raise UsageError(f"user {name!r} exists already", hint="grant it a role with `motorcade users grant`")
    actor = store.access.actor if store.access else "local owner"
    with store.transaction():
        store.add_user(name, display_name, actor)
        if grant:
            store.add_grant(name, grant.role, str(grant.scope), actor)
        store.audit("users.add", {"user": name, "grant": str(grant) if grant else None})
    click.echo(f"added user {name}" + (f" with {grant}" if grant else ""))


@users_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def users_list(as_json: bool) -> None:
    """Users with their current grants and number of active tokens."""
    users = _admin_store("list users").list_users()
    if as_json:
        click.echo(json.dumps(users, ensure_ascii=False, indent=2))
        return
    if not users:
        click.echo("no users (the project's local owner acts as group_admin)")
    for u in users:
        state = " (disabled)" if u["disabled_at"] else ""
        click.echo(f"{u['name']:<20} {', '.join(u['grants']) or 'no roles'}{state}  tokens: {u['tokens']}")


@users_group.command(name="roles")
def users_roles() -> None:
    """The roles and what each may do."""
    for role in ROLES.values():
        click.echo(f"{role.name:<15} {role.description}")
        click.echo(f"{'':<15} permissions: {', '.join(sorted(role.permissions))}")


@users_group.command(name="grant")
@click.argument("name")
@click.argument("role")
@click.option("--store", "stores", multiple=True, metavar="CODE", help="Store(s) of a store_manager. Repeatable.")
@click.option("--advisor", "advisors", multiple=True, metavar="ID", help="Advisor id of an advisor.")
def users_grant(name: str, role: str, stores, advisors) -> None:
    """Grant ROLE to user NAME (store_manager needs --store, advisor needs --advisor)."""
    from .roles import Grant

    store = _admin_store("grant roles")
    _existing_user(store, name)
    grant = Grant.make(role, (*stores, *advisors))
    with store.transaction():
        added = store.add_grant(name, grant.role, str(grant.scope), store.access.actor if store.access else "owner")
        if added:
            store.audit("users.grant", {"user": name, "role": grant.role, "scope": str(grant.scope)})
    click.echo(f"granted {grant} to {name}" if added else f"{name} already holds {grant}")


@users_group.command(name="revoke")
@click.argument("name")
@click.argument("role")
@click.option("--store", "stores", multiple=True, metavar="CODE", help="Only the grant over these stores.")
@click.option("--advisor", "advisors", multiple=True, metavar="ID", help="Only the grant for this advisor.")
def users_revoke(name: str, role: str, stores, advisors) -> None:
    """Revoke ROLE from user NAME (every grant of it, or only the one over --store / --advisor)."""
    from .roles import Grant

    store = _admin_store("revoke roles")
    _existing_user(store, name)
    if role not in ROLES:
        Grant.make(role)  # the unknown-role error with its hint
    scope = str(Grant.make(role, (*stores, *advisors)).scope) if (stores or advisors) else None
    with store.transaction():
        count = store.revoke_grants(name, role, scope, store.access.actor if store.access else "owner")
        if count:
            store.audit("users.revoke", {"user": name, "role": role, "scope": scope})
    click.echo(f"revoked {count} grant{'s' if count != 1 else ''} of {role} from {name}")


@users_group.command(name="disable")
@click.argument("name")
def users_disable(name: str) -> None:
    """Disable user NAME at once: their tokens and `--as NAME` are refused (grants and history stay)."""
    store = _admin_store("disable users")
    _existing_user(store, name)
    with store.transaction():
        changed = store.disable_user(name)
        if changed:
            store.audit("users.disable", {"user": name})
    click.echo(f"disabled {name}" if changed else f"{name} was disabled already")


@users_group.group(name="token")
def token_group() -> None:
    """API tokens: created for a user, shown once, stored hashed, revocable, with an expiry."""


@token_group.command(name="create")
@click.argument("name")
@click.option("--days", type=click.IntRange(1, 3650), default=90, show_default=True,
              help="Days until the token expires.")
@click.option("--label", help="What the token is for (shown in `users token list`).")
def token_create(name: str, days: int, label: str | None) -> None:
    """Create a token for user NAME and print it once (only its hash is stored)."""
    from .tokens import hash_token, new_token, token_prefix

    store = _admin_store("create tokens")
    _existing_user(store, name)
    token = new_token()
    expires = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=days)
    with store.transaction():
        token_id = store.add_token(name, hash_token(token), token_prefix(token), label, expires)
        store.audit("users.token.create", {"user": name, "token_id": token_id, "label": label,
                                           "expires_at": expires.isoformat()})
    click.echo(token)
    click.echo(f"token {token_id} for {name}, expires {expires.isoformat()}; it is shown only now: use it as "
               f"MOTORCADE_TOKEN", err=True)


@token_group.command(name="list")
@click.argument("name", required=False)
def token_list(name: str | None) -> None:
    """Tokens (all, or NAME's): id, prefix, label, expiry, revoked, last used."""
    for t in _admin_store("list tokens").list_tokens(name):
        state = f"revoked {t['revoked_at']}" if t["revoked_at"] else f"expires {t['expires_at']}"
        click.echo(f"{t['id']:>4} {t['user']:<16} {t['prefix']}…  {t['label'] or '-':<16} {state}  "
                   f"last used {t['last_used_at'] or 'never'}")


@token_group.command(name="revoke")
@click.argument("token_id", type=ROW_ID)
def token_revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID (from `users token list`) at once."""
    from ..errors import MotorcadeError

    store = _admin_store("revoke tokens")
    with store.transaction():
        if not store.revoke_token(token_id):
            raise MotorcadeError(f"no active token {token_id}", hint="see `motorcade users token list`")
        store.audit("users.token.revoke", {"token_id": token_id})
    click.echo(f"revoked token {token_id}")


@users_group.command(name="whoami")
def users_whoami() -> None:
    """Who this command acts as, with which grants and scope."""
    access = _project().access
    click.echo(f"{access.user} ({access.how}): {', '.join(str(g) for g in access.grants) or 'no roles'}")
    click.echo(f"reads: {access.scope()}")


def _audit_list(action, actor, since, limit, as_json) -> None:
    from ..as_of import parse_as_of
    from ..store.codec import iso

    project = _project()
    project.store.require_access(AUDIT, "read the audit log")
    when = iso(parse_as_of(since, project.timezone)) if since else None
    entries = project.store.audit_entries(action=action, actor=actor, since=when, limit=limit)
    if as_json:
        for e in entries:
            click.echo(json.dumps({**e, "arguments": json.loads(e["arguments"]),
                                   "affected": json.loads(e["affected"])}, ensure_ascii=False))
        return
    if not entries:
        click.echo("no audit entries match")
    for e in entries:
        affected = "" if e["affected"] == "{}" else f"  affected {e['affected']}"
        click.echo(f"{e['id']:>6} {e['at']}  {e['actor']:<28} {e['action']:<22} {e['arguments']}{affected}")


_AUDIT_FILTERS = [
    click.option("--action", help="Only this action, or a family of them (`users` matches users.add, ...)."),
    click.option("--actor", help="Only entries whose actor contains this text."),
    click.option("--since", help="Only entries from this time on (as --as-of reads it: a date, a time)."),
    click.option("--limit", type=COUNT, default=100, show_default=True),
    click.option("--json", "as_json", is_flag=True, help="Print JSON lines."),
]


def _with_filters(fn):
    for option in reversed(_AUDIT_FILTERS):
        fn = option(fn)
    return fn


@click.group(name="audit", invoke_without_command=True)
@_with_filters
@click.pass_context
def audit_group(ctx: click.Context, action, actor, since, limit, as_json) -> None:
    """The audit log: who did what, when, with what arguments and what it affected (newest first)."""
    if ctx.invoked_subcommand is None:
        _audit_list(action, actor, since, limit, as_json)


@audit_group.command(name="verify")
def audit_verify() -> None:
    """Recompute the hash chain; exit 1 naming every entry that was changed, removed or inserted."""
    from .audit import verify_chain

    store = _project().store
    store.require_access(AUDIT, "verify the audit log")
    count, problems = verify_chain(store.audit_chain())
    for problem in problems:
        click.secho(f"entry {problem.entry_id}: {problem.problem}", fg="red")
    if problems:
        click.secho(f"the audit log was tampered with: {len(problems)} problem(s) in {count} entries", fg="red",
                    err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"the audit log is intact: {count} entries, each following the one before")


COMMANDS = [users_group, audit_group]
