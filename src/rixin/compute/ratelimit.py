"""Requests and tokens per minute, per project and model, held exactly in one gateway.

Each (project, model) keeps a sliding one-minute log: the times of the requests it admitted and
the tokens its answered requests used. A request is admitted while fewer than the limit's
requests were admitted in the last 60 s and the tokens of the last 60 s are under the token
limit (tokens are known only once an answer is ready, so a request that starts under the limit
may end above it; the next one waits). Admission is synchronous under a lock, with no await
inside: 16 concurrent clients against 10 requests per minute get exactly 10 answers.

The limits are admin-set (`rate_limits` table) and cached here; a model without a row gets the
defaults. The log is per gateway process and starts empty after a restart."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from sqlalchemy import select

from rixin.errors import RateLimitExceeded
from rixin.store.db import Database
from rixin.store.schema import RateLimit

WINDOW_S = 60.0
DEFAULT_REQUESTS = 10_000
DEFAULT_TOKENS = 10_000_000


@dataclass(frozen=True)
class Limits:
    requests: int
    tokens: int


@dataclass
class Window:
    """What one (project, model) did in the last minute."""

    requests: deque = field(default_factory=deque)  # admission times
    tokens: deque = field(default_factory=deque)  # (time, tokens) of answered requests
    token_sum: int = 0

    def expire(self, now: float) -> None:
        while self.requests and self.requests[0] <= now - WINDOW_S:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= now - WINDOW_S:
            self.token_sum -= self.tokens.popleft()[1]


@dataclass(frozen=True)
class Admitted:
    """The state after admitting one request: what OpenAI's x-ratelimit-* headers say."""

    limits: Limits
    remaining_requests: int
    remaining_tokens: int
    reset_requests_s: float
    reset_tokens_s: float

    def headers(self) -> list[tuple[bytes, bytes]]:
        values = {"limit-requests": str(self.limits.requests),
                  "remaining-requests": str(self.remaining_requests),
                  "reset-requests": duration(self.reset_requests_s),
                  "limit-tokens": str(self.limits.tokens),
                  "remaining-tokens": str(self.remaining_tokens),
                  "reset-tokens": duration(self.reset_tokens_s)}
        return [(f"x-ratelimit-{k}".encode(), v.encode()) for k, v in values.items()]


def duration(seconds: float) -> str:
    """OpenAI's spelling of a reset time: 1s, 6m0s, 250ms."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(seconds // 60)}m{int(seconds % 60)}s"


class RateLimiter:
    def __init__(self, db: Database):
        self.db = db
        self.lock = threading.Lock()
        self.windows: dict[tuple[str, str], Window] = {}
        self._limits: dict[tuple[str, str], Limits] | None = None

    @property
    def loaded(self) -> bool:
        return self._limits is not None

    def load(self) -> None:
        """Read the admin-set limits (once; `set_limit` keeps the cache current)."""
        with self.db.session() as s:
            rows = list(s.scalars(select(RateLimit)))
        self._limits = {(r.project_id, r.model): _limits(r) for r in rows}

    def limits(self, project_id: str, model: str) -> Limits:
        if self._limits is None:
            self.load()
        return self._limits.get((project_id, model)) or Limits(DEFAULT_REQUESTS, DEFAULT_TOKENS)

    def admit(self, project_id: str, model: str, now: float | None = None) -> Admitted:
        """Count one request, or raise RateLimitExceeded (429 with retry-after)."""
        limits = self.limits(project_id, model)
        now = time.monotonic() if now is None else now
        with self.lock:
            window = self.windows.setdefault((project_id, model), Window())
            window.expire(now)
            if len(window.requests) >= limits.requests:
                wait = window.requests[0] + WINDOW_S - now
                raise RateLimitExceeded(
                    f"Rate limit reached for {model} in project {project_id}: "
                    f"{limits.requests} requests per minute. Retry after {math.ceil(wait)} s, "
                    "or ask an admin to raise max_requests_per_1_minute.", retry_after=math.ceil(wait))
            if window.token_sum >= limits.tokens:
                wait = window.tokens[0][0] + WINDOW_S - now
                raise RateLimitExceeded(
                    f"Rate limit reached for {model} in project {project_id}: "
                    f"{limits.tokens} tokens per minute (used {window.token_sum}). Retry after "
                    f"{math.ceil(wait)} s, or ask an admin to raise max_tokens_per_1_minute.",
                    retry_after=math.ceil(wait))
            window.requests.append(now)
            return _state(limits, window, now)

    def peek(self, project_id: str, model: str) -> Admitted:
        """The state without counting a request (the headers of a refusal)."""
        limits, now = self.limits(project_id, model), time.monotonic()
        with self.lock:
            window = self.windows.setdefault((project_id, model), Window())
            window.expire(now)
            return _state(limits, window, now)

    def add_tokens(self, project_id: str, model: str, tokens: int, now: float | None = None) -> None:
        """Count an answered request's tokens against its minute."""
        if tokens <= 0:
            return
        now = time.monotonic() if now is None else now
        with self.lock:
            window = self.windows.setdefault((project_id, model), Window())
            window.tokens.append((now, tokens))
            window.token_sum += tokens

    def list_limits(self, project_id: str, models: list[str]) -> dict[str, Limits]:
        """Every model's limits for a project: the admin-set ones and the defaults."""
        if self._limits is None:
            self.load()
        names = sorted(set(models) | {m for (p, m) in self._limits if p == project_id})
        return {m: self.limits(project_id, m) for m in names}

    def set_limit(self, project_id: str, model: str, requests: int | None, tokens: int | None) -> Limits:
        """Change a project's limit for a model (a field left None keeps its value)."""
        with self.db.session() as s:
            row = s.get(RateLimit, (project_id, model))
            if row is None:
                row = RateLimit(project_id=project_id, model=model)
                s.add(row)
            if requests is not None:
                row.max_requests_per_1_minute = requests
            if tokens is not None:
                row.max_tokens_per_1_minute = tokens
            limits = _limits(row)
        if self._limits is None:
            self.load()
        self._limits[(project_id, model)] = limits
        return limits


def _state(limits: Limits, window: Window, now: float) -> Admitted:
    return Admitted(limits, max(0, limits.requests - len(window.requests)),
                    max(0, limits.tokens - window.token_sum),
                    window.requests[0] + WINDOW_S - now if window.requests else 0.0,
                    window.tokens[0][0] + WINDOW_S - now if window.tokens else 0.0)


def _limits(row: RateLimit) -> Limits:
    return Limits(row.max_requests_per_1_minute or DEFAULT_REQUESTS,
                  row.max_tokens_per_1_minute or DEFAULT_TOKENS)
