// #/models: every model the project may use, and fine-tuned models' lineage (parent → child).

import { api } from "../api.js";
import { lineageGraph } from "../charts.js";
import { fmt, h, table } from "../dom.js";

const playgroundLink = (m) => (m.kind === "chat"
  ? h("a", { href: `#/playground?model=${encodeURIComponent(m.id)}`, "aria-label": `Open ${m.id} in the playground` }, "Try")
  : "—");

export async function render(main, ctx) {
  const { data } = await api.get("/v1/models", { signal: ctx.signal });
  const tuned = data.filter((m) => m.parent);
  main.replaceChildren(
    h("h1", {}, "Models"),
    h("p", { class: "lede" }, `${data.length} models available to project ${ctx.me.project}: `,
      `${data.length - tuned.length} base, ${tuned.length} fine-tuned.`),
    table([
      { label: "Model", value: (m) => h("code", { class: "model-id" }, m.id) },
      { label: "Kind", value: (m) => m.kind },
      { label: "Engine", value: (m) => m.engine },
      { label: "Format", value: (m) => m.format },
      { label: "Size", value: (m) => fmt.bytes(m.size_bytes), num: true },
      { label: "Owner", value: (m) => m.owned_by },
      { label: "Parent", value: (m) => (m.parent ? h("code", {}, m.parent) : "—") },
      { label: "Created", value: (m) => fmt.time(m.created) },
      { label: "Playground", value: playgroundLink },
    ], data, { caption: "Models of this project and the shared base models", empty: "No models." }),
    h("h2", {}, "Lineage"),
    tuned.length
      ? h("p", { class: "muted" }, "Each fine-tuned model sits under the model it was trained from; click one to try it.")
      : h("p", { class: "muted" }, "No fine-tuned models yet: a successful fine-tuning job adds its model under its base here."),
    h("div", { class: "panel scroll" }, lineageGraph(data, {
      onSelect: (m) => { if (m.kind === "chat") location.hash = `#/playground?model=${encodeURIComponent(m.id)}`; },
    })),
  );
}
