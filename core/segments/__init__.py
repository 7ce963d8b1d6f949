"""Segments: rules compiled to SQL plans, computed memberships with enter/leave history, explain and diff.

Public API (activation and others rely on these names)::

    compute_segments(project, names=None, as_of=None) -> list[SegmentResult]
    members_now(project, segment, as_of=None) -> list[int]     # compute without storing (previews)

and on the store: ``segment_member_ids``, ``segment_changes_since``, ``last_segment_change_id``.
"""

from .compute import SegmentResult, compute_segments, dependency_order, members_now

__all__ = ["SegmentResult", "compute_segments", "dependency_order", "members_now"]
