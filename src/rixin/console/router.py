"""Serves the console: `/` (index.html) and `/console/static/<path>`.

No authentication here: the files are public and hold no data; the page calls the public API
with `Authorization: Bearer <key>`. Files are read from the package on each request (they are
small) and revalidated by ETag, so an upgraded package never serves a stale script.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from rixin.errors import NotFound

STATIC = (Path(__file__).parent / "static").resolve()
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
    ".json": "application/json",
}
# Everything the page loads comes from this origin: the console works offline, and no script
# from elsewhere can read the key the user typed.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")

router = APIRouter(include_in_schema=False)


def static_file(request: Request, relative: str) -> Response:
    missing = NotFound(f"No such console file: {relative!r}")
    if "\x00" in relative:  # the OS refuses such a path; it names no file
        raise missing
    path = (STATIC / relative).resolve()
    media_type = TYPES.get(path.suffix)
    if not path.is_relative_to(STATIC) or not path.is_file() or media_type is None:
        raise missing
    try:
        body = path.read_bytes()
    except OSError:
        raise missing from None
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if path.suffix == ".html":
        headers.update({"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer"})
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.api_route("/", methods=["GET", "HEAD"])
async def index(request: Request) -> Response:
    return static_file(request, "index.html")


@router.api_route("/console/static/{relative:path}", methods=["GET", "HEAD"])
async def static(request: Request, relative: str) -> Response:
    return static_file(request, relative)
