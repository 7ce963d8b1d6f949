"""API tokens: random, shown once, stored only as a SHA-256 hash (a token has 256 bits of entropy, so a
fast hash is enough: there is nothing to brute-force)."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "mct_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def token_prefix(token: str) -> str:
    """The first characters, kept to name a token in lists and messages."""
    return token[: len(PREFIX) + 6]
