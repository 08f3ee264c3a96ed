// #/datasets: the project's datasets, and a form that uploads files and makes a dataset of them.

import { api, uploadFile } from "../api.js";
import { act, field, fmt, h, notice, select, table } from "../dom.js";

function createForm(ctx) {
  const name = h("input", { type: "text", name: "name", required: true, placeholder: "support-tickets" });
  const files = h("input", { type: "file", name: "files", multiple: true, required: true });
  const split = select([["paragraph", "paragraph"], ["line", "line"], ["file", "whole file"]], { name: "text_split" });
  const submit = h("button", { type: "submit", class: "primary" }, "Upload and create");
  const form = h("form", { class: "panel", "aria-labelledby": "create-dataset" },
    h("h2", { id: "create-dataset" }, "New dataset"),
    h("div", { class: "row" },
      field("Name", name),
      field("Files (JSONL, CSV, Parquet, text, Markdown…)", files),
      field("Split plain text by", split),
      submit));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(submit, async () => {
      const ids = [];
      for (const file of files.files) ids.push((await uploadFile(file, "user_data", { signal: ctx.signal })).id);
      const made = await api.post("/v1/datasets", { name: name.value.trim(), files: ids, text_split: split.value },
        { signal: ctx.signal });
      notice(`Dataset ${made.name} created.`, "info");
      location.hash = `#/datasets/${encodeURIComponent(made.id)}`;
    });
  });
  return form;
}

export async function render(main, ctx) {
  const { data } = await api.get("/v1/datasets", { signal: ctx.signal });
  const latest = (d) => d.versions.at(-1) || {};
  main.replaceChildren(
    h("h1", {}, "Datasets"),
    h("p", { class: "lede" }, "Versions are immutable: cleaning, labeling and review each add a version."),
    table([
      { label: "Name", value: (d) => h("a", { href: `#/datasets/${encodeURIComponent(d.id)}` }, d.name) },
      { label: "Id", value: (d) => h("code", {}, d.id) },
      { label: "Versions", value: (d) => String(d.versions.length), num: true },
      { label: "Latest", value: (d) => `v${latest(d).version} (${latest(d).operation})` },
      { label: "Records", value: (d) => fmt.num(latest(d).records), num: true },
      { label: "Created", value: (d) => fmt.time(d.created_at) },
    ], data, { caption: `Datasets of project ${ctx.me.project}`, empty: "No datasets yet: upload files below." }),
    createForm(ctx),
  );
}
