"""``motorcade collect``: the HTTP collector, its processor, and (optionally) delivery, in one process."""

from __future__ import annotations

import click


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r}: use HOST:PORT, e.g. 127.0.0.1:8088", param_hint="--listen")
    return host.strip("[]"), int(port)


@click.command(name="collect")
@click.option("--listen", default="127.0.0.1:8088", show_default=True, help="Address to serve Segment's API on.")
@click.option("--max-backlog", default=100_000, show_default=True, type=click.IntRange(min=1),
              help="Messages received but not yet ingested above which clients get 503 with Retry-After.")
@click.option("--dispatch", is_flag=True, help="Also deliver due sends after each processing pass "
                                               "(else `motorcade serve` delivers them).")
@click.pass_obj
def collect(state, listen: str, max_backlog: int, dispatch: bool) -> None:
    """Receive Segment tracking calls over HTTP for every `segment_http` source, ingest them as they arrive
    and plan event triggers at once. Stops cleanly on Ctrl-C / SIGTERM."""
    from .server import run_collector

    host, port = _listen(listen)
    run_collector(state.project, host=host, port=port, max_backlog=max_backlog, dispatch=dispatch,
                  log=lambda message: click.echo(message, err=True))
