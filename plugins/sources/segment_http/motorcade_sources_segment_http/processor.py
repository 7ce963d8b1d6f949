"""The collector's processor: ingests what the inbox received, then plans event triggers at once.

It also advances the journeys that events move (`entry on EVENT`, `wait for EVENT`), so those people move on
within a second of their event. It runs in a process of its own (its own store connections, its own GIL), loops while there is work and naps
``idle_seconds`` when there is none, so an event reaches the outbox within a fraction of a second of its
200. The segments that `on enter/leave segment` triggers watch are recomputed after new data (at most once a
second) and those triggers planned for the people who entered or left; with ``dispatch`` the processor also
delivers due sends after planning.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Callable

import attrs


# Segments that `on enter/leave segment` triggers watch are recomputed after new data at most this often: a
# recomputation reads the whole base, so a busy stream shares one every second instead of one per batch.
SEGMENT_REFRESH_SECONDS = 1.0

@attrs.define
class ProcessorStats:
    ingested: int = 0  # messages ingested
    events: int = 0
    fired: int = 0  # trigger firings and journey sends planned


class Processor:
    """The processor in a process of its own, so ingesting never holds the collector's GIL."""

    def __init__(self, project_dir, source_names: list[str], *, dispatch: bool = False, idle_seconds: float = 0.02,
                 log: Callable[[str], None] = lambda m: None, now: Callable[[], dt.datetime] | None = None):
        import multiprocessing

        self.project_dir = str(project_dir)
        self.source_names = list(source_names)
        self.log = log
        # fork where there is one (starts at once, nothing to re-import); the child opens its own store
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self._stop, self._ready = context.Event(), context.Event()
        self._counters = context.Array("q", 3)  # ingested, events, fired
        self._process = context.Process(
            target=_run_processor, name="motorcade-collect-processor", daemon=True,
            args=(self.project_dir, self.source_names, dispatch, idle_seconds, self._stop, self._ready,
                  self._counters))

    @property
    def stats(self) -> ProcessorStats:
        ingested, events, fired = self._counters[:]
        return ProcessorStats(ingested, events, fired)

    def start(self) -> None:
        self._process.start()
        if not self._ready.wait(timeout=60):
            raise RuntimeError("the collector's processor did not start"
                               + ("" if self._process.is_alive() else f" (exit code {self._process.exitcode})"))

    def stop(self) -> None:
        self._stop.set()
        self._process.join(timeout=60)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=10)

    def backlog(self, store) -> int:
        """Messages received and not yet ingested (all sources), from the store."""
        total = 0
        for name in self.source_names:
            cursor = store.get_source_cursor(name)
            total += max(0, store.inbox_last_id(name) - (int(cursor) if cursor else 0))
        return total


def _run_processor(project_dir, source_names, dispatch, idle_seconds, stop, ready, counters) -> None:
    import os
    import signal
    import sys

    parent = os.getppid()
    # A collector killed with SIGKILL cannot set ``stop``: the processor must not outlive it (an orphan would
    # go on ingesting beside the processor of the next collector). Linux ends it with its parent; elsewhere
    # the loop notices the parent is gone.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the line above took effect
        return

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the collector stops it through ``stop``
    _Loop(project_dir, source_names, dispatch=dispatch, idle_seconds=idle_seconds, counters=counters,
          log=lambda message: print(f"collect processor: {message}", file=sys.stderr, flush=True),
          parent=parent).run(stop, ready)


class _Loop:
    def __init__(self, project_dir, source_names, *, dispatch, idle_seconds, counters, log, parent=None):
        self.project_dir = project_dir
        self.source_names = source_names
        self.dispatch = dispatch
        self.idle_seconds = idle_seconds
        self.counters = counters
        self.log = log
        self.last_id: dict[str, int] = {}
        self.parent = parent
        self.segments_refreshed = float("-inf")
        self.segments_pending = False

    def run(self, stop, ready) -> None:
        from motorcade.project import Project
        from motorcade.sources.ingest import open_source, project_ingestor

        from motorcade.plugins import load_plugins

        # A process of its own loads the installed plugins afresh, as a new `motorcade` command would.
        project = Project(self.project_dir, plugin_manager=load_plugins())
        store = project.store
        ingestor = project_ingestor(project)
        sources = []
        for name in self.source_names:
            source = open_source(project, name)
            source.store = store
            sources.append(source)
            cursor = store.get_source_cursor(name)
            self.last_id[name] = int(cursor) if cursor else 0
        ready.set()
        last_purge = 0.0
        import os

        while not stop.is_set() and (self.parent is None or os.getppid() == self.parent):
            busy = False
            events = read = 0
            for source in sources:
                if store.inbox_last_id(source.name) <= self.last_id[source.name]:
                    continue
                busy = True
                try:
                    summary = ingestor.ingest(source)
                except Exception as exc:  # noqa: BLE001 - log and go on; the inbox keeps the messages
                    self.log(f"ingest {source.name}: {exc}")
                    stop.wait(1.0)
                    continue
                self.counters[0] += summary.read
                read += summary.read
                events += summary.events
                self.last_id[source.name] = int(store.get_source_cursor(source.name) or 0)
            self.counters[1] += events
            if events or read:  # identify calls change segments too
                self.segments_pending = True
            refresh = self.segments_pending and time.monotonic() - self.segments_refreshed >= SEGMENT_REFRESH_SECONDS
            if refresh:
                self.segments_pending = False
                self.segments_refreshed = time.monotonic()
            if events or read or refresh:  # one planning pass (one context, one dispatch) per cycle
                self._plan(project, segments=refresh)
            if time.monotonic() - last_purge > 600:
                last_purge = time.monotonic()
                self._purge(store, sources)
            if not busy:
                stop.wait(self.idle_seconds)
        project.close()

    def _plan(self, project, *, segments: bool = False) -> None:
        """Plan the event triggers for what was just ingested; with ``segments``, also recompute the segments
        that `on enter/leave segment` triggers watch and plan those triggers for the people who entered or
        left (the loop calls it so at most every ``SEGMENT_REFRESH_SECONDS``)."""
        from motorcade.activation.planner import process_event_trigger, process_segment_trigger
        from motorcade.activation.settings import ActivationContext
        from motorcade.dsl import ast
        from motorcade.errors import MotorcadeError

        try:
            ctx = ActivationContext.for_project(project, log=self.log)
        except MotorcadeError as exc:
            self.log(f"activation: {exc}")
            return
        for name, rule in sorted(ctx.rule_set.triggers.items()):
            if not isinstance(rule.on, ast.OnEvent):
                continue
            try:
                self.counters[2] += process_event_trigger(ctx, name)["fired"]
            except MotorcadeError as exc:
                self.log(f"trigger {name}: {exc}")
        self._journeys(ctx)
        watched = {name: rule.on.segment for name, rule in ctx.rule_set.triggers.items()
                   if isinstance(rule.on, ast.OnSegment) and rule.on.segment in ctx.rule_set.segments}
        if segments and watched:
            from motorcade.segments import compute_segments

            try:
                compute_segments(project, sorted(set(watched.values())), rule_set=ctx.rule_set)
            except MotorcadeError as exc:
                self.log(f"segments: {exc}")
                watched = {}
            for name in sorted(watched):
                try:
                    self.counters[2] += process_segment_trigger(ctx, name)["fired"]
                except MotorcadeError as exc:
                    self.log(f"trigger {name}: {exc}")
        if self.dispatch:
            from motorcade.activation.dispatcher import Dispatcher

            dispatcher = Dispatcher(ctx)
            try:
                dispatcher.dispatch_due()
            finally:
                dispatcher.close()

    def _journeys(self, ctx) -> None:
        """Advance the journeys that new events move (`entry on EVENT`, `wait for EVENT`) at once: the same
        engine, batches, keys and guard rails as `run`/`serve`, so running both never doubles a step."""
        from motorcade.errors import MotorcadeError
        from motorcade.journeys.engine import process_journey, reacts_to_events

        for name, journey in sorted(ctx.rule_set.journeys.items()):
            if not reacts_to_events(journey):
                continue
            try:
                self.counters[2] += process_journey(ctx, name, realtime=True)["sends"]
            except MotorcadeError as exc:
                self.log(f"journey {name}: {exc}")

    def _purge(self, store, sources) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        for source in sources:
            days = int(source.settings.get("dedup_days", 7))
            before = (now - dt.timedelta(days=days)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            store.inbox_purge(source.name, up_to_id=self.last_id[source.name], received_before=before)
