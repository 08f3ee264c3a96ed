// The console shell: sign-in with an API key, the hash router, the navigation.
// Each page module exports render(main, ctx); ctx.signal aborts when the user navigates away,
// which stops that page's fetches and polling.

import { api, session } from "./api.js";
import { clearNotice, field, h } from "./dom.js";
import * as admin from "./pages/admin.js";
import * as compute from "./pages/compute.js";
import * as dataset from "./pages/dataset.js";
import * as datasets from "./pages/datasets.js";
import * as deployment from "./pages/deployment.js";
import * as deployments from "./pages/deployments.js";
import * as evalrun from "./pages/evalrun.js";
import * as evals from "./pages/evals.js";
import * as job from "./pages/job.js";
import * as logs from "./pages/logs.js";
import * as models from "./pages/models.js";
import * as playground from "./pages/playground.js";
import * as training from "./pages/training.js";
import * as usage from "./pages/usage.js";

const ROUTES = [
  { path: /^\/models$/, page: models, nav: "models", title: "Models" },
  { path: /^\/datasets$/, page: datasets, nav: "datasets", title: "Datasets" },
  { path: /^\/datasets\/([^/]+)$/, page: dataset, nav: "datasets", title: "Dataset" },
  { path: /^\/training$/, page: training, nav: "training", title: "Training" },
  { path: /^\/training\/([^/]+)$/, page: job, nav: "training", title: "Fine-tuning job" },
  { path: /^\/playground$/, page: playground, nav: "playground", title: "Playground" },
  { path: /^\/deployments$/, page: deployments, nav: "deployments", title: "Deployments" },
  { path: /^\/deployments\/([^/]+)$/, page: deployment, nav: "deployments", title: "Deployment" },
  { path: /^\/logs$/, page: logs, nav: "logs", title: "Logs" },
  { path: /^\/evals$/, page: evals, nav: "evals", title: "Evaluations" },
  { path: /^\/evals\/([^/]+)$/, page: evalrun, nav: "evals", title: "Eval run" },
  { path: /^\/usage$/, page: usage, nav: "usage", title: "Usage" },
  { path: /^\/compute$/, page: compute, nav: "compute", title: "Compute" },
  { path: /^\/admin$/, page: admin, nav: "admin", title: "Admin" },
];

const main = document.getElementById("main");
let me = null; // GET /v1/me for the session's key
let current = null; // AbortController of the page on screen

function showShell(visible) {
  document.getElementById("nav").hidden = !visible;
  document.getElementById("who").hidden = !visible;
  document.getElementById("nav-admin").hidden = !(visible && me && me.admin);
  document.getElementById("nav-compute").hidden = !(visible && me && me.admin);
  document.getElementById("who-admin").hidden = !(visible && me && me.admin);
  document.getElementById("who-project").textContent = me ? me.project : "";
}

function signOut(message, kind = "error") {
  session.key = null;
  me = null;
  if (current) current.abort();
  renderSignIn(message, kind);
}

function renderSignIn(message = null, kind = "error") {
  showShell(false);
  document.title = "Sign in · rixin";
  const key = h("input", { type: "password", name: "key", autocomplete: "off", required: true, spellcheck: "false" });
  const error = h("p", { id: "signin-error", class: kind === "error" ? "banner" : "banner info", role: "alert", hidden: !message }, message || "");
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "panel signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to rixin"),
    h("p", { class: "muted" }, "Use an API key of your project (", h("code", {}, "rixin keys create --project NAME"),
      ") or the admin key that ", h("code", {}, "rixin up"), " printed. The key stays in this browser tab only."),
    field("API key", key),
    error, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      me = await api.get("/v1/me", { key: key.value.trim() });
      session.key = key.value.trim();
      if (!location.hash || location.hash === "#/" || location.hash === "#") location.hash = "#/models";
      else route();
    } catch (e) {
      error.className = "banner";
      error.textContent = e.status === 401 ? `Sign-in failed: ${e.message}` : e.message;
      error.hidden = false;
      key.focus();
    } finally {
      submit.disabled = false;
    }
  });
  main.replaceChildren(form);
  key.focus();
}

function parseHash() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  return { path: path || "/", query: new URLSearchParams(query) };
}

async function route() {
  if (current) current.abort();
  current = new AbortController();
  const { signal } = current;
  clearNotice();
  if (!session.key) return renderSignIn();
  if (!me) {
    try {
      me = await api.get("/v1/me", { signal });
    } catch (e) {
      if (e.name === "AbortError") return undefined;
      if (e.status === 401) return signOut(`Your key is not accepted any more: ${e.message}`);
      main.replaceChildren(h("h1", {}, "The gateway does not answer"), h("p", { role: "alert" }, e.message));
      return undefined;
    }
  }
  showShell(true);
  const { path, query } = parseHash();
  const match = ROUTES.map((r) => [r, path.match(r.path)]).find(([, m]) => m);
  if (!match) {
    location.replace("#/models");
    return undefined;
  }
  const [spec, groups] = match;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === `#/${spec.nav}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${spec.title} · rixin`;
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  const ctx = { signal, query, me, params: groups.slice(1).map(decodeURIComponent) };
  try {
    await spec.page.render(main, ctx);
  } catch (e) {
    if (e.name === "AbortError" || signal.aborted) return undefined;
    main.replaceChildren(h("h1", {}, `Could not load ${spec.title.toLowerCase()}`),
      h("p", { role: "alert", class: "banner" }, e.message));
  }
  return undefined;
}

window.addEventListener("hashchange", route);
window.addEventListener("rixin:unauthorized", (event) => {
  if (session.key) signOut(`Your key is not accepted any more (wrong or revoked): ${event.detail}`);
});
document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out.", "info"));
route();
