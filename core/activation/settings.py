"""``[activation]`` settings and the context every activation step shares (store, rules, clock)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Any, Callable

import attrs

from motorcade.errors import ConfigError

from .guardrails import GuardRails


@attrs.frozen
class ActivationSettings:
    """The project's ``[activation]`` table (all optional)."""

    templates: str = "templates"  # folder of message templates, relative to the project
    claim_seconds: float = 60  # a claimed send is re-claimable after this long (its worker is presumed dead)
    claim_batch: int = 200  # sends claimed per transaction
    max_attempts: int = 6  # delivery attempts before a transient failure becomes a dead letter
    backoff_base_seconds: float = 30  # first retry after ~this long, doubling each attempt ...
    backoff_max_seconds: float = 3600  # ... up to this
    retry_after_max_seconds: float = 3600  # a provider's Retry-After longer than this is capped (and flagged)
    catch_up_hours: float = 24  # a schedule slot older than this is not run any more
    trigger_lookback_hours: float = 24  # a new trigger starts with events (or segment changes) this recent
    trigger_batch: int = 1000  # events handled per transaction
    poll_seconds: float = 5  # `serve`: how often to look for new events when nothing else is due
    scheduler_lease_seconds: float = 60  # a planner killed mid-pass blocks planning at most this long
    stop_grace_seconds: float = 10  # `serve` on SIGTERM/SIGINT: wait this long for the batch in flight
    render_seconds: float = 2.0  # rendering one message may take this long ...
    render_max_chars: int = 100_000  # ... build texts (and lists) at most this long ...
    render_max_loops: int = 10_000  # ... and make this many loop iterations plus function/macro calls
    public_url: str = ""  # where `motorcade collect` is reached from outside: short links and open pixels
    utm_source: str = ""  # when set, short links add utm_source/medium (channel)/campaign/content (template)

    @classmethod
    def from_config(cls, table: dict[str, Any]) -> "ActivationSettings":
        known = {f.name: f for f in attrs.fields(cls)}
        values = {}
        for key, value in table.items():
            if key not in known:
                import difflib

                close = difflib.get_close_matches(key, list(known), n=1)
                raise ConfigError(f"motorcade.toml [activation]: unknown setting {key!r}",
                                  hint=f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}")
            default = known[key].default
            try:
                values[key] = type(default)(value)
            except (TypeError, ValueError):
                raise ConfigError(f"motorcade.toml [activation]: {key} = {value!r} is not a {type(default).__name__}"
                                  ) from None
        return cls(**values)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@attrs.define
class ActivationContext:
    """Everything a planner or dispatcher needs; built once per `motorcade run` / `serve` iteration."""

    project_dir: Path
    store: Any
    rule_set: Any  # motorcade.dsl.rules.RuleSet: one immutable snapshot for the whole run
    registry: Any  # motorcade.plugins.Registry
    channel_settings: dict[str, dict[str, Any]]
    tz: dt.tzinfo
    guardrails: GuardRails
    settings: ActivationSettings
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)
    worker_id: str = attrs.field(factory=default_worker_id)
    log: Callable[[str], None] = lambda message: None
    plugin_load_errors: list[Any] = attrs.field(factory=list)  # motorcade.plugins.PluginLoadError
    stop: threading.Event | None = None  # set by `serve` on SIGTERM/SIGINT: stop planning and claiming at once
    source_settings: dict[str, dict[str, Any]] = attrs.field(factory=dict)  # [sources]: attributes they map

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    @property
    def revision(self) -> str:
        return self.rule_set.revision

    def channel_not_loaded(self, name: str) -> str | None:
        """Why channel ``name`` is expected but missing, or None (installed, or simply unknown).

        A channel that is not registered is *expected* when a plugin failed to load (it may be the one
        that provides it) or ``[channels.NAME]`` configures it. Its sends must wait for the plugin to be
        fixed, never be suppressed as "not installed".
        """
        if name in self.registry.channels:
            return None
        if self.plugin_load_errors:
            failed = "; ".join(f"plugin {e.name!r} ({e.distribution or 'no distribution'}) failed to load: {e.error}"
                               for e in self.plugin_load_errors)
            return (f"channel {name!r} is not loaded: {failed}; fix or reinstall the plugin "
                    "(`motorcade plugins` shows the error)")
        if name in self.channel_settings:
            return (f"channel {name!r} is not loaded: motorcade.toml configures [channels.{name}] but no installed "
                    "plugin provides it; install its plugin (`motorcade plugins` lists what is installed)")
        return None

    def now(self) -> dt.datetime:
        return self.clock()

    @classmethod
    def for_project(cls, project, *, rule_set=None, clock=None, worker_id: str | None = None,
                    log: Callable[[str], None] | None = None) -> "ActivationContext":
        config = project.config
        kwargs: dict[str, Any] = {}
        if clock is not None:
            kwargs["clock"] = clock
        if worker_id is not None:
            kwargs["worker_id"] = worker_id
        if log is not None:
            kwargs["log"] = log
        return cls(
            plugin_load_errors=list(getattr(project.plugins, "load_errors", [])),
            project_dir=project.directory,
            store=project.store,
            rule_set=rule_set if rule_set is not None else project.rules(checked=True),
            registry=project.plugins.registry(),
            channel_settings=dict(config.channels),
            source_settings=dict(config.sources),
            tz=config.tz,
            guardrails=GuardRails.from_config(config.guardrails),
            settings=ActivationSettings.from_config(config.raw.get("activation", {})),
            **kwargs,
        )
