"""The HTTP collector: Segment's tracking API on Starlette, messages stored before the client hears 200.

Each request is authenticated (write key), decoded (gzip allowed), size-checked and its messages normalised
(:mod:`.spec`); then the good messages and the bad ones' quarantine rows go to one writer thread that commits
whatever requests are waiting in one transaction (group commit) and only then answers them. A 200 therefore
means the messages are in the store: a crash of the collector afterwards loses none.

Status codes (docs/collect.md): 200 stored (a batch: with the count and the quarantined items); 400 the
request is not JSON, over Segment's size limits (32 KB a call, 500 KB a batch), or (single call) the message
breaks the spec — the body says why; 401 no or an unknown write key; 404 unknown path; 405 not POST; 413 a
body over 20 times the limit before decompression; 415 an unknown content encoding; 503 with Retry-After when the backlog of messages not yet ingested is above ``max_backlog``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import threading
import zlib
from typing import Any, Callable

import attrs

try:
    import orjson

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

    def _dumps(value: Any) -> str:
        return orjson.dumps(value).decode("utf-8")
except ImportError:  # pragma: no cover - orjson is a core dependency
    import json

    def _loads(data: bytes) -> Any:
        return json.loads(data)

    def _dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from motorcade.activation.tracking import PIXEL_GIF
from starlette.routing import Route

from .keys import source_of
from .spec import CALL_TYPES, MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, Invalid, iso, normalise


@attrs.define
class Stored:
    """What one request asks the writer to commit."""

    source: str
    messages: list[tuple[str, str, str]]  # (message id, received at, body)
    quarantined: list[tuple[str, str, str]]  # (position, raw, reason)
    done: Callable[[BaseException | None], None]
    stored: int = 0
    duplicates: int = 0


class Writer:
    """One thread writing what requests hand it, committing all waiting requests in one transaction."""

    def __init__(self, store, *, max_group: int = 256):
        self.store = store
        self.max_group = max_group
        self._queue: queue.Queue[Stored | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="collector-writer", daemon=True)
        self.last_id = 0
        self._thread.start()

    def submit(self, item: Stored) -> None:
        self._queue.put(item)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        self.last_id = self.store.inbox_last_id()
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < self.max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                group.append(item)
            try:
                with self.store.transaction():
                    for item in group:
                        if item.messages:
                            item.stored, item.duplicates = self.store.inbox_append(item.source, item.messages)
                        if item.quarantined:
                            self.store.quarantine_rows(item.source, item.quarantined)
                self.last_id = self.store.inbox_last_id()
                error = None
            except BaseException as exc:  # noqa: BLE001 - the requests hear about it (503), the thread goes on
                error = exc
            for item in group:
                item.done(error)


@attrs.define
class Limits:
    max_backlog: int = 100_000  # messages received and not yet ingested before the collector answers 503
    retry_after_seconds: int = 5


def _reject(status: int, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"success": False, "reason": reason, **extra}, status_code=status)


def _decode_body(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """The request body, un-gzipped; refuses more than ``limit`` bytes after decompression (gzip bombs)."""
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise _HttpError(415, f"content encoding {encoding!r} is not supported (use gzip or none)")
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise _HttpError(400, f"the gzip body cannot be read: {exc}") from None
    if len(data) > limit:
        raise _HttpError(413, f"the request is larger than {limit // 1024} KB after decompression")
    return data


class _HttpError(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class Collector:
    """The ASGI application and what it needs: write keys, the writer, the backlog bound."""

    def __init__(self, store, keys: dict[bytes, str], *, limits: Limits | None = None,
                 backlog: Callable[[], int] | None = None, clock: Callable[[], dt.datetime] | None = None,
                 tracking: Any = None):
        self.keys = keys
        self.limits = limits or Limits()
        self.writer = Writer(store)
        self.backlog = backlog or (lambda: 0)
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        # The long paths and the one-letter ones analytics.js posts to (/v1/t, /v1/p, ..., /v1/b).
        routes = [Route(f"/v1/{path}", self._endpoint(kind), methods=["POST"])
                  for kind in CALL_TYPES for path in (kind, kind[0])]
        routes += [Route(f"/v1/{path}", self._endpoint(None), methods=["POST"]) for path in ("batch", "b", "import")]
        routes += [Route("/health", self.health, methods=["GET"])]
        self.tracking = tracking
        if tracking is not None:  # short links, open pixels and provider receipts (motorcade.activation.endpoints)
            routes += [Route("/s/{code}", self.short_link, methods=["GET", "HEAD"]),
                       Route("/o/{code}.gif", self.open_pixel, methods=["GET", "HEAD"]),
                       Route("/r/{channel}", self.receipt, methods=["GET", "POST"])]
        # Browsers (analytics.js) post from the site's origin: Segment's API answers CORS for any origin, and
        # the write key, not the origin, is what authenticates.
        self.app = Starlette(routes=routes, middleware=[Middleware(
            CORSMiddleware, allow_origins=["*"], allow_methods=["POST"], allow_headers=["*"], max_age=3600)])

    def close(self) -> None:
        self.writer.stop()

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "backlog": self.backlog()})

    # -- tracking: short links, open pixels, receipts (no write key: the code or the provider's signature is
    # the credential)

    async def short_link(self, request: Request) -> Response:
        hit = await run_in_threadpool(self.tracking.click, request.path_params["code"],
                                      user_agent=request.headers.get("user-agent"), method=request.method)
        if hit.status != 302:
            return PlainTextResponse("not found\n", status_code=404)
        return RedirectResponse(hit.location, status_code=302, headers={"Cache-Control": "no-store"})

    async def open_pixel(self, request: Request) -> Response:
        hit = await run_in_threadpool(self.tracking.open, request.path_params["code"],
                                      user_agent=request.headers.get("user-agent"), method=request.method)
        if hit.status != 200:
            return PlainTextResponse("not found\n", status_code=404)
        return Response(PIXEL_GIF, media_type="image/gif", headers={"Cache-Control": "no-store, private"})

    async def receipt(self, request: Request) -> Response:
        from motorcade.activation.receipts import ReceiptRequest

        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BATCH_BYTES:
                return PlainTextResponse("too large\n", status_code=413)
        receipt_request = ReceiptRequest(method=request.method, query=dict(request.query_params),
                                         headers={k.lower(): v for k, v in request.headers.items()}, body=body)
        result = await run_in_threadpool(self.tracking.receipt, request.path_params["channel"], receipt_request)
        return Response(result.body, status_code=result.status, media_type=result.content_type)

    def _endpoint(self, call_type: str | None):
        async def endpoint(request: Request) -> JSONResponse:
            try:
                return await self._handle(request, call_type)
            except _HttpError as exc:
                return _reject(exc.status, exc.reason)
        return endpoint

    async def _handle(self, request: Request, call_type: str | None) -> JSONResponse:
        received_at = self.clock()
        limit = MAX_MESSAGE_BYTES if call_type else MAX_BATCH_BYTES
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > 20 * limit:
            raise _HttpError(413, f"the request is larger than {limit // 1024} KB")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > 20 * limit:  # even gzip does not shrink real messages 20 times
                raise _HttpError(413, f"the request is larger than {limit // 1024} KB")
        body = _decode_body(raw, request.headers.get("content-encoding"), limit)
        if len(body) > limit:
            raise _HttpError(400, f"the request is larger than {limit // 1024} KB (Segment's limit for "
                             f"{'a batch' if call_type is None else 'one call'})")
        try:
            document = _loads(body)
        except ValueError as exc:
            raise _HttpError(400, f"the body is not valid JSON: {str(exc)[:120]}") from None
        if not isinstance(document, dict):
            raise _HttpError(400, "the body must be a JSON object")
        source = source_of(request.headers.get("authorization"), document.get("writeKey"), self.keys)
        if source is None:
            return JSONResponse({"success": False, "reason": "no or an unknown write key (HTTP Basic, the key as "
                                 "user name)"}, status_code=401, headers={"WWW-Authenticate": 'Basic realm="motorcade"'})
        if self.backlog() > self.limits.max_backlog:
            return JSONResponse({"success": False, "reason": "the collector is behind; send again later"},
                                status_code=503, headers={"Retry-After": str(self.limits.retry_after_seconds)})
        if call_type is None:
            items = document.get("batch")
            if not isinstance(items, list):
                raise _HttpError(400, "a batch needs a 'batch' array of messages")
            batch_sent_at, batch_context = document.get("sentAt"), document.get("context")
            if batch_context is not None and not isinstance(batch_context, dict):
                raise _HttpError(400, "the batch's context must be a JSON object")
        else:
            items, batch_sent_at, batch_context = [document], None, None
        messages, quarantined, problems = [], [], []
        stamp = iso(received_at)
        for index, item in enumerate(items):
            try:
                size = len(_dumps(item).encode("utf-8"))
                if size > MAX_MESSAGE_BYTES:
                    raise Invalid(f"the message is {size // 1024} KB; Segment's limit is 32 KB per message")
                normal = normalise(item, call_type=call_type, received_at=received_at,
                                   batch_sent_at=batch_sent_at, batch_context=batch_context)
            except Invalid as exc:
                raw_item = _dumps(item) if not isinstance(item, (bytes, bytearray)) else repr(item)
                quarantined.append((f"http {stamp} #{index}", raw_item[:MAX_MESSAGE_BYTES * 2], exc.reason))
                problems.append({"index": index, "reason": exc.reason})
                continue
            except (TypeError, ValueError) as exc:  # not serialisable (e.g. a NaN the parser let through)
                quarantined.append((f"http {stamp} #{index}", repr(item)[:1000], f"unusable value: {exc}"))
                problems.append({"index": index, "reason": f"unusable value: {exc}"})
                continue
            messages.append((normal["messageId"], normal["receivedAt"], _dumps(normal)))
        result = await self._store(Stored(source, messages, quarantined, done=lambda error: None))
        if isinstance(result, BaseException):
            return JSONResponse({"success": False, "reason": "the message could not be stored; send it again"},
                                status_code=503, headers={"Retry-After": str(self.limits.retry_after_seconds)})
        if call_type is not None and problems:
            return _reject(400, problems[0]["reason"], quarantined=True)
        answer: dict[str, Any] = {"success": True}
        if call_type is None:
            answer.update(accepted=len(messages), duplicates=result.duplicates, quarantined=problems)
        return JSONResponse(answer)

    async def _store(self, item: Stored) -> Stored | BaseException:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def done(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(error))

        item.done = done
        self.writer.submit(item)
        error = await future
        return error if error is not None else item
