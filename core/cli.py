"""The ``motorcade`` command line. Commands parse options and call the library; nothing more.

Exit codes: 0 success; 1 domain error (bad rule file, bad data, failed rule test or check, a plugin that
failed to load for `plugins`) and any unexpected error (one line on stderr, the traceback in a log file: see
:func:`log_unexpected_error`); 2 usage error (bad option, missing argument, no project found).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from . import __version__
from .errors import EXIT_DOMAIN_ERROR, MotorcadeError


class CliState:
    """What every command can reach through ``click.get_current_context().obj``."""

    def __init__(self, project_dir: str | None, as_user: str | None = None):
        self.project_dir = project_dir
        self.as_user = as_user
        self._project = None

    @property
    def project(self):
        """The project, with its caller set (``--as USER``, ``MOTORCADE_TOKEN``, or the local owner) and the
        running command authorized for that caller (``motorcade.access.actions``)."""
        if self._project is None:
            from .access.login import resolve_caller
            from .project import find_project

            project = find_project(self.project_dir)
            project.access = resolve_caller(project, as_user=self.as_user,
                                            token=os.environ.get("MOTORCADE_TOKEN") or None)
            self._project = project  # only with its caller known: a failed log-in never acts as the owner
        self._authorize()
        return self._project

    command_key: str | None = None  # the command authorized (``segments compute``), for its audit entry
    command_params: dict = {}

    def _authorize(self) -> None:
        """Check the running command against the caller once (not while commands are merely looked up)."""
        from .access.actions import authorize_command, command_key

        ctx = click.get_current_context(silent=True)
        key = command_key(ctx.command_path) if ctx is not None else ""
        if not key or key == self.command_key:
            return
        authorize_command(self._project.access, key)
        self.command_key, self.command_params = key, dict(ctx.params)

    def finish(self, outcome: str) -> None:
        """Record the command in the audit log when it is an audited action that reached its project."""
        if self._project is None or self.command_key is None:
            return
        from .access.actions import audit_command

        try:
            audit_command(self._project.store, self.command_key, self.command_params, outcome,
                          self._project.audit_affected)
        except Exception as exc:  # the action happened; say loudly that its record did not
            click.secho(f"error: the audit entry of this command could not be written: {one_line(exc)}", fg="red",
                        err=True)

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

    def config_warnings(self) -> list[str]:
        """Source mappings that load but are likely wrong, e.g. a VIN as a person identifier (empty
        outside a project)."""
        from .errors import ProjectNotFound

        try:
            project = self.project
        except ProjectNotFound:
            return []
        from .sources.mapping import mapping_warnings

        return [w for name, settings in project.config.sources.items() for w in mapping_warnings(name, settings)]

    def activation_problems(self, skip_channels: set[str] = frozenset()) -> list:
        """Missing templates, unknown template fields, uninstalled channels, as `check` diagnostics (empty
        outside a project); ``skip_channels``: channels already reported as unknown."""
        from .errors import ProjectNotFound

        try:
            project = self.project
        except ProjectNotFound:
            return []
        from .activation.check import activation_diagnostics, check_project

        return activation_diagnostics(check_project(project), project.rules(), project.directory,
                                      skip_channels=skip_channels)

    def relative_path(self, path: str) -> str:
        """``path`` relative to the project directory when it lies inside it (as `check` shows paths)."""
        from pathlib import Path

        from .errors import ProjectNotFound

        try:
            return str(Path(path).resolve().relative_to(self.project.directory))
        except (ProjectNotFound, ValueError, OSError):
            return path


pass_state = click.make_pass_decorator(CliState)


class MotorcadeGroup(click.Group):
    """The root group: commands of plugins in the project's ``[project] plugins_dir`` are found too."""

    def get_command(self, ctx: click.Context, cmd_name: str):
        command = super().get_command(ctx, cmd_name)
        if command is None and _load_project_plugins(ctx):
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context):
        _load_project_plugins(ctx)
        return super().list_commands(ctx)


def _state_of(ctx: click.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):  # commands are looked up before the group's callback runs
        root.obj = CliState(root.params.get("project_dir"), root.params.get("as_user"))
    return root.obj


def _load_project_plugins(ctx: click.Context) -> bool:
    """Load the project's plugins directory, if there is a project and it has one; True if commands changed."""
    from .plugins import get_plugin_manager

    pm = get_plugin_manager()
    before = set(pm.plugin_files)
    try:
        _state_of(ctx).project.plugins
    except MotorcadeError:
        return False  # no project (or a broken one): the command itself reports it
    if set(pm.plugin_files) == before:
        return False
    _refresh_plugin_commands(ctx.find_root().command)
    return True


def _load_plugins_dirs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """``--plugins-dir``: load the .py files before the command is looked up, so their commands exist."""
    if values:
        from .plugins import get_plugin_manager

        for directory in values:
            get_plugin_manager().load_plugins_dir(directory)
        _refresh_plugin_commands(ctx.command)
    return values


_shown_warnings: set[str] = set()


def _refresh_plugin_commands(group: click.Group) -> None:
    """Rebuild the plugin commands after more plugins were loaded; show warnings not shown yet."""
    from .plugins import get_plugin_manager

    if _BUILTIN_COMMANDS is not None:
        group.commands = dict(_BUILTIN_COMMANDS)
    _show_warnings(get_plugin_manager().add_plugin_commands(group))


def _show_warnings(warnings: list[str]) -> None:
    """Print each warning about plugins once per process (the CLI may be rebuilt as more plugins load)."""
    for warning in warnings:
        if warning not in _shown_warnings:
            _shown_warnings.add(warning)
            click.secho(f"warning: {warning}", fg="yellow", err=True)


_current_state: CliState | None = None  # the running command's state: where to log an unexpected error


@click.group(cls=MotorcadeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="motorcade")
@click.option("--project", "project_dir", envvar="MOTORCADE_PROJECT", type=click.Path(file_okay=False),
              is_eager=True,  # known before the project's plugins directory is searched for a command
              help="Project directory (default: the current directory or a parent with motorcade.toml). "
                   "Env: MOTORCADE_PROJECT.")
@click.option("--plugins-dir", "plugins_dirs", multiple=True, type=click.Path(file_okay=False), is_eager=True,
              expose_value=False, callback=_load_plugins_dirs,
              help="Load every .py file in DIR as a plugin (repeatable). Env: MOTORCADE_PLUGINS_DIR; "
                   "project setting: [project] plugins_dir.")
@click.option("--as", "as_user", metavar="USER", is_eager=True,
              help="Act as this Motorcade user (the project's local owner only; others log in with "
                   "MOTORCADE_TOKEN). Default: the local owner, as group_admin.")
@click.pass_context
def cli(ctx: click.Context, project_dir: str | None, as_user: str | None) -> None:
    """Motorcade: customer data and marketing automation for automotive retail.

    Pipeline: ingest -> identity -> tags -> segments -> run (campaigns, triggers) -> report.
    """
    global _current_state
    _current_state = _state_of(ctx)
    _current_state.as_user = as_user


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", help="Project name (default: the directory's name).")
def init(directory: str, name: str | None) -> None:
    """Create a project in DIRECTORY: motorcade.toml, rules/ and an empty database."""
    from .project import init_project

    project = init_project(directory, name=name)
    click.echo(f"Created project {project.config.name!r} in {project.directory}")
    click.echo(f"  config:   {project.config.path}")
    click.echo(f"  database: {project.store.location} (schema version {project.store.schema_version()})")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks of plugins that failed to load.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool, verbose: bool) -> None:
    """List installed plugins: name, version, kind and hooks. Exits 1 when a plugin failed to load."""
    from .plugins import get_plugin_manager

    _load_project_plugins(ctx)  # a project's plugins directory, when run inside a project
    pm = get_plugin_manager()
    infos = pm.plugin_infos()
    if as_json:
        payload = {
            "plugins": [
                {"name": i.name, "distribution": i.distribution, "version": i.version, "kinds": list(i.kinds),
                 "hooks": list(i.hooks), "provides": list(i.provides), "path": i.path}
                for i in infos
            ],
            "errors": [{"name": e.name, "distribution": e.distribution, "error": e.error, "origin": e.origin()}
                       for e in pm.load_errors],
        }
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        if pm.load_errors:
            raise click.exceptions.Exit(EXIT_DOMAIN_ERROR)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Motorcade plugins")
    for column in ("name", "version", "kind", "provides", "hooks"):
        table.add_column(column)
    for i in infos:
        table.add_row(i.name, i.version or ("file" if i.path else "-"), ", ".join(i.kinds), ", ".join(i.provides),
                      ", ".join(i.hooks))
    console = Console()
    console.print(table)
    errors = Console(stderr=True, soft_wrap=True)
    for error in pm.load_errors:
        errors.print(f"[red]error:[/red] {error.describe()}", markup=True, highlight=False)
        if verbose:
            errors.print(error.traceback, markup=False, highlight=False)
    if pm.load_errors:
        errors.print("hint: install what the error names (or reinstall the plugin); commands that do not need it "
                     "keep working" + ("" if verbose else "; --verbose shows the traceback"), highlight=False)
        raise click.exceptions.Exit(EXIT_DOMAIN_ERROR)


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
    click.echo(f"Project {project.config.name} ({project.store.location})")
    width = max(len(k) for k in counts)
    for key, value in counts.items():
        click.echo(f"  {key.ljust(width)}  {value:>10,}")


@cli.command()
@click.argument("packages", nargs=-1)
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade the packages to their newest version.")
@click.option("-e", "--editable", metavar="DIR", help="Install a local plugin directory in editable mode.")
@click.option("--force-reinstall", is_flag=True, help="Reinstall even if the version is already installed.")
@click.option("--no-cache-dir", is_flag=True, help="Do not use pip's cache.")
@click.option("--pre", is_flag=True, help="Include pre-release and development versions.")
def install(packages: tuple[str, ...], upgrade: bool, editable: str | None, force_reinstall: bool,
            no_cache_dir: bool, pre: bool) -> None:
    """Install plugin PACKAGES into Motorcade's own environment (pip underneath).

    PACKAGES are names (motorcade-channel-foo), version specifiers, paths, wheel files or URLs, as pip takes them.
    """
    from .installer import install_packages

    install_packages(packages, upgrade=upgrade, editable=editable, force_reinstall=force_reinstall,
                     no_cache_dir=no_cache_dir, pre=pre)


@cli.command()
@click.argument("packages", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def uninstall(packages: tuple[str, ...], yes: bool) -> None:
    """Uninstall plugin PACKAGES from Motorcade's own environment (pip underneath)."""
    from .installer import uninstall_packages

    uninstall_packages(packages, yes=yes)


@cli.command(name="new-plugin")
@click.argument("kind", type=click.Choice(["source", "tag", "channel"]))
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where to create the package.")
def new_plugin(kind: str, name: str, directory: str) -> None:
    """Create a plugin package: entry point, a working example, behaviour tests, README, LICENSE and CI."""
    from .scaffold import new_plugin as scaffold

    root = scaffold(kind, name, Path(directory))
    click.echo(f"Created {kind} plugin {name!r} in {root}")
    click.echo(f"  use it here: motorcade install -e {root}")
    click.echo(f"  test it:     cd {root} && pip install -e '.[test]' && pytest")
    click.echo("  guide:       docs/plugins.md (hooks, fixtures, publishing)")


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
    "motorcade.journeys.commands",  # journeys status|explain
    "motorcade.feedback.commands",  # report
    "motorcade.pipeline",  # pipeline
    "motorcade.config_commands",  # config
    "motorcade.store_commands",  # store (outside motorcade.store: --help imports no store)
    "motorcade.access.commands",  # users, audit
    "motorcade.console.commands",  # console
)


def build_cli() -> click.Group:
    """The root group with library commands and every plugin's commands added (safe to call again)."""
    from .plugins import get_plugin_manager

    global _BUILTIN_COMMANDS
    if _BUILTIN_COMMANDS is None:
        _add_library_commands(cli)
        _BUILTIN_COMMANDS = dict(cli.commands)
    cli.commands = dict(_BUILTIN_COMMANDS)  # forget commands of a previously loaded plugin manager
    get_plugin_manager().add_plugin_commands(cli)  # a clashing plugin command is skipped with a warning
    return cli


_BUILTIN_COMMANDS: dict[str, click.Command] | None = None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `motorcade` script: runs the CLI and maps errors to exit codes."""
    global _current_state
    _current_state = None
    from .masking import permit_pii

    permit_pii(True)  # until this command's caller is known (a previous in-process call may have set it)
    code = _run(argv)
    if _current_state is not None:
        _current_state.finish("ok" if code == 0 else f"exit {code}")
    return code


def _run(argv: list[str] | None) -> int:
    try:
        group = build_cli()
        from .plugins import get_plugin_manager

        _show_warnings(get_plugin_manager().command_warnings)
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
    except BrokenPipeError:  # output piped into `head` and the like: not an error worth a log
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_DOMAIN_ERROR
    except Exception as exc:  # the last line of defence: no traceback reaches an operator
        log = log_unexpected_error(exc, argv if argv is not None else sys.argv[1:])
        click.secho(f"Error: {one_line(exc)} (details in {log})", fg="red", err=True)
        return EXIT_DOMAIN_ERROR
    return 0


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``RuntimeError: what happened``, on one line, cut to ``limit`` characters, personal data masked."""
    from .masking import mask_free_text

    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return mask_free_text(text)


def log_directory() -> Path:
    """Where unexpected errors are logged: $MOTORCADE_LOG_DIR, else the project's ``.motorcade/logs`` when a
    command found its project, else ``motorcade-logs`` in the system's temporary directory."""
    import tempfile

    if os.environ.get("MOTORCADE_LOG_DIR"):
        return Path(os.environ["MOTORCADE_LOG_DIR"])
    project = getattr(_current_state, "_project", None)
    if project is not None:
        return project.directory / ".motorcade" / "logs"
    return Path(tempfile.gettempdir()) / "motorcade-logs"


def log_unexpected_error(exc: BaseException, argv: list[str]) -> Path:
    """Write the command line, the versions and the traceback of ``exc`` to a new log file; return its path."""
    import datetime as dt
    import platform
    import tempfile
    import traceback

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    text = (f"motorcade {__version__}, Python {platform.python_version()}, {platform.platform()}\n"
            f"command: motorcade {' '.join(argv)}\n"
            f"time: {stamp}\n\n" + "".join(traceback.format_exception(exc)))
    for directory in (log_directory(), Path(tempfile.gettempdir()) / "motorcade-logs"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=f"error-{stamp}-", suffix=".log", dir=directory)
            with open(handle, "w", encoding="utf-8") as f:
                f.write(text)
            return Path(name)
        except OSError:
            continue  # a read-only project: fall back to the temporary directory
    return Path(os.devnull)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def run() -> None:  # console-script entry point
    sys.exit(main())
