"""``motorcade console [--listen HOST:PORT]``: serve the web console of the project (docs/console.md)."""

from __future__ import annotations

import click


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r}: use HOST:PORT, e.g. 127.0.0.1:8600", param_hint="--listen")
    return host, int(port)


@click.command(name="console")
@click.option("--listen", default="127.0.0.1:8600", show_default=True, help="Address to serve the console on.")
@click.pass_obj
def console(state, listen: str) -> None:
    """Serve the web console: staff log in with their API token and see what their scope allows; the
    one-time owner link printed at start logs the project's local owner in as group_admin."""
    import uvicorn

    from .app import Console

    host, port = _listen(listen)
    project = state.project  # the local owner (or a token's user) with `operate` starts the console
    project.store.status_counts()  # a missing or corrupt database fails now, not at the first page
    app_console = Console(project.directory, plugin_manager=project.plugins)
    code = app_console.sessions.new_owner_code()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    click.echo(f"console of {project.config.name} on http://{shown}:{port}/ (Ctrl-C stops)")
    click.echo(f"log in as the local owner (group_admin), once: http://{shown}:{port}/login/owner?code={code}")
    click.echo("others log in with a token: motorcade users token create USER")
    config = uvicorn.Config(app_console.app(), host=host, port=port, log_level="warning", lifespan="off",
                            access_log=False)
    uvicorn.Server(config).run()
    raise click.exceptions.Exit(0)


COMMANDS = [console]
