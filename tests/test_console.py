"""The web console in a real browser (Debian's chromium driven by Playwright) against a live
`rixin up`: sign-in and clear errors for wrong or revoked keys, every page, the review queue by
keyboard, a streamed playground reply, a fine-tuning job page whose loss chart grows while the
job runs, the lineage graph, one project never seeing another's data, labelled controls, and
only local assets. Each page's screenshot is written to docs/screenshots/<page>.png.

The gateway runs one job at a time (job_slots = 1), so the quick kNN labeling job runs first;
the fine-tuning job starts next and trains while the other tests run; its page is opened the
moment it is created, in a tab of its own that records the chart's point count over time.
"""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest

from conftest import CHAT, ROOT
from test_fine_tuning import fact_file
from test_label import SEEDS, sentences
from console_support import (
    GREW_OR_ENDED, GREW_WHILE_RUNNING, JOB_WAIT_MS, SAMPLER, TERMINAL, assert_labelled, go, jsonl, shot, wait_job)
from console_support import browser, console  # noqa: F401 (fixtures used by name)

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def world(server, console):
    """Project alpha with a chat dataset, a labelled dataset whose items wait for review, and a
    fine-tuning job whose page is open (and sampled) from the moment it was created."""
    name = f"console-{server.backend}"
    key = server.new_key(name)
    client, http = server.client(key), server.http(key)
    chats = [{"messages": [{"role": "user", "content": f"Question {i}?"},
                           {"role": "assistant", "content": f"Answer number {i}."}]} for i in range(12)]
    chat_file = client.files.create(file=("chats.jsonl", io.BytesIO(jsonl(chats))), purpose="user_data").id
    chat_ds = http.post("/v1/datasets", json={"name": "console-chats", "files": [chat_file]}).json()
    text_file = client.files.create(file=("sentiment.jsonl", io.BytesIO(jsonl(
        [{"text": s["text"]} for s in sentences(6)]))), purpose="user_data").id
    sentiment = http.post("/v1/datasets", json={"name": "console-sentiment", "files": [text_file]}).json()
    # k=4 over two seeds per label: every vote is split, so every item goes to review
    task = {"type": "knn", "labels": ["positive", "negative"], "seeds": SEEDS, "k": 4,
            "confidence_threshold": 1.0, "output_field": "sentiment"}
    label_job = http.post(f"/v1/datasets/{sentiment['id']}/label", json={"task": task}).json()
    assert wait_job(http, f"/v1/jobs/{label_job['id']}")["status"] == "succeeded"

    training = client.files.create(file=("fact.jsonl", io.BytesIO(fact_file(12))), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=CHAT, training_file=training.id, suffix="console", method={
        "type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 1, "batch_size": 4, "packing": False, "max_seq_length": 96, "replay": 0}}})
    job_page = console.open(key, f"#/training/{job.id}")
    job_page.locator("#loss-chart svg").wait_for()
    job_page.evaluate(SAMPLER)
    yield SimpleNamespace(name=name, key=key, client=client, http=http, chat_ds=chat_ds, sentiment=sentiment,
                          job_id=job.id, job_page=job_page)
    if http.get(f"/v1/fine_tuning/jobs/{job.id}").json()["status"] not in TERMINAL:
        http.post(f"/v1/fine_tuning/jobs/{job.id}/cancel")


def test_console_is_served_locally_without_auth(server):
    import httpx

    index = httpx.get(server.url + "/", timeout=30)
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in index.headers["content-security-policy"]
    assert index.headers["cache-control"] == "no-cache" and index.headers["etag"]
    static = ROOT / "src" / "rixin" / "console" / "static"
    kinds = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
    for path in static.rglob("*"):
        if not path.is_file():
            continue
        r = httpx.get(f"{server.url}/console/static/{path.relative_to(static).as_posix()}", timeout=30)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kinds[path.suffix]), path
        again = httpx.get(str(r.url), headers={"If-None-Match": r.headers["etag"]}, timeout=30)
        assert again.status_code == 304
        # nothing is fetched from elsewhere (the SVG namespace is a name, not a fetch)
        assert not re.findall(r"https?://(?!www\.w3\.org/2000/svg)", r.text), path
    assert httpx.get(server.url + "/console/static/../router.py", timeout=30).status_code == 404
    assert httpx.get(server.url + "/console/static/%2e%2e/router.py", timeout=30).status_code == 404


def test_a_wrong_or_revoked_key_shows_a_clear_message(server, console, world):
    page = console.open(None, "")
    page.get_by_label("API key").fill("rx-not-a-real-key")
    page.get_by_role("button", name="Sign in").click()
    error = page.locator("#signin-error")
    error.wait_for()
    assert "Sign-in failed" in error.inner_text() and "Incorrect API key" in error.inner_text()
    assert_labelled(page)
    shot(page, "signin")

    admin = server.http()
    made = admin.post(f"/v1/projects/{world.name}/api_keys", json={"name": "soon-revoked"}).json()
    page = console.open(made["key"], "#/models")
    page.locator("main h1", has_text="Models").wait_for()
    assert admin.delete(f"/v1/projects/{world.name}/api_keys/{made['id']}").status_code == 200
    page.get_by_role("link", name="Datasets").click()
    error = page.locator("#signin-error")
    error.wait_for()
    assert "revoked" in error.inner_text()
    assert page.locator("#nav").is_hidden()


def test_models_page_lists_the_bundled_model(console, world):
    page = console.open(world.key, "#/models")
    page.locator("main h1", has_text="Models").wait_for()
    assert page.locator("code.model-id", has_text=CHAT).count() == 1
    assert page.locator(f'svg.lineage g[data-model="{CHAT}"]').count() == 1
    assert page.locator("#who-project").inner_text() == world.name
    assert page.locator("#nav-admin").is_hidden()  # a project key is not an admin key
    assert_labelled(page)


def test_dataset_page_pages_through_records(console, world):
    page = console.open(world.key, "#/datasets")
    page.get_by_role("link", name="console-chats").click()
    page.locator("main h1", has_text="console-chats").wait_for()
    page.locator("#records article.record").first.wait_for()
    assert page.locator("#records article.record").count() == 10
    assert page.locator("#records-range").inner_text() == "1–10 of 12"
    assert "Question 0?" in page.locator("#records").inner_text()
    page.get_by_role("button", name="Next page of records").click()
    page.wait_for_function("() => document.querySelector('#records-range').textContent === '11–12 of 12'")
    assert page.locator("#records article.record").count() == 2
    assert "Answer number 11." in page.locator("#records").inner_text()
    assert_labelled(page)
    go(page, "#/datasets", "Datasets")
    assert_labelled(page)
    shot(page, "datasets")


def test_review_queue_works_from_the_keyboard(console, world):
    http, dataset_id = world.http, world.sentiment["id"]
    page = console.open(world.key, f"#/datasets/{dataset_id}")
    queue = page.locator("#review-queue li")
    queue.first.wait_for()
    assert queue.count() == 6
    assert page.locator("svg.bar-chart rect.bar").count() >= 2  # the label report's charts
    assert_labelled(page)
    shot(page, "dataset")

    def pending() -> list[dict]:
        return http.get("/v1/review_items", params={"dataset_id": dataset_id, "status": "pending"}).json()["data"]

    first, second, third = pending()[:3]
    page.locator("#review-queue li[tabindex='0']").focus()  # the queue's one tab stop
    page.keyboard.press("Enter")  # accept
    page.wait_for_function("() => document.querySelectorAll('#review-queue li').length === 5")
    assert http.get(f"/v1/review_items/{first['id']}").json()["status"] == "accepted"
    # focus moved on to the next item: reject it
    assert page.evaluate("() => document.activeElement.dataset.item") == second["id"]
    page.keyboard.press("r")
    page.wait_for_function("() => document.querySelectorAll('#review-queue li').length === 4")
    assert http.get(f"/v1/review_items/{second['id']}").json()["status"] == "rejected"
    # correct: c focuses the label, a letter picks the other label, Enter submits
    other = "negative" if third["proposed_label"] == "positive" else "positive"
    page.keyboard.press("c")
    assert page.evaluate("() => document.activeElement.name") == "label"
    page.keyboard.press(other[0])
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('#review-queue li').length === 3")
    corrected = http.get(f"/v1/review_items/{third['id']}").json()
    assert corrected["status"] == "corrected" and corrected["final_label"] == other
    # j / k move between items without deciding anything
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert len(pending()) == 3
    page.locator("#review-commit").focus()
    page.keyboard.press("Enter")
    page.locator("#banner", has_text="made from the reviewed items").wait_for()
    versions = http.get(f"/v1/datasets/{dataset_id}").json()["versions"]
    assert versions[-1]["operation"] == "review" and versions[-1]["records"] == 2


def test_playground_streams_a_reply(console, world):
    page = console.open(world.key, "#/playground")
    page.locator("main h1", has_text="Playground").wait_for()
    assert_labelled(page)
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("Max tokens").fill("32")
    page.get_by_label("System prompt").fill("You answer briefly.")
    # record every length the reply takes while it streams
    page.evaluate("""() => {
      window.__lengths = [];
      new MutationObserver(() => {
        const r = document.querySelector('.bubble.assistant .reply');
        if (r) window.__lengths.push(r.textContent.length);
      }).observe(document.querySelector('#panes'), {subtree: true, childList: true, characterData: true});
    }""")
    page.get_by_label("Message", exact=True).fill("Name three colours.")
    page.get_by_label("Message", exact=True).press("Enter")
    meta = page.locator(".bubble.assistant .meta").first
    page.wait_for_function(
        "() => /finish|error|stopped/.test(document.querySelector('.bubble.assistant .meta')?.textContent || '')",
        timeout=120_000)
    assert "finish" in meta.inner_text(), meta.inner_text()
    reply = page.locator(".bubble.assistant .reply").first.inner_text()
    lengths = [n for n in page.evaluate("window.__lengths") if n > 0]
    assert reply.strip() and len(set(lengths)) >= 2, lengths  # it grew piece by piece
    assert lengths == sorted(lengths)

    # side by side: both panes answer the same message
    page.get_by_label("Compare two models side by side").check()
    page.get_by_label("Message", exact=True).fill("Say hello.")
    page.get_by_role("button", name="Send").click()
    page.wait_for_function("() => [...document.querySelectorAll('.pane')].length === 2 && "
                           "[...document.querySelectorAll('.pane')].every(p => /finish/.test("
                           "p.querySelector('.bubble.assistant:last-child .meta')?.textContent || ''))",
                           timeout=180_000)
    replies = page.locator(".pane .bubble.assistant:last-child .reply")
    assert replies.count() == 2 and all(r.strip() for r in replies.all_inner_texts())
    assert_labelled(page)
    shot(page, "playground")


def test_job_page_loss_chart_grows_while_the_job_runs(console, world):
    page = world.job_page
    page.wait_for_function(GREW_OR_ENDED, timeout=JOB_WAIT_MS, polling=500)
    assert page.evaluate(GREW_WHILE_RUNNING), page.evaluate("window.__samples.at(-1)")
    samples = page.evaluate("window.__samples")
    running = [s for s in samples if s["status"] == "running" and s["points"] > 0]
    assert running and running[-1]["points"] > samples[0]["points"]
    # circles and the polyline agree with the count the chart announces
    assert all(s["circles"] == s["points"] for s in samples if s["points"] > 0)
    assert all(s["polyline"] == s["points"] for s in samples if s["points"] > 0)
    assert any(s["pauseEnabled"] for s in running)  # Pause is offered while it runs
    # the summary comes from the job's own GET, fetched alongside the events the chart draws: the
    # refresh that first draws a step may have read the job just before that step's progress
    page.wait_for_function("() => document.querySelector('#tokens-per-second')?.textContent !== '—'",
                           timeout=60_000, polling=500)
    assert_labelled(page)


def test_job_finishes_and_the_model_joins_the_lineage_graph(console, world):
    job = wait_job(world.http, f"/v1/fine_tuning/jobs/{world.job_id}", timeout=JOB_WAIT_MS / 1000)
    assert job["status"] == "succeeded", job["error"]
    model = job["fine_tuned_model"]
    page = world.job_page
    page.locator("#job-summary .badge", has_text="succeeded").wait_for()
    events = world.http.get(f"/v1/fine_tuning/jobs/{world.job_id}/events", params={"limit": 100}).json()["data"]
    steps = {e["data"]["step"] for e in events if e["type"] == "metrics"}
    page.wait_for_function(f"() => Number(document.querySelector('#loss-chart svg').dataset.points) === {len(steps)}")
    assert page.locator("#job-cancel").is_disabled() and page.locator("#job-pause").is_disabled()
    assert page.locator("#job-summary a", has_text=model).count() == 1
    shot(page, "job")

    models = console.open(world.key, "#/models")
    node = models.locator(f'svg.lineage g[data-model="{model}"]')
    node.wait_for()
    assert models.locator("svg.lineage path.edge").count() >= 1
    assert f"{CHAT} → {model}" in models.locator("svg.lineage > title").text_content()
    shot(models, "models")

    training = console.open(world.key, "#/training")
    link = training.get_by_role("link", name=world.job_id)
    link.wait_for()
    assert_labelled(training)
    shot(training, "training")
    link.click()
    training.locator("main h1", has_text=world.job_id).wait_for()


def test_another_project_sees_none_of_it(server, console, world):
    page = console.open(server.new_key(f"console-other-{server.backend}"), "#/datasets")
    page.locator("main h1", has_text="Datasets").wait_for()
    page.wait_for_selector("main >> text=No datasets yet")
    text = page.locator("main").inner_text()
    assert "console-chats" not in text and "console-sentiment" not in text
    go(page, "#/training", "Training")
    page.wait_for_selector("main >> text=No fine-tuning jobs yet")
    assert world.job_id not in page.locator("main").inner_text()
    go(page, "#/models", "Models")
    assert world.name not in page.locator("main").inner_text()
    # and addressing them directly is a clear "not found", not their data
    go(page, f"#/datasets/{world.chat_ds['id']}", "Could not load dataset")
    assert "No such dataset" in page.locator("main [role=alert]").inner_text()
    assert "Question 0?" not in page.locator("main").inner_text()
    go(page, f"#/training/{world.job_id}", "Could not load fine-tuning job")
    assert "No such job" in page.locator("main [role=alert]").inner_text()
    assert page.locator("#loss-chart").count() == 0


def test_admin_page_creates_a_key_and_shows_it_once(server, console, world):
    page = console.open(server.admin_key, f"#/admin?project={world.name}")
    page.locator("main h1", has_text="Admin").wait_for()
    assert page.locator("#nav-admin").is_visible()
    page.locator("#engines code", has_text=CHAT).first.wait_for()
    cluster = page.locator("#cluster")  # Ray's node, its CPUs and the chat engine placed on it
    assert "127.0.0.1" in cluster.inner_text() and "alive" in cluster.inner_text()
    assert "job slots" in page.locator("#limits").inner_text()
    page.get_by_label("Key name").fill("from-the-console")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-value")
    secret.wait_for()
    key = secret.inner_text().strip()
    me = server.http(key).get("/v1/me").json()
    assert me["project"] == world.name and me["admin"] is False
    assert page.locator("#keys td", has_text="from-the-console").count() == 1
    assert_labelled(page)
    go(page, "#/models", "Models")
    go(page, f"#/admin?project={world.name}", "Admin")
    page.locator("#keys td", has_text="from-the-console").wait_for()
    assert key not in page.content()  # shown once, never again
    shot(page, "admin")


