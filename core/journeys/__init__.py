"""Journeys (营销画布): multi-step flows with waits, branches, splits, goals and exits, advanced by `run`/`serve`.

- :mod:`.stepper`: how one person moves through a journey's flow graph (pure; shared with rule tests)
- :mod:`.engine`: entry, re-entry, holdout and batched advancement against the store and the outbox
- :mod:`.observe`: `motorcade journeys status|explain`, goal conversion against the holdout, the SVG graph
"""
