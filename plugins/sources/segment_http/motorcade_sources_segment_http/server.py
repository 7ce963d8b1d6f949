"""Wiring: write keys, the ASGI app, the processor and uvicorn for `motorcade collect` (and tests)."""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator

from motorcade.errors import ConfigError

from .app import Collector, Limits
from .keys import load_write_keys
from .processor import Processor


def collector_sources(project) -> dict[str, dict]:
    sources = {name: s for name, s in project.config.sources.items() if s.get("type") == "segment_http"}
    if not sources and not project.config.raw.get("activation", {}).get("public_url"):
        raise ConfigError("no source of type segment_http is configured",
                          hint='add [sources.app] with type = "segment_http" and write_key_env = "APP_WRITE_KEY", '
                               'or [activation] public_url to serve short links and receipts only')
    return sources


@contextlib.contextmanager
def running_collector(project, *, max_backlog: int = 100_000, dispatch: bool = False, idle_seconds: float = 0.02,
                      log: Callable[[str], None] = lambda m: None) -> Iterator[Collector]:
    """The collector with its processor started; both stopped (and the writer drained) on exit."""
    project.plugins  # checks the sources' settings
    sources = collector_sources(project)
    keys = load_write_keys(sources, project.directory)
    processor = Processor(project.directory, list(sources), dispatch=dispatch, idle_seconds=idle_seconds, log=log)
    processor.start()
    store = project.store
    from motorcade.activation.endpoints import TrackingEndpoints

    collector = Collector(store, keys, limits=Limits(max_backlog=max_backlog),
                          backlog=lambda: processor.backlog(store), tracking=TrackingEndpoints(project, log=log))
    collector.processor = processor
    try:
        yield collector
    finally:
        collector.close()
        processor.stop()


def run_collector(project, *, host: str, port: int, max_backlog: int, dispatch: bool,
                  log: Callable[[str], None]) -> None:
    import uvicorn

    with running_collector(project, max_backlog=max_backlog, dispatch=dispatch, log=log) as collector:
        config = uvicorn.Config(collector.app, host=host, port=port, log_level="warning", lifespan="off",
                                access_log=False)
        server = uvicorn.Server(config)
        log(f"collecting on http://{host}:{port}/v1/ for sources: "
            f"{', '.join(collector.processor.source_names)} (Ctrl-C stops)")
        server.run()
    log(f"stopped: ingested {collector.processor.stats.ingested:,} messages, "
        f"{collector.processor.stats.fired:,} trigger firings")


class BackgroundServer:
    """uvicorn serving an app on a free port of 127.0.0.1 in a thread (tests, benchmarks)."""

    def __init__(self, app, port: int | None = None):
        import socket

        import uvicorn

        if port is None:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
        self.port = port
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off", access_log=False))
        self.server.install_signal_handlers = lambda: None  # not the main thread
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "BackgroundServer":
        import time

        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            time.sleep(0.01)
        raise RuntimeError("the collector did not start")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
