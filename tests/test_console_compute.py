"""The console's Compute page (admin: who holds, borrows and lends what now, quotas, waiting and
preemption events) and Usage page (tokens per day per model as a chart, tokens and costs; an
admin sees every project, a project key its own), in chromium against a live gateway. Also the
pure attribution of borrowed capacity to lenders (compute/quotas.lending)."""

from __future__ import annotations

import io
import time

import pytest

from conftest import CHAT
from console_support import assert_labelled, shot
from console_support import browser, console  # noqa: F401 (fixtures used by name)
from test_fine_tuning import fact_file
from rixin.compute.policy import Quota, Running
from rixin.compute.quotas import lending

pytestmark = pytest.mark.timeout(600)


def test_borrowed_capacity_is_attributed_to_unreserved_capacity_then_idle_guarantees():
    quotas = {"a": Quota(guaranteed={"GPU": 4}), "b": Quota(guaranteed={"GPU": 2}), "c": Quota()}
    running = [Running("j1", "a", {"GPU": 1}), Running("j2", "c", {"GPU": 3}, borrowed=True),
               Running("j3", "b", {"GPU": 2}), Running("j4", "b", {"GPU": 1}, borrowed=True)]
    holds, loans = lending({"GPU": 8}, quotas, running)
    # 2 GPUs are nobody's guarantee and go first (borrowers by name), then a's 3 idle ones;
    # b's own guarantee is all in use, so it lends nothing
    assert loans == [{"resource": "GPU", "lender": None, "borrower": "b", "amount": 1.0},
                     {"resource": "GPU", "lender": None, "borrower": "c", "amount": 1.0},
                     {"resource": "GPU", "lender": "a", "borrower": "c", "amount": 2.0}]
    assert holds["a"]["GPU"] == {"guaranteed": 4, "in_use": 1, "borrowed": 0, "lent": 2.0}
    assert holds["b"]["GPU"] == {"guaranteed": 2, "in_use": 3, "borrowed": 1, "lent": 0}
    assert holds["c"]["GPU"]["borrowed"] == 3 and sum(l["amount"] for l in loans) == 4


def wait_for(check, what: str, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def contention(server):
    """`lend-X` is guaranteed the gateway's one job slot and leaves it idle; `borrow-X` runs a
    fine-tuning job on it (borrowed) while its second job waits."""
    lender, borrower = f"lend-{server.backend}", f"borrow-{server.backend}"
    key = server.new_key(borrower)
    with server.http() as http:
        assert http.post("/v1/organization/projects", json={"name": lender}).status_code == 200
        slots = http.get("/v1/cluster").json()["limits"]["job_slots"]
        put = http.put(f"/v1/organization/projects/{lender}/quota", json={"guaranteed": {"job_slot": slots}})
        assert put.status_code == 200, put.text
    client = server.client(key)
    training = client.files.create(file=("fact.jsonl", io.BytesIO(fact_file(400))), purpose="fine-tune")
    jobs = [client.fine_tuning.jobs.create(model=CHAT, training_file=training.id, seed=i, method={
        "type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 20, "batch_size": 1}}}).id
        for i in range(slots + 1)]
    try:
        wait_for(lambda: [client.fine_tuning.jobs.retrieve(j).status for j in jobs].count("running") == slots,
                 "the borrower's jobs to run")
        waiting = next(j for j in jobs if client.fine_tuning.jobs.retrieve(j).status == "queued")
        wait_for(lambda: any("Waiting in queue" in e.message
                             for e in client.fine_tuning.jobs.list_events(waiting, limit=50).data), "a waiting event")
        yield lender, borrower, slots
    finally:
        for j in jobs:
            client.fine_tuning.jobs.cancel(j)
        with server.http() as http:
            http.put(f"/v1/organization/projects/{lender}/quota", json={})


def test_compute_page_shows_who_lends_to_whom_and_waiting_jobs(server, console, contention):
    lender, borrower, slots = contention
    page = console.open(server.admin_key, "#/compute")
    page.locator("main h1", has_text="Compute").wait_for()
    panel = page.locator("[data-resource=job_slot]")
    row = lambda project: panel.locator("tr", has=page.locator("td", has_text=project)).first  # noqa: E731
    # columns: project, guaranteed, in use, borrowed, lent to others
    assert row(lender).locator("td").all_inner_texts() == [lender, f"{slots}", "0", "0", f"{slots}"]
    assert row(borrower).locator("td").all_inner_texts() == [borrower, "0", f"{slots}", f"{slots}", "0"]
    loan = page.locator(f"#loans li[data-borrower='{borrower}']")
    assert loan.get_attribute("data-lender") == lender
    assert loan.inner_text() == f"{borrower} borrows {slots} job_slot of {lender}'s idle guarantee"
    quota = page.locator("#quotas tr", has=page.locator("td", has_text=lender)).first
    assert f"job_slot={slots}" in quota.inner_text()
    event = page.locator("#events tr", has=page.locator("td", has_text=borrower)).first
    assert "Waiting in queue" in event.inner_text() and "waiting" in event.locator(".badge").inner_text()
    assert page.locator("#nav-compute").is_visible()
    assert_labelled(page)
    shot(page, "compute")
    # A project key neither sees the link nor the page.
    mine = console.open(server.new_key(f"compute-user-{server.backend}"), "#/compute")
    mine.locator("main h1", has_text="Compute").wait_for()
    assert "needs an admin API key" in mine.locator("main [role=alert]").inner_text()
    assert mine.locator("#nav-compute").is_hidden()


@pytest.fixture(scope="module")
def usage(server):
    """Two chat requests of `usage-X` and one of `usage-other-X`, with a price for the chat model."""
    mine, other = f"usage-{server.backend}", f"usage-other-{server.backend}"
    with server.http() as http:
        assert http.post(f"/v1/organization/prices/{CHAT}",
                         json={"input_per_1m": 3.0, "output_per_1m": 5.0}).status_code == 200
    keys = {mine: server.new_key(mine), other: server.new_key(other)}
    told = {name: [server.client(k).chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": f"Count to {n}."}], max_tokens=5).usage
        for n in range(2 if name == mine else 1)] for name, k in keys.items()}
    return mine, other, keys, {n: sum(u.total_tokens for u in us) for n, us in told.items()}


def test_usage_page_charts_tokens_per_day_per_model_for_a_project_key(server, console, usage):
    mine, other, keys, tokens = usage
    page = console.open(keys[mine], "#/usage")
    page.locator("main h1", has_text=f"Usage of {mine}").wait_for()
    column = page.locator(f"#tokens-chart rect.column[data-series='{CHAT}']")
    assert column.count() == 1 and int(column.get_attribute("data-value")) == tokens[mine]
    rows = page.locator("#usage-table tbody tr")
    assert rows.count() == 1  # its own project only
    cells = rows.first.locator("td").all_inner_texts()
    assert cells[:3] == [mine, CHAT, "2"], cells
    assert int(cells[3].replace(",", "")) + int(cells[5].replace(",", "")) == tokens[mine]
    assert float(cells[6]) > 0
    assert page.locator("select[name=project]").count() == 0
    assert_labelled(page)
    shot(page, "usage")


def test_usage_page_shows_every_project_to_an_admin_and_filters_by_project(server, console, usage):
    mine, other, _, tokens = usage
    page = console.open(server.admin_key, "#/usage")
    page.locator("#usage-table").wait_for()
    table = page.locator("#usage-table")
    for name in (mine, other):
        assert table.locator("tr", has=page.locator("td", has_text=name)).count() >= 1, name
    page.locator("select[name=project]").select_option(label=other)
    page.wait_for_function("() => location.hash.includes('project=')")
    page.locator("#usage-table tbody tr").first.wait_for()
    rows = page.locator("#usage-table tbody tr")
    assert rows.count() == 1 and rows.first.locator("td").first.inner_text() == other
    column = page.locator(f"#tokens-chart rect.column[data-series='{CHAT}']")
    assert int(column.get_attribute("data-value")) == tokens[other]
