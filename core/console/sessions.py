"""Signed session cookies and CSRF tokens for the console.

The cookie holds only a random session id and an HMAC-SHA-256 signature over it with a key kept in the
server's memory (a restarted console logs everyone out). The session itself (the caller's token, the
CSRF token) stays on the server, so a cookie cannot be forged or read for the token it stands for.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

import attrs

COOKIE = "motorcade_console"
IDLE_SECONDS = 8 * 3600  # a session unused this long is forgotten


@attrs.define
class Session:
    sid: str
    csrf: str
    token: str | None = None  # the user's API token: checked again (revoked? expired?) on every request
    owner: bool = False  # logged in through the one-time owner link: the project's local owner
    seen: float = attrs.field(factory=time.monotonic)

    @property
    def logged_in(self) -> bool:
        return self.owner or self.token is not None


class Sessions:
    """The console's sessions, in memory, keyed by id; cookies carry ``id.signature``."""

    def __init__(self, key: bytes | None = None):
        self._key = key or secrets.token_bytes(32)
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.owner_code: str | None = None  # the one-time owner link's code, until used

    def sign(self, sid: str) -> str:
        return f"{sid}.{hmac.new(self._key, sid.encode(), hashlib.sha256).hexdigest()}"

    def _verify(self, cookie: str | None) -> str | None:
        if not cookie or "." not in cookie:
            return None
        sid = cookie.split(".", 1)[0]
        return sid if hmac.compare_digest(self.sign(sid), cookie) else None

    def get(self, cookie: str | None) -> Session | None:
        """The session a signed cookie names, if the signature holds and it is still alive."""
        sid = self._verify(cookie)
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(sid) if sid else None
            if session is None or now - session.seen > IDLE_SECONDS:
                return None
            session.seen = now
            return session

    def new(self) -> Session:
        """A fresh anonymous session (log-in replaces it with another, so an id set before log-in is useless)."""
        session = Session(secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        with self._lock:
            self._sessions[session.sid] = session
        return session

    def drop(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.sid, None)

    def new_owner_code(self) -> str:
        self.owner_code = secrets.token_urlsafe(24)
        return self.owner_code

    def take_owner_code(self, code: str) -> bool:
        """True once for the current owner code (then it is spent)."""
        with self._lock:
            expected, ok = self.owner_code, False
            if expected and code and hmac.compare_digest(expected, code):
                self.owner_code, ok = None, True
            return ok


def csrf_ok(session: Session | None, submitted: str | None) -> bool:
    return session is not None and bool(submitted) and hmac.compare_digest(session.csrf, submitted)
