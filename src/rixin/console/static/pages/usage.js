// #/usage: tokens per day per model as a chart, and tokens and costs per project and model, from
// the gateway's meter: an admin key reads GET /v1/organization/usage/completions|embeddings and
// /costs (every project, or one chosen); a project key the same buckets of its own project
// under /v1/me/.

import { api } from "../api.js";
import { columnChart } from "../charts.js";
import { field, fmt, h, select, table } from "../dom.js";

const DAY = 86400;

function path(prefix, route, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    for (const one of [v].flat()) if (one !== undefined && one !== null && one !== "") q.append(k, one);
  }
  return `${prefix}/${route}?${q}`;
}

// Every daily bucket from `start` to now (following next_page).
async function buckets(prefix, route, params, signal) {
  const out = [];
  let page = null;
  do {
    const answer = await api.get(path(prefix, route, { ...params, page }), { signal });
    out.push(...answer.data);
    page = answer.has_more ? answer.next_page : null;
  } while (page);
  return out;
}

const day = (ts) => new Date(ts * 1000).toISOString().slice(0, 10);

// (days, {model → tokens per day}, rows per project and model with tokens and cost)
async function load(prefix, days, projectId, signal) {
  const today = Math.floor(Date.now() / 1000 / DAY) * DAY;
  const params = { start_time: today - (days - 1) * DAY, bucket_width: "1d", limit: 31, project_ids: projectId,
    group_by: ["project_id", "model"] };
  const [completions, embeddings, costs] = await Promise.all([
    buckets(prefix, "usage/completions", params, signal), buckets(prefix, "usage/embeddings", params, signal),
    buckets(prefix, "costs", { ...params, group_by: ["project_id", "line_item"] }, signal)]);
  const labels = Array.from({ length: days }, (_, i) => day(params.start_time + i * DAY));
  const perModel = {};
  const rows = new Map();
  const row = (project, model) => {
    const key = `${project}\u0000${model}`;
    if (!rows.has(key)) rows.set(key, { project, model, requests: 0, input: 0, cached: 0, output: 0, cost: 0 });
    return rows.get(key);
  };
  for (const b of [...completions, ...embeddings]) {
    for (const r of b.results) {
      const tokens = r.input_tokens + (r.output_tokens || 0);
      perModel[r.model] ??= new Array(days).fill(0);
      perModel[r.model][labels.indexOf(day(b.start_time))] += tokens;
      const one = row(r.project_id, r.model);
      one.requests += r.num_model_requests;
      one.input += r.input_tokens;
      one.cached += r.input_cached_tokens || 0;
      one.output += r.output_tokens || 0;
    }
  }
  for (const b of costs) for (const r of b.results) row(r.project_id, r.line_item).cost += r.amount.value;
  return { labels, perModel, rows: [...rows.values()] };
}

export async function render(main, ctx) {
  const days = Number(ctx.query.get("days") || 7);
  const chosen = ctx.query.get("project") || "";
  const projects = ctx.me.admin ? (await api.get("/v1/organization/projects", { signal: ctx.signal })).data
    : [{ id: ctx.me.project_id, name: ctx.me.project }];
  const names = Object.fromEntries(projects.map((p) => [p.id, p.name]));
  const prefix = ctx.me.admin ? "/v1/organization" : "/v1/me";
  const { labels, perModel, rows } = await load(prefix, days, ctx.me.admin ? chosen : null, ctx.signal);
  const go = (change) => {
    const q = new URLSearchParams({ days, project: chosen, ...change });
    location.hash = `#/usage?${q}`;
  };
  const daysPicker = select([["7", "7 days"], ["14", "14 days"], ["31", "31 days"]], { name: "days", value: String(days) });
  daysPicker.addEventListener("change", () => go({ days: daysPicker.value }));
  const controls = [field("Period", daysPicker)];
  if (ctx.me.admin) {
    const picker = select([["", "All projects"], ...projects.map((p) => [p.id, p.name])], { name: "project", value: chosen });
    picker.addEventListener("change", () => go({ project: picker.value }));
    controls.push(field("Project", picker));
  }
  const series = Object.entries(perModel).sort().map(([name, values]) => ({ name, values }));
  const total = rows.reduce((sum, r) => sum + r.cost, 0);
  rows.sort((a, b) => b.cost - a.cost || (b.input + b.output) - (a.input + a.output));
  main.replaceChildren(
    h("h1", {}, ctx.me.admin ? "Usage" : `Usage of ${ctx.me.project}`),
    h("div", { class: "row" }, controls),
    h("section", { class: "panel", "aria-labelledby": "tokens-title", id: "tokens-chart" },
      h("h2", { id: "tokens-title" }, "Tokens per day, per model (input + output)"),
      columnChart(labels.map((l) => l.slice(5)), series, { title: "Tokens per day", yLabel: "tokens" })),
    h("section", { class: "panel", "aria-labelledby": "costs-title", id: "usage-table" },
      h("h2", { id: "costs-title" }, `Tokens and costs: ${fmt.num(total, 4)} USD in ${days} days`),
      table([
        { label: "Project", value: (r) => names[r.project] || r.project },
        { label: "Model", value: (r) => h("code", {}, r.model) },
        { label: "Requests", value: (r) => fmt.num(r.requests), num: true },
        { label: "Input tokens", value: (r) => fmt.num(r.input), num: true },
        { label: "Cached input", value: (r) => fmt.num(r.cached), num: true },
        { label: "Output tokens", value: (r) => fmt.num(r.output), num: true },
        { label: "Cost (USD)", value: (r) => fmt.num(r.cost, 4), num: true },
      ], rows, { empty: "No model requests in this period." })));
}
