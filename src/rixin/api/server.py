"""How uvicorn serves the gateway: its HTTP protocol with what uvicorn lacks.

- A header timeout: uvicorn waits forever for a request's headers (its keep-alive timeout only
  covers an idle connection, and stops at the first byte), so 200 clients sending one header
  byte at a time would hold 200 connections. A connection that has not sent complete headers
  within `read_timeout_s` is answered 408 and closed; so is one that sends more than
  MAX_HEADER_BYTES of request line and headers (431).
- HTTP framing errors (a malformed request line, a bad Content-Length, broken chunked
  encoding) are answered in the OpenAI error shape, not uvicorn's plain text.
A stalled body is the application's business (api/gate.py answers 408).
"""

from __future__ import annotations

import json

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rixin.api.errors import error_body

MAX_HEADER_BYTES = 64 * 1024
REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def raw_error(status: int, message: str, code: str) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection, for the cases where no
    request reached the application."""
    body = json.dumps(error_body(message, "invalid_request_error", None, code)).encode()
    head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"x-should-retry: %s\r\nconnection: close\r\n\r\n"
            % (status, REASONS[status], len(body), b"true" if status == 408 else b"false"))
    return head + body


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout, a header size limit and JSON
    framing errors (see the module docstring)."""

    read_timeout_s: float = 30.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_bytes = 0
        self._header_timer = None
        self._arm_header_timer()

    def connection_lost(self, exc) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.read_timeout_s, self._headers_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered; its body has its own timeout
        self._refuse(408, f"The request headers were not complete within {self.read_timeout_s:g} s; "
                          "send the request without pausing.", "request_timeout")

    def _refuse(self, status: int, message: str, code: str) -> None:
        if not self.transport.is_closing():
            self.transport.write(raw_error(status, message, code))
            self.transport.close()

    # parser callbacks: count the head, stop the timer once it is complete
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse(431, f"The request line and headers exceed {MAX_HEADER_BYTES} bytes.",
                         "headers_too_large")
            raise httptools.HttpParserError("headers too large")  # stops the parser

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        if self.transport.is_closing():
            return
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        waiting = not self.pipeline  # no request queued: the next one's headers are awaited
        super().on_response_complete()
        if waiting and not self.transport.is_closing():
            self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused above; ignore what the client still sends
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, f"{msg} Check the request line, the headers, Content-Length and the "
                          "chunked encoding.", "invalid_http_request")


def config(app, *, host: str, port: int, log_level: str, read_timeout_s: float) -> uvicorn.Config:
    protocol = type("GatewayProtocol", (GatewayProtocol,), {"read_timeout_s": read_timeout_s})
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5,
                          http=protocol, timeout_keep_alive=5)
