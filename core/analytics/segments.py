"""Segment plans run on an analytics engine.

The plan is chosen as on the operational store (:func:`motorcade.segments.plan.plan_segment`) with two
differences: it is compiled in the engine's dialect, and the capped probes that size a driver's range run
on the engine (the planner statistics and declared value types still come from the operational store,
whose data the engine mirrors).
"""

from __future__ import annotations

import datetime as dt

from ..segments.plan import plan_segment


class EnginePlanView:
    """The operational store as the planner sees it, with reads going to the analytics engine."""

    def __init__(self, store, engine):
        self._store = store
        self._engine = engine
        self.dialect = engine.dialect

    def query(self, sql, params=()):
        return self._engine.query(sql, params)

    def property_columns(self) -> frozenset[str]:
        """Event property keys the engine keeps in typed columns (the compiler reads those, not the JSON)."""
        return self._engine.property_columns()

    def __getattr__(self, name):  # value_types, identity_settled, planner statistics
        return getattr(self._store, name)


def plan_on_engine(store, engine, rule_set, name: str, as_of: dt.datetime, tz="Asia/Shanghai", **options):
    """The plan of segment ``name`` compiled for ``engine`` (a CompiledQuery in its dialect)."""
    return plan_segment(EnginePlanView(store, engine), rule_set, name, as_of, tz, **options)


def members_on_engine(store, engine, rule_set, name: str, as_of: dt.datetime, tz="Asia/Shanghai") -> list[int]:
    """Sorted person ids of segment ``name`` computed on ``engine``."""
    return sorted(engine.person_ids(plan_on_engine(store, engine, rule_set, name, as_of, tz)))
