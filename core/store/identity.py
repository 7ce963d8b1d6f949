"""One-ID: identity records, identifiers, links, merges and splits."""

from __future__ import annotations


class IdentityMixin:
    pass
