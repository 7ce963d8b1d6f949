"""Motorcade: a rules-engine plugin framework for automotive customer operations.

Pipeline: sources -> One-ID -> tags -> segments -> activation (channels) -> feedback.
Plugins implement the hooks in :mod:`motorcade.hookspecs` and mark them with ``@motorcade.hookimpl``.
"""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("motorcade")

__all__ = ["hookimpl", "__version__"]
