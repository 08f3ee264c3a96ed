// #/deployments/<name>: one deployment: its target, the history of every switch (who, when,
// why), buttons to point it at another model (promote) or roll it back, its logging policy,
// and its flywheel turns (each turn's status, what it made, its decision and why).

import { api } from "../api.js";
import { act, badge, facts, field, fmt, h, notice, select, table } from "../dom.js";
import { POLICIES } from "./deployments.js";
import * as turns from "./turns.js";

const who = (actor, me) => (actor === me.key_id ? h("span", {}, h("code", {}, actor), " (this key)") : h("code", {}, actor || "—"));

function overview(d) {
  return facts([
    ["Name", h("code", {}, d.name)],
    ["Target model", h("code", { id: "deployment-model" }, d.model)],
    ["Version", h("span", { id: "deployment-version" }, String(d.version))],
    ["Logging", d.logging + (d.redact_pii ? " · PII redacted at write time" : "")],
    ["Created", fmt.time(d.created_at)],
    ["Updated", fmt.time(d.updated_at)],
    ["Use it", h("span", {}, h("a", { href: `#/playground?model=${encodeURIComponent(d.name)}` }, "playground"), " · ",
      h("a", { href: `#/logs?deployment=${encodeURIComponent(d.name)}` }, "logs and feedback"))],
  ]);
}

function history(changes, me) {
  return table([
    { label: "Version", value: (c) => String(c.version), num: true },
    { label: "Action", value: (c) => badge(c.action) },
    { label: "From", value: (c) => (c.from_model ? h("code", {}, c.from_model) : "—") },
    { label: "To", value: (c) => h("code", {}, c.to_model) },
    { label: "Who", value: (c) => who(c.actor, me) },
    { label: "When", value: (c) => fmt.time(c.created_at) },
    { label: "Why", value: (c) => c.reason || "—" },
  ], [...changes].reverse(), { caption: "Newest first", empty: "No changes." });
}

function controls(d, chatModels, ctx, redraw) {
  const base = `/v1/deployments/${encodeURIComponent(d.name)}`;
  const target = select(chatModels, { name: "target", value: chatModels.find((m) => m !== d.model) || d.model });
  const reason = h("input", { type: "text", name: "reason", maxlength: "1024", placeholder: "why (recorded with the change)" });
  const promote = h("button", { type: "button", class: "primary", id: "deployment-promote" }, "Promote to this model");
  const rollback = h("button", { type: "button", class: "danger", id: "deployment-rollback", disabled: d.version < 2 },
    "Roll back to the previous model");
  const logging = select(POLICIES, { name: "logging", value: d.logging });
  const saveLogging = h("button", { type: "button" }, "Save logging policy");
  const done = async (message) => { notice(message, "info"); await redraw(); };
  promote.addEventListener("click", () => act(promote, async () => {
    if (target.value === d.model) throw new Error(`${d.name} already points at ${d.model}.`);
    await api.post(base, { model: target.value, reason: reason.value.trim() || undefined }, { signal: ctx.signal });
    await done(`${d.name} now points at ${target.value}.`);
  }));
  rollback.addEventListener("click", () => act(rollback, async () => {
    if (!window.confirm(`Roll ${d.name} back to its previous model?`)) return;
    const back = await api.post(`${base}/rollback`, { reason: reason.value.trim() || undefined }, { signal: ctx.signal });
    await done(`${d.name} rolled back to ${back.model}.`);
  }));
  saveLogging.addEventListener("click", () => act(saveLogging, async () => {
    await api.post(base, { logging: logging.value }, { signal: ctx.signal });
    await done(`Logging policy of ${d.name}: ${logging.value}.`);
  }));
  return h("section", { class: "panel", "aria-labelledby": "switch-title" },
    h("h2", { id: "switch-title" }, "Switch the target"),
    h("div", { class: "row" }, field("Model to promote", target), field("Reason", reason), promote, rollback),
    h("div", { class: "row" }, field("Logging policy", logging), saveLogging));
}

export async function render(main, ctx) {
  const [name] = ctx.params;
  const base = `/v1/deployments/${encodeURIComponent(name)}`;
  const { data: models } = await api.get("/v1/models", { signal: ctx.signal });
  const chatModels = models.filter((m) => m.kind === "chat").map((m) => m.id);
  const parts = { summary: h("div", { class: "panel", id: "deployment-summary" }), controls: h("div"),
    changes: h("div", { id: "deployment-changes" }), turns: h("div", { id: "flywheel-turns" }) };
  const redraw = async () => {
    const [d, changes] = await Promise.all([api.get(base, { signal: ctx.signal }),
      api.get(`${base}/changes`, { signal: ctx.signal })]);
    parts.summary.replaceChildren(overview(d));
    parts.controls.replaceChildren(controls(d, chatModels, ctx, redraw));
    parts.changes.replaceChildren(history(changes.data, ctx.me));
    return d;
  };
  const d = await redraw();
  main.replaceChildren(h("p", {}, h("a", { href: "#/deployments" }, "← Deployments")),
    h("h1", {}, `Deployment ${d.name}`), parts.summary, parts.controls,
    h("h2", {}, "Change history"), parts.changes,
    h("h2", {}, "Flywheel turns"), parts.turns);
  await turns.show(parts.turns, d, ctx, redraw);
}
