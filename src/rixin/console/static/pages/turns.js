// The flywheel section of a deployment page: the settings its turns use (eval set, graders,
// promotion margin, minimum examples, schedule), a button that starts a turn, and every turn
// (GET /v1/deployments/{name}/flywheel/turns, newest first): its status and stage, the
// current and candidate models, links to what it made (dataset version, fine-tune job, eval
// run) and its decision with the reason. Polled while a turn runs.

import { api, query } from "../api.js";
import { act, badge, field, fmt, h, notice, poll, select, table } from "../dom.js";
import { signed } from "./evalrun.js";

const POLL_MS = 2000;

function settingsForm(d, files, ctx, redraw) {
  const f = d.flywheel || {};
  const evalSet = select([["", files.length ? "— choose an eval set —" : "— upload one on the Evaluations page —"],
    ...files.map((x) => [x.id, `${x.filename} (${x.id})`])], { name: "eval_file_id", value: f.eval_file_id || "" });
  const graders = h("textarea", { name: "flywheel_graders", rows: 2, spellcheck: "false", class: "mono" },
    JSON.stringify(f.graders && f.graders.length ? f.graders : [{ type: "includes" }]));
  const margin = h("input", { type: "number", name: "margin", step: "any", value: String(f.margin ?? 0) });
  const requireCi = h("input", { type: "checkbox", name: "require_ci", checked: Boolean(f.require_ci) });
  const minExamples = h("input", { type: "number", name: "min_examples", min: "1", step: "1", value: String(f.min_examples ?? 10) });
  const every = h("input", { type: "text", name: "every", value: f.every || "", placeholder: "on demand, or 1d, 6h, 30m" });
  const save = h("button", { type: "submit" }, "Save flywheel settings");
  const form = h("form", { class: "panel", id: "flywheel-settings", "aria-labelledby": "flywheel-settings-title" },
    h("h3", { id: "flywheel-settings-title" }, "Settings"),
    h("div", { class: "row" }, field("Gate eval set", evalSet), field("Promotion margin", margin),
      field("Require the interval above 0", requireCi, { inline: true }), field("Minimum examples", minExamples),
      field("Schedule", every)),
    field("Gate graders (JSON list)", graders), save);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(save, async () => {
      let parsed;
      try {
        parsed = JSON.parse(graders.value);
      } catch (e) {
        throw new Error(`Gate graders are not valid JSON: ${e.message}`);
      }
      // the API replaces the whole settings object: keep the fields this form does not show
      const flywheel = { ...f, eval_file_id: evalSet.value || null, graders: parsed, margin: Number(margin.value),
        require_ci: requireCi.checked, min_examples: Number(minExamples.value), every: every.value.trim() || null };
      await api.post(`/v1/deployments/${encodeURIComponent(d.name)}`, { flywheel }, { signal: ctx.signal });
      notice(`Flywheel settings of ${d.name} saved.`, "info");
      await redraw();
    });
  });
  return form;
}

const link = (href, text) => h("a", { href }, h("code", {}, text));

function made(t) {
  const exp = t.decision.export || {};
  return h("ul", { class: "plain" },
    t.dataset_version_id ? h("li", {}, "dataset version ", exp.dataset_id
      ? link(`#/datasets/${encodeURIComponent(exp.dataset_id)}`, t.dataset_version_id) : h("code", {}, t.dataset_version_id),
    exp.supervised_examples !== undefined ? ` (${exp.supervised_examples} examples)` : "") : null,
    t.fine_tune_job_id ? h("li", {}, "fine-tune ", link(`#/training/${encodeURIComponent(t.fine_tune_job_id)}`, t.fine_tune_job_id)) : null,
    t.eval_run_id ? h("li", {}, "eval run ", link(`#/evals/${encodeURIComponent(t.eval_run_id)}`, t.eval_run_id)) : null,
    !t.dataset_version_id && !t.fine_tune_job_id && !t.eval_run_id ? h("li", { class: "muted" }, "nothing yet") : null);
}

function decision(t) {
  const dec = t.decision || {};
  const diff = dec.diff || {};
  return h("div", {},
    dec.why ? h("div", { class: "why" }, dec.why) : h("span", { class: "muted" }, t.status === "running" ? "pending" : "—"),
    diff.mean !== undefined ? h("div", { class: "scores" },
      `candidate − current ${signed(diff.mean)}, 95% CI [${signed(diff.ci_low)}, ${signed(diff.ci_high)}]; margin ${dec.margin}`) : null);
}

function turnsTable(rows) {
  return table([
    { label: "Turn", value: (t) => h("div", {}, h("code", {}, t.id), h("div", { class: "scores" }, fmt.time(t.created_at))) },
    { label: "Status", value: (t) => h("span", {}, badge(t.status), t.status === "running" && t.stage ? ` ${t.stage}` : "") },
    { label: "Current → candidate", value: (t) => h("div", {}, h("code", {}, t.current_model || "—"), " → ",
      t.candidate_model ? h("code", {}, t.candidate_model) : "—") },
    { label: "Made", value: made },
    { label: "Decision and why", value: decision },
    { label: "Finished", value: (t) => fmt.time(t.finished_at) },
  ], rows, { caption: "Newest first", empty: "No turns yet." });
}

export async function show(box, d, ctx, redrawPage) {
  const base = `/v1/deployments/${encodeURIComponent(d.name)}/flywheel/turns`;
  const { data: files } = await api.get(`/v1/files${query({ purpose: "evals" })}`, { signal: ctx.signal });
  const list = h("div", { id: "turns" });
  const start = h("button", { type: "button", class: "primary", id: "turn-start" }, "Start a flywheel turn");
  const refresh = async () => {
    const { data } = await api.get(base, { signal: ctx.signal });
    if (ctx.signal.aborted) return false;
    list.replaceChildren(turnsTable(data));
    const running = data.some((t) => t.status === "running");
    start.disabled = running;
    if (!running && data.length && list.dataset.wasRunning === "true") await redrawPage(); // it may have promoted
    list.dataset.wasRunning = String(running);
    return running;
  };
  let polling = false;
  const follow = async () => {
    if (await refresh() && !polling) {
      polling = true;
      poll(async () => (polling = await refresh()), POLL_MS, ctx.signal);
    }
  };
  start.addEventListener("click", () => act(start, async () => {
    const turn = await api.post(base, undefined, { signal: ctx.signal });
    notice(`Turn ${turn.id} started: export feedback → fine-tune → evaluate → promote only if it wins.`, "info");
    await follow();
  }));
  const redrawSettings = async () => {
    const fresh = await api.get(`/v1/deployments/${encodeURIComponent(d.name)}`, { signal: ctx.signal });
    box.firstChild.replaceWith(settingsForm(fresh, files, ctx, redrawSettings));
  };
  box.replaceChildren(settingsForm(d, files, ctx, redrawSettings), h("div", { class: "row" }, start), list);
  await follow();
}
