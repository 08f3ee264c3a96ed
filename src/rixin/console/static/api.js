// The console's only way to the platform: the public API, with the key the user typed.
// The key lives in sessionStorage (this tab only; gone when the tab closes).

const KEY = "rixin.key";

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, message, code = null, param = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  let code = null;
  let param = null;
  try {
    const body = await response.json();
    if (body && body.error) ({ message, code = null, param = null } = body.error);
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(response.status, message, code, param);
}

// fetch() with the key; throws ApiError with the server's message for any non-2xx answer.
// A 401 with the session's key also tells the app (the key is wrong or was revoked).
export async function request(path, { method = "GET", body, form, signal, key = session.key } = {}) {
  const headers = { Authorization: `Bearer ${key || ""}` };
  let payload;
  if (form) {
    payload = form;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, signal });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, `Cannot reach the rixin gateway (${e.message}). Is \`rixin up\` running?`);
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && key === session.key) {
      window.dispatchEvent(new CustomEvent("rixin:unauthorized", { detail: error.message }));
    }
    throw error;
  }
  return response;
}

export const api = {
  get: (path, opts) => request(path, opts).then((r) => r.json()),
  post: (path, body, opts) => request(path, { ...opts, method: "POST", body }).then((r) => r.json()),
  del: (path, opts) => request(path, { ...opts, method: "DELETE" }).then((r) => r.json()),
};

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const text = q.toString();
  return text ? `?${text}` : "";
}

export async function uploadFile(file, purpose, opts = {}) {
  const form = new FormData();
  form.append("purpose", purpose);
  form.append("file", file, file.name);
  return (await request("/v1/files", { ...opts, method: "POST", form })).json();
}

// Server-sent events: yields the payload of every `data:` line of a streamed response.
export async function* sseData(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, "");
        buffer = buffer.slice(newline + 1);
        if (line.startsWith("data:")) yield line.slice(5).trim();
      }
    }
  } finally {
    reader.releaseLock();
  }
}

// POST /v1/chat/completions with stream: true; onDelta(text) for every piece of the reply.
// Returns {usage, finish_reason}; a mid-stream error event is thrown as ApiError.
export async function streamChat(body, { signal, onDelta }) {
  const response = await request("/v1/chat/completions", {
    method: "POST", signal,
    body: { ...body, stream: true, stream_options: { include_usage: true } },
  });
  let usage = null;
  let finishReason = null;
  for await (const data of sseData(response)) {
    if (data === "[DONE]") break;
    const event = JSON.parse(data);
    if (event.error) throw new ApiError(500, event.error.message, event.error.code);
    if (event.usage) usage = event.usage;
    for (const choice of event.choices || []) {
      if (choice.delta && choice.delta.content) onDelta(choice.delta.content);
      if (choice.finish_reason) finishReason = choice.finish_reason;
    }
  }
  return { usage, finishReason };
}
