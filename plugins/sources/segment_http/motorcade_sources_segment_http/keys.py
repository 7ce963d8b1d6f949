"""Write keys: how a client proves which source it sends for (HTTP Basic, the key as the user name).

Keys are read from the environment (``write_key_env``) or a file (``write_key_file``), never from
motorcade.toml itself, and kept only as SHA-256 digests; they are never printed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path
from typing import Mapping

from motorcade.errors import ConfigError


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def load_write_keys(sources: Mapping[str, Mapping], project_dir: Path) -> dict[bytes, str]:
    """``{digest of the write key: source name}`` for the collector's sources."""
    keys: dict[bytes, str] = {}
    for name, settings in sources.items():
        where = f"[sources.{name}]"
        if settings.get("write_key_env"):
            variable = settings["write_key_env"]
            key = os.environ.get(variable, "")
            if not key:
                raise ConfigError(f"{where} write_key_env names {variable!r}, which is not set",
                                  hint=f"export {variable}=<the write key your clients use>")
        elif settings.get("write_key_file"):
            path = Path(project_dir) / settings["write_key_file"]
            try:
                key = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{where} write_key_file {str(path)!r} cannot be read: {exc.strerror}") from None
            if not key:
                raise ConfigError(f"{where} write_key_file {str(path)!r} is empty")
        else:
            raise ConfigError(f"{where} has no write key", hint='add write_key_env = "APP_WRITE_KEY" (or write_key_file)')
        digest = key_digest(key)
        if digest in keys:
            raise ConfigError(f"{where} has the same write key as [sources.{keys[digest]}]",
                              hint="give every source a key of its own, so a message's source is known")
        keys[digest] = name
    return keys


def source_of(authorization: str | None, body_write_key: str | None, keys: Mapping[bytes, str]) -> str | None:
    """The source a request authenticates as (HTTP Basic with the write key as user name, or a ``writeKey``
    field in the body as Segment also accepts), or None."""
    candidate = None
    if authorization and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        candidate = decoded.split(":", 1)[0]
    elif isinstance(body_write_key, str):
        candidate = body_write_key
    if not candidate:
        return None
    digest = key_digest(candidate)
    for known, name in keys.items():  # compare every digest in constant time
        if hmac.compare_digest(known, digest):
            return name
    return None
