// #/training: the project's fine-tuning jobs, and a form that starts one.

import { api, query, uploadFile } from "../api.js";
import { act, badge, field, fmt, h, poll, select, table } from "../dom.js";

const TERMINAL = ["succeeded", "failed", "cancelled"];

function progressOf(job) {
  const p = job.progress || {};
  if (p.step && p.total_steps) return `step ${p.step}/${p.total_steps}`;
  return p.stage || "—";
}

function jobsTable(jobs) {
  return table([
    { label: "Job", value: (j) => h("a", { href: `#/training/${encodeURIComponent(j.id)}` }, h("code", {}, j.id)) },
    { label: "Status", value: (j) => badge(j.status) },
    { label: "Method", value: (j) => j.method.type },
    { label: "Base model", value: (j) => h("code", {}, j.model) },
    { label: "Progress", value: progressOf },
    { label: "Fine-tuned model", value: (j) => (j.fine_tuned_model ? h("code", {}, j.fine_tuned_model) : "—") },
    { label: "Created", value: (j) => fmt.time(j.created_at) },
  ], jobs, { caption: "Newest first", empty: "No fine-tuning jobs yet: start one below." });
}

async function createForm(ctx) {
  const [{ data: models }, { data: files }] = await Promise.all([
    api.get("/v1/models", { signal: ctx.signal }),
    api.get(`/v1/files${query({ purpose: "fine-tune" })}`, { signal: ctx.signal }),
  ]);
  const model = select(models.filter((m) => m.kind === "chat").map((m) => m.id), { name: "model" });
  const file = select([["", files.length ? "— choose an uploaded file —" : "— none uploaded yet —"],
    ...files.map((f) => [f.id, `${f.filename} (${f.id}, ${fmt.bytes(f.bytes)})`])], { name: "training_file" });
  const upload = h("input", { type: "file", name: "upload", accept: ".jsonl,.json" });
  const method = select([["supervised", "supervised (SFT)"], ["dpo", "dpo (preferences)"], ["continued_pretraining", "continued pretraining"]], { name: "method" });
  const suffix = h("input", { type: "text", name: "suffix", placeholder: "support" });
  const number = (name, step = "1") => h("input", { type: "number", name, min: "0", step, placeholder: "auto" });
  const epochs = number("n_epochs");
  const batch = number("batch_size");
  const lr = number("learning_rate_multiplier", "any");
  const rank = number("lora_rank");
  const submit = h("button", { type: "submit", class: "primary" }, "Start fine-tuning");
  const form = h("form", { class: "panel", "aria-labelledby": "new-job" },
    h("h2", { id: "new-job" }, "New fine-tuning job"),
    h("div", { class: "row" }, field("Base model", model), field("Method", method), field("Suffix", suffix)),
    h("div", { class: "row" }, field("Training file", file), field("…or upload one (JSONL)", upload)),
    h("div", { class: "row" }, field("Epochs", epochs), field("Batch size", batch),
      field("Learning-rate multiplier", lr), field("LoRA rank", rank), submit));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(submit, async () => {
      let trainingFile = file.value;
      if (upload.files.length) trainingFile = (await uploadFile(upload.files[0], "fine-tune", { signal: ctx.signal })).id;
      if (!trainingFile) throw new Error("Choose a training file or upload one.");
      const hyperparameters = {};
      for (const input of [epochs, batch, lr, rank]) if (input.value !== "") hyperparameters[input.name] = Number(input.value);
      const job = await api.post("/v1/fine_tuning/jobs", {
        model: model.value, training_file: trainingFile, suffix: suffix.value.trim() || undefined,
        method: { type: method.value, [method.value]: { hyperparameters } },
      }, { signal: ctx.signal });
      location.hash = `#/training/${encodeURIComponent(job.id)}`;
    });
  });
  return form;
}

export async function render(main, ctx) {
  const { data } = await api.get(`/v1/fine_tuning/jobs${query({ limit: 100 })}`, { signal: ctx.signal });
  const list = h("div", {}, jobsTable(data));
  main.replaceChildren(
    h("h1", {}, "Training"),
    h("p", { class: "lede" }, `Fine-tuning jobs of project ${ctx.me.project}. Open a job to follow its loss live.`),
    list, await createForm(ctx));
  if (data.some((j) => !TERMINAL.includes(j.status))) {
    poll(async () => {
      const fresh = await api.get(`/v1/fine_tuning/jobs${query({ limit: 100 })}`, { signal: ctx.signal });
      list.replaceChildren(jobsTable(fresh.data));
      return fresh.data.some((j) => !TERMINAL.includes(j.status));
    }, 2000, ctx.signal);
  }
}
