"""Integer parameters with the bounds the storage can hold, shared by the routers.

Without them a huge value passes validation and fails deep down (a datetime out of range, an
integer SQLite or PostgreSQL cannot bind) as a 500; with them it is a 400 that names the
parameter and the range."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import BeforeValidator, Field, StrictInt

# Unix seconds from 1970 to the end of year 9999: what a datetime can hold.
MAX_UNIX_SECONDS = 253402300799
# PostgreSQL's INTEGER (a version number is stored in one).
MAX_INT32 = 2**31 - 1
# A row offset that stays inside a signed 64-bit integer after a page is added to it.
MAX_OFFSET = 2**62



def _whole_number(value):
    """JSON Schema counts 140.0 as an integer (the OpenAPI document says "integer"), pydantic's
    strict int does not: take a whole float as its int; 1.5, "10" and true stay errors."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer in a JSON body: an int or a whole float, never a string or a boolean.
Integer = Annotated[StrictInt, BeforeValidator(_whole_number)]

UnixSeconds = Annotated[Integer, Field(ge=0, le=MAX_UNIX_SECONDS,
                                         description="Unix seconds (0 to 253402300799).")]


def since_query(description: str):
    return Query(None, ge=0, le=MAX_UNIX_SECONDS, description=description)


def offset_query():
    return Query(0, ge=0, le=MAX_OFFSET, description="Items to skip.")


def version_path():
    return Path(..., ge=1, le=MAX_INT32, description="Version number (1, 2, ...).")
