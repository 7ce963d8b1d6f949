"""The collector's processor: ingests what the inbox received, then plans event triggers at once.

It runs in its own thread (its own store connections), loops while there is work and naps
``idle_seconds`` when there is none, so an event reaches the outbox within a fraction of a second of its
200. Segment enter/leave triggers wait for the next segment computation (`motorcade serve` plans them);
with ``dispatch`` the processor also delivers due sends after planning.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Callable

import attrs


@attrs.define
class ProcessorStats:
    cycles: int = 0
    ingested: int = 0  # messages ingested
    events: int = 0
    fired: int = 0  # trigger firings planned
    errors: list[str] = attrs.field(factory=list)
    last_id: dict[str, int] = attrs.field(factory=dict)  # inbox id read up to, per source


class Processor:
    def __init__(self, project_dir, source_names: list[str], *, dispatch: bool = False, idle_seconds: float = 0.02,
                 log: Callable[[str], None] = lambda m: None, now: Callable[[], dt.datetime] | None = None):
        self.project_dir = project_dir
        self.source_names = source_names
        self.dispatch = dispatch
        self.idle_seconds = idle_seconds
        self.log = log
        self.now = now
        self.stats = ProcessorStats()
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collector-processor", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self.ready.wait(timeout=30)

    def stop(self) -> None:
        self.stop_event.set()
        self._thread.join(timeout=60)

    def backlog(self, store) -> int:
        """Messages received and not yet ingested (all sources)."""
        return sum(max(0, store.inbox_last_id(name) - self.stats.last_id.get(name, 0)) for name in self.source_names)

    def _run(self) -> None:
        from motorcade.project import Project
        from motorcade.sources.ingest import open_source, project_ingestor

        project = Project(self.project_dir)
        store = project.store
        ingestor = project_ingestor(project)
        sources = []
        for name in self.source_names:
            source = open_source(project, name)
            source.store = store
            sources.append(source)
            cursor = store.get_source_cursor(name)
            self.stats.last_id[name] = int(cursor) if cursor else 0
        self.ready.set()
        last_purge = 0.0
        while not self.stop_event.is_set():
            busy = False
            events = 0
            for source in sources:
                if store.inbox_last_id(source.name) <= self.stats.last_id[source.name]:
                    continue
                busy = True
                try:
                    summary = ingestor.ingest(source)
                except Exception as exc:  # noqa: BLE001 - log and go on; the inbox keeps the messages
                    self._error(f"ingest {source.name}: {exc}")
                    continue
                self.stats.ingested += summary.read
                events += summary.events
                self.stats.last_id[source.name] = int(store.get_source_cursor(source.name) or 0)
            self.stats.events += events
            if events:
                self._plan(project)
            if time.monotonic() - last_purge > 600:
                last_purge = time.monotonic()
                self._purge(store, sources)
            self.stats.cycles += 1
            if not busy:
                self.stop_event.wait(self.idle_seconds)
        project.close()

    def _plan(self, project) -> None:
        from motorcade.activation.planner import process_event_trigger
        from motorcade.activation.settings import ActivationContext
        from motorcade.dsl import ast
        from motorcade.errors import MotorcadeError

        try:
            ctx = ActivationContext.for_project(project, log=self.log,
                                                **({"clock": self.now} if self.now else {}))
        except MotorcadeError as exc:
            self._error(f"activation: {exc}")
            return
        for name, rule in sorted(ctx.rule_set.triggers.items()):
            if not isinstance(rule.on, ast.OnEvent):
                continue
            try:
                self.stats.fired += process_event_trigger(ctx, name)["fired"]
            except MotorcadeError as exc:
                self._error(f"trigger {name}: {exc}")
        if self.dispatch:
            from motorcade.activation.dispatcher import Dispatcher

            dispatcher = Dispatcher(ctx)
            try:
                dispatcher.dispatch_due()
            finally:
                dispatcher.close()

    def _purge(self, store, sources) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        for source in sources:
            days = int(source.settings.get("dedup_days", 7))
            before = (now - dt.timedelta(days=days)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            store.inbox_purge(source.name, up_to_id=self.stats.last_id[source.name], received_before=before)

    def _error(self, message: str) -> None:
        self.stats.errors.append(message)
        del self.stats.errors[:-100]
        self.log(f"error: {message}")
