// #/evals/<run>: one eval run. Its status is polled until the job ends; then the side-by-side
// table (models × graders, from run.summary), the paired difference b − a with its bootstrap
// 95% interval and win/tie/loss counts, and the per-item records (input, ideal, each model's
// output and scores, the difference highlighted), paged through /v1/evals/runs/{id}/items.

import { api, query } from "../api.js";
import { barChart, intervalChart } from "../charts.js";
import { act, badge, facts, field, fmt, h, notice, poll, select, table } from "../dom.js";

export const TERMINAL = ["succeeded", "failed", "cancelled"];
const POLL_MS = 1500;

// A run's `models` entry is a model id or a variant {model, name, system}; the summary and the
// items key it by its name.
export const modelName = (entry) => (typeof entry === "string" ? entry : entry.name || entry.model);

export function modelLabel(entry) {
  if (typeof entry === "string") return h("code", {}, entry);
  const parts = [h("code", {}, entry.model)];
  if (entry.system) parts.push(h("span", { class: "muted" }, ` with system prompt “${entry.system}”`));
  return entry.name && entry.name !== entry.model ? h("span", {}, `${entry.name}: `, parts) : h("span", {}, parts);
}

export const signed = (x, digits = 3) => (x > 0 ? `+${fmt.num(x, digits)}` : fmt.num(x, digits));

function progressOf(run) {
  const p = run.progress || {};
  if (p.items_total) return `${p.items_done ?? 0} / ${p.items_total} generations`;
  return p.stage || "—";
}

function overview(run) {
  return facts([
    ["Status", badge(run.status)],
    ["Name", run.name || "—"],
    ["Eval set", h("a", { href: `#/evals${query({ set: run.eval_file_id })}`, title: "Scores over time for this set" },
      h("code", {}, run.eval_file_id))],
    ["Models", h("span", {}, run.models.map((m, i) => [i ? ", " : "", modelLabel(m)]))],
    ["Graders", h("code", {}, JSON.stringify(run.graders))],
    ["Progress", h("span", { id: "run-progress" }, progressOf(run))],
    ["Created", fmt.time(run.created_at)],
    ["Finished", fmt.time(run.finished_at)],
    run.error ? ["Error", h("span", { role: "alert" }, run.error.message || JSON.stringify(run.error))] : null,
  ]);
}

// Rows are models, columns the mean and each grader's mean; the best value of each column is bold.
function sideBySide(run) {
  const { summary } = run;
  const names = run.models.map(modelName).filter((n) => summary.models[n]);
  const graders = Object.keys(summary.models[names[0]]?.graders || {});
  const best = (get) => Math.max(...names.map((n) => get(summary.models[n])));
  const cell = (get) => (n) => {
    const v = get(summary.models[n]);
    return h("span", { class: names.length > 1 && v === best(get) ? "best" : null }, fmt.num(v, 3));
  };
  return table([
    { label: "Model", value: (n) => h("code", {}, n) },
    { label: "Mean score", value: cell((x) => x.mean), num: true },
    ...graders.map((g) => ({ label: g, value: cell((x) => x.graders[g]), num: true })),
  ], names, { caption: `Mean scores over ${summary.n} items (0 to 1; best in bold)` });
}

function difference(diff) {
  const verdict = diff.ci_low > 0 ? `${diff.b} is better than ${diff.a}`
    : diff.ci_high < 0 ? `${diff.b} is worse than ${diff.a}`
      : "no significant difference (the interval contains 0)";
  return h("section", { class: "panel", id: "run-diff", "aria-labelledby": "diff-title" },
    h("h2", { id: "diff-title" }, `Difference ${diff.b} − ${diff.a}`),
    h("p", {}, h("strong", {}, signed(diff.mean)), ` mean per item, 95% bootstrap interval [${signed(diff.ci_low)}, ${signed(diff.ci_high)}]: ${verdict}.`),
    intervalChart([{ label: `${diff.b} − ${diff.a}`, mean: diff.mean, low: diff.ci_low, high: diff.ci_high }],
      { title: "Mean score difference with its 95% confidence interval", xLabel: "score difference (b − a)" }),
    h("div", { id: "run-wtl" }, facts([
      [`Wins (${diff.b} higher)`, String(diff.wins)], ["Ties", String(diff.ties)],
      [`Losses (${diff.a} higher)`, String(diff.losses)]])),
    barChart([{ label: "wins", value: diff.wins }, { label: "ties", value: diff.ties }, { label: "losses", value: diff.losses }],
      { title: "Items won, tied and lost", width: 420 }));
}

const lastUser = (messages) => [...messages].reverse().find((m) => m.role === "user")?.content ?? "";

function inputCell(item) {
  const text = lastUser(item.input);
  if (item.input.length === 1) return h("div", { class: "out" }, text);
  return h("div", {}, h("div", { class: "out" }, text),
    h("details", {}, h("summary", {}, `all ${item.input.length} messages`),
      item.input.map((m) => h("div", { class: "msg" }, h("span", { class: "role" }, m.role), m.content))));
}

function outputCell(out) {
  if (!out) return "—";
  return h("div", {}, h("div", { class: "out" }, out.output || h("em", { class: "muted" }, "(empty)")),
    h("div", { class: "scores" }, Object.entries(out.scores).map(([g, v]) => `${g} ${fmt.num(v, 2)}`).join(" · "),
      ` · mean ${fmt.num(out.mean, 2)}`));
}

function itemsTable(run, items) {
  const names = run.models.map(modelName);
  return table([
    { label: "Item", value: (it) => h("code", {}, it.id) },
    { label: "Input", value: inputCell },
    { label: "Ideal", value: (it) => (it.ideal.length ? it.ideal.join(" | ") : "—") },
    ...names.map((n) => ({ label: n, value: (it) => outputCell(it.outputs[n]) })),
    ...(names.length === 2 ? [{ label: "Diff", num: true, value: (it) => signed(it.diff, 2) }] : []),
  ], items, { empty: "No items." });
}

function itemsPanel(run, ctx) {
  const box = h("section", { class: "panel", id: "run-items", "aria-labelledby": "items-title" });
  const size = select(["2", "10", "25", "50"], { value: "10", name: "items_page_size" });
  let offset = 0;
  const show = async () => {
    const limit = Number(size.value);
    const page = await api.get(`/v1/evals/runs/${encodeURIComponent(run.id)}/items${query({ offset, limit })}`, { signal: ctx.signal });
    const total = run.summary?.n ?? offset + page.data.length;
    const prev = h("button", { type: "button", disabled: offset === 0, "aria-label": "Previous page of items" }, "← Previous");
    const next = h("button", { type: "button", disabled: !page.has_more, "aria-label": "Next page of items" }, "Next →");
    prev.addEventListener("click", () => act(prev, () => { offset = Math.max(0, offset - limit); return show(); }));
    next.addEventListener("click", () => act(next, () => { offset += limit; return show(); }));
    const rendered = itemsTable(run, page.data);
    // a row's difference cell is green where b won, red where it lost
    rendered.querySelectorAll("tbody tr").forEach((tr, i) => {
      const d = page.data[i].diff;
      if (d !== null && d !== undefined && d !== 0) tr.lastElementChild.classList.add(d > 0 ? "diff-pos" : "diff-neg");
    });
    box.replaceChildren(h("h2", { id: "items-title" }, "Items"), rendered,
      h("div", { class: "row" }, prev, next, field("Items per page", size),
        h("span", { class: "muted", "aria-live": "polite", id: "items-range" },
          page.data.length ? `${offset + 1}–${offset + page.data.length} of ${total}` : "No items")));
  };
  size.addEventListener("change", () => { offset = 0; show().catch((e) => notice(e.message)); });
  return { box, show };
}

export async function render(main, ctx) {
  const [id] = ctx.params;
  const base = `/v1/evals/runs/${encodeURIComponent(id)}`;
  const head = h("div", { class: "panel", id: "run-summary" });
  const results = h("div", { id: "run-results" });
  main.replaceChildren(h("p", {}, h("a", { href: "#/evals" }, "← Evaluations")),
    h("h1", {}, `Eval run ${id}`), head, results);
  let shownFor = null;
  const refresh = async () => {
    const run = await api.get(base, { signal: ctx.signal });
    if (ctx.signal.aborted) return false;
    head.replaceChildren(overview(run));
    if (run.status === "succeeded" && shownFor !== run.id) {
      shownFor = run.id;
      const items = itemsPanel(run, ctx);
      results.replaceChildren(
        h("section", { class: "panel", id: "run-table", "aria-labelledby": "table-title" },
          h("h2", { id: "table-title" }, "Side by side"), sideBySide(run)),
        run.summary.diff ? difference(run.summary.diff) : h("p", { class: "muted" }, "A difference is shown for runs of exactly two models."),
        items.box);
      await items.show();
    } else if (run.status === "failed") {
      notice(`Eval run ${run.id} failed: ${run.error?.message || "see its job"}`);
    }
    return !TERMINAL.includes(run.status);
  };
  if (await refresh()) poll(refresh, POLL_MS, ctx.signal);
}
