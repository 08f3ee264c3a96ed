// #/playground: chat with any chat model or deployment of the project, streamed token by token
// (POST /v1/chat/completions with stream: true, read as SSE from a ReadableStream); system
// prompt, temperature, max tokens, JSON mode; optionally two models side by side, each with
// its own conversation, both answering the same message at once.

import { api, streamChat } from "../api.js";
import { clearNotice, field, fmt, h, select } from "../dom.js";

function pane(name) {
  const log = h("div", { class: "chat", "aria-live": "polite", "aria-label": `Conversation with model ${name}` });
  const title = h("h2", {}, name);
  return { name, log, title, history: [], box: h("section", { class: "panel pane" }, title, log) };
}

async function reply(p, model, settings, signal) {
  const bubble = h("div", { class: "bubble assistant", "data-model": model });
  const text = h("span", { class: "reply" });
  const meta = h("span", { class: "meta" }, "…");
  bubble.append(text, meta);
  p.log.append(bubble);
  const messages = [...(settings.system ? [{ role: "system", content: settings.system }] : []), ...p.history];
  const started = performance.now();
  let first = null;
  try {
    const { usage, finishReason } = await streamChat({
      model, messages, temperature: settings.temperature, max_tokens: settings.maxTokens,
      ...(settings.json ? { response_format: { type: "json_object" } } : {}),
    }, {
      signal,
      onDelta: (piece) => {
        if (first === null) first = performance.now();
        text.textContent += piece;
      },
    });
    p.history.push({ role: "assistant", content: text.textContent });
    const seconds = (performance.now() - (first ?? started)) / 1000;
    const tokens = usage ? usage.completion_tokens : null;
    meta.textContent = [model, tokens !== null ? `${tokens} tokens` : null,
      tokens && seconds > 0 ? `${fmt.num(tokens / seconds, 1)} tokens/s` : null,
      first !== null ? `first token after ${fmt.num((first - started) / 1000, 2)} s` : null,
      finishReason ? `finish: ${finishReason}` : null].filter(Boolean).join(" · ");
  } catch (e) {
    bubble.classList.add("error");
    meta.textContent = e.name === "AbortError" ? "stopped" : `error: ${e.message}`;
    if (text.textContent) p.history.push({ role: "assistant", content: text.textContent });
    else p.history.pop(); // the question got no answer: leave it out of the next turn
  }
}

export async function render(main, ctx) {
  const [{ data }, { data: deployments }] = await Promise.all([
    api.get("/v1/models", { signal: ctx.signal }), api.get("/v1/deployments", { signal: ctx.signal })]);
  // a deployment's name is sent as `model`, like a model id (requests through it are logged)
  const choices = [...data.filter((m) => m.kind === "chat").map((m) => [m.id, m.id]),
    ...deployments.map((d) => [d.name, `${d.name} (deployment → ${d.model})`])];
  const chatModels = choices.map(([id]) => id);
  if (!chatModels.length) {
    main.replaceChildren(h("h1", {}, "Playground"), h("p", {}, "This project has no chat model."));
    return;
  }
  const wanted = ctx.query.get("model");
  const modelA = select(choices, { name: "model", value: chatModels.includes(wanted) ? wanted : chatModels[0] });
  const modelB = select(choices, { name: "model_b", value: chatModels.find((m) => m !== modelA.value) || chatModels[0] });
  const compare = h("input", { type: "checkbox", name: "compare" });
  const system = h("textarea", { name: "system", rows: 2, placeholder: "You are a helpful assistant." });
  const temperature = h("input", { type: "number", name: "temperature", min: "0", max: "2", step: "0.1", value: "0.7" });
  const maxTokens = h("input", { type: "number", name: "max_tokens", min: "1", max: "4096", step: "1", value: "256" });
  const json = h("input", { type: "checkbox", name: "json_mode" });
  const message = h("textarea", { name: "message", rows: 3, placeholder: "Ask something… (Enter sends, Shift+Enter for a new line)" });
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const stop = h("button", { type: "button", disabled: true }, "Stop");
  const clear = h("button", { type: "button" }, "Clear conversation");
  const modelBField = field("Model B", modelB);
  modelBField.hidden = true;

  const panes = h("div", { class: "grid2", id: "panes" });
  let a = pane(modelA.value);
  let b = pane(modelB.value);
  const layout = () => {
    modelBField.hidden = !compare.checked;
    a.title.textContent = compare.checked ? `A · ${modelA.value}` : modelA.value;
    b.title.textContent = `B · ${modelB.value}`;
    panes.replaceChildren(a.box, ...(compare.checked ? [b.box] : []));
  };
  const reset = () => { a = pane(modelA.value); b = pane(modelB.value); layout(); };
  compare.addEventListener("change", layout);
  modelA.addEventListener("change", reset);
  modelB.addEventListener("change", reset);
  clear.addEventListener("click", reset);

  let running = null;
  stop.addEventListener("click", () => running && running.abort());
  ctx.signal.addEventListener("abort", () => running && running.abort());
  const form = h("form", { class: "panel", "aria-label": "Send a message" },
    field("Message", message), h("div", { class: "row" }, send, stop, clear));
  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const content = message.value.trim();
    if (!content || running) return;
    clearNotice();
    const settings = { system: system.value.trim(), temperature: Number(temperature.value), maxTokens: Number(maxTokens.value), json: json.checked };
    const targets = compare.checked ? [[a, modelA.value], [b, modelB.value]] : [[a, modelA.value]];
    running = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    message.value = "";
    for (const [p] of targets) {
      p.history.push({ role: "user", content });
      p.log.append(h("div", { class: "bubble user" }, content));
    }
    try {
      await Promise.all(targets.map(([p, model]) => reply(p, model, settings, running.signal)));
    } finally {
      running = null;
      send.disabled = false;
      stop.disabled = true;
      message.focus();
    }
  });

  main.replaceChildren(
    h("h1", {}, "Playground"),
    h("section", { class: "panel", "aria-label": "Settings" },
      h("div", { class: "row" }, field("Model", modelA), field("Compare two models side by side", compare, { inline: true }), modelBField),
      field("System prompt", system),
      h("div", { class: "row" }, field("Temperature", temperature), field("Max tokens", maxTokens),
        field("JSON mode (reply is a JSON object)", json, { inline: true }))),
    panes, form);
  layout();
}
