"""The one exception hierarchy of rixin.

Services raise these; api/errors.py maps them to OpenAI error objects and cli/ to messages.
Each carries the HTTP status OpenAI uses, the error type, an optional code and the
offending parameter, so that the mapping stays mechanical.
"""

from __future__ import annotations


class RixinError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None
    # A client must not retry 4xx errors except 408/409/429; 5xx may be retried.
    should_retry: bool | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class Cancelled(Exception):
    """Raised inside a job when its row says it was cancelled (not a RixinError: it is control
    flow that the job runner catches, never an answer to a request)."""


class Paused(Exception):
    """Raised by a job that stopped at a checkpoint on request; it resumes when queued again."""


class InvalidRequest(RixinError):
    status = 400
    type = "invalid_request_error"
    should_retry = False


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class Unauthenticated(RixinError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"
    should_retry = False


class PermissionDenied(RixinError):
    status = 403
    type = "invalid_request_error"
    code = "insufficient_permissions"
    should_retry = False


class NotFound(RixinError):
    status = 404
    type = "invalid_request_error"
    should_retry = False


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(RixinError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"
    should_retry = False


class RequestTimeout(RixinError):
    """The client stopped sending its request (headers or body) for too long."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"
    should_retry = True


class PayloadTooLarge(RixinError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"
    should_retry = False


class QueueFull(RixinError):
    status = 429
    type = "rate_limit_error"
    code = "queue_full"
    should_retry = True

    def __init__(self, message: str, *, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class EngineUnavailable(RixinError):
    """The engine replica died or is restarting; the request may be retried."""

    status = 503
    type = "server_error"
    code = "engine_unavailable"
    should_retry = True


class StoreUnavailable(RixinError):
    """The metadata or artifact store refuses writes (read-only, locked, unreachable) or
    cannot be read; nothing was changed and the request may be retried once it recovers."""

    status = 503
    type = "server_error"
    code = "store_unavailable"
    should_retry = True


class InsufficientStorage(RixinError):
    """The disk (or the database's disk) is full: nothing was kept. Retrying does not help
    until an operator frees space, so clients are told not to retry."""

    status = 507
    type = "server_error"
    code = "insufficient_storage"
    should_retry = False
