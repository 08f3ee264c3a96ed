"""The console's evaluation pages in a real browser against the shared live `rixin up`: a run's
comparison, starting a run and charting scores over time, and isolation between projects."""

from __future__ import annotations

import io
import json
import re
import time
from types import SimpleNamespace

import pytest

from conftest import CHAT
from console_support import (JOB_WAIT_MS, TERMINAL, assert_labelled, go, jsonl, shot)
from console_support import browser, console  # noqa: F401 (fixtures used by name)

pytestmark = pytest.mark.timeout(600)


# ---------------------------------------------------------------- evaluations

EVAL_SET = [
    {"input": "What is the capital of France? Answer in one word.", "ideal": "Paris"},
    {"input": "What is 2 + 2? Answer with a number.", "ideal": "4"},
    {"input": "Name a primary color.", "ideal": ["red", "blue", "yellow"], "id": "color"},
]
TERSE = {"model": CHAT, "name": "terse", "system": "Answer with one word only."}
EVAL_GRADERS = [{"type": "includes"}, {"type": "exact_match"}]


def wait_run(http, run_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = http.get(f"/v1/evals/runs/{run_id}").json()
        if run["status"] in TERMINAL:
            return run
        time.sleep(0.5)
    raise AssertionError(f"eval run {run_id} did not finish: {run}")


@pytest.fixture(scope="module")
def evals(server):
    """A project of its own with a 3-item eval set and a finished run comparing the bundled
    model with a terse-prompted variant of itself."""
    name = f"console-evals-{server.backend}"
    key = server.new_key(name)
    client, http = server.client(key), server.http(key)
    file_id = client.files.create(file=("capitals.jsonl", io.BytesIO(jsonl(EVAL_SET))), purpose="evals").id
    r = http.post("/v1/evals/runs", json={"name": "variant", "eval_file_id": file_id, "models": [CHAT, TERSE],
                                          "graders": EVAL_GRADERS, "max_tokens": 8})
    assert r.status_code == 200, r.text
    run = wait_run(http, r.json()["id"])
    assert run["status"] == "succeeded", run
    items = http.get(f"/v1/evals/runs/{run['id']}/items", params={"limit": 100}).json()["data"]
    return SimpleNamespace(name=name, key=key, http=http, file_id=file_id, run=run, items=items)


def test_eval_run_page_shows_the_comparison(console, evals):
    run, items = evals.run, evals.items
    page = console.open(evals.key, f"#/evals/{run['id']}")
    page.locator("#run-items tbody tr").first.wait_for()
    assert page.locator("#run-summary .badge").inner_text() == "succeeded"
    # models × graders: one row per model, the means the summary holds
    rows = page.locator("#run-table tbody tr")
    assert rows.count() == 2
    terse = rows.filter(has_text="terse").locator("td")
    assert terse.nth(1).inner_text() == f"{run['summary']['models']['terse']['mean']:.3f}"
    assert page.locator("#run-table th", has_text="exact_match").count() == 1
    # the difference with its interval, drawn where the API puts it
    diff = run["summary"]["diff"]
    interval = page.locator("#run-diff svg.interval-chart g.interval")
    assert interval.count() == 1
    assert float(interval.get_attribute("data-low")) == pytest.approx(diff["ci_low"])
    assert float(interval.get_attribute("data-high")) == pytest.approx(diff["ci_high"])
    assert float(interval.get_attribute("data-mean")) == pytest.approx(diff["mean"])
    wtl = page.locator("#run-wtl dd").all_inner_texts()
    assert wtl == [str(diff["wins"]), str(diff["ties"]), str(diff["losses"])]
    # every item with both outputs, the difference cell highlighted by its sign
    assert page.locator("#items-range").inner_text() == "1–3 of 3"
    for i, item in enumerate(items):
        row = page.locator("#run-items tbody tr").nth(i)
        text = row.inner_text()
        for model in (CHAT, "terse"):
            assert item["outputs"][model]["output"].strip()[:20] in text
        cls = row.locator("td").last.get_attribute("class") or ""
        expected = "diff-pos" if item["diff"] > 0 else "diff-neg" if item["diff"] < 0 else None
        assert (expected in cls) if expected else ("diff-" not in cls), (item["diff"], cls)
    assert_labelled(page)
    shot(page, "eval-run")
    # paged: two per page
    page.get_by_label("Items per page").select_option("2")
    page.wait_for_function("() => document.querySelector('#items-range').textContent === '1–2 of 3'")
    page.get_by_role("button", name="Next page of items").click()
    page.wait_for_function("() => document.querySelector('#items-range').textContent === '3–3 of 3'")
    assert page.locator("#run-items tbody tr").count() == 1
    assert "color" in page.locator("#run-items tbody tr").inner_text()


def test_evals_page_starts_a_run_and_charts_scores_over_time(console, evals):
    page = console.open(evals.key, "#/evals")
    page.locator("main h1", has_text="Evaluations").wait_for()
    page.get_by_role("link", name=evals.run["id"]).wait_for()
    assert page.locator("#evals-over-time svg").get_attribute("data-points") == "2"  # one run, two models
    page.get_by_label("Run name").fill("from the console")
    page.get_by_label("Eval set", exact=True).select_option(evals.file_id)
    page.get_by_label("Models").select_option([CHAT])
    page.get_by_label("Max tokens").fill("8")
    assert json.loads(page.get_by_label("Graders (JSON list)").input_value()) == EVAL_GRADERS
    # the hint lists the registered graders (GET /v1/evals/graders) with their required keys
    hint = page.locator("#" + page.get_by_label("Graders (JSON list)").get_attribute("aria-describedby"))
    assert "regex (pattern)" in hint.inner_text() and "model_graded (rubric)" in hint.inner_text()
    assert_labelled(page)
    page.get_by_role("button", name="Start eval run").click()
    page.wait_for_url(re.compile(r".*#/evals/evalrun"))
    run_id = page.url.split("#/evals/")[1]
    page.locator("#run-summary .badge", has_text="succeeded").wait_for(timeout=JOB_WAIT_MS)
    run = evals.http.get(f"/v1/evals/runs/{run_id}").json()
    assert run["name"] == "from the console" and run["models"] == [CHAT] and run["status"] == "succeeded"
    assert run["eval_file_id"] == evals.file_id and run["graders"] == EVAL_GRADERS
    assert page.locator("#run-table tbody tr").count() == 1 and page.locator("#run-diff").count() == 0
    # the greedy outputs are the same as the first run's for the same model
    assert page.locator("#run-items tbody tr").count() == 3

    go(page, f"#/evals?set={evals.file_id}", "Evaluations")
    links = page.locator("#eval-runs tbody tr td:first-child a")
    assert links.all_inner_texts() == [run_id, evals.run["id"]]  # newest first
    # the bundled model's mean in both runs, the variant's in the first
    chart = page.locator("#evals-over-time svg")
    assert chart.get_attribute("data-points") == "3"
    assert chart.locator("polyline").count() == 2
    shot(page, "evals")
    # bad graders JSON is a clear message, no request
    page.get_by_label("Graders (JSON list)").fill("[{oops")
    page.get_by_role("button", name="Start eval run").click()
    page.locator("#banner", has_text="Graders are not valid JSON").wait_for()
    assert len(evals.http.get("/v1/evals/runs").json()["data"]) == 2


def test_another_project_sees_no_eval_runs(server, console, evals):
    page = console.open(server.new_key(f"console-other-{server.backend}"), "#/evals")
    page.locator("main h1", has_text="Evaluations").wait_for()
    page.wait_for_selector("main >> text=No eval runs yet")
    assert evals.run["id"] not in page.locator("main").inner_text()
    go(page, f"#/evals/{evals.run['id']}", "Could not load eval run")
    assert "No such eval run" in page.locator("main [role=alert]").inner_text()


