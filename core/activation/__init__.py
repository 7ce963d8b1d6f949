"""Activation: campaigns and triggers at run time, the transactional outbox, the dispatcher, guard rails.

Modules: :mod:`.channel` (the channel plugin contract), :mod:`.schedule` (when campaigns are due),
:mod:`.planner` (runs, audience snapshots and outbox rows in one transaction), :mod:`.dispatcher`
(claim with guard rails, send, record; retries, dead letters), :mod:`.guardrails`, :mod:`.templates`,
:mod:`.feedback`, :mod:`.tokens` (the shared token cache), :mod:`.runner` (`run` / `serve`).
See docs/activation.md.
"""
