// Charts as inline SVG, drawn by hand: a line chart (loss, tokens/s), a horizontal bar chart
// (removed per reason, labels, confidences), an interval chart (a difference with its
// confidence interval) and the model lineage graph (parent → child).
// Every chart is role="img" with a text summary for screen readers.

import { s } from "./dom.js";

// About `count` round tick values covering [lo, hi].
export function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((v) => v >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12))); // no "-2.8e-17" for 0
  }
  return out;
}

const label = (v) => (Math.abs(v) >= 1000 ? v.toLocaleString() : String(Number(v.toPrecision(4))));

// series: [{name, points: [[x, y], ...]}] (points sorted by x). One polyline per series, and a
// circle per point (class "point") while there are few enough to tell apart.
// yMax: the top of the y axis at least this (e.g. 1 for scores in [0, 1]).
export function lineChart(series, { title, xLabel = "", yLabel = "", width = 640, height = 260, zeroBased = false, yMax = null } = {}) {
  const all = series.flatMap((x) => x.points);
  const m = { left: 56, right: 16, top: 24, bottom: 40 };
  const svg = s("svg", {
    class: "chart line-chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "data-points": all.length,
  });
  const last = series[0] && series[0].points.at(-1);
  svg.append(s("title", {}, `${title}: ${all.length ? `${all.length} points, last ${yLabel} ${label(last[1])} at ${xLabel} ${last[0]}` : "no data yet"}`));
  if (!all.length) {
    svg.append(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "No data yet"));
    return svg;
  }
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [zeroBased ? 0 : Math.min(...ys), Math.max(yMax ?? -Infinity, ...ys)];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
  const pad = (y1 - y0) * 0.05;
  y0 = zeroBased ? y0 : y0 - pad;
  y1 += pad;
  const X = (x) => m.left + ((x - x0) / (x1 - x0)) * (width - m.left - m.right);
  const Y = (y) => height - m.bottom - ((y - y0) / (y1 - y0)) * (height - m.top - m.bottom);

  for (const t of ticks(y0, y1, 5)) {
    svg.append(s("line", { class: "grid", x1: m.left, x2: width - m.right, y1: Y(t), y2: Y(t) }),
      s("text", { x: m.left - 6, y: Y(t) + 4, "text-anchor": "end" }, label(t)));
  }
  const integral = xs.every(Number.isInteger); // steps: no tick at step 1.5
  for (const t of ticks(x0, x1, 6).filter((t) => !integral || Number.isInteger(t))) {
    svg.append(s("text", { x: X(t), y: height - m.bottom + 16, "text-anchor": "middle" }, label(t)));
  }
  svg.append(
    s("line", { class: "axis", x1: m.left, x2: width - m.right, y1: height - m.bottom, y2: height - m.bottom }),
    s("line", { class: "axis", x1: m.left, x2: m.left, y1: m.top, y2: height - m.bottom }),
    s("text", { x: (m.left + width - m.right) / 2, y: height - 6, "text-anchor": "middle" }, xLabel),
    s("text", { x: 12, y: m.top - 8 }, yLabel),
  );
  series.forEach((one, i) => {
    const points = one.points.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ");
    svg.append(s("polyline", { class: `series-${i}`, points, "data-series": one.name }));
    if (one.points.length <= 400) {
      for (const [x, y] of one.points) {
        svg.append(s("circle", { class: `point series-${i}`, cx: X(x).toFixed(1), cy: Y(y).toFixed(1), r: 2.5 },
          s("title", {}, `${one.name}: ${xLabel} ${x}, ${label(y)}`)));
      }
    }
    if (series.length > 1) { // room for the longest name (about 6.5 px a character at 11 px)
      const room = Math.max(110, 14 + 6.5 * Math.max(...series.map((x) => x.name.length)));
      svg.append(s("rect", { class: `legend-${i}`, x: width - m.right - room, y: m.top - 16 + i * 14, width: 10, height: 10 }),
        s("text", { x: width - m.right - room + 14, y: m.top - 7 + i * 14 }, one.name));
    }
  });
  return svg;
}

// items: [{label, value}] drawn as horizontal bars, largest value = full width.
export function barChart(items, { title, width = 560, barHeight = 20, labelWidth = 170 } = {}) {
  const height = Math.max(1, items.length) * (barHeight + 6) + 8;
  const svg = s("svg", { class: "chart bar-chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  svg.append(s("title", {}, `${title}: ${items.map((i) => `${i.label} ${i.value}`).join(", ") || "nothing"}`));
  const max = Math.max(1, ...items.map((i) => i.value));
  const room = width - labelWidth - 60;
  items.forEach((item, n) => {
    const y = 4 + n * (barHeight + 6);
    const w = Math.max(item.value > 0 ? 2 : 0, (item.value / max) * room);
    svg.append(
      s("text", { x: labelWidth - 8, y: y + barHeight * 0.7, "text-anchor": "end" }, item.label),
      s("rect", { class: "bar", x: labelWidth, y, width: w.toFixed(1), height: barHeight, "data-label": item.label },
        s("title", {}, `${item.label}: ${item.value}`)),
      s("text", { x: labelWidth + w + 6, y: y + barHeight * 0.7 }, item.value.toLocaleString()),
    );
  });
  return svg;
}

// rows: [{label, mean, low, high}] drawn as a point with its interval on a shared axis that
// always includes 0 (the "no difference" line), one row per comparison.
export function intervalChart(rows, { title, xLabel = "", width = 640, rowHeight = 44 } = {}) {
  const m = { left: 24, right: 24, top: 8, bottom: 36 };
  const height = m.top + Math.max(1, rows.length) * rowHeight + m.bottom;
  const svg = s("svg", { class: "chart interval-chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "data-rows": rows.length });
  svg.append(s("title", {}, `${title}: ${rows.map((r) => `${r.label} ${label(r.mean)} (95% CI ${label(r.low)} to ${label(r.high)})`).join("; ") || "nothing"}`));
  const values = rows.flatMap((r) => [r.low, r.high, r.mean]).concat([0]);
  let [x0, x1] = [Math.min(...values), Math.max(...values)];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  const pad = (x1 - x0) * 0.08;
  [x0, x1] = [x0 - pad, x1 + pad];
  const X = (x) => m.left + ((x - x0) / (x1 - x0)) * (width - m.left - m.right);
  const bottom = height - m.bottom;
  for (const t of ticks(x0, x1, 6)) {
    svg.append(s("line", { class: "grid", x1: X(t), x2: X(t), y1: m.top, y2: bottom }),
      s("text", { x: X(t), y: bottom + 16, "text-anchor": "middle" }, label(t)));
  }
  svg.append(
    s("line", { class: "axis", x1: m.left, x2: width - m.right, y1: bottom, y2: bottom }),
    s("line", { class: "zero", x1: X(0), x2: X(0), y1: m.top, y2: bottom }),
    s("text", { x: (m.left + width - m.right) / 2, y: height - 4, "text-anchor": "middle" }, xLabel),
  );
  rows.forEach((r, i) => {
    const y = m.top + i * rowHeight + rowHeight * 0.65;
    const side = r.low > 0 ? "above" : r.high < 0 ? "below" : "spans";
    svg.append(
      s("text", { x: m.left, y: y - 12 }, r.label),
      s("g", { class: `interval ${side}`, "data-low": r.low, "data-high": r.high, "data-mean": r.mean },
        s("line", { x1: X(r.low), x2: X(r.high), y1: y, y2: y }),
        s("line", { x1: X(r.low), x2: X(r.low), y1: y - 6, y2: y + 6 }),
        s("line", { x1: X(r.high), x2: X(r.high), y1: y - 6, y2: y + 6 }),
        s("circle", { cx: X(r.mean), cy: y, r: 4.5 },
          s("title", {}, `${r.label}: ${label(r.mean)}, 95% CI [${label(r.low)}, ${label(r.high)}]`))),
    );
  });
  return svg;
}

// Models as a tree: each model under its parent (fine-tuned from it), one row per model.
export function lineageGraph(models, { onSelect } = {}) {
  const byId = new Map(models.map((m) => [m.id, m]));
  for (const m of models) {
    if (m.parent && !byId.has(m.parent)) byId.set(m.parent, { id: m.parent, parent: null, missing: true });
  }
  const children = new Map();
  for (const m of byId.values()) {
    if (m.parent) children.set(m.parent, [...(children.get(m.parent) || []), m]);
  }
  const rows = [];
  const seen = new Set();
  const visit = (m, depth) => {
    if (seen.has(m.id)) return;
    seen.add(m.id);
    rows.push({ model: m, depth });
    for (const c of children.get(m.id) || []) visit(c, depth + 1);
  };
  for (const m of byId.values()) if (!m.parent || !byId.has(m.parent)) visit(m, 0);
  for (const m of byId.values()) visit(m, 0); // cycles, if any: still shown once
  const rowHeight = 46;
  const indent = 36;
  const box = 470;
  const maxDepth = Math.max(0, ...rows.map((r) => r.depth));
  const width = box + maxDepth * indent + 12;
  const height = rows.length * rowHeight + 8;
  const svg = s("svg", { class: "graph lineage", viewBox: `0 0 ${width} ${height}`, width, height, role: "img" },
    s("title", {}, `Model lineage: ${rows.filter((r) => r.model.parent).map((r) => `${r.model.parent} → ${r.model.id}`).join("; ") || "no fine-tuned models"}`),
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto" },
      s("path", { d: "M0,0 L8,4 L0,8 z" }))));
  const place = new Map();
  rows.forEach((r, i) => place.set(r.model.id, { x: 4 + r.depth * indent, y: 4 + i * rowHeight }));
  for (const r of rows) {
    const parent = r.model.parent && place.get(r.model.parent);
    if (!parent) continue;
    const me = place.get(r.model.id);
    const px = parent.x + 14;
    svg.append(s("path", { class: "edge", d: `M${px},${parent.y + 36} V${me.y + 18} H${me.x}`, "marker-end": "url(#arrow)" }));
  }
  for (const r of rows) {
    const { x, y } = place.get(r.model.id);
    const m = r.model;
    const text = m.id.length > 62 ? `${m.id.slice(0, 60)}…` : m.id;
    const sub = m.missing ? "not visible to this project" : [m.kind, m.engine, m.source].filter(Boolean).join(" · ");
    const g = s("g", { class: "node", "data-model": m.id },
      s("rect", { class: m.parent ? "ft" : "base", x, y, width: box, height: 36 }),
      s("text", { x: x + 8, y: y + 15 }, text, s("title", {}, m.id)),
      s("text", { class: "sub", x: x + 8, y: y + 30 }, sub));
    if (onSelect && !m.missing) g.addEventListener("click", () => onSelect(m));
    svg.append(g);
  }
  return svg;
}

// Stacked columns, one per category (a day), one colour per series (a model):
// series: [{name, values: [number per category]}]. Each segment carries data-series,
// data-category and data-value, and a tooltip.
export function columnChart(categories, series, { title, yLabel = "", width = 640, height = 260 } = {}) {
  const m = { left: 64, right: 16, top: 24 + 14 * series.length, bottom: 40 };
  const totals = categories.map((_, i) => series.reduce((sum, x) => sum + x.values[i], 0));
  const svg = s("svg", { class: "chart column-chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  const summary = categories.map((c, i) => `${c} ${totals[i].toLocaleString()}`).join(", ");
  svg.append(s("title", {}, `${title}: ${totals.some((t) => t > 0) ? summary : "nothing yet"}`));
  const top = Math.max(1, ...totals);
  const Y = (v) => height - m.bottom - (v / top) * (height - m.top - m.bottom);
  for (const t of ticks(0, top, 4)) {
    svg.append(s("line", { class: "grid", x1: m.left, x2: width - m.right, y1: Y(t), y2: Y(t) }),
      s("text", { x: m.left - 6, y: Y(t) + 4, "text-anchor": "end" }, label(t)));
  }
  const slot = (width - m.left - m.right) / Math.max(1, categories.length);
  const every = Math.ceil(categories.length / 10); // at most 10 labels under the axis
  categories.forEach((c, i) => {
    const x = m.left + i * slot + slot * 0.15;
    let base = 0;
    series.forEach((one, k) => {
      const v = one.values[i];
      if (v > 0) {
        svg.append(s("rect", { class: `column legend-${k % 3}`, x: x.toFixed(1), y: Y(base + v).toFixed(1),
          width: (slot * 0.7).toFixed(1), height: (Y(base) - Y(base + v)).toFixed(1),
          "data-series": one.name, "data-category": c, "data-value": v },
        s("title", {}, `${one.name}, ${c}: ${v.toLocaleString()} ${yLabel}`)));
      }
      base += v;
    });
    if (i % every === 0) svg.append(s("text", { x: x + slot * 0.35, y: height - m.bottom + 16, "text-anchor": "middle" }, c));
  });
  svg.append(s("line", { class: "axis", x1: m.left, x2: width - m.right, y1: height - m.bottom, y2: height - m.bottom }),
    s("text", { x: 12, y: 14 }, yLabel));
  series.forEach((one, k) => {
    svg.append(s("rect", { class: `legend-${k % 3}`, x: width - m.right - 220, y: 8 + k * 14, width: 10, height: 10 }),
      s("text", { x: width - m.right - 206, y: 17 + k * 14 }, one.name));
  });
  return svg;
}
