"""CLI commands about ``motorcade.toml`` (added to the root CLI by motorcade.cli): ``motorcade config ...``."""

from __future__ import annotations

import click


@click.group(name="config")
def config_group() -> None:
    """The project's motorcade.toml: check it, print the reference of every key."""


@config_group.command(name="check")
def config_check() -> None:
    """Check motorcade.toml against the core's and the installed plugins' settings (exit 1 on a problem)."""
    project = click.get_current_context().find_root().obj.project  # loading checks the core's tables
    project.plugins  # first use checks the plugins' tables
    counts = {kind: len(getattr(project.config, kind)) for kind in ("sources", "channels", "tags")}
    click.echo(f"{project.config.path}: ok ({counts['sources']} sources, {counts['channels']} channels, "
               f"{counts['tags']} tag settings tables)")


@config_group.command(name="reference")
def config_reference() -> None:
    """Print the reference of every key (Markdown; docs/config.md is this output for the bundled plugins)."""
    from .config_schema import render_reference
    from .plugins import get_plugin_manager

    click.echo(render_reference(get_plugin_manager().registry()), nl=False)


COMMANDS = [config_group]
