"""What every request passes before a route sees it, in this order: metrics and a caught
unexpected error (outermost), authentication of /v1 (and a read-only key refused on a write), the
body limit, a stalled-body timeout, a JSON body that is valid Unicode, and for a model request
(chat, completion, embedding) the budget and rate limits; its answer gets OpenAI's x-ratelimit-*
headers and is held until its usage is recorded (compute/metering.py). An admin action's answer
is held until its audit log entry is written.

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
from rixin.compute.audit import audited
from rixin.compute.controls import METERED
from rixin.compute.metering import Ticket
from rixin.compute.ratelimit import Admitted
from rixin.errors import (InvalidRequest, PayloadTooLarge, PermissionDenied, RateLimitExceeded,
                          RequestTimeout, RixinError)

log = logging.getLogger("rixin.api")

# multipart framing and the purpose field around an uploaded file
UPLOAD_OVERHEAD = 1 << 20
# bodies that are files (multipart, streamed to disk): the file size limit, not the JSON one
UPLOAD_ROUTE = re.compile(r"/v1/files|/v1/uploads/[^/]+/parts")
# JSON escapes of a UTF-16 surrogate or of NUL: only bodies that hold one need the full check
SUSPECT_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")
NUL_MESSAGE = ("Text may not contain NUL characters (U+0000, \\u0000 in JSON): no name, id or text "
               "can hold one. Remove them.")
READ_ONLY_MESSAGE = ("This API key is read-only: it may only read (GET). Use a key created "
                     "without --read-only for {method} {path}.")
READS = ("GET", "HEAD", "OPTIONS")
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
            if caller.read_only and scope["method"] not in READS:
                raise PermissionDenied(READ_ONLY_MESSAGE.format(method=scope["method"], path=scope["path"]))
            if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
                raise InvalidRequest(NUL_MESSAGE, code="invalid_text")
        upload = scope["method"] == "POST" and UPLOAD_ROUTE.fullmatch(scope["path"].rstrip("/")) is not None
        limit = self.upload_limit if upload else self.limit
        too_large = PayloadTooLarge(f"Request body too large: the limit is {limit} bytes. "
                                    "Send less data per request.")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large
        receive, body = self.bounded(receive, limit, too_large), None
        if scope["method"] in ("POST", "PUT", "PATCH") and json_body(scope):
            receive, body = await self.checked_json(receive)
        caller = scope.get("state", {}).get("caller")
        kind = METERED.get(scope["path"].rstrip("/")) if scope["method"] == "POST" else None
        if kind is not None and caller is not None:
            return await self.metered(scope, receive, send, caller, kind, body)
        if audited(caller, scope["method"], scope["path"]):
            send = self.audited_send(scope, send, caller)
        await self.app(scope, receive, send)

    async def metered(self, scope: Scope, receive: Receive, send: Send, caller, kind: str, body: bytes | None):
        """Admit a model request (budget, rate limits) and run it with its answer metered."""
        try:
            request = json.loads(body) if body else None
        except ValueError:
            request = None
        model = request.get("model") if isinstance(request, dict) else None
        if not isinstance(model, str):  # the route answers the 400
            return await self.app(scope, receive, send)
        controls = self.platform.controls
        if controls.needs_load(caller.project_id):
            await run_in_threadpool(controls.load, caller.project_id)
        try:
            ticket, admitted = controls.admit(caller, model, kind)
        except RateLimitExceeded as e:
            response = errors.rixin_error_response(e)
            response.raw_headers.extend(controls.limiter.peek(caller.project_id, model).headers())
            return await response(scope, receive, send)
        token = metrics.REQUEST_TOKENS.set(ticket)  # the streaming loop counts into the ticket
        try:
            await self.app(scope, receive, self.metered_send(scope, receive, send, ticket, admitted))
        finally:
            metrics.REQUEST_TOKENS.reset(token)

    def metered_send(self, scope: Scope, receive: Receive, send: Send, ticket: Ticket,
                     admitted: Admitted) -> Send:
        """`send` that adds the x-ratelimit-* headers and records the usage of a 200 answer
        before the client can see it: a JSON answer is held whole (its `usage` is what is
        recorded); a stream is recorded before its `data: [DONE]`."""
        held: list[Message] = []
        streaming = False
        record = self.platform.controls.meter.record

        async def metered(message: Message):
            nonlocal streaming
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *admitted.headers()]}
                content_type = dict(message["headers"]).get(b"content-type", b"")
                streaming = content_type.startswith(b"text/event-stream")
                if message["status"] == 200 and not streaming:
                    held.append(message)
                    return
            elif message["type"] == "http.response.body" and held:
                held.append(message)
                if message.get("more_body", False):
                    return
                start, *parts = held
                content = b"".join(part.get("body", b"") for part in parts)
                ticket.take_usage(_usage(content))
                try:
                    await asyncio.wrap_future(record(ticket))
                except RixinError as e:  # nothing was acknowledged: the client may retry
                    held.clear()
                    return await errors.rixin_error_response(e)(scope, receive, send)
                await send(start)
                message = {"type": "http.response.body", "body": content, "more_body": False}
            elif message["type"] == "http.response.body" and streaming and b"data: [DONE]" in message.get("body", b""):
                try:
                    await asyncio.wrap_future(record(ticket))
                except RixinError as e:  # the stream ends with the error instead of [DONE]
                    event = json.dumps(errors.error_body(e.message, e.type, e.param, e.code))
                    message = {**message, "body": f"data: {event}\n\n".encode()}
            await send(message)

        return metered

    def audited_send(self, scope: Scope, send: Send, caller) -> Send:
        """`send` that writes the audit log entry of a successful admin action (or deployment
        switch) before its answer starts."""
        async def audited_send(message: Message):
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                route = getattr(scope.get("route"), "path", scope["path"])
                target = (scope.get("path_params") or {}).get("project_id")
                await run_in_threadpool(self.platform.controls.audit.record, caller, scope["method"],
                                        route, scope["path"], message["status"], target)
            await send(message)

        return audited_send

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

    async def checked_json(self, receive: Receive) -> tuple[Receive, bytes | None]:
        """Read the whole JSON body (FastAPI would anyway), refuse text that is not valid
        Unicode, and hand the body on unchanged (and to the caller, which reads a model
        request's `model`)."""
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return _replay([message], receive), None
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
        return _replay([{"type": "http.request", "body": body, "more_body": False}], receive), body


def _usage(content: bytes) -> dict:
    """The `usage` object of a JSON answer ({} when it has none)."""
    try:
        answer = json.loads(content)
    except ValueError:
        return {}
    return (answer.get("usage") if isinstance(answer, dict) else None) or {}


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """`receive` that returns these messages first, then the client's (e.g. a disconnect)."""
    pending = list(messages)

    async def replay():
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
