// Small DOM helpers: h() builds elements, field() pairs a control with its <label>,
// table() renders rows, notice() fills the alert banner. Text is always set as text (never
// as HTML), so nothing from a dataset or a model can inject markup.

const SVG_NS = "http://www.w3.org/2000/svg";
const PROPERTIES = new Set(["value", "checked", "disabled", "selected", "multiple", "hidden"]);

function setAttributes(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (PROPERTIES.has(name) && !(el instanceof SVGElement)) {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

function appendChildren(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  appendChildren(el, children);
  return el;
}

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttributes(el, attrs);
  appendChildren(el, children);
  return el;
}

let counter = 0;
export const uid = (prefix = "c") => `${prefix}-${++counter}`;

// A labelled control: <div class="field"><label for=id>text</label>control</div>.
export function field(label, control, { hint, inline = false } = {}) {
  if (!control.id) control.id = uid("f");
  const hintEl = hint ? h("small", { id: `${control.id}-hint`, class: "muted" }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  const labelEl = h("label", { for: control.id }, label);
  return h("div", { class: inline ? "field inline" : "field" },
    inline ? [control, labelEl] : [labelEl, control], hintEl);
}

export function select(options, attrs = {}) {
  return h("select", attrs, options.map((o) => {
    const [value, text] = Array.isArray(o) ? o : [o, o];
    return h("option", { value, selected: value === attrs.value }, text);
  }));
}

// columns: [{label, value: row => node|string, num?: bool}]
export function table(columns, rows, { caption, empty = "Nothing here yet." } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "scroll" }, h("table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
    h("tbody", {}, rows.map((row) => h("tr", {},
      columns.map((c) => h("td", { class: c.num ? "num" : null }, c.value(row))))))));
}

export function badge(status) {
  return h("span", { class: `badge ${status}` }, status);
}

export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

export const fmt = {
  time(ts) { return ts ? new Date(ts * 1000).toLocaleString() : "—"; },
  bytes(n) {
    if (n === null || n === undefined) return "—";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
  },
  num(n, digits = 0) {
    if (n === null || n === undefined || Number.isNaN(n)) return "—";
    return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
  },
};

const banner = () => document.getElementById("banner");

export function notice(message, kind = "error") {
  const el = banner();
  el.className = kind === "error" ? "banner" : "banner info";
  el.textContent = message;
  el.hidden = false;
}

export function clearNotice() {
  const el = banner();
  el.hidden = true;
  el.textContent = "";
}

// Runs an async action from a button: disables it meanwhile, shows any error in the banner.
export async function act(button, action) {
  button.disabled = true;
  try {
    clearNotice();
    return await action();
  } catch (e) {
    if (e.name !== "AbortError") notice(e.message);
    return undefined;
  } finally {
    button.disabled = false;
  }
}

// Calls fn every `ms` until it returns false or the signal aborts (page left).
export function poll(fn, ms, signal) {
  const tick = async () => {
    if (signal.aborted) return;
    let again = true;
    try {
      again = await fn();
    } catch (e) {
      if (e.name === "AbortError" || signal.aborted) return;
      notice(e.message);
      if (e.status === 401) return;
    }
    if (again !== false && !signal.aborted) setTimeout(tick, ms);
  };
  setTimeout(tick, ms);
}
