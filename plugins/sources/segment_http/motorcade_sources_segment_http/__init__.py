"""Motorcade source ``segment_http``: Segment's tracking API over HTTP (``motorcade collect``).

Clients (Segment's analytics-python, analytics.js, mobile SDKs, RudderStack SDKs) send track, identify, page,
screen, alias and group calls; the collector checks them against the spec, stores them durably before it
answers 200, ingests them through cleaning, quarantine and One-ID like any source, and plans event triggers
within a fraction of a second. See docs/collect.md.
"""

from __future__ import annotations

import motorcade

from .source import SegmentHttpSource

__all__ = ["SegmentHttpSource"]


@motorcade.hookimpl
def register_sources(register):
    register(SegmentHttpSource)


@motorcade.hookimpl
def register_commands(cli):
    from .commands import collect

    cli.add_command(collect)
