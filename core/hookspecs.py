"""Every hook a Motorcade plugin can implement.

A plugin is a module (or object) with functions marked ``@motorcade.hookimpl`` whose names match the
specs below. Distributions register plugins under the entry-point group ``motorcade``::

    [project.entry-points.motorcade]
    csv = "motorcade_sources_csv"

The ``register_*`` hooks receive a ``register`` callback (the llm/tox style): the core validates what
is registered, rejects duplicate names with a message naming both plugins, and records which
distribution supplied it (shown by ``motorcade plugins``).
"""

from __future__ import annotations

from typing import Callable

import click
import pluggy

hookspec = pluggy.HookspecMarker("motorcade")


@hookspec
def register_sources(register: Callable[[type], None]) -> None:
    """Register data-source connector types.

    Receives ``register(source_class)``; ``source_class`` subclasses
    :class:`motorcade.sources.base.Source` and sets ``type_name`` (the ``type = "..."`` a project's
    ``[sources.NAME]`` table in ``motorcade.toml`` refers to). Called once when the plugin manager is
    loaded, before any command that lists or runs sources. Returns nothing.
    """


@hookspec
def register_tag_calculators(register: Callable[[object], None]) -> None:
    """Register tag calculators.

    Receives ``register(calculator)``; ``calculator`` is an instance of
    :class:`motorcade.tags.base.TagCalculator` declaring the tags it produces and what they depend on.
    Called once when the plugin manager is loaded; the core orders calculators by their declared
    dependencies before ``motorcade tags compute`` runs them. Returns nothing.
    """


@hookspec
def register_channels(register: Callable[[type], None]) -> None:
    """Register channel senders (SMS, WeCom, e-mail, webhook, ...).

    Receives ``register(channel_class)``; ``channel_class`` subclasses
    :class:`motorcade.activation.channel.Channel`, sets ``name`` and ``capabilities`` and implements
    ``send(batch)``. Called once when the plugin manager is loaded; the dispatcher instantiates a
    channel with its ``[channels.NAME]`` settings from ``motorcade.toml``. Returns nothing.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``motorcade`` command line.

    Receives the root :class:`click.Group`; add commands with ``@cli.command()``. Called once while the
    CLI is being built, after the built-in commands exist (a plugin may not replace a built-in command:
    the core reports the clash). Returns nothing.
    """
