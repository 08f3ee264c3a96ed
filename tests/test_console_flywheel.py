"""The console's deployment, logs and flywheel pages in a real browser against the shared live
`rixin up`: promote and roll back, the playground's deployments, log search with feedback, a
flywheel turn, and isolation between projects."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest

from conftest import CHAT
from test_console_evals import EVAL_SET
from console_support import (TURN_WAIT_MS, assert_labelled, go, jsonl, shot)
from console_support import browser, console  # noqa: F401 (fixtures used by name)

pytestmark = pytest.mark.timeout(600)


# ---------------------------------------------------------------- deployments, logs, feedback

CHATS = [("What is the capital of France?", "geo"), ("What is 2 + 2?", "math"), ("Name a colour of the sky.", "geo")]


@pytest.fixture(scope="module")
def fly(server):
    """A project of its own with a second chat model (the bundled GGUF under another id), a
    deployment `support-bot` with full logging, and a few chats through it."""
    from test_deployments import db_rows

    name = f"console-fly-{server.backend}"
    key = server.new_key(name)
    client, http = server.client(key), server.http(key)
    path = db_rows(server, "SELECT path FROM models WHERE id = :id", id=CHAT)[0][0]
    second = f"console-copy-{server.backend}"
    server.offline("models", "add", path, "--id", second, "--project", name)
    r = http.post("/v1/deployments", json={"name": "support-bot", "model": CHAT})
    assert r.status_code == 200, r.text
    ids = []
    for i, (question, topic) in enumerate(CHATS):
        answer = client.chat.completions.create(model="support-bot", messages=[{"role": "user", "content": question}],
                                                max_tokens=8, temperature=0, metadata={"topic": topic},
                                                user=f"user-{i}")
        ids.append(answer.id)
    return SimpleNamespace(name=name, key=key, client=client, http=http, second=second, ids=ids)


def test_deployment_pages_create_promote_and_roll_back(console, fly):
    http = fly.http
    page = console.open(fly.key, "#/deployments")
    page.locator("main h1", has_text="Deployments").wait_for()
    page.locator("#deployments a", has_text="support-bot").wait_for()
    assert_labelled(page)
    page.get_by_label("Deployment name").fill("console-bot")
    page.get_by_label("Target model").select_option(CHAT)
    page.get_by_label("Logging policy").select_option("metadata-only")
    page.get_by_role("button", name="Create deployment").click()
    page.locator("main h1", has_text="Deployment console-bot").wait_for()
    made = http.get("/v1/deployments/console-bot").json()
    assert made["model"] == CHAT and made["logging"] == "metadata-only" and made["version"] == 1
    assert page.locator("#deployment-rollback").is_disabled()  # never switched: nothing to go back to

    # promote: the target switches, the change is recorded with who and why
    page.get_by_label("Model to promote").select_option(fly.second)
    page.get_by_label("Reason").fill("try the copy")
    page.get_by_role("button", name="Promote to this model").click()
    page.wait_for_function(f"() => document.querySelector('#deployment-model').textContent === {json.dumps(fly.second)}")
    me = http.get("/v1/me").json()
    changes = http.get("/v1/deployments/console-bot/changes").json()["data"]
    assert [(c["action"], c["to_model"], c["reason"], c["actor"]) for c in changes] == [
        ("create", CHAT, None, me["key_id"]), ("update", fly.second, "try the copy", me["key_id"])]
    rows = page.locator("#deployment-changes tbody tr")
    assert rows.count() == 2 and "try the copy" in rows.first.inner_text() and "(this key)" in rows.first.inner_text()

    # roll back (confirmed in the dialog): the previous target again
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_label("Reason").fill("the copy is no better")
    page.get_by_role("button", name="Roll back to the previous model").click()
    page.wait_for_function(f"() => document.querySelector('#deployment-model').textContent === {json.dumps(CHAT)}")
    after = http.get("/v1/deployments/console-bot").json()
    assert after["model"] == CHAT and after["version"] == 3
    last = http.get("/v1/deployments/console-bot/changes").json()["data"][-1]
    assert last["action"] == "rollback" and last["reason"] == "the copy is no better"
    assert page.locator("#deployment-changes tbody tr").count() == 3
    assert_labelled(page)
    shot(page, "deployment")
    go(page, "#/deployments", "Deployments")
    assert page.locator("#deployments tbody tr").count() == 2
    shot(page, "deployments")


def test_playground_lists_deployments_and_its_chats_are_logged(console, fly):
    page = console.open(fly.key, "#/playground?model=support-bot")
    page.locator("main h1", has_text="Playground").wait_for()
    assert page.get_by_label("Model", exact=True).input_value() == "support-bot"
    assert page.locator("select[name=model] option[value='support-bot']").inner_text().startswith("support-bot (deployment")
    page.get_by_label("Max tokens").fill("8")
    page.get_by_label("Message", exact=True).fill("Say hello to the playground.")
    page.get_by_label("Message", exact=True).press("Enter")
    page.wait_for_function("() => /finish/.test(document.querySelector('.bubble.assistant .meta')?.textContent || '')",
                           timeout=120_000)
    logged = fly.http.get("/v1/logs", params={"deployment": "support-bot", "q": "hello to the playground"}).json()
    assert len(logged["data"]) == 1 and logged["data"][0]["model"] == CHAT


def test_logs_page_searches_and_takes_feedback(console, fly):
    http = fly.http
    page = console.open(fly.key, "#/logs")
    page.locator("main h1", has_text="Logs").wait_for()
    entries = page.locator("article.log-entry")
    entries.first.wait_for()
    total = len(http.get("/v1/logs", params={"limit": 100}).json()["data"])
    assert entries.count() == total >= 3
    assert_labelled(page)

    # search by deployment and metadata: the two "geo" chats, newest first
    page.get_by_label("Deployment").select_option("support-bot")
    page.get_by_label("Metadata").fill("topic:geo")
    page.get_by_role("button", name="Search").click()
    page.wait_for_function("() => location.hash.includes('metadata=topic')")
    page.wait_for_function("() => document.querySelectorAll('article.log-entry').length === 2")
    assert [e.get_attribute("data-id") for e in entries.all()] == [fly.ids[2], fly.ids[0]]
    # and by text
    page.get_by_label("Text contains").fill("France")
    page.get_by_role("button", name="Search").click()
    page.wait_for_function("() => document.querySelectorAll('article.log-entry').length === 1")
    entry = page.locator(f'article.log-entry[data-id="{fly.ids[0]}"]')
    assert "capital of France" in entry.inner_text()

    # thumbs up from the keyboard, then thumbs down by click; each one lands as feedback
    up = entry.get_by_role("button", name=f"Thumbs up for answer {fly.ids[0]}")
    up.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('[data-role=feedback-summary]').textContent.includes('1 up')")
    assert up.get_attribute("aria-pressed") == "true"
    entry.get_by_role("button", name=f"Thumbs down for answer {fly.ids[0]}").click()
    page.wait_for_function("() => document.querySelector('[data-role=feedback-summary]').textContent.includes('1 down')")
    # correct it: open the box from the keyboard, write, Ctrl+Enter sends
    entry.locator("details summary", has_text="Correct it").focus()
    page.keyboard.press("Enter")
    box = entry.get_by_label(f"Corrected answer for {fly.ids[0]}")
    box.fill("The capital of France is Paris.")
    box.press("Control+Enter")
    page.wait_for_function("() => document.querySelector('[data-role=feedback-summary]').textContent.includes('1 correction')")
    given = http.get("/v1/feedback", params={"completion_id": fly.ids[0]}).json()["data"]
    assert [(f["thumb"], f["correction"]) for f in given] == [
        ("up", None), ("down", None), (None, "The capital of France is Paris.")]
    assert http.get("/v1/feedback", params={"completion_id": fly.ids[1]}).json()["data"] == []
    # the state survives a reload
    page.reload()
    page.locator(f'article.log-entry[data-id="{fly.ids[0]}"] [data-role=feedback-summary]',
                 has_text="1 correction").wait_for()
    shot(page, "logs")

    # paged two by two, with the cursor
    go(page, "#/logs", "Logs")
    entries.first.wait_for()
    page.get_by_label("Per page").select_option("2")
    page.wait_for_function("() => document.querySelector('#logs-range').textContent.startsWith('1–2')")
    page.get_by_role("button", name="Next page of logs").click()
    page.wait_for_function("() => document.querySelector('#logs-range').textContent.startsWith('3–')")
    seen = [e.get_attribute("data-id") for e in entries.all()]
    page.get_by_role("button", name="Previous page of logs").click()
    page.wait_for_function("() => document.querySelector('#logs-range').textContent.startsWith('1–2')")
    assert not set(seen) & {e.get_attribute("data-id") for e in entries.all()}
    # a time range after every request: nothing
    page.get_by_label("Since").fill("2999-01-01T00:00")
    page.get_by_role("button", name="Search").click()
    page.wait_for_selector("main >> text=No logged requests match.")


@pytest.mark.timeout(1800)  # a real fine-tune and eval run on a shared 2-core machine
def test_deployment_page_runs_a_flywheel_turn(console, fly):
    """Settings through the form, a turn started by its button: the corrections given as feedback
    become a dataset version, a tiny fine-tune and an eval run, linked from the turn's row
    with the gate's decision and why (a margin of 0.5 that a 1-step candidate is not expected to
    clear; whatever the gate says, the page must say the same)."""
    http = fly.http
    eval_file = fly.client.files.create(file=("gate.jsonl", io.BytesIO(jsonl(EVAL_SET))), purpose="evals").id
    # fine-tuning needs 10 examples: ten more chats through the deployment, each corrected
    for i in range(10):
        answer = fly.client.chat.completions.create(
            model="support-bot", messages=[{"role": "user", "content": f"What is {i} + 1?"}], max_tokens=4,
            temperature=0, metadata={"topic": "sums"})
        r = http.post("/v1/feedback", json={"completion_id": answer.id, "correction": f"{i} + 1 = {i + 1}."})
        assert r.status_code == 200, r.text
    r = http.post("/v1/deployments/support-bot", json={"flywheel": {"hyperparameters": {
        "n_epochs": 1, "batch_size": 8, "packing": False, "max_seq_length": 96, "replay": 0}}})
    assert r.status_code == 200, r.text
    page = console.open(fly.key, "#/deployments/support-bot")
    page.locator("main h1", has_text="Deployment support-bot").wait_for()
    page.locator("#turns").wait_for()
    assert "No turns yet" in page.locator("#turns").inner_text()
    page.get_by_label("Gate eval set").select_option(eval_file)
    page.get_by_label("Gate graders (JSON list)").fill('[{"type": "includes"}]')
    page.get_by_label("Promotion margin").fill("0.5")
    page.get_by_label("Minimum examples").fill("10")
    page.get_by_role("button", name="Save flywheel settings").click()
    page.locator("#banner", has_text="Flywheel settings of support-bot saved").wait_for()
    settings = http.get("/v1/deployments/support-bot").json()["flywheel"]
    assert settings["eval_file_id"] == eval_file and settings["graders"] == [{"type": "includes"}]
    assert settings["margin"] == 0.5 and settings["min_examples"] == 10
    assert settings["hyperparameters"]["n_epochs"] == 1  # kept: the form sends the settings it does not show
    assert_labelled(page)

    page.get_by_role("button", name="Start a flywheel turn").click()
    page.locator("#turns tbody tr").first.wait_for()
    turn_id = page.locator("#turns tbody tr td code").first.inner_text()
    page.wait_for_function("() => !/running/.test(document.querySelector('#turns tbody tr td:nth-child(2)').textContent)",
                           timeout=TURN_WAIT_MS, polling=1000)
    turn = http.get(f"/v1/deployments/support-bot/flywheel/turns/{turn_id}").json()
    assert turn["status"] in ("promoted", "kept"), turn["decision"]
    row = page.locator("#turns tbody tr").first
    assert row.locator(".badge").inner_text() == turn["status"]
    assert turn["decision"]["why"] in row.inner_text()
    for href in (f"#/training/{turn['fine_tune_job_id']}", f"#/evals/{turn['eval_run_id']}"):
        assert row.locator(f'a[href="{href}"]').count() == 1
    assert row.locator(f'a:has-text("{turn["dataset_version_id"]}")').count() == 1
    model = http.get("/v1/deployments/support-bot").json()["model"]
    assert model == (turn["candidate_model"] if turn["status"] == "promoted" else CHAT)
    page.wait_for_function(f"() => document.querySelector('#deployment-model').textContent === {json.dumps(model)}")
    row.scroll_into_view_if_needed()
    shot(page, "deployment-flywheel")
    # the linked eval run opens, with the candidate against the current model
    row.locator(f'a[href="#/evals/{turn["eval_run_id"]}"]').click()
    page.locator("#run-table tbody tr").first.wait_for()
    assert page.locator("#run-table tbody tr").count() == 2


def test_another_project_sees_no_deployments_or_logs(server, console, fly):
    page = console.open(server.new_key(f"console-other-{server.backend}"), "#/deployments")
    page.wait_for_selector("main >> text=No deployments yet")
    go(page, "#/logs", "Logs")
    page.wait_for_selector("main >> text=No logged requests match.")
    assert not any(i in page.locator("main").inner_text() for i in fly.ids)
    go(page, "#/deployments/support-bot", "Could not load deployment")
    assert "No such deployment" in page.locator("main [role=alert]").inner_text()
