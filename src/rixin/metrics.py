"""Prometheus metrics of the gateway, in their own registry (served at GET /metrics)."""

from __future__ import annotations

from contextvars import ContextVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("rixin_requests_total", "HTTP requests answered.",
                   ["route", "method", "status"], registry=REGISTRY)
LATENCY = Histogram("rixin_request_duration_seconds", "Time to the full answer, per route.",
                    ["route"], registry=REGISTRY,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
TTFT = Histogram("rixin_time_to_first_token_seconds", "Time from request to the first generated text.",
                 ["model"], registry=REGISTRY,
                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
TOKENS_IN = Counter("rixin_prompt_tokens_total", "Prompt tokens processed.", ["model"], registry=REGISTRY)
TOKENS_OUT = Counter("rixin_completion_tokens_total", "Tokens generated.", ["model"], registry=REGISTRY)
QUEUE_DEPTH = Gauge("rixin_engine_queue_depth", "Requests running or waiting per engine.",
                    ["model"], registry=REGISTRY)
ENGINE_FAILURES = Counter("rixin_engine_failures_total", "Requests that met a dead engine replica.",
                          ["model"], registry=REGISTRY)

# The token tally of the model request in flight (compute/metering.py's Ticket, set by the
# gateway, api/gate.py): the generation loop adds each choice's final counts next to the
# counters above, so a stream is metered without the serving code knowing about metering.
REQUEST_TOKENS: ContextVar = ContextVar("rixin_request_tokens", default=None)


def count_request_tokens(prompt_tokens: int, completion_tokens: int) -> None:
    tally = REQUEST_TOKENS.get()
    if tally is not None:
        tally.add(prompt_tokens, completion_tokens)
