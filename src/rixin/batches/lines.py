"""A batch's input lines and its answers log.

Input: one JSON object per line, {"custom_id", "method": "POST", "url": <the batch's endpoint>,
"body": {...}}. A line that is not one becomes a line of the error file (it is never sent).

Answers: every finished line is appended to the job's answers.jsonl as it finishes ({"index",
"ok", "line"}: `line` is the output or error file's line), so a resumed job skips what was
answered. A write torn by a crash is cut off when the log is read again."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/completions")
MAX_LINES = 50_000  # OpenAI's limit per batch


@dataclass(frozen=True)
class Request:
    index: int
    custom_id: str
    body: dict


def error_line(custom_id: str | None, code: str, message: str, *, status: int | None = None,
               body: dict | None = None) -> dict:
    """A line of the error file: OpenAI's shape, with the answer when there was one."""
    response = {"status_code": status, "request_id": None, "body": body} if status else None
    return {"id": "batch_req_" + secrets.token_hex(12), "custom_id": custom_id, "response": response,
            "error": None if response else {"code": code, "message": message}}


def output_line(custom_id: str, status: int, body: dict) -> dict:
    return {"id": "batch_req_" + secrets.token_hex(12), "custom_id": custom_id,
            "response": {"status_code": status, "request_id": body.get("id"), "body": body}, "error": None}


def _check(index: int, raw: bytes, endpoint: str, seen: set[str]) -> Request:
    """The line as a request, or ValueError with what is wrong (for the error file)."""
    try:
        obj = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"line {index + 1} is not valid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise ValueError(f"line {index + 1} is not a JSON object")
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise ValueError(f"line {index + 1} needs a 'custom_id' string")
    if custom_id in seen:
        raise ValueError(f"line {index + 1}: custom_id {custom_id!r} is used by an earlier line; "
                         "every custom_id must be unique")
    seen.add(custom_id)
    if obj.get("method") != "POST":
        raise ValueError(f"line {index + 1}: 'method' must be 'POST'")
    if obj.get("url") != endpoint:
        raise ValueError(f"line {index + 1}: 'url' is {obj.get('url')!r}, but this batch's endpoint is "
                         f"{endpoint!r}; one batch sends to one endpoint")
    if not isinstance(obj.get("body"), dict):
        raise ValueError(f"line {index + 1} needs a 'body' object (the request)")
    return Request(index, custom_id, obj["body"])


def read_requests(path: Path, endpoint: str) -> tuple[list[Request], dict[int, dict]]:
    """(the requests to send, error-file lines of the invalid ones by line index). Read a
    line at a time: an input file may be far larger than memory would like."""
    requests, invalid, seen = [], {}, set()
    with path.open("rb") as f:
        index = 0
        for raw in f:
            if not raw.strip():
                continue
            if index >= MAX_LINES:
                raise ValueError(f"The input file holds more than {MAX_LINES} requests; split it into "
                                 "several batches.")
            try:
                requests.append(_check(index, raw, endpoint, seen))
            except ValueError as e:
                custom_id = _custom_id(raw)
                invalid[index] = error_line(custom_id, "invalid_request", str(e))
            index += 1
    return requests, invalid


def _custom_id(raw: bytes) -> str | None:
    try:
        value = json.loads(raw).get("custom_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


class Answers:
    """The append-only log of finished lines (one writer: the job's thread)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.done: dict[int, bool] = {}  # index → ok
        self._load()
        self._file = path.open("ab")

    def _load(self) -> None:
        if not self.path.exists():
            return
        good = 0
        with self.path.open("rb") as f:
            for raw in f:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    break  # a line torn by a crash: everything after it goes
                if not raw.endswith(b"\n"):
                    break
                self.done[entry["index"]] = entry["ok"]
                good += len(raw)
        if good != self.path.stat().st_size:
            os.truncate(self.path, good)

    def add(self, index: int, ok: bool, line: dict) -> None:
        # flushed, not fsynced: a killed gateway loses nothing; only a machine crash can lose
        # the last lines, which the resumed job then answers again
        self._file.write(json.dumps({"index": index, "ok": ok, "line": line}).encode() + b"\n")
        self._file.flush()
        self.done[index] = ok

    def counts(self, total: int) -> dict:
        completed = sum(self.done.values())
        return {"total": total, "completed": completed, "failed": len(self.done) - completed}

    def lines(self, ok: bool):
        """The output (ok) or error lines, in input order, as JSONL bytes; only offsets are
        held (answers, embeddings above all, may be large)."""
        self._file.flush()
        offsets, position = [], 0
        with self.path.open("rb") as f:
            for raw in f:
                entry = json.loads(raw)
                if entry["ok"] == ok:
                    offsets.append((entry["index"], position))
                position += len(raw)
            for _, offset in sorted(offsets):
                f.seek(offset)
                yield json.dumps(json.loads(f.readline())["line"]).encode() + b"\n"

    def close(self) -> None:
        self._file.close()
