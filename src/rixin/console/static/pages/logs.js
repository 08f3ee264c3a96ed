// #/logs: the project's request logs (GET /v1/logs), searched by time range, deployment, text
// and metadata (the filters live in the URL, so a deployment page can link to its logs), paged
// with the `after` cursor; each logged answer has thumbs up/down and a "correct it" box that
// post to /v1/feedback. Everything is a button or a form: the keyboard reaches all of it.

import { api, query } from "../api.js";
import { act, badge, field, fmt, h, notice, select } from "../dom.js";

const toLocalInput = (ts) => {
  if (!ts) return "";
  const d = new Date(Number(ts) * 1000);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
};
const fromLocalInput = (value) => (value ? String(Math.floor(new Date(value).getTime() / 1000)) : "");

function filtersForm(ctx, deployments) {
  const q = ctx.query;
  const since = h("input", { type: "datetime-local", name: "since", value: toLocalInput(q.get("since")) });
  const until = h("input", { type: "datetime-local", name: "until", value: toLocalInput(q.get("until")) });
  const deployment = select([["", "all deployments"], ...deployments.map((d) => d.name)],
    { name: "deployment", value: q.get("deployment") || "" });
  const text = h("input", { type: "search", name: "q", value: q.get("q") || "", placeholder: "words in the request or answer" });
  const metadata = h("input", { type: "text", name: "metadata", value: q.getAll("metadata").join(", "), placeholder: "key:value, key2:value2" });
  const submit = h("button", { type: "submit", class: "primary" }, "Search");
  const form = h("form", { class: "panel", role: "search", "aria-label": "Search the logs" },
    h("div", { class: "row" }, field("Since", since), field("Until", until), field("Deployment", deployment),
      field("Text contains", text), field("Metadata", metadata), submit));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    const put = (k, v) => { if (v) params.append(k, v); };
    put("since", fromLocalInput(since.value));
    put("until", fromLocalInput(until.value));
    put("deployment", deployment.value);
    put("q", text.value.trim());
    for (const pair of metadata.value.split(",").map((x) => x.trim()).filter(Boolean)) put("metadata", pair);
    const next = `#/logs${params.toString() ? `?${params}` : ""}`;
    if (location.hash === next) window.dispatchEvent(new HashChangeEvent("hashchange"));
    else location.hash = next;
  });
  return form;
}

function conversation(log) {
  const req = log.request || {};
  const messages = req.messages || (req.prompt !== undefined ? [{ role: "user", content: String(req.prompt) }] : []);
  const text = (m) => (Array.isArray(m.content) ? m.content.map((p) => p.text || "").join("") : m.content ?? "");
  const lastUser = [...messages].reverse().find((m) => m.role === "user");
  return h("div", {},
    lastUser ? h("div", { class: "msg" }, h("span", { class: "role" }, "user"), text(lastUser)) : null,
    messages.length > 1 ? h("details", {}, h("summary", {}, `all ${messages.length} messages`),
      messages.map((m) => h("div", { class: "msg" }, h("span", { class: "role" }, m.role), text(m)))) : null);
}

function answerOf(log) {
  const choice = log.response && log.response.choices && log.response.choices[0];
  if (!choice) return null;
  return choice.message ? choice.message.content ?? "" : choice.text ?? "";
}

function feedbackSummary(items) {
  if (!items.length) return "No feedback yet.";
  const up = items.filter((f) => f.thumb === "up").length;
  const down = items.filter((f) => f.thumb === "down").length;
  const corrections = items.filter((f) => f.correction).length;
  const parts = [up ? `${up} up` : null, down ? `${down} down` : null,
    corrections ? `${corrections} correction${corrections > 1 ? "s" : ""}` : null].filter(Boolean);
  return `Feedback: ${parts.join(" · ") || "comments only"}`;
}

function feedbackBar(log, given, ctx) {
  const summary = h("span", { class: "muted", "aria-live": "polite", "data-role": "feedback-summary" }, feedbackSummary(given));
  const lastThumb = () => [...given].reverse().find((f) => f.thumb)?.thumb;
  const thumb = (value, icon, word) => h("button", { type: "button", class: `thumb ${value}`, "data-thumb": value,
    "aria-label": `${word} for answer ${log.id}`, "aria-pressed": String(lastThumb() === value) }, icon);
  // arrows, not emoji: a machine without an emoji font (offline, no fetches) still shows them
  const up = thumb("up", "▲ Good", "Thumbs up");
  const down = thumb("down", "▼ Bad", "Thumbs down");
  const send = async (body) => {
    const made = await api.post("/v1/feedback", { completion_id: log.id, ...body }, { signal: ctx.signal });
    given.push(made);
    summary.textContent = feedbackSummary(given);
    up.setAttribute("aria-pressed", String(lastThumb() === "up"));
    down.setAttribute("aria-pressed", String(lastThumb() === "down"));
    return made;
  };
  for (const b of [up, down]) {
    b.addEventListener("click", () => act(b, async () => {
      await send({ thumb: b.dataset.thumb });
      notice(`Thanks: thumbs ${b.dataset.thumb} recorded for ${log.id}.`, "info");
    }));
  }
  const correction = h("textarea", { name: "correction", rows: 3, placeholder: "The answer it should have given (Ctrl+Enter sends)" });
  correction.value = answerOf(log) || "";
  const submit = h("button", { type: "submit" }, "Send correction");
  const form = h("form", { class: "correct", "aria-label": `Correct answer ${log.id}` },
    field(`Corrected answer for ${log.id}`, correction), submit);
  correction.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(submit, async () => {
      const text = correction.value.trim();
      if (!text) throw new Error("Write the corrected answer first.");
      await send({ correction: text });
      notice(`Correction recorded for ${log.id}; the next flywheel turn learns from it.`, "info");
    });
  });
  return h("div", { class: "feedback" }, h("div", { class: "row" }, up, down, summary),
    h("details", {}, h("summary", {}, "Correct it"), form));
}

function entry(log, names, given, ctx) {
  const answer = answerOf(log);
  const meta = Object.entries(log.metadata || {});
  return h("article", { class: "record log-entry", "data-id": log.id, "aria-label": `Logged request ${log.id}` },
    h("div", { class: "row muted" },
      h("span", {}, fmt.time(log.created_at)),
      !log.deployment_id ? h("span", {}, "direct (store: true)")
        : names.has(log.deployment_id) ? h("a", { href: `#/deployments/${encodeURIComponent(names.get(log.deployment_id))}` },
          names.get(log.deployment_id)) : h("code", {}, log.deployment_id),
      h("code", {}, log.model), badge(log.status),
      h("span", {}, `${fmt.num(log.latency_ms, 0)} ms`),
      h("span", {}, `${log.usage.prompt_tokens} + ${log.usage.completion_tokens} tokens`),
      log.user ? h("span", {}, `user ${log.user}`) : null,
      meta.length ? h("span", {}, meta.map(([k, v]) => h("code", { class: "chip" }, `${k}:${v}`))) : null,
      h("code", { class: "log-id" }, log.id)),
    log.policy === "full" ? conversation(log) : h("p", { class: "muted" }, `No text kept (logging policy ${log.policy}).`),
    answer !== null ? h("div", { class: "msg answer" }, h("span", { class: "role" }, "assistant"), answer) : null,
    feedbackBar(log, given, ctx));
}

export async function render(main, ctx) {
  const { data: deployments } = await api.get("/v1/deployments", { signal: ctx.signal });
  const names = new Map(deployments.map((d) => [d.id, d.name]));
  const filters = new URLSearchParams();
  for (const key of ["since", "until", "deployment", "q"]) if (ctx.query.get(key)) filters.set(key, ctx.query.get(key));
  for (const m of ctx.query.getAll("metadata")) filters.append("metadata", m);
  const list = h("div", { id: "logs" });
  const anchors = [null]; // the `after` cursor of each page shown so far
  const size = select(["2", "10", "25", "50"], { value: "10", name: "logs_page_size" });
  const show = async () => {
    const limit = Number(size.value);
    const params = new URLSearchParams(filters);
    params.set("limit", String(limit));
    if (anchors.at(-1)) params.set("after", anchors.at(-1));
    const page = await api.get(`/v1/logs?${params}`, { signal: ctx.signal });
    const feedback = await Promise.all(page.data.map((log) =>
      api.get(`/v1/feedback${query({ completion_id: log.id })}`, { signal: ctx.signal }).then((r) => r.data)));
    const first = Number(list.dataset.first || 0);
    const prev = h("button", { type: "button", disabled: anchors.length < 2, "aria-label": "Previous page of logs" }, "← Previous");
    const next = h("button", { type: "button", disabled: !page.has_more, "aria-label": "Next page of logs" }, "Next →");
    prev.addEventListener("click", () => act(prev, () => {
      anchors.pop();
      list.dataset.first = String(Math.max(0, first - limit));
      return show();
    }));
    next.addEventListener("click", () => act(next, () => {
      anchors.push(page.last_id);
      list.dataset.first = String(first + page.data.length);
      return show();
    }));
    list.replaceChildren(
      ...(page.data.length ? page.data.map((log, i) => entry(log, names, feedback[i], ctx))
        : [h("p", { class: "muted" }, "No logged requests match.")]),
      h("div", { class: "row" }, prev, next, field("Per page", size), h("span", { class: "muted", "aria-live": "polite", id: "logs-range" },
        page.data.length ? `${first + 1}–${first + page.data.length}${page.has_more ? " of more" : ""}` : "")));
  };
  size.addEventListener("change", () => {
    anchors.splice(1);
    list.dataset.first = "0";
    show().catch((e) => notice(e.message));
  });
  main.replaceChildren(h("h1", {}, "Logs"),
    h("p", { class: "lede" }, `Requests logged by the deployments of project ${ctx.me.project} (newest first), with their feedback.`),
    filtersForm(ctx, deployments), list);
  await show();
}
