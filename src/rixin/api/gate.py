"""What every request passes before a route sees it, in this order: metrics and a caught
unexpected error (outermost), authentication of /v1, the body limit, a stalled-body timeout, and a JSON
body that is valid Unicode.

Authentication comes first so that a client without a key learns nothing about the route
(bad JSON without a key is a 401, not a 400). The unexpected-error guard answers a 500 as a
normal response instead of re-raising, so uvicorn keeps the keep-alive connection usable."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rixin import metrics
from rixin.api import errors
from rixin.errors import InvalidRequest, PayloadTooLarge, RequestTimeout, RixinError

log = logging.getLogger("rixin.api")

# multipart framing and the purpose field around an uploaded file
UPLOAD_OVERHEAD = 1 << 20
# JSON escapes of a UTF-16 surrogate or of NUL: only bodies that hold one need the full check
SUSPECT_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")
NUL_MESSAGE = ("Text may not contain NUL characters (U+0000, \\u0000 in JSON): no name, id or text "
               "can hold one. Remove them.")
SURROGATE_MESSAGE = ("The request body holds text that is not valid Unicode (a lone UTF-16 surrogate "
                     "escape such as \\ud800). Send UTF-8 text; pair surrogate escapes or remove them.")


def authenticated_path(path: str) -> bool:
    """The API under /v1 needs a key; the console, /health, the OpenAPI document and /metrics
    (its own token, see system/router.py) do not go through here."""
    return path == "/v1" or path.startswith("/v1/")


def json_body(scope: Scope) -> bool:
    """Whether FastAPI will parse this request's body as JSON (no content type, or */json)."""
    value = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1")
    kind = value.split(";", 1)[0].strip().lower()
    return not kind or kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def invalid_text(value) -> str | None:
    """Why a parsed JSON value holds a string no store can keep, or None: a lone UTF-16
    surrogate such as "\\ud800" cannot be encoded as UTF-8 (nor stored or tokenized), and
    PostgreSQL refuses NUL in text."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return NUL_MESSAGE
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return SURROGATE_MESSAGE
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


class Gate:
    """The ASGI middleware in front of every route (see the module docstring)."""

    def __init__(self, app: ASGIApp, platform, limit: int, upload_limit: int, read_timeout_s: float):
        self.app, self.platform = app, platform
        self.limit, self.upload_limit = limit, upload_limit + UPLOAD_OVERHEAD
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), None

        async def observed_send(message: Message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.guarded(scope, receive, observed_send)
        except RixinError as e:  # raised here or while a route read the body, outside its handlers
            if status is not None:
                raise
            await errors.rixin_error_response(e, close=e.status in (408, 413))(scope, receive, observed_send)
        except Exception as e:
            if status is not None:  # the answer is half sent: only closing the connection can tell
                raise
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=e)
            await errors.server_error_response()(scope, receive, observed_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.REQUESTS.labels(route, scope["method"], str(status or 500)).inc()
            metrics.LATENCY.labels(route).observe(time.perf_counter() - start)

    async def guarded(self, scope: Scope, receive: Receive, send: Send):
        if authenticated_path(scope["path"]):
            header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
            scheme, _, key = header.partition(" ")
            key = key.strip() if scheme.lower() == "bearer" else ""
            caller = await run_in_threadpool(self.platform.tenancy.authenticate, key or None)
            scope.setdefault("state", {})["caller"] = caller
            if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
                raise InvalidRequest(NUL_MESSAGE, code="invalid_text")
        upload = scope["method"] == "POST" and scope["path"].rstrip("/") == "/v1/files"
        limit = self.upload_limit if upload else self.limit
        too_large = PayloadTooLarge(f"Request body too large: the limit is {limit} bytes. "
                                    "Send less data per request.")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large
        receive = self.bounded(receive, limit, too_large)
        if scope["method"] in ("POST", "PUT", "PATCH") and json_body(scope):
            receive = await self.checked_json(receive)
        await self.app(scope, receive, send)

    def bounded(self, receive: Receive, limit: int, too_large: RixinError) -> Receive:
        """`receive` that raises 413 past the limit and 408 when the body stalls; once the body
        is complete it waits without a limit (a streaming answer listens for the disconnect)."""
        seen, complete = 0, False

        async def bounded_receive():
            nonlocal seen, complete
            if complete:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout_s)
            except asyncio.TimeoutError:
                raise RequestTimeout(f"The request body stalled for {self.read_timeout_s:g} s; "
                                     "send the whole body without pausing.") from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            seen += len(message.get("body", b""))
            if seen > limit:
                raise too_large
            return message

        return bounded_receive

    async def checked_json(self, receive: Receive) -> Receive:
        """Read the whole JSON body (FastAPI would anyway), refuse text that is not valid
        Unicode, and hand the body on unchanged."""
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return _replay([message], receive)
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if SUSPECT_ESCAPE.search(body):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None  # FastAPI answers invalid_json
            reason = invalid_text(parsed)
            if reason is not None:
                raise InvalidRequest(reason, code="invalid_text")
        return _replay([{"type": "http.request", "body": body, "more_body": False}], receive)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """`receive` that returns these messages first, then the client's (e.g. a disconnect)."""
    pending = list(messages)

    async def replay():
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
