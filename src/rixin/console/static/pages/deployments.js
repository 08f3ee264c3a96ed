// #/deployments: the project's deployments (stable names clients send as `model`, each pointing
// at a concrete model) and a form that creates one (name, target model, logging policy).

import { api } from "../api.js";
import { act, field, fmt, h, select, table } from "../dom.js";

export const POLICIES = [["full", "full (request and answer text)"], ["metadata-only", "metadata only (no text)"],
  ["off", "off (nothing stored)"]];

export const deploymentLink = (name) => h("a", { href: `#/deployments/${encodeURIComponent(name)}` }, h("code", {}, name));

function deploymentsTable(rows) {
  return table([
    { label: "Name", value: (d) => deploymentLink(d.name) },
    { label: "Model", value: (d) => h("code", {}, d.model) },
    { label: "Logging", value: (d) => d.logging + (d.redact_pii ? " · PII redacted" : "") },
    { label: "Version", value: (d) => String(d.version), num: true },
    { label: "Updated", value: (d) => fmt.time(d.updated_at) },
    { label: "Logs", value: (d) => h("a", { href: `#/logs?deployment=${encodeURIComponent(d.name)}`, "aria-label": `Logs of ${d.name}` }, "logs") },
  ], rows, { empty: "No deployments yet: create one below." });
}

function createForm(ctx, chatModels) {
  const name = h("input", { type: "text", name: "name", required: true, maxlength: "128", placeholder: "support-bot",
    pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]*" });
  const model = select(chatModels, { name: "model" });
  const logging = select(POLICIES, { name: "logging", value: "full" });
  const redact = h("input", { type: "checkbox", name: "redact_pii" });
  const submit = h("button", { type: "submit", class: "primary" }, "Create deployment");
  const form = h("form", { class: "panel", "aria-labelledby": "new-deployment" },
    h("h2", { id: "new-deployment" }, "New deployment"),
    h("div", { class: "row" }, field("Deployment name", name, { hint: "Clients send it as model." }), field("Target model", model),
      field("Logging policy", logging), field("Redact PII in logs", redact, { inline: true }), submit));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(submit, async () => {
      const made = await api.post("/v1/deployments", {
        name: name.value.trim(), model: model.value, logging: logging.value, redact_pii: redact.checked,
      }, { signal: ctx.signal });
      location.hash = `#/deployments/${encodeURIComponent(made.name)}`;
    });
  });
  return form;
}

export async function render(main, ctx) {
  const [{ data }, { data: models }] = await Promise.all([
    api.get("/v1/deployments", { signal: ctx.signal }), api.get("/v1/models", { signal: ctx.signal })]);
  const chatModels = models.filter((m) => m.kind === "chat").map((m) => m.id);
  main.replaceChildren(
    h("h1", {}, "Deployments"),
    h("p", { class: "lede" }, `Deployments of project ${ctx.me.project}: send the name as model; switching its target is atomic and recorded.`),
    h("div", { id: "deployments" }, deploymentsTable(data)),
    createForm(ctx, chatModels));
}
