"""The one place where exceptions become OpenAI error objects:
{"error": {"message", "type", "param", "code"}} with the status OpenAI uses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from rixin.errors import PYDANTIC_CODES, RixinError, is_branch, loc_path
from rixin.store.faults import storage_fault

log = logging.getLogger("rixin.api")

def _param(loc: tuple) -> str | None:
    """The request parameter a location names (without FastAPI's body/query/path lead)."""
    return loc_path(loc[1:] if loc and loc[0] in ("body", "query", "path") else loc) or None


def _is_type_error(err: dict) -> bool:
    kind = err.get("type", "")
    return kind.endswith("_type") or kind.endswith("_parsing")


def _pick(errors: list[dict]) -> tuple[dict, str | None, list[dict]]:
    """(error to report, its param, the failed branches when no branch fits the input).

    A union parameter (str | list[str] ...) fails once per branch. A branch whose errors lie
    inside the value or are not about its type (an item of the list, a too-long list) is the
    one the client meant: report its error. If every branch rejects the value's type, the
    caller reports the type, listing what each branch expected."""
    first = errors[0] if errors else {}
    loc = tuple(first.get("loc", ()))
    cut = next((i for i, item in enumerate(loc) if is_branch(item)), None)
    if cut is None:
        return first, _param(loc), []
    branches: dict[str, list[dict]] = {}
    for e in errors:
        eloc = tuple(e.get("loc", ()))
        if eloc[:cut] == loc[:cut] and len(eloc) > cut and is_branch(eloc[cut]):
            branches.setdefault(eloc[cut], []).append(e)
    fitting = [errs for errs in branches.values()
               if any(len(e["loc"]) > cut + 1 or not _is_type_error(e) for e in errs)]
    if not fitting:
        return first, _param(loc[:cut]), [errs[0] for errs in branches.values()]
    chosen = min(fitting, key=len)[0]
    return chosen, _param(tuple(x for x in chosen["loc"] if not is_branch(x))), []


def _validation_message(err: dict, param: str | None) -> tuple[str, str]:
    kind = err.get("type", "")
    ctx = dict(err.get("ctx") or {})
    if kind in ("json_invalid", "json_type") or (kind in ("model_attributes_type", "missing") and param is None):
        return ("invalid_json", "We could not parse the JSON body of your request: send a JSON "
                "object with Content-Type: application/json.")
    if kind in PYDANTIC_CODES:
        code, template = PYDANTIC_CODES[kind]
        try:
            return code, template.format(param=param, input=err.get("input"), **ctx)
        except (KeyError, IndexError):
            pass
    if kind.endswith("_type") or kind.endswith("_parsing") or kind in ("model_type", "dict_type", "list_type"):
        got = type(err.get("input")).__name__
        return "invalid_type", f"Invalid type for '{param}': {err.get('msg', '').lower()} (got {got})."
    return "invalid_value", f"Invalid '{param}': {err.get('msg', 'invalid value')}."


def _rixin_cause(exc: Exception) -> RixinError | None:
    """Our error behind FastAPI's generic 'error parsing the body' (maybe inside a task group)."""
    cause = exc.__cause__
    while isinstance(cause, BaseExceptionGroup) and len(cause.exceptions) == 1:
        cause = cause.exceptions[0]
    return cause if isinstance(cause, RixinError) else None


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def rixin_error_response(exc: RixinError, *, close: bool = False) -> JSONResponse:
    """The error as a response; `close` ends the connection after it (the rest of the request
    body was not read, so the connection cannot carry another request)."""
    headers = {"connection": "close"} if close else {}
    if exc.should_retry is not None:
        headers["x-should-retry"] = "true" if exc.should_retry else "false"
    if getattr(exc, "retry_after", None) is not None:
        headers["retry-after"] = str(exc.retry_after)
    return JSONResponse(error_body(exc.message, exc.type, exc.param, exc.code),
                        status_code=exc.status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(RixinError)
    async def _rixin(_request: Request, exc: RixinError):
        return rixin_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError):
        first, param, branches = _pick(exc.errors())
        if branches:
            expected = "; ".join(dict.fromkeys(e.get("msg", "").lower() for e in branches))
            code = "invalid_type"
            message = (f"Invalid type for '{param}': got {type(first.get('input')).__name__} "
                       f"{first.get('input')!r:.80}; expected one of: {expected}.")
        else:
            code, message = _validation_message(first, param)
        if code == "invalid_json":
            param = None
        return JSONResponse(error_body(message, "invalid_request_error", param, code),
                            status_code=400, headers={"x-should-retry": "false"})

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        cause = _rixin_cause(exc)
        if cause is not None:  # e.g. the body limit, hit while FastAPI reads the body
            return rixin_error_response(cause)
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:
            message = f"Unknown request URL: {where}. Check the path; the API lives under /v1."
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "another method")
            message = f"Method not allowed: {where}. This URL accepts {allowed}."
        else:
            message = str(exc.detail)
        return JSONResponse(error_body(message, "invalid_request_error", None, None),
                            status_code=exc.status_code,
                            headers={"x-should-retry": "false", **(exc.headers or {})})

    @app.exception_handler(OSError)
    @app.exception_handler(DBAPIError)
    async def _storage(_request: Request, exc: Exception):
        """A full disk (507) or a store refusing writes (503) that no service translated;
        anything else stays the generic 500 below."""
        fault = storage_fault(exc)
        if fault is None:
            raise exc
        log.warning("storage fault: %s", exc)
        return rixin_error_response(fault)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):
        # Only errors of the middleware itself reach here (api/gate.py answers the others
        # without re-raising, which keeps the connection usable).
        log.exception("unhandled error", exc_info=exc)
        return server_error_response()


def server_error_response() -> JSONResponse:
    return JSONResponse(error_body("The server had an error while processing your request. "
                                   "Retry, and report it if it persists.", "server_error"),
                        status_code=500)
