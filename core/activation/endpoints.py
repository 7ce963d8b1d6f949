"""What the collector's HTTP server does for tracking, apart from HTTP itself: short links, open pixels and
provider receipts (``GET /s/<code>``, ``GET /o/<code>.gif``, ``/r/<channel>``). Blocking calls on the
store: the server runs them in its thread pool."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any, Callable

from motorcade.errors import MotorcadeError

from .receipts import ReceiptRequest, ReceiptResult, handle_receipt
from .settings import ActivationSettings
from .tracking import Hit, follow


class TrackingEndpoints:
    """Short links, open pixels and receipts of one project."""

    def __init__(self, project, *, clock: Callable[[], dt.datetime] | None = None,
                 log: Callable[[str], None] = lambda message: None):
        self.project = project
        self.store = project.store
        self.settings = ActivationSettings.from_config(project.config.raw.get("activation", {}))
        self.channel_settings = dict(project.config.channels)
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.log = log
        self._channels: dict[str, Any] = {}
        self._lock = threading.Lock()

    def click(self, code: str, *, user_agent: str | None, method: str = "GET") -> Hit:
        return follow(self.store, code, kind="link", at=self.clock(), user_agent=user_agent, method=method,
                      utm_source=self.settings.utm_source or None)

    def open(self, code: str, *, user_agent: str | None, method: str = "GET") -> Hit:
        return follow(self.store, code, kind="open", at=self.clock(), user_agent=user_agent, method=method)

    def channel(self, name: str) -> Any:
        """The channel instance that reads ``name``'s receipts (None: not installed or not configured)."""
        with self._lock:
            if name not in self._channels:
                self._channels[name] = self._make_channel(name)
            return self._channels[name]

    def _make_channel(self, name: str) -> Any:
        from .channel import ChannelContext

        registry = self.project.plugins.registry()
        if name not in registry.channels or name not in self.channel_settings:
            return None
        try:
            return registry.channel_class(name)(dict(self.channel_settings[name]), ChannelContext(
                project_dir=self.project.directory, clock=self.clock, store=self.store))
        except MotorcadeError as exc:
            self.log(f"receipts for channel {name} are refused: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
            return None

    def receipt(self, channel: str, request: ReceiptRequest) -> ReceiptResult:
        return handle_receipt(self.store, channel, self.channel(channel), request, now=self.clock())
