// #/datasets/<id>: versions, the selected version's report (cleaning: removed per reason and
// sample rejects; labeling: labels and confidences), a paged viewer of its records, the
// dataset's jobs (clean, label) and the review queue.

import { api, query } from "../api.js";
import { barChart } from "../charts.js";
import { act, badge, facts, field, fmt, h, notice, poll, select, table } from "../dom.js";
import { reviewQueue } from "./review.js";

const LABEL_TASK = {
  type: "classification", name: "sentiment", labels: ["positive", "negative"],
  instruction: "Classify the sentiment of the text.", confidence_threshold: 0.6, output_field: "label",
};
const bars = (counts) => Object.entries(counts || {}).map(([label, value]) => ({ label, value }));

function cleanReport(report) {
  const removed = bars(report.removed);
  return [
    facts([["Documents in", fmt.num(report.documents_in)], ["Documents out", fmt.num(report.documents_out)],
      ["Removed", fmt.num(report.documents_in - report.documents_out)]]),
    h("h3", {}, "Removed per reason"),
    removed.length ? barChart(removed, { title: "Documents removed per reason" }) : h("p", { class: "muted" }, "Nothing was removed."),
    bars(report.redactions).length ? [h("h3", {}, "Redactions per PII type"), barChart(bars(report.redactions), { title: "Redactions per type" })] : null,
    h("h3", {}, "Sample rejects"),
    Object.keys(report.samples || {}).length
      ? Object.entries(report.samples).map(([reason, samples]) => h("details", { class: "samples" },
        h("summary", {}, `${reason} (${samples.length} of ${report.removed[reason] ?? samples.length})`),
        samples.map((sample) => h("div", { class: "record" }, h("code", {}, sample.id), h("pre", {}, sample.text)))))
      : h("p", { class: "muted" }, "No rejects."),
  ];
}

function labelReport(report) {
  const histogram = (report.confidence?.histogram || []).map((value, i) => ({ label: `${(i / 10).toFixed(1)}–${((i + 1) / 10).toFixed(1)}`, value }));
  const reasons = bars(report.reasons).sort((a, b) => b.value - a.value).slice(0, 12);
  return [
    facts([["Items", fmt.num(report.items_in)], ["Labeled", fmt.num(report.labeled)], ["To review", fmt.num(report.to_review)],
      ["Confidence threshold", String(report.confidence_threshold)], ["Mean confidence", fmt.num(report.confidence?.mean, 3)]]),
    bars(report.labels).length ? [h("h3", {}, "Labels"), barChart(bars(report.labels), { title: "Items per label" })] : null,
    h("h3", {}, "Confidence"), barChart(histogram, { title: "Items per confidence bucket", labelWidth: 90 }),
    reasons.length ? [h("h3", {}, "Reasons"), barChart(reasons, { title: "Items per reason", labelWidth: 260 })] : null,
  ];
}

function reportOf(version) {
  if (!version.report) return h("p", { class: "muted" }, `Version ${version.version} (${version.operation}) has no report.`);
  if (version.operation === "clean") return cleanReport(version.report);
  if (version.operation === "label") return labelReport(version.report);
  return h("pre", {}, JSON.stringify(version.report, null, 2));
}

// One record: its messages / prompt-completion / preference / text, other fields folded away.
const KNOWN = ["id", "meta", "messages", "prompt", "completion", "text", "input", "preferred_output", "non_preferred_output"];
const content = (c) => (typeof c === "string" ? c : JSON.stringify(c));
const messages = (list) => (list || []).map((m) => h("div", { class: "msg" }, h("span", { class: "role" }, m.role), content(m.content)));

function recordView(record) {
  const rest = Object.fromEntries(Object.entries(record).filter(([k]) => !KNOWN.includes(k)));
  const body = [];
  if (record.messages) body.push(messages(record.messages));
  if (record.prompt !== undefined) body.push(h("div", { class: "msg" }, h("span", { class: "role" }, "prompt"), content(record.prompt)));
  if (record.completion !== undefined) body.push(h("div", { class: "msg" }, h("span", { class: "role" }, "completion"), content(record.completion)));
  if (record.input) body.push(messages(record.input.messages || []));
  if (record.preferred_output) body.push(h("div", { class: "msg" }, h("span", { class: "role" }, "preferred"), messages(record.preferred_output)));
  if (record.non_preferred_output) body.push(h("div", { class: "msg" }, h("span", { class: "role" }, "non-preferred"), messages(record.non_preferred_output)));
  if (typeof record.text === "string") body.push(h("div", { class: "text" }, record.text.length > 2000 ? `${record.text.slice(0, 2000)}…` : record.text));
  const extra = { ...rest, ...(record.meta && Object.keys(record.meta).length ? { meta: record.meta } : {}) };
  return h("article", { class: "record", "data-record": record.id },
    h("code", { class: "muted" }, record.id), body,
    Object.keys(extra).length ? h("details", {}, h("summary", {}, "Other fields"), h("pre", {}, JSON.stringify(extra, null, 2))) : null);
}

function recordsViewer(dataset, version, ctx) {
  const box = h("section", { class: "panel", "aria-labelledby": "records-title" });
  const size = select(["10", "20", "50", "100"], { value: "10", name: "page_size" });
  let offset = 0;
  const show = async () => {
    const limit = Number(size.value);
    const page = await api.get(`/v1/datasets/${encodeURIComponent(dataset.id)}/versions/${version.version}/records${query({ offset, limit })}`, { signal: ctx.signal });
    const prev = h("button", { type: "button", disabled: offset === 0, "aria-label": "Previous page of records" }, "← Previous");
    const next = h("button", { type: "button", disabled: offset + limit >= page.total, "aria-label": "Next page of records" }, "Next →");
    prev.addEventListener("click", () => act(prev, () => { offset = Math.max(0, offset - limit); return show(); }));
    next.addEventListener("click", () => act(next, () => { offset += limit; return show(); }));
    box.replaceChildren(
      h("h2", { id: "records-title" }, `Records of version ${version.version}`),
      h("div", { class: "row" }, prev, next, field("Per page", size),
        h("span", { class: "muted", "aria-live": "polite", id: "records-range" },
          page.total ? `${offset + 1}–${Math.min(offset + limit, page.total)} of ${page.total}` : "No records")),
      h("div", { id: "records" }, page.data.map(recordView)));
  };
  size.addEventListener("change", () => { offset = 0; show().catch((e) => notice(e.message)); });
  return { box, show };
}

function jobsPanel(dataset, jobs, ctx, redraw) {
  const recipe = h("input", { type: "text", name: "recipe", value: "default" });
  const clean = h("button", { type: "button" }, "Clean latest version");
  const task = h("textarea", { name: "task", rows: 6, spellcheck: "false" }, JSON.stringify(LABEL_TASK, null, 2));
  const label = h("button", { type: "button" }, "Label latest version");
  const submit = (button, path, body) => act(button, async () => {
    const job = await api.post(`/v1/datasets/${encodeURIComponent(dataset.id)}/${path}`, body, { signal: ctx.signal });
    notice(`Job ${job.id} queued.`, "info");
    await redraw();
  });
  clean.addEventListener("click", () => submit(clean, "clean", { recipe: recipe.value.trim() || "default" }));
  label.addEventListener("click", () => {
    let parsed;
    try { parsed = JSON.parse(task.value); } catch (e) { notice(`The labeling task is not valid JSON: ${e.message}`); return; }
    submit(label, "label", { task: parsed });
  });
  return h("section", { class: "panel", "aria-labelledby": "jobs-title" },
    h("h2", { id: "jobs-title" }, "Jobs"),
    table([
      { label: "Job", value: (j) => h("code", {}, j.id) },
      { label: "Kind", value: (j) => j.kind },
      { label: "Status", value: (j) => badge(j.status) },
      { label: "Progress", value: (j) => h("span", { "data-progress": j.id }, progressText(j)) },
      { label: "Error", value: (j) => (j.error ? j.error.message : "") },
      { label: "Created", value: (j) => fmt.time(j.created_at) },
    ], jobs, { empty: "No cleaning or labeling jobs for this dataset yet." }),
    h("div", { class: "grid2" },
      h("div", {}, h("h3", {}, "Clean"), field("Recipe (a built-in name such as default)", recipe), clean),
      h("div", {}, h("h3", {}, "Label"), field("Labeling task (JSON)", task), label)));
}

function progressText(job) {
  const p = job.progress || {};
  const parts = [p.stage, p.shards_total ? `shards ${p.shards_done ?? 0}/${p.shards_total}` : null,
    p.items_done !== undefined ? `${p.items_done} items` : null];
  return parts.filter(Boolean).join(" · ") || "—";
}

let drawn = null; // the last drawing of this page: drawing again stops its polling

export async function render(main, routeCtx) {
  if (drawn) drawn.abort();
  const local = new AbortController();
  drawn = local;
  routeCtx.signal.addEventListener("abort", () => local.abort(), { once: true });
  const ctx = { ...routeCtx, signal: local.signal };
  const redraw = () => render(main, routeCtx);
  const [id] = ctx.params;
  const path = `/v1/datasets/${encodeURIComponent(id)}`;
  const dataset = await api.get(path, { signal: ctx.signal });
  const jobs = (await api.get("/v1/jobs", { signal: ctx.signal })).data.filter((j) => j.params && j.params.dataset_id === id);
  const versions = dataset.versions;
  const chosen = Number(ctx.query.get("version")) || versions.at(-1).version;
  const version = versions.find((v) => v.version === chosen) || versions.at(-1);
  const picker = select(versions.map((v) => [String(v.version), `v${v.version} · ${v.operation} · ${v.records} records`]),
    { value: String(version.version), name: "version" });
  picker.addEventListener("change", () => { location.hash = `#/datasets/${encodeURIComponent(id)}?version=${picker.value}`; });
  const records = recordsViewer(dataset, version, ctx);
  // The review queue shows once the dataset has been labelled (its items come from label jobs).
  const labelled = versions.some((v) => v.operation === "label") || jobs.some((j) => j.kind === "label");
  const review = labelled ? await reviewQueue(id, ctx, { onCommitted: redraw }) : null;
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/datasets" }, "← Datasets")),
    h("h1", {}, dataset.name), h("p", { class: "lede" }, h("code", {}, dataset.id), ` · created ${fmt.time(dataset.created_at)}`),
    h("h2", {}, "Versions"),
    table([
      { label: "Version", value: (v) => h("a", { href: `#/datasets/${encodeURIComponent(id)}?version=${v.version}` }, `v${v.version}`) },
      { label: "Operation", value: (v) => v.operation },
      { label: "Records", value: (v) => fmt.num(v.records), num: true },
      { label: "Format", value: (v) => v.format || "—" },
      { label: "From", value: (v) => (v.parent_id ? h("code", {}, v.parent_id) : "files") },
      { label: "Created", value: (v) => fmt.time(v.created_at) },
    ], versions),
    h("section", { class: "panel", "aria-labelledby": "report-title" },
      h("div", { class: "row" }, h("h2", { id: "report-title" }, "Report"), field("Version", picker)),
      reportOf(version)),
    review,
    records.box,
    jobsPanel(dataset, jobs, ctx, redraw),
  );
  await records.show();
  // Follow running jobs; when one ends, draw the page again (it made a new version).
  const active = () => jobs.filter((j) => ["queued", "running", "validating_files"].includes(j.status));
  if (active().length) {
    poll(async () => {
      const now = (await api.get("/v1/jobs", { signal: ctx.signal })).data.filter((j) => j.params && j.params.dataset_id === id);
      const changed = active().some((j) => now.find((n) => n.id === j.id)?.status !== j.status);
      if (changed) { await redraw(); return false; }
      for (const j of now) {
        const cell = main.querySelector(`[data-progress="${CSS.escape(j.id)}"]`);
        if (cell) cell.textContent = progressText(j);
      }
      return true;
    }, 2000, ctx.signal);
  }
}
