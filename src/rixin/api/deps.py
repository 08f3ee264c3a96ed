"""Dependencies shared by the routers: the platform and the authenticated caller."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from rixin.errors import PermissionDenied
from rixin.platform import Platform
from rixin.store.tenancy import Caller


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


async def get_caller(request: Request) -> Caller:
    """The caller api/gate.py authenticated (every /v1 route), else authenticate here."""
    caller = request.scope.get("state", {}).get("caller")
    if caller is not None:
        return caller
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip() if scheme.lower() == "bearer" else ""
    caller = await run_in_threadpool(get_platform(request).tenancy.authenticate, key or None)
    request.state.caller = caller
    return caller


async def get_admin(request: Request) -> Caller:
    caller = await get_caller(request)
    if not caller.is_admin:
        raise PermissionDenied("This route needs an admin API key (RIXIN_ADMIN_KEY or the key "
                               "printed by the first `rixin up`).")
    return caller
