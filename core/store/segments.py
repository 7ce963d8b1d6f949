"""Segment runs, memberships and their enter/leave history."""

from __future__ import annotations


class SegmentsMixin:
    pass
