// #/admin (admin keys only): projects, their API keys (a new key is shown once, here, and never
// again), the cluster (Ray nodes, what runs where, active jobs, limits) and the engine replicas.

import { api } from "../api.js";
import { act, badge, field, fmt, h, notice, select, table } from "../dom.js";

async function keysPanel(project, ctx) {
  const box = h("section", { class: "panel", "aria-labelledby": "keys-title", id: "keys" });
  const secret = h("div", { id: "new-key", "aria-live": "polite" });
  const draw = async () => {
    const { data } = await api.get(`/v1/projects/${encodeURIComponent(project)}/api_keys`, { signal: ctx.signal });
    const name = h("input", { type: "text", name: "key_name", placeholder: "ci" });
    const isAdmin = h("input", { type: "checkbox", name: "key_admin" });
    const create = h("button", { type: "submit", class: "primary" }, "Create key");
    const form = h("form", { class: "row" }, field("Key name", name), field("Admin key", isAdmin, { inline: true }), create);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      act(create, async () => {
        const made = await api.post(`/v1/projects/${encodeURIComponent(project)}/api_keys`,
          { name: name.value.trim() || null, admin: isAdmin.checked }, { signal: ctx.signal });
        // Shown once: the secret lives only in this element, never stored by the console.
        secret.replaceChildren(h("div", { class: "banner info" },
          h("p", {}, `New key for ${project}. Copy it now: it is shown only this once.`),
          h("div", { class: "secret", id: "new-key-value" }, made.key),
          h("button", { type: "button", onclick: () => { secret.replaceChildren(); } }, "I have copied it — hide")));
        await draw();
      });
    });
    const revoke = (k) => {
      if (k.revoked_at) return `revoked ${fmt.time(k.revoked_at)}`;
      const b = h("button", { type: "button", class: "danger", "aria-label": `Revoke key ${k.prefix}… (${k.name || "unnamed"})` }, "Revoke");
      b.addEventListener("click", () => act(b, async () => {
        if (!window.confirm(`Revoke key ${k.prefix}…? Clients using it get 401 at once.`)) return;
        await api.del(`/v1/projects/${encodeURIComponent(project)}/api_keys/${encodeURIComponent(k.id)}`, { signal: ctx.signal });
        notice(`Key ${k.prefix}… revoked.`, "info");
        await draw();
      }));
      return b;
    };
    box.replaceChildren(
      h("h2", { id: "keys-title" }, `API keys of ${project}`), secret,
      table([
        { label: "Prefix", value: (k) => h("code", {}, `${k.prefix}…`) },
        { label: "Name", value: (k) => k.name || "—" },
        { label: "Admin", value: (k) => (k.admin ? "yes" : "no") },
        { label: "Created", value: (k) => fmt.time(k.created_at) },
        { label: "State", value: revoke },
      ], data, { empty: "No keys yet." }),
      form);
  };
  await draw();
  return box;
}

function enginesTable(engines) {
  const extra = [...new Set(engines.flatMap((e) => Object.keys(e)))]
    .filter((k) => !["model", "engine", "pid", "state", "context_length", "inflight"].includes(k));
  return table([
    { label: "Model", value: (e) => h("code", {}, e.model) },
    { label: "Engine", value: (e) => e.engine },
    { label: "State", value: (e) => badge(e.state) },
    { label: "PID", value: (e) => String(e.pid ?? "—"), num: true },
    { label: "Context", value: (e) => fmt.num(e.context_length), num: true },
    { label: "In flight", value: (e) => fmt.num(e.inflight), num: true },
    ...extra.map((k) => ({ label: k.replaceAll("_", " "), value: (e) => (typeof e[k] === "object" ? JSON.stringify(e[k]) : String(e[k] ?? "—")) })),
  ], engines, { empty: "No engine replicas are running." });
}

const GIB = 2 ** 30;

function clusterPanel(cluster, engines) {
  const where = (node) => engines.filter((e) => e.node_id === node.node_id).map((e) => e.model);
  const limits = cluster.limits;
  return h("section", { class: "panel", "aria-labelledby": "cluster-title", id: "cluster" },
    h("h2", { id: "cluster-title" }, "Cluster"),
    h("p", { class: "muted" }, `${cluster.nodes.length} node(s); free now: ${fmt.num(cluster.available.cpus)} CPUs, `
      + `${fmt.num(cluster.available.gpus)} GPUs.`),
    table([
      { label: "Node", value: (n) => h("code", {}, (n.node_id || "").slice(0, 12)) },
      { label: "Address", value: (n) => n.address || "—" },
      { label: "State", value: (n) => badge(n.alive ? "alive" : "dead") },
      { label: "CPUs", value: (n) => fmt.num(n.cpus), num: true },
      { label: "GPUs", value: (n) => fmt.num(n.gpus), num: true },
      { label: "Accelerators", value: (n) => n.accelerators.join(", ") || "—" },
      { label: "Memory", value: (n) => `${(n.memory_bytes / GIB).toFixed(1)} GiB`, num: true },
      { label: "Engines here", value: (n) => where(n).join(", ") || "—" },
    ], cluster.nodes, { empty: "Ray is not running." }),
    h("h3", {}, "Active jobs"),
    table([
      { label: "Project", value: (j) => j.project },
      { label: "Kind", value: (j) => j.kind },
      { label: "Status", value: (j) => badge(j.status) },
      { label: "Jobs", value: (j) => fmt.num(j.count), num: true },
    ], cluster.jobs, { empty: "No job is queued or running." }),
    h("h3", {}, "Limits and quotas"),
    h("dl", { class: "facts", id: "limits" },
      Object.entries(limits).flatMap(([k, v]) => [h("dt", {}, k.replaceAll("_", " ")), h("dd", {}, String(v))])));
}

export async function render(main, ctx) {
  if (!ctx.me.admin) {
    main.replaceChildren(h("h1", {}, "Admin"), h("p", { role: "alert", class: "banner" },
      "This page needs an admin API key (RIXIN_ADMIN_KEY or the key printed by the first `rixin up`)."));
    return;
  }
  const [{ data: projects }, { data: engines }, cluster] = await Promise.all([
    api.get("/v1/projects", { signal: ctx.signal }), api.get("/v1/engines", { signal: ctx.signal }),
    api.get("/v1/cluster", { signal: ctx.signal })]);
  const chosen = ctx.query.get("project") || (projects[0] && projects[0].name);
  const picker = select(projects.map((p) => p.name), { name: "project", value: chosen });
  picker.addEventListener("change", () => { location.hash = `#/admin?project=${encodeURIComponent(picker.value)}`; });
  const name = h("input", { type: "text", name: "project_name", placeholder: "support", pattern: "[a-z0-9][a-z0-9-]{0,62}" });
  const create = h("button", { type: "submit", class: "primary" }, "Create project");
  const form = h("form", { class: "row" }, field("New project name (lowercase letters, digits, -)", name), create);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(create, async () => {
      const made = await api.post("/v1/projects", { name: name.value.trim() }, { signal: ctx.signal });
      location.hash = `#/admin?project=${encodeURIComponent(made.name)}`;
    });
  });
  const refresh = h("button", { type: "button" }, "Refresh engines");
  const enginesBox = h("div", { id: "engines" }, enginesTable(engines));
  refresh.addEventListener("click", () => act(refresh, async () => {
    enginesBox.replaceChildren(enginesTable((await api.get("/v1/engines", { signal: ctx.signal })).data));
  }));
  main.replaceChildren(
    h("h1", {}, "Admin"),
    h("section", { class: "panel", "aria-labelledby": "projects-title" },
      h("h2", { id: "projects-title" }, "Projects"),
      table([
        { label: "Name", value: (p) => h("a", { href: `#/admin?project=${encodeURIComponent(p.name)}` }, p.name) },
        { label: "Id", value: (p) => h("code", {}, p.id) },
        { label: "Created", value: (p) => fmt.time(p.created_at) },
      ], projects, { empty: "No projects." }),
      form),
    projects.length ? h("div", { class: "row" }, field("Project", picker)) : null,
    chosen ? await keysPanel(chosen, ctx) : null,
    clusterPanel(cluster, engines),
    h("section", { class: "panel", "aria-labelledby": "engines-title" },
      h("h2", { id: "engines-title" }, "Engines"), refresh, enginesBox),
  );
}
