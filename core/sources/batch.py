"""Columnar event batches: the fast path for event-heavy connectors.

A connector that reads millions of events (a JSON Lines log) can offer ``read_columns(cursor)``
besides :meth:`Source.read`: it yields :class:`EventBatch` objects whose events are plain tuples
instead of one :class:`EventRecord` per row. The ingest core cleans, resolves and writes them with the
same rules as records (same cleaning, same dedup keys, same quarantine reasons); only the per-row
Python objects are gone. Everything that is not an event (rejected lines, identify calls) travels in
``records`` and goes through the record path in the same transaction.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Iterable, Iterator

from ..errors import MotorcadeError
from .base import SourceRecord
from .clean import CleanError, check_json_value

# The stored form of event properties (and what content dedup keys hash): compact, sorted keys, UTF-8,
# strict (NaN and Infinity refused: SQLite's JSON functions reject the text Python would write for them).
_PROPERTIES_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                                    allow_nan=False).encode


_FLAT = frozenset({str, int, bool, type(None)})

try:
    import orjson as _orjson
except ImportError:  # optional: the standard library writes the same text, slower
    _orjson = None


def properties_json(properties: dict[str, Any] | None) -> str:
    """Event properties as the events table keeps them; raises CleanError for properties the store
    cannot keep (see :func:`motorcade.sources.clean.check_json_value`: numbers that are not finite,
    lone surrogates, more than ``MAX_NESTING`` levels).

    With orjson installed, flat properties (text, integers, booleans, nulls: most events) are
    encoded by orjson, which writes the very same text for them several times faster; floats
    (whose exponent notation differs) and nested values take the standard library's encoder.
    """
    if not properties:
        return "{}"
    flat = True
    for value in properties.values():
        kind = type(value)
        if kind not in _FLAT:
            flat = False
            if kind is not float:  # nested values (or odd types): look at everything once
                check_json_value(properties, "properties")
                break
    if flat and _orjson is not None:
        try:
            return _orjson.dumps(properties, option=_orjson.OPT_SORT_KEYS).decode()
        except TypeError:  # integers beyond 64 bits, lone surrogates
            pass
    try:
        text = _PROPERTIES_JSON(properties)
    except ValueError:  # a number that is not finite
        check_json_value(properties, "properties", max_nesting=None)
        raise CleanError("properties cannot be stored as JSON") from None
    except TypeError as exc:  # a value JSON has no type for (records made in Python)
        raise CleanError(f"properties cannot be stored as JSON: {exc}") from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: SQLite only takes UTF-8
            check_json_value(properties, "properties", max_nesting=None)
            raise CleanError("properties hold text that is not valid Unicode") from None
    return text


class EventBatch:
    """One batch of events in row tuples, plus the batch's other records.

    ``events``: ``(name, ts, identifiers, properties JSON, dedup key or None, where, raw)`` per event,
    where ``identifiers`` is a tuple of ``(type, raw value)`` pairs, ``ts`` is raw text, a number or
    a datetime (as :class:`EventRecord.ts`), ``properties JSON`` comes from :func:`properties_json`,
    ``where`` is the line number or byte offset (``position_unit`` says which) and ``raw`` the raw line
    (bytes or text); the last two are only turned into text when a row goes to quarantine.
    """

    __slots__ = ("events", "records", "position_unit")

    def __init__(self, events: list[tuple] | None = None, records: list[SourceRecord] | None = None,
                 position_unit: str = "line"):
        self.events: list[tuple] = events if events is not None else []
        self.records: list[SourceRecord] = records if records is not None else []
        self.position_unit = position_unit

    def __len__(self) -> int:
        return len(self.events) + len(self.records)

    def position(self, where: Any) -> str:
        return f"{self.position_unit} {where}"

    def order_of(self, quarantined: tuple[str, str, str]) -> tuple[int, int]:
        """Sort key of a quarantined ``(position, raw, reason)`` of this batch: the source's order."""
        unit, _, number = quarantined[0].partition(" ")
        return (0, int(number)) if unit == self.position_unit and number.isdigit() else (1, 0)

    @staticmethod
    def raw_text(raw: Any) -> str:
        if isinstance(raw, (bytes, bytearray)):
            return raw_line_text(raw)
        return str(raw)


def raw_line_text(raw: bytes) -> str:
    """A raw line as quarantine keeps it: its text, with bytes that are not UTF-8 shown as ``\\xff``."""
    return bytes(raw).decode("utf-8", "backslashreplace").rstrip("\r\n")


# -- the parallel bulk path: worker processes parse and clean, the main process writes --------------

STAGE_SCHEMA = "motorcade_stage"  # the name a staging database is attached under


class StagedEvents:
    """One batch of events parsed and cleaned by a worker process, ready to be written.

    The rows travel as a serialized in-memory SQLite database (``data``): the main process attaches
    it and copies the rows into ``events`` with one ``INSERT ... SELECT``, so no row becomes a Python
    object on the writing side. Its tables:

    - ``events(name, ts, idset, properties, dedup_key)``: in the source's order; ``idset`` numbers
      the event's cleaned identifier set in ``idsets``.
    - ``people(idset INTEGER PRIMARY KEY, person_id, record_id)``: empty; the writer fills it with
      the resolved person of each set.

    ``idsets``: ``(combination key, identifiers)`` per set, in order of first appearance (the order the
    record path resolves them in). ``consents``: ``(idset, name, ts, properties JSON)`` of consent
    events, in order. ``failed``: ``(position, raw, reason)`` of event lines that did not clean, in
    order. ``records``: the batch's other records (identify calls, rejected lines). ``events``: event
    lines read (cleaned or not); ``identifiers_dropped`` as :class:`IngestSummary` counts it.
    """

    __slots__ = ("data", "idsets", "consents", "failed", "records", "events", "identifiers_dropped", "rejected",
                 "seconds")

    def __init__(self, data: bytes, idsets: list, consents: list, failed: list, records: list, events: int,
                 identifiers_dropped: int, rejected: list = ()):
        self.data = data
        self.idsets = idsets
        self.consents = consents
        self.failed = failed
        self.records = records
        self.events = events
        self.identifiers_dropped = identifiers_dropped
        self.rejected = rejected  # (type, value, lookup key, reason) of the identifier values that did not clean
        self.seconds = (0.0, 0.0)  # CPU and wall-clock seconds the worker spent on it

    def __len__(self) -> int:
        return self.events + len(self.records)

    @staticmethod
    def pack(rows: list[tuple]) -> bytes:
        """The staging database of ``(name, ts, idset, properties JSON, dedup key)`` rows (its format is the
        store's: :func:`motorcade.store.ingest.pack_staged_events`)."""
        from ..store.ingest import pack_staged_events

        return pack_staged_events(rows)


def can_fork() -> bool:
    """Whether worker processes can be forked here (they inherit the source and settings unpickled)."""
    return "fork" in multiprocessing.get_all_start_methods()


def default_workers() -> int:
    """Parse workers for this machine: one per core, none on one core (the ingest process parses)."""
    cores = os.cpu_count() or 1
    return cores if cores > 1 and can_fork() else 0


class ParseWorkerError(MotorcadeError):
    """A parse worker failed or died."""


class ParseWorkers:
    """Forked worker processes that apply ``work`` to tasks, results returned in task order.

    ``work(task)`` runs in a worker (a fork of this process: it sees the caller's objects as they were
    at the fork, nothing is pickled on the way in) and returns a picklable value. Each worker has its
    own pipe; a reader thread per worker drains it, so a worker starts its next task while the caller
    is still busy with an earlier result. Up to ``ahead`` tasks per worker are in flight.

    No process outlives its use: leaving the ``with`` block (normally or by an exception) stops and
    reaps every worker, and a worker dies with its parent (``PR_SET_PDEATHSIG`` on Linux) should the
    parent be killed. Workers run with the cyclic garbage collector off (parsing allocates millions
    of objects and makes no cycles; with it on, parsing costs several times as much).
    """

    def __init__(self, count: int, work: Callable[[Any], Any], *, ahead: int = 2, name: str = "motorcade-parse"):
        if count < 1:
            raise ValueError("ParseWorkers needs at least one worker")
        self.count = count
        self.work = work
        self.ahead = ahead
        self.name = name
        self._procs: list = []
        self._conns: list = []
        self._results: list[queue.SimpleQueue] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> "ParseWorkers":
        ctx = multiprocessing.get_context("fork")
        parent = os.getpid()
        try:
            for i in range(self.count):
                mine, theirs = ctx.Pipe(duplex=True)
                proc = ctx.Process(target=_worker_loop, args=(theirs, self.work, parent), name=f"{self.name}-{i}",
                                   daemon=True)
                proc.start()
                theirs.close()
                self._procs.append(proc)
                self._conns.append(mine)
            for i, conn in enumerate(self._conns):  # threads after every fork: a fork copies no threads
                results: queue.SimpleQueue = queue.SimpleQueue()
                thread = threading.Thread(target=_drain, args=(conn, results), name=f"{self.name}-reader-{i}",
                                          daemon=True)
                thread.start()
                self._results.append(results)
                self._threads.append(thread)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def map(self, tasks: Iterable[Any]) -> Iterator[Any]:
        """``work(task)`` of every task, in the order of ``tasks``."""
        tasks = iter(tasks)
        sent = 0
        done = 0
        limit = self.count * self.ahead
        exhausted = False
        while True:
            while not exhausted and sent - done < limit:
                task = next(tasks, _END)
                if task is _END:
                    exhausted = True
                    break
                self._send(sent % self.count, task)
                sent += 1
            if done == sent:
                return
            yield self._receive(done % self.count)
            done += 1

    def _send(self, worker: int, task: Any) -> None:
        try:
            self._conns[worker].send(task)
        except OSError:  # the worker failed or died: its reader thread has queued why, _receive raises it
            pass

    def _receive(self, worker: int) -> Any:
        kind, value = self._results[worker].get()
        if kind == "ok":
            return value
        if kind == "error":
            error, trace = value
            if isinstance(error, MotorcadeError):
                raise error
            raise ParseWorkerError(f"parse worker {worker} failed: {trace.strip().splitlines()[-1]}",
                                   hint="the worker's traceback:\n" + trace) from None
        code = None
        if self._procs:
            self._procs[worker].join(1.0)
            code = self._procs[worker].exitcode
        raise ParseWorkerError(f"parse worker {worker} died (exit code {code})",
                               hint="out of memory or killed? run the ingest again; workers = 0 parses in one process")

    def close(self) -> None:
        """Stop the workers (ask, then kill what does not stop) and reap them."""
        for conn in self._conns:
            try:
                conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 2.0
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
        for thread in self._threads:
            thread.join(1.0)
        for conn in self._conns:
            conn.close()
        self._procs, self._conns, self._threads, self._results = [], [], [], []

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]


_END = object()


def _drain(conn, results: "queue.SimpleQueue") -> None:
    """Reader thread: every message of one worker into ``results`` (then ``("gone", None)``)."""
    try:
        while True:
            results.put(conn.recv())
    except (EOFError, OSError):
        results.put(("gone", None))
    except BaseException as exc:  # an unpicklable result: report it as the worker's failure
        results.put(("error", (None, f"{type(exc).__name__}: {exc}")))


def _worker_loop(conn, work: Callable[[Any], Any], parent: int) -> None:
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us
    gc.disable()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            result = ("ok", work(task))
        except BaseException as exc:  # reported to the parent, which raises it
            trace = traceback.format_exc()
            try:
                pickle.dumps(exc)
            except Exception:
                exc = None
            conn.send(("error", (exc if isinstance(exc, MotorcadeError) else None, trace)))
            return
        conn.send(result)


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux); exit if it died already."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)
