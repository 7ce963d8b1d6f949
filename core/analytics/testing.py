"""A ClickHouse server for tests: ClickHouse's HTTP interface on 127.0.0.1, answered by the real ClickHouse
engine running in-process (chdb).

``analytics = "clickhouse://..."`` talks to a server through ``clickhouse-connect``; no ClickHouse server can
be installed here (Debian's package is from 2018), so tests point that client at this one. What it takes from
the HTTP interface, as ClickHouse documents it (https://clickhouse.com/docs/interfaces/http):

- the query in the POST body, or for an insert in the ``query`` URL parameter with the rows in the body in the
  format the query names (``INSERT INTO t (a, b) FORMAT Arrow``);
- ``database`` (the default database of the query), ``param_NAME`` (query parameters, ``{NAME:Type}``) and
  query settings as URL parameters; the HTTP-only ones (session, progress headers, query id) are accepted;
- the user and password as HTTP basic auth or ``X-ClickHouse-User`` / ``X-ClickHouse-Key`` headers, refused
  with ClickHouse's code 516 (AUTHENTICATION_FAILED) when they do not match;
- errors as HTTP 500 with the ``Code: N. DB::Exception: ...`` text and the ``X-ClickHouse-Exception-Code`` header.

Every request it served is kept in :attr:`ChdbHTTPServer.requests` (method, URL parameters, body size), so a
test can check what the client sent.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
import threading
import urllib.parse
from typing import Any

from ..activation.testing import ProviderAPI, ProviderHandler

# URL parameters of ClickHouse's HTTP interface that are not query settings
HTTP_PARAMETERS = frozenset({"query", "database", "query_id", "session_id", "session_timeout", "session_check",
                             "compress", "decompress", "user", "password", "quota_key", "default_format",
                             "wait_end_of_query", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
                             "cancel_http_readonly_queries_on_client_close", "client_protocol_version",
                             "buffer_size", "enable_http_compression"})
_INSERT = re.compile(r"\s*INSERT\s+INTO\s+(?P<table>[\w.`\"]+)\s*(?P<columns>\([^)]*\))?\s*FORMAT\s+(?P<format>\w+)\s*",
                     re.IGNORECASE | re.DOTALL)
_SETTING_NAME = re.compile(r"[a-z_][a-z0-9_]*")


class ChdbHTTPServer(ProviderAPI):
    """ClickHouse's HTTP interface on 127.0.0.1 (a free port) over one chdb session; a context manager that
    serves on a thread. :attr:`url` is the ``clickhouse://`` setting that reaches it."""

    def __init__(self, *, user: str = "default", password: str = "", database: str = "motorcade") -> None:
        from chdb import session

        super().__init__(_Handler)
        self.user, self.password, self.database = user, password, database
        self._folder = tempfile.TemporaryDirectory(prefix="motorcade-chdb-http-")
        self.session = session.Session(self._folder.name)
        self.engine_lock = threading.Lock()  # one chdb session: one query at a time, as its connection needs
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        auth = urllib.parse.quote(self.user, safe="")
        if self.password:
            auth += ":" + urllib.parse.quote(self.password, safe="")
        return f"clickhouse://{auth}@127.0.0.1:{self.server_address[1]}/{self.database}"

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.session.close()
        self._folder.cleanup()


class _Handler(ProviderHandler):
    protocol_version = "HTTP/1.1"
    server: ChdbHTTPServer

    def do_GET(self) -> None:  # noqa: N802  (GET / is the liveness check; GET /?query= a read-only query)
        self._serve(b"")

    def do_POST(self) -> None:  # noqa: N802
        self._serve(self.read_body())

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code: int, text: str, status: int = 500) -> None:
        self._reply(status, f"Code: {code}. DB::Exception: {text}\n".encode(),
                    {"X-ClickHouse-Exception-Code": str(code), "Content-Type": "text/plain; charset=UTF-8"})

    def _credentials(self, parameters: dict[str, str]) -> tuple[str, str]:
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return user, password
        if self.headers.get("X-ClickHouse-User") is not None:
            return self.headers["X-ClickHouse-User"], self.headers.get("X-ClickHouse-Key", "")
        return parameters.get("user", "default"), parameters.get("password", "")

    def _serve(self, body: bytes) -> None:
        server = self.server
        url = urllib.parse.urlsplit(self.path)
        parameters = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        server.requests.append({"method": self.command, "parameters": parameters, "body_bytes": len(body)})
        if self.command == "GET" and "query" not in parameters:
            return self._reply(200, b"Ok.\n")
        if self._credentials(parameters) != (server.user, server.password):
            return self._error(516, f"{self._credentials(parameters)[0]}: Authentication failed: password is "
                                    "incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)")
        if self.headers.get("Content-Encoding", "identity") != "identity":
            return self._error(1002, f"this test server reads no {self.headers['Content-Encoding']} bodies")
        settings = {k: v for k, v in parameters.items() if k not in HTTP_PARAMETERS and not k.startswith("param_")}
        if any(not _SETTING_NAME.fullmatch(name) for name in settings):
            return self._error(115, "Unknown setting (UNKNOWN_SETTING)")
        query_parameters = {k[len("param_"):]: v for k, v in parameters.items() if k.startswith("param_")}
        try:
            with server.engine_lock:
                session = server.session
                if "database" in parameters:
                    session.query(f"USE `{parameters['database'].replace('`', '')}`")
                for name, value in settings.items():  # names checked above; the value as a quoted literal
                    session.query(f"SET {name} = '{_quoted(value)}'")
                if "query" in parameters and body:
                    self._insert(parameters["query"], body)
                    return self._reply(200, b"")
                sql = parameters.get("query", "") + body.decode("utf-8")
                result = session.query(sql, "TabSeparated", params=query_parameters)
                output = result.bytes()
        except Exception as error:  # chdb raises its engine's exception text
            text = str(error)
            match = re.search(r"Code: (\d+)\. DB::Exception: (.*)", text, re.DOTALL)
            return self._error(int(match[1]) if match else 1001, match[2].strip() if match else text)
        self._reply(200, output, {"Content-Type": "application/octet-stream"})

    def _insert(self, query: str, rows: bytes) -> None:
        match = _INSERT.fullmatch(query)
        if match is None:
            raise ValueError(f"Code: 62. DB::Exception: not an INSERT ... FORMAT query: {query[:80]}")
        with tempfile.NamedTemporaryFile(suffix=".rows", delete=False) as file:
            file.write(rows)
        try:  # the file name is ours (a temporary file), never data
            self.server.session.query(f"INSERT INTO {match['table']} {match['columns'] or ''} "
                                      f"SELECT * FROM file('{file.name}', {match['format']})")
        finally:
            os.unlink(file.name)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")

