// Deliveries over time, succeeded against failed, drawn as plain inline SVG (no chart library).

import { el } from "./dom.js";

export const PERIODS = {
  hour: { spanMs: 3600e3, bucketMs: 5 * 60e3, title: "last hour", tick: (d) => d.toTimeString().slice(0, 5) },
  day: { spanMs: 24 * 3600e3, bucketMs: 3600e3, title: "last day", tick: (d) => `${String(d.getHours()).padStart(2, "0")}h` },
};

// Items of the delivery list -> [{start, succeeded, failed}] over the period ending at `now` (pure).
export function bucketize(items, period, now) {
  const p = PERIODS[period];
  const count = Math.round(p.spanMs / p.bucketMs);
  const end = Math.ceil(now / p.bucketMs) * p.bucketMs;
  const start = end - count * p.bucketMs;
  const buckets = Array.from({ length: count }, (_, i) => ({ start: start + i * p.bucketMs, succeeded: 0, failed: 0 }));
  for (const item of items) {
    const t = Date.parse(item.createdAt);
    if (Number.isNaN(t) || t < start || t >= end) continue;
    const b = buckets[Math.floor((t - start) / p.bucketMs)];
    if (item.status === "succeeded") b.succeeded += 1;
    else if (item.status === "failed" || item.status === "dead") b.failed += 1;
  }
  return buckets;
}

export function drawChart(container, buckets, period) {
  const p = PERIODS[period];
  const W = 600;
  const H = 220;
  const pad = { l: 36, r: 8, t: 12, b: 28 };
  const max = Math.max(1, ...buckets.map((b) => b.succeeded + b.failed));
  const plotW = W - pad.l - pad.r;
  const plotH = H - pad.t - pad.b;
  const bw = plotW / buckets.length;
  const y = (v) => pad.t + plotH - (v / max) * plotH;
  const ok = buckets.reduce((s, b) => s + b.succeeded, 0);
  const bad = buckets.reduce((s, b) => s + b.failed, 0);
  const summary = `Deliveries in the ${p.title}: ${ok} succeeded, ${bad} failed.`;

  const svg = el("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-labelledby": "chart-svg-title chart-svg-desc",
    class: "chart-svg",
    preserveAspectRatio: "xMidYMid meet",
  });
  svg.append(el("title", { id: "chart-svg-title" }, `Deliveries over the ${p.title}`));
  svg.append(el("desc", { id: "chart-svg-desc" }, summary));
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    svg.append(el("line", { x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(el("text", { x: pad.l - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, String(v)));
  }
  const every = Math.ceil(buckets.length / 6);
  buckets.forEach((b, i) => {
    const x = pad.l + i * bw + 1;
    const w = Math.max(1, bw - 2);
    const g = el("g", {});
    g.append(el("title", {}, `${new Date(b.start).toLocaleString()}: ${b.succeeded} succeeded, ${b.failed} failed`));
    if (b.succeeded) g.append(el("rect", { x, y: y(b.succeeded), width: w, height: y(0) - y(b.succeeded), class: "ok" }));
    if (b.failed) {
      g.append(el("rect", { x, y: y(b.succeeded + b.failed), width: w, height: y(0) - y(b.failed), class: "bad" }));
    }
    svg.append(g);
    if (i % every === 0) {
      svg.append(el("text", { x: x + w / 2, y: H - 8, class: "axis", "text-anchor": "middle" }, p.tick(new Date(b.start))));
    }
  });
  const legend = el("p", { class: "legend" },
    el("span", { class: "key ok" }), ` Succeeded (${ok}) `,
    el("span", { class: "key bad" }), ` Failed (${bad})`);
  container.replaceChildren(svg, legend);
}
