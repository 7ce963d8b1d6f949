"""The ``motorcade`` command line. Commands parse options and call the library; nothing more.

Exit codes: 0 success; 1 domain error (bad rule file, bad data, failed rule test or check);
2 usage error (bad option, no project found).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .errors import EXIT_DOMAIN_ERROR, MotorcadeError


class CliState:
    """What every command can reach through ``click.get_current_context().obj``."""

    def __init__(self, project_dir: str | None):
        self.project_dir = project_dir
        self._project = None

    @property
    def project(self):
        if self._project is None:
            from .project import find_project

            self._project = find_project(self.project_dir)
        return self._project

    def catalogue(self):
        """The project's catalogue for `check`; an empty one outside a project."""
        from .errors import ProjectNotFound

        try:
            return self.project.catalogue()
        except ProjectNotFound:
            from motorcade.dsl.check import Catalogue

            return Catalogue()

    def rule_paths(self) -> list[Path]:
        return self.project.rule_paths()

    def value_types(self):
        """The project's declared value types for `motorcade test` (None outside a project)."""
        from .errors import ProjectNotFound

        try:
            project = self.project
        except ProjectNotFound:
            return None
        from .catalogue import declared_value_types

        return declared_value_types(project)

    def activation_problems(self) -> list:
        """Missing templates, unknown template fields, uninstalled channels (empty outside a project)."""
        from .errors import ProjectNotFound

        try:
            project = self.project
        except ProjectNotFound:
            return []
        from .activation.check import check_project

        return check_project(project)


pass_state = click.make_pass_decorator(CliState)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="motorcade")
@click.option("--project", "project_dir", envvar="MOTORCADE_PROJECT", type=click.Path(file_okay=False),
              help="Project directory (default: the current directory or a parent with motorcade.toml). "
                   "Env: MOTORCADE_PROJECT.")
@click.pass_context
def cli(ctx: click.Context, project_dir: str | None) -> None:
    """Motorcade: customer data and marketing automation for automotive retail.

    Pipeline: ingest -> identity -> tags -> segments -> run (campaigns, triggers) -> report.
    """
    ctx.obj = CliState(project_dir)


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", help="Project name (default: the directory's name).")
def init(directory: str, name: str | None) -> None:
    """Create a project in DIRECTORY: motorcade.toml, rules/ and an empty database."""
    from .project import init_project

    project = init_project(directory, name=name)
    click.echo(f"Created project {project.config.name!r} in {project.directory}")
    click.echo(f"  config:   {project.config.path}")
    click.echo(f"  database: {project.store.path} (schema version {project.store.schema_version()})")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks of plugins that failed to load.")
def plugins(as_json: bool, verbose: bool) -> None:
    """List installed plugins: name, version, kind and hooks."""
    from .plugins import get_plugin_manager

    pm = get_plugin_manager()
    infos = pm.plugin_infos()
    if as_json:
        payload = {
            "plugins": [
                {"name": i.name, "distribution": i.distribution, "version": i.version, "kinds": list(i.kinds),
                 "hooks": list(i.hooks), "provides": list(i.provides)}
                for i in infos
            ],
            "errors": [{"name": e.name, "distribution": e.distribution, "error": e.error} for e in pm.load_errors],
        }
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Motorcade plugins")
    for column in ("name", "version", "kind", "provides", "hooks"):
        table.add_column(column)
    for i in infos:
        table.add_row(i.name, i.version or "-", ", ".join(i.kinds), ", ".join(i.provides), ", ".join(i.hooks))
    console = Console()
    console.print(table)
    for error in pm.load_errors:
        console.print(f"[red]plugin {error.name!r} ({error.distribution}) failed to load:[/red] {error.error}")
        if verbose:
            console.print(error.traceback)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
def status(state: CliState, as_json: bool) -> None:
    """Counts of people, events, tags, segments and sends in the project."""
    project = state.project
    counts = project.store.status_counts()
    if as_json:
        click.echo(json.dumps({"project": project.config.name, **counts}))
        return
    click.echo(f"Project {project.config.name} ({project.store.path})")
    width = max(len(k) for k in counts)
    for key, value in counts.items():
        click.echo(f"  {key.ljust(width)}  {value:>10,}")


@cli.command(name="new-plugin")
@click.argument("kind", type=click.Choice(["source", "tag", "channel"]))
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where to create the package.")
def new_plugin(kind: str, name: str, directory: str) -> None:
    """Create a plugin package: pyproject with the entry point, module, README and a passing test."""
    from .scaffold import new_plugin as scaffold

    root = scaffold(kind, name, Path(directory))
    click.echo(f"Created {kind} plugin {name!r} in {root}")
    click.echo(f"  install: pip install -e {root}")
    click.echo(f"  test:    pytest {root / 'tests'}")


def _add_library_commands(group: click.Group) -> None:
    """Commands that live next to the library code they drive (each module exposes click commands)."""
    import importlib

    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        for command in module.COMMANDS:
            group.add_command(command)


# Modules whose COMMANDS list is added to the CLI (kept in one place so `--help` shows everything).
COMMAND_MODULES: tuple[str, ...] = (
    "motorcade.dsl.commands",  # check, fmt, test
    "motorcade.sources.commands",  # ingest, quarantine
    "motorcade.identity.commands",  # identity
    "motorcade.tags.commands",  # tags
    "motorcade.segments.commands",  # segments, explain, diff
    "motorcade.activation.commands",  # run, serve, sends
    "motorcade.feedback.commands",  # report
    "motorcade.pipeline",  # pipeline
    "motorcade.config_commands",  # config
)


def build_cli() -> click.Group:
    """The root group with library commands and every plugin's commands added (safe to call again)."""
    from .plugins import get_plugin_manager

    global _BUILTIN_COMMANDS
    if _BUILTIN_COMMANDS is None:
        _add_library_commands(cli)
        _BUILTIN_COMMANDS = dict(cli.commands)
    cli.commands = dict(_BUILTIN_COMMANDS)  # forget commands of a previously loaded plugin manager
    get_plugin_manager().hook.register_commands(cli=cli)
    for name, command in _BUILTIN_COMMANDS.items():
        if cli.commands.get(name) is not command:
            raise MotorcadeError(f"a plugin replaced the built-in command {name!r}",
                                 hint="rename the plugin's command")
    return cli


_BUILTIN_COMMANDS: dict[str, click.Command] | None = None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `motorcade` script: runs the CLI and maps errors to exit codes."""
    try:
        group = build_cli()
        result = group.main(args=argv, prog_name="motorcade", standalone_mode=False)
        if isinstance(result, int) and not isinstance(result, bool):
            return result  # a command that ended with click.exceptions.Exit(code): click returns the code
    except MotorcadeError as exc:
        click.secho(f"Error: {exc}", fg="red", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_DOMAIN_ERROR
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def run() -> None:  # console-script entry point
    sys.exit(main())
