// #/training/<job>: one fine-tuning job, followed live. Every 1.5 s while the job is not done:
// the job (status, tokens/s), its events (type "metrics" carry data.step and data.train_loss,
// newest first) and its checkpoints; the loss chart is drawn again from the metrics events.

import { api, query } from "../api.js";
import { lineChart } from "../charts.js";
import { act, badge, facts, fmt, h, notice, poll, table } from "../dom.js";

const TERMINAL = ["succeeded", "failed", "cancelled"];
const POLL_MS = 1500;

// Metrics per step, oldest first; a step run again after a resume keeps its latest value.
function metricsOf(events) {
  const byStep = new Map();
  for (const e of [...events].reverse()) {
    if (e.type === "metrics" && e.data && e.data.step !== undefined) byStep.set(e.data.step, e.data);
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

function summary(job) {
  const p = job.progress || {};
  const model = job.fine_tuned_model;
  return facts([
    ["Status", badge(job.status)],
    ["Method", job.method.type],
    ["Base model", h("code", {}, job.model)],
    ["Fine-tuned model", model ? h("a", { href: `#/playground?model=${encodeURIComponent(model)}` }, h("code", {}, model)) : "—"],
    ["Step", p.total_steps ? h("span", {}, `${p.step ?? 0} / ${p.total_steps} `,
      h("progress", { max: p.total_steps, value: p.step ?? 0, "aria-label": "Training progress" })) : (p.stage || "—")],
    ["Training loss", fmt.num(p.train_loss, 4)],
    ["Tokens/s", h("span", { id: "tokens-per-second" }, fmt.num(p.tokens_per_second, 1))],
    ["Trained tokens", fmt.num(job.trained_tokens)],
    ["Estimated finish", job.estimated_finish ? fmt.time(job.estimated_finish) : "—"],
    ["Training file", h("code", {}, job.training_file)],
    ["Hyperparameters", h("code", {}, JSON.stringify(job.hyperparameters))],
    ["Created", fmt.time(job.created_at)],
    ["Finished", fmt.time(job.finished_at)],
    job.error ? ["Error", h("span", { role: "alert" }, job.error.message || JSON.stringify(job.error))] : null,
  ]);
}

function controls(job, ctx, refresh) {
  const button = (action, text, enabled, cls) => {
    const b = h("button", { type: "button", class: cls, disabled: !enabled, id: `job-${action}`,
      "aria-label": `${text} job ${job.id}` }, text);
    b.addEventListener("click", () => act(b, async () => {
      if (action === "cancel" && !window.confirm(`Cancel job ${job.id}? Training stops; this cannot be undone.`)) return;
      await api.post(`/v1/fine_tuning/jobs/${encodeURIComponent(job.id)}/${action}`, undefined, { signal: ctx.signal });
      notice(`Job ${action} requested.`, "info");
      await refresh();
    }));
    return b;
  };
  return h("div", { class: "row" },
    button("pause", "Pause", job.status === "running"),
    button("resume", "Resume", job.status === "paused"),
    button("cancel", "Cancel", !TERMINAL.includes(job.status), "danger"));
}

export async function render(main, ctx) {
  const [id] = ctx.params;
  const base = `/v1/fine_tuning/jobs/${encodeURIComponent(id)}`;
  const parts = {
    summary: h("div", { class: "panel", id: "job-summary" }),
    controls: h("div", { id: "job-controls" }),
    loss: h("div", { class: "panel scroll", id: "loss-chart" }),
    speed: h("div", { class: "panel scroll", id: "speed-chart" }),
    events: h("div", { id: "job-events" }),
    checkpoints: h("div", { id: "job-checkpoints" }),
  };
  const title = h("h1", {}, `Job ${id}`);
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/training" }, "← Training")), title, parts.controls, parts.summary,
    h("div", { class: "grid2" },
      h("section", { "aria-labelledby": "loss-title" }, h("h2", { id: "loss-title" }, "Training loss"), parts.loss),
      h("section", { "aria-labelledby": "speed-title" }, h("h2", { id: "speed-title" }, "Tokens per second"), parts.speed)),
    h("h2", {}, "Checkpoints"), parts.checkpoints,
    h("h2", {}, "Events"), parts.events,
  );

  let status = null;
  const events = []; // newest first, as the API pages them
  const known = new Set();
  // New events only: pages from the newest back to the first event already shown.
  const newEvents = async () => {
    const fresh = [];
    for (let after = null; ;) {
      const page = await api.get(`${base}/events${query({ limit: known.size ? 100 : 1000, after })}`, { signal: ctx.signal });
      const index = page.data.findIndex((e) => known.has(e.id));
      fresh.push(...(index < 0 ? page.data : page.data.slice(0, index)));
      if (index >= 0 || !page.has_more) break;
      after = page.last_id;
    }
    return fresh;
  };
  const refresh = async () => {
    const [job, fresh, checkpoints] = await Promise.all([
      api.get(base, { signal: ctx.signal }),
      newEvents(),
      api.get(`${base}/checkpoints${query({ limit: 100 })}`, { signal: ctx.signal }),
    ]);
    if (ctx.signal.aborted) return false;
    fresh.forEach((e) => known.add(e.id));
    events.unshift(...fresh);
    status = job.status;
    const metrics = metricsOf(events);
    parts.summary.replaceChildren(summary(job));
    if (!parts.controls.contains(document.activeElement) || job.status !== parts.controls.dataset.status) {
      parts.controls.replaceChildren(controls(job, ctx, refresh));
      parts.controls.dataset.status = job.status;
    }
    parts.loss.replaceChildren(lineChart([{ name: "train_loss", points: metrics.map((m) => [m.step, m.train_loss]) }],
      { title: "Training loss per step", xLabel: "step", yLabel: "loss" }));
    parts.speed.replaceChildren(lineChart([{ name: "tokens/s", points: metrics.filter((m) => m.tokens_per_second != null).map((m) => [m.step, m.tokens_per_second]) }],
      { title: "Tokens per second per step", xLabel: "step", yLabel: "tokens/s", zeroBased: true }));
    parts.checkpoints.replaceChildren(table([
      { label: "Step", value: (c) => String(c.step_number), num: true },
      { label: "Checkpoint", value: (c) => h("code", {}, c.fine_tuned_model_checkpoint) },
      { label: "Train loss", value: (c) => fmt.num(c.metrics?.train_loss, 4), num: true },
      { label: "Valid loss", value: (c) => fmt.num(c.metrics?.valid_loss, 4), num: true },
      { label: "Saved", value: (c) => fmt.time(c.created_at) },
    ], checkpoints.data, { empty: "No checkpoints yet." }));
    parts.events.replaceChildren(table([
      { label: "Time", value: (e) => fmt.time(e.created_at) },
      { label: "Level", value: (e) => e.level },
      { label: "Message", value: (e) => e.message },
    ], events.slice(0, 200), { caption: `Newest first${events.length > 200 ? " (latest 200)" : ""}`, empty: "No events yet." }));
    return !TERMINAL.includes(job.status);
  };
  await refresh();
  if (!TERMINAL.includes(status)) poll(refresh, POLL_MS, ctx.signal);
}
