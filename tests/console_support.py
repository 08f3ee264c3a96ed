"""What the console tests share: Debian's chromium through Playwright, a `Console` of tabs that
collects page errors, screenshots into docs/screenshots/, and the page helpers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from conftest import ROOT

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


