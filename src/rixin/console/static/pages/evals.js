// #/evals: the project's eval runs, newest first, filtered by eval set (?set=<file id>); the
// scores of one eval set over time (each model's mean score, one point per finished run); and
// a form that starts a run (eval set, models, graders as JSON, max tokens).

import { api, query, uploadFile } from "../api.js";
import { lineChart } from "../charts.js";
import { act, badge, field, fmt, h, notice, poll, select, table } from "../dom.js";
import { modelName, signed, TERMINAL } from "./evalrun.js";

const DEFAULT_GRADERS = `[
  {"type": "includes"},
  {"type": "exact_match"}
]`;

function runsTable(runs, files) {
  const setName = (id) => files.get(id)?.filename || id;
  return table([
    { label: "Run", value: (r) => h("a", { href: `#/evals/${encodeURIComponent(r.id)}` }, h("code", {}, r.id)) },
    { label: "Name", value: (r) => r.name || "—" },
    { label: "Status", value: (r) => badge(r.status) },
    { label: "Eval set", value: (r) => h("span", { title: r.eval_file_id }, setName(r.eval_file_id)) },
    { label: "Models", value: (r) => r.models.map(modelName).join(", ") },
    { label: "Mean scores", value: (r) => (r.summary
      ? Object.entries(r.summary.models).map(([m, x]) => `${m} ${fmt.num(x.mean, 3)}`).join(" · ") : "—") },
    { label: "Diff (b − a)", num: true, value: (r) => (r.summary?.diff
      ? `${signed(r.summary.diff.mean)} [${signed(r.summary.diff.ci_low)}, ${signed(r.summary.diff.ci_high)}]` : "—") },
    { label: "Created", value: (r) => fmt.time(r.created_at) },
  ], runs, { caption: "Newest first", empty: "No eval runs yet: start one below." });
}

// One series per model name: its mean score in each finished run of the set, oldest run first.
function overTime(runs, setLabel) {
  const done = runs.filter((r) => r.status === "succeeded" && r.summary).reverse();
  const series = new Map();
  done.forEach((r, i) => {
    for (const [m, x] of Object.entries(r.summary.models)) {
      if (!series.has(m)) series.set(m, []);
      series.get(m).push([i + 1, x.mean]);
    }
  });
  return h("section", { class: "panel scroll", id: "evals-over-time", "aria-labelledby": "over-time-title" },
    h("h2", { id: "over-time-title" }, `Scores over time: ${setLabel}`),
    lineChart([...series].map(([name, points]) => ({ name, points })),
      { title: `Mean score per finished run of ${setLabel}`, xLabel: "run (oldest first)", yLabel: "mean score", zeroBased: true, yMax: 1 }),
    h("p", { class: "muted" }, done.map((r, i) => `${i + 1}: ${r.name || r.id} (${fmt.time(r.created_at)})`).join(" · ")));
}

// The registered grader types (GET /v1/evals/graders), each with the keys it requires besides
// "type": "regex (pattern)". A new grader module shows up here without a change to this page.
function graderHint(kinds) {
  return kinds.map((g) => {
    const required = (g.config_schema.required || []).filter((k) => k !== "type");
    return required.length ? `${g.type} (${required.join(", ")})` : g.type;
  }).join(", ");
}

async function createForm(ctx, files, setId) {
  const [{ data: models }, { data: kinds }] = await Promise.all([
    api.get("/v1/models", { signal: ctx.signal }), api.get("/v1/evals/graders", { signal: ctx.signal })]);
  const chat = models.filter((m) => m.kind === "chat").map((m) => m.id);
  const name = h("input", { type: "text", name: "name", maxlength: "128", placeholder: "nightly" });
  const file = select([["", files.length ? "— choose an eval set —" : "— none uploaded yet —"],
    ...files.map((f) => [f.id, `${f.filename} (${f.id})`])], { name: "eval_file_id", value: setId || "" });
  const upload = h("input", { type: "file", name: "upload", accept: ".jsonl" });
  const picked = h("select", { name: "models", multiple: true, size: String(Math.min(6, Math.max(2, chat.length))) },
    chat.map((id, i) => h("option", { value: id, selected: i === 0 }, id)));
  const graders = h("textarea", { name: "graders", rows: 5, spellcheck: "false", class: "mono" }, DEFAULT_GRADERS);
  const maxTokens = h("input", { type: "number", name: "max_tokens", min: "1", max: "4096", step: "1", value: "64" });
  const submit = h("button", { type: "submit", class: "primary" }, "Start eval run");
  const form = h("form", { class: "panel", "aria-labelledby": "new-run" },
    h("h2", { id: "new-run" }, "New eval run"),
    h("div", { class: "row" }, field("Run name", name), field("Eval set", file), field("…or upload one (JSONL)", upload)),
    h("div", { class: "row" },
      field("Models", picked, { hint: "Ctrl/⌘-click for several; two models give a difference with its interval." }),
      field("Max tokens", maxTokens)),
    field("Graders (JSON list)", graders, { hint: graderHint(kinds) }),
    submit);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(submit, async () => {
      let parsed;
      try {
        parsed = JSON.parse(graders.value);
      } catch (e) {
        graders.focus();
        throw new Error(`Graders are not valid JSON: ${e.message}`);
      }
      let evalFile = file.value;
      if (upload.files.length) evalFile = (await uploadFile(upload.files[0], "evals", { signal: ctx.signal })).id;
      if (!evalFile) throw new Error("Choose an eval set or upload one.");
      const chosen = [...picked.selectedOptions].map((o) => o.value);
      if (!chosen.length) throw new Error("Choose at least one model.");
      const run = await api.post("/v1/evals/runs", {
        name: name.value.trim() || undefined, eval_file_id: evalFile, models: chosen, graders: parsed,
        max_tokens: Number(maxTokens.value),
      }, { signal: ctx.signal });
      location.hash = `#/evals/${encodeURIComponent(run.id)}`;
    });
  });
  return form;
}

export async function render(main, ctx) {
  const setId = ctx.query.get("set") || "";
  const listRuns = () => api.get(`/v1/evals/runs${query({ limit: 100, eval_file_id: setId })}`, { signal: ctx.signal });
  const [{ data: runs }, { data: fileList }] = await Promise.all([
    listRuns(), api.get(`/v1/files${query({ purpose: "evals" })}`, { signal: ctx.signal })]);
  const files = new Map(fileList.map((f) => [f.id, f]));
  const filter = select([["", "all eval sets"], ...fileList.map((f) => [f.id, `${f.filename} (${f.id})`])],
    { name: "set", value: setId });
  filter.addEventListener("change", () => { location.hash = `#/evals${query({ set: filter.value })}`; });
  const list = h("div", { id: "eval-runs" });
  const chart = h("div");
  const draw = (data) => {
    list.replaceChildren(runsTable(data, files));
    // the chart follows the chosen set, or else the set of the newest run
    const chartSet = setId || data[0]?.eval_file_id;
    chart.replaceChildren(chartSet ? overTime(data.filter((r) => r.eval_file_id === chartSet),
      files.get(chartSet)?.filename || chartSet) : "");
  };
  draw(runs);
  main.replaceChildren(
    h("h1", {}, "Evaluations"),
    h("p", { class: "lede" }, `Eval runs of project ${ctx.me.project}: models compared on an eval set, graded, with a bootstrap interval on the difference.`),
    h("div", { class: "row" }, field("Show runs of", filter)),
    list, chart, await createForm(ctx, fileList, setId));
  if (runs.some((r) => !TERMINAL.includes(r.status))) {
    poll(async () => {
      const fresh = await listRuns();
      draw(fresh.data);
      return fresh.data.some((r) => !TERMINAL.includes(r.status));
    }, 2000, ctx.signal);
  }
  if (setId && !files.has(setId)) notice(`No eval set ${setId} in this project.`);
}
