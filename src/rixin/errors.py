"""The one exception hierarchy of rixin.

Services raise these; api/errors.py maps them to OpenAI error objects and cli/ to messages.
Each carries the HTTP status OpenAI uses, the error type, an optional code and the
offending parameter, so that the mapping stays mechanical.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError


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


class Preempted(Exception):
    """Raised by a job that stopped at a checkpoint because the scheduler needs its capacity;
    the job runner queues it again and it resumes from that checkpoint when capacity returns."""


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


class RateLimitExceeded(QueueFull):
    """Over a project's requests or tokens per minute for a model (compute/ratelimit.py)."""

    code = "rate_limit_exceeded"


class InsufficientQuota(RixinError):
    """The project spent its monthly budget: retrying does not help until an admin raises it."""

    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"
    should_retry = False


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


# ---------------------------------------------------------------- pydantic errors, said once

# pydantic error type → (OpenAI error code, how to say it); api/errors.py words a request's
# validation errors with it, invalid_from() takes the code.
PYDANTIC_CODES = {
    "missing": ("missing_required_parameter", "Missing required parameter: '{param}'."),
    "too_short": ("empty_array", "Invalid '{param}': expected at least {min_length} item(s), got {actual_length}."),
    "too_long": ("array_above_max_length", "Invalid '{param}': expected at most {max_length} item(s), got {actual_length}."),
    "string_too_short": ("empty_string", "Invalid '{param}': string too short; expected at least {min_length} character(s)."),
    "string_too_long": ("string_above_max_length", "Invalid '{param}': string too long; expected at most {max_length} characters."),
    "greater_than_equal": ("below_min_value", "Invalid '{param}': expected a value >= {ge}, but got {input!r} instead."),
    "greater_than": ("below_min_value", "Invalid '{param}': expected a value > {gt}, but got {input!r} instead."),
    "less_than_equal": ("above_max_value", "Invalid '{param}': expected a value <= {le}, but got {input!r} instead."),
    "less_than": ("above_max_value", "Invalid '{param}': expected a value < {lt}, but got {input!r} instead."),
    "literal_error": ("invalid_value", "Invalid value for '{param}': {input!r}. Supported values are: {expected}."),
    "enum": ("invalid_value", "Invalid value for '{param}': {input!r}. Supported values are: {expected}."),
    "string_pattern_mismatch": ("invalid_value", "Invalid '{param}': {input!r:.80} must match {pattern}."),
    "extra_forbidden": ("unknown_parameter", "Unknown parameter: '{param}'."),
}


def is_branch(item: Any) -> bool:
    """Whether a pydantic loc element names a union branch (its tag), not a parameter."""
    return isinstance(item, str) and (
        "[" in item or item in ("int", "float", "str", "bool", "dict", "list", "none")
        or item[:1].isupper() or item.startswith(("function-", "constrained-")))


def loc_path(loc: tuple, *, dotted_index: bool = False, tags: Collection[str] = ()) -> str:
    """A pydantic location as the path a client writes: a.b[0].c (a.b.0.c with `dotted_index`,
    as a YAML file's keys read); union branch tags (and the discriminator values in `tags`,
    e.g. grader types) and dict-key markers are left out."""
    parts: list[str] = []
    for item in loc:
        if item == "[key]" or is_branch(item) or item in tags:
            continue
        if isinstance(item, int) and not dotted_index:
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _join(prefix: str | None, path: str) -> str | None:
    if not prefix or not path:
        return prefix or path or None
    return prefix + ("" if path.startswith("[") else ".") + path


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model that holds the last key of `loc` (to list its allowed keys), looking through
    list/optional/union annotations; None when the path leaves the models."""
    for part in [p for p in loc[:-1] if not isinstance(p, int)]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        candidates = (annotation, *getattr(annotation, "__args__", ()))
        inner = next((a for a in candidates if isinstance(a, type) and hasattr(a, "model_fields")), None)
        if inner is None:
            return None
        model = inner
    return model


def invalid_from(e: ValidationError, *, prefix_param: str | None = None, source: str | None = None,
                 model: type[BaseModel] | None = None, hint: str = "",
                 dotted_index: bool = False, tags: Collection[str] = ()) -> InvalidRequest:
    """A pydantic ValidationError as the one InvalidRequest a client can act on: it names the
    field (param: the dotted path, under `prefix_param`: the request field that held the
    document), says what is wrong and how to fix it. An unknown key is reported first (a typo
    explains a "missing" key next to it); with `model`, the keys allowed there are listed.
    `source` leads the message (e.g. "recipe", "task.yaml"); `hint` ends it; `tags` are the
    values of a discriminated union's tag, which pydantic puts in the location."""
    errors = e.errors()
    first = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
    loc = tuple(first["loc"])
    path = loc_path(loc, dotted_index=dotted_index, tags=tags)
    param = _join(prefix_param, path)
    shown = (path or "(top level)") if source else (param or "(top level)")
    kind = first["type"]
    if kind == "extra_forbidden":
        message = f"unknown key '{shown}'."
        held = _model_at(model, tuple(p for p in loc if p != "[key]" and not is_branch(p) and p not in tags)
                         ) if model else None
        if held is not None:
            where = loc_path(loc[:-1], dotted_index=dotted_index, tags=tags)
            where = (where if source else _join(prefix_param, where)) or "the top level"
            message += f" Allowed keys at {where}: {', '.join(held.model_fields) or '(none)'}."
        message += " Check the spelling or remove it."
    elif kind == "missing":
        message = f"missing required key '{shown}'."
    else:
        got = first.get("input")
        seen = f" (got {got!r:.80})" if not isinstance(got, dict | list) else ""
        message = f"invalid value at '{shown}': {first['msg'].removeprefix('Value error, ')}{seen}."
    # the branches of a union each report the same field: count the fields, not the branches
    more = len({loc_path(tuple(x["loc"]), dotted_index=dotted_index, tags=tags) for x in errors}) - 1
    if more:
        message += f" ({more} more problem{'s' if more > 1 else ''} after fixing this one.)"
    message = f"{source}: {message}" if source else message[0].upper() + message[1:]
    if hint:
        message += " " + hint
    code = PYDANTIC_CODES.get(kind, ("invalid_value",))[0]
    return InvalidRequest(message, param=param, code=code)
