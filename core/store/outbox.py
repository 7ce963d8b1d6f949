"""Activation: runs, audience snapshots, the outbox, leases, shared channel tokens, advisor tasks."""

from __future__ import annotations


class OutboxMixin:
    pass
