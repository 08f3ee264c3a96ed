"""The pieces of compute/ in-process (fast): the sliding one-minute window, OpenAI's spelling of
reset times, audit event types, costs, and the meter's exactly-once rows."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from rixin.compute.audit import event_type
from rixin.compute.budget import Rates
from rixin.compute.controls import Controls
from rixin.compute.ratelimit import RateLimiter, duration
from rixin.errors import InsufficientQuota, RateLimitExceeded
from rixin.store.db import Database
from rixin.store.schema import UsageRecord
from rixin.store.tenancy import Caller, Tenancy


@pytest.fixture()
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'rixin.db'}")
    database.migrate()
    yield database
    database.dispose()


def test_window_admits_exactly_the_limit_and_slides(db):
    pid = Tenancy(db).ensure_project("p").id
    limiter = RateLimiter(db)
    limiter.set_limit(pid, "m", 3, None)
    states = [limiter.admit(pid, "m", now=100.0 + i) for i in range(3)]
    assert [s.remaining_requests for s in states] == [2, 1, 0]
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.admit(pid, "m", now=110.0)
    assert refused.value.retry_after == 50  # the first admission leaves the window at 160
    assert refused.value.code == "rate_limit_exceeded"
    assert limiter.admit(pid, "m", now=160.5).remaining_requests == 0  # one left the window
    assert limiter.admit(pid, "other", now=110.0).limits.requests == 10_000  # per model; default


def test_token_limit_counts_answered_tokens_for_a_minute(db):
    pid = Tenancy(db).ensure_project("p").id
    limiter = RateLimiter(db)
    limiter.set_limit(pid, "m", None, 100)
    limiter.admit(pid, "m", now=0.0)
    limiter.add_tokens(pid, "m", 120, now=1.0)
    with pytest.raises(RateLimitExceeded):
        limiter.admit(pid, "m", now=30.0)
    assert limiter.admit(pid, "m", now=61.5).remaining_tokens == 100


def test_reset_durations_are_spelled_like_openai():
    assert [duration(s) for s in (0, 0.25, 1, 6.5, 60, 361)] == ["0s", "250ms", "1s", "6.5s", "1m0s", "6m1s"]


def test_audit_event_types_name_the_resource_and_the_action():
    assert event_type("POST", "/v1/organization/projects") == "project.created"
    assert event_type("POST", "/v1/organization/projects/{project_id}/api_keys") == "api_key.created"
    assert event_type("DELETE", "/v1/organization/projects/{project_id}/api_keys/{key_id}") == "api_key.deleted"
    assert event_type("POST", "/v1/organization/projects/{project_id}/rate_limits/{rate_limit_id}") == \
        "rate_limit.updated"
    assert event_type("POST", "/v1/deployments/{name}/rollback") == "deployment.rollback"


def test_cached_input_is_billed_at_its_own_rate():
    assert Rates(2.0, 0.5, 8.0).cost(1_000_000, 400_000, 500_000) == pytest.approx(1.2 + 0.2 + 4.0)


def test_meter_writes_each_ticket_once_and_the_budget_sees_it(db):
    pid = Tenancy(db).ensure_project("p").id
    controls = Controls(db)
    controls.budgets.set_price("m", Rates(1e6, 1e6, 1e6))  # $1 a token
    controls.budgets.set_budget(pid, 10.0)
    caller = Caller(pid, "p", "key-1", is_admin=False)
    controls.load(pid)
    ticket, _ = controls.admit(caller, "m", "completions")
    ticket.take_usage({"prompt_tokens": 7, "completion_tokens": 4})
    controls.meter.record(ticket).result(timeout=30)
    controls.close()
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(UsageRecord)) == 1
        row = s.scalar(select(UsageRecord))
    assert (row.input_tokens, row.output_tokens, row.api_key_id, row.kind) == (7, 4, "key-1", "completions")
    with pytest.raises(InsufficientQuota):  # $11 spent of $10
        controls.admit(caller, "m", "completions")
    again = Controls(db)  # a restarted gateway sums the month from the table
    again.load(pid)
    with pytest.raises(InsufficientQuota):
        again.admit(caller, "m", "completions")
