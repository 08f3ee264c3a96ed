// #/compute (admin keys only): the shared compute now, from GET /v1/organization/compute —
// per resource class, each project's guarantee, what it uses, what it borrows above its
// guarantee (preemptible) and what of its idle guarantee others hold; who lends to whom; every
// project's quota; the newest waiting and preemption events. Refreshed every 5 s.

import { api } from "../api.js";
import { badge, fmt, h, poll, table } from "../dom.js";

const num = (v) => fmt.num(v, Number.isInteger(v) ? 0 : 2);
const amounts = (m) => Object.entries(m || {}).map(([k, v]) => `${k}=${num(v)}`).join(", ") || "—";

function resourcePanel(cls, capacity, projects) {
  const rows = projects.filter((p) => p.resources[cls]).map((p) => ({ project: p.project, ...p.resources[cls] }));
  const used = rows.reduce((sum, r) => sum + r.in_use, 0);
  return h("section", { class: "panel", "aria-labelledby": `res-${cls}`, "data-resource": cls },
    h("h2", { id: `res-${cls}` }, cls),
    h("p", { class: "muted" }, capacity === undefined
      ? "No node of the cluster has this class now."
      : `Capacity ${num(capacity)}; in use ${num(used)}; free ${num(Math.max(0, capacity - used))}.`),
    table([
      { label: "Project", value: (r) => r.project },
      { label: "Guaranteed", value: (r) => num(r.guaranteed), num: true },
      { label: "In use", value: (r) => num(r.in_use), num: true },
      { label: "Borrowed", value: (r) => num(r.borrowed), num: true },
      { label: "Lent to others", value: (r) => num(r.lent), num: true },
    ], rows, { empty: "No project is guaranteed or uses this class." }));
}

function loansPanel(loans) {
  return h("section", { class: "panel", "aria-labelledby": "loans-title", id: "loans" },
    h("h2", { id: "loans-title" }, "Who lends to whom now"),
    h("p", { class: "muted" }, "Borrowed work is preempted (through its checkpoint) when a lender claims its guarantee back."),
    loans.length
      ? h("ul", {}, loans.map((l) => h("li", { "data-borrower": l.borrower, "data-lender": l.lender || "" },
        `${l.borrower} borrows ${num(l.amount)} ${l.resource} `,
        l.lender ? `of ${l.lender}'s idle guarantee` : "of capacity nobody is guaranteed")))
      : h("p", { class: "muted" }, "Nobody borrows now."));
}

function quotasPanel(projects) {
  return h("section", { class: "panel", "aria-labelledby": "quotas-title", id: "quotas" },
    h("h2", { id: "quotas-title" }, "Quotas"),
    h("p", { class: "muted" }, "Set with ", h("code", {}, "rixin quota set PROJECT …"), " or PUT /v1/organization/projects/{id}/quota."),
    table([
      { label: "Project", value: (p) => p.project },
      { label: "Guaranteed", value: (p) => amounts(p.quota.guaranteed) },
      { label: "Borrow limit", value: (p) => amounts(p.quota.borrow_limit) },
      { label: "Running jobs", value: (p) => `${p.running_jobs} / ${p.quota.running_jobs ?? "default"}` },
      { label: "Storage", value: (p) => (p.quota.storage_bytes === null ? "no limit" : fmt.bytes(p.quota.storage_bytes)) },
      { label: "Budget (USD/month)", value: (p) => (p.quota.budget === null ? "no limit" : num(p.quota.budget)) },
    ], projects, { empty: "No projects." }));
}

function eventsPanel(events) {
  const job = (e) => (e.job_kind === "fine_tune"
    ? h("a", { href: `#/training/${encodeURIComponent(e.job_id)}` }, h("code", {}, e.job_id))
    : h("code", {}, e.job_id));
  return h("section", { class: "panel", "aria-labelledby": "events-title", id: "events" },
    h("h2", { id: "events-title" }, "Recent waiting and preemptions"),
    table([
      { label: "When", value: (e) => fmt.time(e.created_at) },
      { label: "Project", value: (e) => e.project || e.project_id },
      { label: "Job", value: job },
      { label: "Event", value: (e) => badge(e.kind) },
      { label: "Message", value: (e) => e.message },
    ], events, { empty: "No job has waited or been preempted." }));
}

function draw(box, state) {
  const classes = [...new Set([...Object.keys(state.capacity),
    ...state.projects.flatMap((p) => Object.keys(p.resources))])].sort();
  box.replaceChildren(
    ...classes.map((cls) => resourcePanel(cls, state.capacity[cls], state.projects)),
    loansPanel(state.loans), quotasPanel(state.projects), eventsPanel(state.events));
}

export async function render(main, ctx) {
  if (!ctx.me.admin) {
    main.replaceChildren(h("h1", {}, "Compute"), h("p", { role: "alert", class: "banner" },
      "This page needs an admin API key: it shows every project's share of the compute."));
    return;
  }
  const box = h("div", { id: "compute" });
  draw(box, await api.get("/v1/organization/compute", { signal: ctx.signal }));
  main.replaceChildren(h("h1", {}, "Compute"), box);
  poll(async () => { draw(box, await api.get("/v1/organization/compute", { signal: ctx.signal })); }, 5000, ctx.signal);
}
