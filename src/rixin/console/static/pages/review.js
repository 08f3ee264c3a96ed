// The labeling review queue of one dataset, made to work from the keyboard:
// Tab into the queue, ↑/↓ (or j/k) to move, Enter or "a" to accept, "c" to correct, "r" to
// reject. Each item is one focusable list entry (roving tabindex); its buttons do the same.

import { api, query } from "../api.js";
import { act, clearNotice, field, fmt, h, notice } from "../dom.js";

const show = (label) => (typeof label === "string" ? label : JSON.stringify(label));

// The text an item was labelled from: the record's text, its last user message, or its prompt.
export function recordText(record) {
  if (typeof record.text === "string") return record.text;
  if (Array.isArray(record.messages)) {
    const user = record.messages.filter((m) => m.role === "user").at(-1);
    if (user) return typeof user.content === "string" ? user.content : JSON.stringify(user.content);
  }
  if (typeof record.prompt === "string") return record.prompt;
  return JSON.stringify(record);
}

// The correction control for the task: a select of its labels, or a text box (JSON for extraction).
function correctionControl(task, item) {
  if (task && Array.isArray(task.labels) && task.labels.length) {
    return h("select", { name: "label" }, task.labels.map((l) => h("option", { value: l, selected: l === item.proposed_label }, l)));
  }
  return h("input", { type: "text", name: "label", value: show(item.proposed_label ?? "") });
}

function parseCorrection(task, control) {
  if (task && task.type === "extraction") {
    try { return JSON.parse(control.value); } catch { throw new Error("The corrected label must be JSON (an object valid against the task's schema)."); }
  }
  return control.value;
}

export async function reviewQueue(datasetId, ctx, { onCommitted } = {}) {
  const box = h("section", { class: "panel", "aria-labelledby": "review-title" });
  const tasks = new Map(); // job id → labeling task (for the label set)

  async function taskOf(jobId) {
    if (!tasks.has(jobId)) {
      try { tasks.set(jobId, (await api.get(`/v1/jobs/${encodeURIComponent(jobId)}`, { signal: ctx.signal })).params.task); } catch { tasks.set(jobId, null); }
    }
    return tasks.get(jobId);
  }

  async function load(focusIndex = null) {
    const page = await api.get(`/v1/review_items${query({ dataset_id: datasetId, status: "pending", limit: 50 })}`, { signal: ctx.signal });
    for (const jobId of new Set(page.data.map((i) => i.job_id))) await taskOf(jobId);
    draw(page.data, page.has_more, focusIndex);
  }

  async function decide(item, action, control) {
    const path = `/v1/review_items/${encodeURIComponent(item.id)}/${action}`;
    const body = action === "correct" ? { label: parseCorrection(tasks.get(item.job_id), control) } : undefined;
    await api.post(path, body, { signal: ctx.signal });
    notice(`Item ${action === "correct" ? "corrected" : `${action}ed`}.`, "info");
  }

  function draw(items, hasMore, focusIndex) {
    const list = h("ul", { class: "queue", "aria-label": "Items waiting for review", id: "review-queue" });
    const entries = items.map((item, index) => {
      const control = correctionControl(tasks.get(item.job_id), item);
      let busy = false;
      const run = async (action) => {
        if (busy) return;
        busy = true;
        buttons.forEach((b) => { b.disabled = true; });
        try {
          clearNotice();
          await decide(item, action, control);
          await load(Math.min(index, items.length - 2));
        } catch (e) {
          if (e.name !== "AbortError") notice(e.message);
          buttons.forEach((b) => { b.disabled = false; });
        } finally {
          busy = false;
        }
      };
      const text = recordText(item.record);
      const buttons = [
        h("button", { type: "button", class: "primary", "aria-label": `Accept ${show(item.proposed_label)} for item ${index + 1}`, onclick: () => run("accept") }, "Accept"),
        h("button", { type: "button", "aria-label": `Correct item ${index + 1} to the chosen label`, onclick: () => run("correct") }, "Correct"),
        h("button", { type: "button", class: "danger", "aria-label": `Reject item ${index + 1}`, onclick: () => run("reject") }, "Reject"),
      ];
      const entry = h("li", {
        tabindex: -1, "data-item": item.id,
        "aria-label": `Item ${index + 1} of ${items.length}: ${text.slice(0, 120)}. Proposed ${show(item.proposed_label)}, confidence ${fmt.num(item.confidence, 2)}. Enter accepts, C corrects, R rejects.`,
      },
      h("div", {}, text.length > 600 ? `${text.slice(0, 600)}…` : text),
      h("div", { class: "muted" }, "Proposed ", h("strong", {}, show(item.proposed_label)),
        ` · confidence ${fmt.num(item.confidence, 2)} · ${item.reason}`),
      h("div", { class: "row" }, field("Corrected label", control), buttons));
      entry.addEventListener("keydown", (event) => {
        if (event.target !== entry || event.altKey || event.ctrlKey || event.metaKey) return;
        const key = event.key.toLowerCase();
        if (key === "enter" || key === "a") { event.preventDefault(); run("accept"); }
        else if (key === "r") { event.preventDefault(); run("reject"); }
        else if (key === "c") { event.preventDefault(); control.focus(); }
        else if (key === "arrowdown" || key === "j") { event.preventDefault(); move(index + 1); }
        else if (key === "arrowup" || key === "k") { event.preventDefault(); move(index - 1); }
      });
      entry.addEventListener("focus", () => select(index));
      // Enter in the correction control submits the correction.
      control.addEventListener("keydown", (event) => {
        if (event.key === "Enter") { event.preventDefault(); run("correct"); }
        if (event.key === "Escape") { event.preventDefault(); entry.focus(); }
      });
      return entry;
    });
    function select(index) {
      entries.forEach((e, i) => { e.tabIndex = i === index ? 0 : -1; e.classList.toggle("current", i === index); });
    }
    function move(index) {
      if (index < 0 || index >= entries.length) return;
      select(index);
      entries[index].focus();
    }
    list.append(...entries);
    if (entries.length) select(Math.max(0, Math.min(focusIndex ?? 0, entries.length - 1)));
    const commit = h("button", { type: "button", id: "review-commit" }, "Commit reviewed items as a new version");
    commit.addEventListener("click", () => act(commit, async () => {
      const version = await api.post(`/v1/datasets/${encodeURIComponent(datasetId)}/review/commit`, undefined, { signal: ctx.signal });
      notice(`Version ${version.version} made from the reviewed items.`, "info");
      if (onCommitted) onCommitted(version);
    }));
    box.replaceChildren(
      h("h2", { id: "review-title" }, `Review queue (${items.length}${hasMore ? "+" : ""} pending)`),
      h("p", { class: "kbd-help muted" }, "Keyboard: Tab into the queue, ", h("kbd", {}, "↑"), " ", h("kbd", {}, "↓"),
        " (or ", h("kbd", {}, "j"), " ", h("kbd", {}, "k"), ") to move, ", h("kbd", {}, "Enter"), " or ", h("kbd", {}, "a"),
        " to accept, ", h("kbd", {}, "c"), " to correct (then ", h("kbd", {}, "Enter"), "), ", h("kbd", {}, "r"), " to reject."),
      entries.length ? list : h("p", { class: "muted" }, "No items wait for review. Items a labeling job is unsure of appear here."),
      h("div", { class: "row" }, commit));
    if (focusIndex !== null) {
      if (entries.length) entries[Math.max(0, Math.min(focusIndex, entries.length - 1))].focus();
      else commit.focus();
    }
  }

  await load();
  return box;
}
