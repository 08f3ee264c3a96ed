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
import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from conftest import CHAT, ROOT
from test_fine_tuning import fact_file
from test_label import SEEDS, sentences

pytestmark = pytest.mark.timeout(600)

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "docs" / "screenshots"
WAIT_MS = 30_000  # hang guards, not timing assertions
JOB_WAIT_MS = 540_000
TURN_WAIT_MS = 1_500_000  # a flywheel turn: export, fine-tune, eval of two models
TERMINAL = ("succeeded", "failed", "cancelled")

# Controls without an accessible name: no <label for>, no wrapping <label>, no aria-label(ledby),
# and (buttons) no text.
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => !el.closest('[hidden]'))
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 160))"""

# Runs in the job page's tab: samples the loss chart's point count and the job status every
# 300 ms into window.__samples (gone if the page reloads, so growth here is live updating).
SAMPLER = """() => {
  window.__samples = [];
  setInterval(() => {
    const svg = document.querySelector('#loss-chart svg');
    const badge = document.querySelector('#job-summary .badge');
    const pause = document.querySelector('#job-pause');
    window.__samples.push({
      points: svg ? Number(svg.dataset.points) : -1,
      circles: document.querySelectorAll('#loss-chart circle.point').length,
      polyline: svg && svg.querySelector('polyline')
        ? svg.querySelector('polyline').getAttribute('points').trim().split(/\\s+/).length : 0,
      status: badge ? badge.textContent : null,
      pauseEnabled: pause ? !pause.disabled : null,
    });
  }, 300);
}"""

# The chart gained points, without a reload, between a moment while the job was not finished
# and a later moment while it was still running (points may come several per poll on a fast
# machine, so "one by one" is not required).
GREW_WHILE_RUNNING = """() => {
  let fewest = Infinity;
  for (const x of window.__samples || []) {
    if (x.status === 'running' && x.points > fewest) return true;
    const open = x.status && !['succeeded', 'failed', 'cancelled'].includes(x.status);
    if (open && x.points >= 0) fewest = Math.min(fewest, x.points);
  }
  return false;
}"""
GREW_OR_ENDED = f"""() => ({GREW_WHILE_RUNNING})()
  || ['succeeded', 'failed', 'cancelled'].includes((window.__samples || []).at(-1)?.status)"""


def jsonl(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def wait_job(http, path: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(path).json()
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.5)
    raise AssertionError(f"{path} did not finish: {job}")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


class Console:
    """Opens console tabs, each in its own browser context (its own sessionStorage), and
    collects the page errors of every tab; closes them all at the end of the module."""

    def __init__(self, browser, url: str):
        self.browser, self.url = browser, url
        self.contexts, self.errors = [], []

    def open(self, key: str | None, route: str = "#/models"):
        context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(WAIT_MS)
        self.contexts.append(context)
        if key:  # as if the user had signed in in this tab
            context.add_init_script(f"sessionStorage.setItem('rixin.key', {json.dumps(key)})")
        page = context.new_page()
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.goto(f"{self.url}/{route}")
        return page

    def close(self):
        for context in self.contexts:
            try:
                context.close()
            except PlaywrightError:
                pass


@pytest.fixture(scope="module")
def console(browser, server):
    c = Console(browser, server.url)
    yield c
    c.close()
    assert not c.errors, c.errors


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def assert_labelled(page) -> None:
    assert page.evaluate(UNLABELLED) == []


def go(page, route: str, heading: str) -> None:
    page.evaluate("route => { location.hash = route; }", route)
    page.locator("main h1", has_text=heading).first.wait_for()
    page.wait_for_selector("main >> text=Loading…", state="detached")


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
            "n_epochs": 1, "batch_size": 4, "packing": False, "max_seq_length": 96}}})
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
    assert page.locator("#tokens-per-second").inner_text() != "—"
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
    server.cli("models", "add", path, "--id", second, "--project", name)
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
        "n_epochs": 1, "batch_size": 8, "packing": False, "max_seq_length": 96}}})
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
