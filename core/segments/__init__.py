"""Segments: rules compiled to SQL plans, computed memberships with enter/leave history, explain and diff.

Public API (activation and others rely on these names)::

    compute_segments(project, names=None, as_of=None) -> list[SegmentResult]
    members_now(project, segment, as_of=None) -> list[int]     # compute without storing (previews)

and on the store: ``segment_member_ids``, ``segment_changes_since``, ``last_segment_change_id``.
"""

__all__ = ["SegmentResult", "compute_segments", "dependency_order", "members_now"]


def __getattr__(name: str):
    # Imported on first use: the compiler pulls in sqlglot, which `motorcade --help` should not pay for.
    if name in __all__:
        from . import compute

        return getattr(compute, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
