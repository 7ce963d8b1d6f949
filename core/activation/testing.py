"""Test support for activation: an in-memory channel and a local HTTP receiver that counts idempotency keys.

Used by Motorcade's own tests and benchmark, and available to channel-plugin authors.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from typing import Any

import attrs

import motorcade

from .channel import Channel, ChannelCapabilities, DeliveryResult, OutboundMessage


def memory_channel_plugin(name: str = "memory", *, address_type: str = "person", batch_size: int = 50,
                          answers: dict[str, list[str]] | None = None, **capabilities: Any):
    """A plugin object registering channel ``name`` that keeps what it sends in ``plugin.sent``.

    ``answers`` maps an idempotency key to the statuses to answer on successive attempts
    (e.g. ``["transient", "sent"]``); any other key is ``sent``.
    """
    sent: list[OutboundMessage] = []
    scripted = {k: list(v) for k, v in (answers or {}).items()}
    caps = ChannelCapabilities(address_type=address_type, batch_size=batch_size, **capabilities)

    class MemoryChannel(Channel):
        description = "in-memory test channel"
        capabilities = caps

        def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
            results = []
            for message in batch:
                queue = scripted.get(message.idempotency_key)
                status = queue.pop(0) if queue else "sent"
                if status == "sent":
                    sent.append(message)
                results.append(DeliveryResult(message.idempotency_key, status, detail=f"memory: {status}",
                                              provider_message_id=f"m-{len(sent)}" if status == "sent" else None))
            return results

    MemoryChannel.name = name

    class Plugin:
        channel_class = MemoryChannel

        @staticmethod
        @motorcade.hookimpl
        def register_channels(register):
            register(MemoryChannel)

    Plugin.sent = sent
    return Plugin


@attrs.define
class Delivery:
    key: str
    body_sha256: str


class KeyCountingServer:
    """A webhook receiver on 127.0.0.1 that deduplicates on the idempotency key, like a provider would.

    Accepts the webhook channel's wire format (one message, or ``{"messages": [...]}``). ``deliveries``
    counts every request per key; ``bodies`` records the sha256 of each delivered message object so a
    test can check a re-delivery carried exactly the same message.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deliveries: dict[str, int] = {}
        self.bodies: dict[str, set[str]] = {}
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                try:
                    payload = json.loads(self.rfile.read(length))
                except ValueError:  # a sender killed mid-request: nothing was delivered
                    self.close_connection = True
                    return
                messages = payload["messages"] if "messages" in payload else [payload]
                with outer.lock:
                    outer.requests += 1
                    for message in messages:
                        key = message["idempotency_key"]
                        digest = hashlib.sha256(json.dumps(
                            {k: message[k] for k in ("person_id", "address", "template", "subject", "body")},
                            sort_keys=True, ensure_ascii=False).encode()).hexdigest()
                        outer.deliveries[key] = outer.deliveries.get(key, 0) + 1
                        outer.bodies.setdefault(key, set()).add(digest)
                body = b'{"ok": true}'
                # one write for the whole answer: separate small writes meet Nagle + delayed ACK (40 ms each)
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a sender SIGKILLed mid-request: expected here
                import sys

                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def __enter__(self) -> "KeyCountingServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> tuple[dict[str, int], dict[str, set[str]]]:
        with self.lock:
            return dict(self.deliveries), {k: set(v) for k, v in self.bodies.items()}


class ProviderAPI(http.server.ThreadingHTTPServer):
    """A provider's API on 127.0.0.1 (a free port) for a channel's tests: the handler checks each request
    as the provider documents it and answers as the provider would.

    Subclass it to hold what the fake provider keeps (tokens, requests seen); ``problems`` collects what
    the handler found wrong with a request, ``lock`` guards the state across handler threads. Use it as a
    context manager: it serves on a thread inside the ``with`` and is shut down after it::

        with ProviderAPI(Handler) as api:
            channel = MyChannel({"api_base": api.base}, context)
    """

    daemon_threads = True

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.lock = threading.Lock()
        self.problems: list[str] = []
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        """The API's base URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> "ProviderAPI":
        """Serve on a daemon thread (``shutdown`` stops it); returns the server."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> "ProviderAPI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class ProviderHandler(http.server.BaseHTTPRequestHandler):
    """Request handler base for a :class:`ProviderAPI`: quiet, with the body reader and JSON answer every
    fake provider needs. Subclasses implement ``do_GET``/``do_POST`` with the provider's checks."""

    server: ProviderAPI
    content_type = "application/json; charset=UTF-8"  # of every answer unless one says otherwise

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def read_body(self) -> bytes:
        """The request body (``Content-Length`` bytes)."""
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def answer(self, document: Any, status: int = 200, headers: dict[str, str] | None = None, *,
               content_type: str | None = None) -> None:
        """Answer ``document`` as JSON (bytes and text as they are) with ``status`` and extra ``headers``."""
        if isinstance(document, bytes):
            body = document
        elif isinstance(document, str):
            body = document.encode()
        else:
            body = json.dumps(document, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type or self.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def registered_channels(module: Any, name: str) -> tuple[list[type[Channel]], set[str]]:
    """What a channel plugin module registers through ``register_channels`` when loaded as ``name``, and
    the values of the installed ``motorcade`` entry points named ``name`` (to check the distribution's
    entry point names the module)."""
    import importlib.metadata

    import pluggy

    from motorcade import hookspecs

    pm = pluggy.PluginManager("motorcade")
    pm.add_hookspecs(hookspecs)
    pm.register(module, name=name)
    registered: list[type[Channel]] = []
    pm.hook.register_channels(register=registered.append)
    entry_points = {ep.value for ep in importlib.metadata.entry_points(group="motorcade") if ep.name == name}
    return registered, entry_points



def blast_campaign_project(directory, webhook_url: str, *, people: int, batch_size: int,
                           activation: dict[str, Any] | None = None, database: str | None = None,
                           name: str = "blast", plugin_manager: Any = None) -> tuple[Any, Any]:
    """A project in ``directory`` for delivery tests and benchmarks: ``people`` owners (person ids 1..people,
    written in one statement), their segment ``everyone`` already computed, and a transactional campaign
    ``blast`` through the webhook channel (``webhook_url``, ``batch_size`` messages a POST) scheduled two
    minutes ago in Asia/Shanghai. ``activation`` are the ``[activation]`` settings; ``database`` the store
    (default: the project's SQLite file). Returns the open project and the campaign's slot."""
    import datetime as dt
    import zoneinfo

    from motorcade.project import Project

    zone = zoneinfo.ZoneInfo("Asia/Shanghai")
    slot = (dt.datetime.now(zone) - dt.timedelta(minutes=2)).replace(second=0, microsecond=0)
    (directory / "rules").mkdir(parents=True)
    (directory / "templates").mkdir()
    settings = "\n".join(f"{key} = {value}" for key, value in (activation or {}).items())
    (directory / "motorcade.toml").write_text(f"""
[project]
name = "{name}"
timezone = "Asia/Shanghai"
{f'database = "{database}"' if database else ""}

[channels.webhook]
url = "{webhook_url}"
secret = "test-secret"
batch_size = {batch_size}
timeout = 5

[activation]
{settings}
""", encoding="utf-8")
    (directory / "rules" / "blast.mc").write_text(f"""
segment everyone {{ where profile.is_owner = true }}
campaign blast {{
  audience everyone
  schedule at {slot.strftime("%Y-%m-%d %H:%M")}
  via webhook template "notice"
  transactional
}}
""", encoding="utf-8")
    (directory / "templates" / "notice.txt").write_text("尊敬的{{ person.name }}，您的爱车{{ person.plate }}保养提醒",
                                                        encoding="utf-8")
    project = Project(directory, plugin_manager=plugin_manager)
    store = project.store
    now = dt.datetime.now(dt.timezone.utc)
    with store.transaction():  # the people in one statement (the store's bulk path; ids 1..people)
        store.insert_new_people(1, [json.dumps({"name": f"客户{i}", "plate": f"沪A{i:05d}", "is_owner": True},
                                               ensure_ascii=False) for i in range(people)], now.isoformat())
    store.record_segment_run("everyone", list(range(1, people + 1)), revision="test", as_of=now, computed_at=now,
                             duration_ms=0, plan=None)
    return project, slot
