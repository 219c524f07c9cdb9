// Small SVG charts drawn from numbers, updated in place every scrape. Each chart also states its
// current values in text (its caption), which is what a screen reader reads and what a test can
// check; the drawing is the same information for the eye.

import { h, svg } from "./dom.js";
import { HISTORY_SECONDS } from "./live.js";

const WIDTH = 600;
const HEIGHT = 200;
const PAD = { left: 56, right: 12, top: 12, bottom: 26 };
const PLOT_W = WIDTH - PAD.left - PAD.right;
const PLOT_H = HEIGHT - PAD.top - PAD.bottom;

// The time span drawn: what has been seen, at least a minute, at most HISTORY_SECONDS.
function span(points) {
  const oldest = points.length ? points[0].age : 0;
  return Math.min(HISTORY_SECONDS, Math.max(60, Math.ceil(oldest / 60) * 60));
}

// The smallest "round" number (1, 2 or 5 × 10^n) at or above `value`.
function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function figure(title, className) {
  const caption = h("figcaption", {}, h("span", { class: "chart-title" }, title));
  const values = h("span", { class: "chart-values" });
  caption.append(values);
  const drawing = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-label": title,
    class: "chart-svg",
  });
  const element = h("figure", { class: `chart ${className}` }, caption, drawing);
  return { element, values, drawing };
}

function axes(drawing, top, format) {
  drawing.replaceChildren();
  for (const fraction of [0, 0.5, 1]) {
    const y = PAD.top + PLOT_H * (1 - fraction);
    drawing.append(
      svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: "grid" }),
      svg("text", { x: PAD.left - 6, y: y + 4, class: "tick tick-y" }, format(top * fraction)),
    );
  }
}

// Lines over the last HISTORY_SECONDS; `lines`: [{key, label, className, format}].
export class LineChart {
  constructor(title, lines, format) {
    Object.assign(this, figure(title, "line-chart"));
    this.lines = lines;
    this.format = format;
    this.legend = h("ul", { class: "legend" },
      lines.map((l) => h("li", { class: l.className }, h("span", { class: "swatch" }), l.label)));
    this.element.append(this.legend);
  }

  // points: [{age, [key]: number | null}], oldest first; `summary`: the caption's text.
  update(points, summary) {
    this.values.textContent = summary;
    const values = points.flatMap((p) => this.lines.map((l) => p[l.key]))
      .filter((v) => v !== null && Number.isFinite(v));
    const top = niceCeiling(Math.max(0, ...values));
    axes(this.drawing, top, this.format);
    const seconds = span(points);
    const x = (age) => PAD.left + PLOT_W * (1 - Math.min(age, seconds) / seconds);
    const y = (v) => PAD.top + PLOT_H * (1 - v / top);
    for (const [label, age] of [[`−${seconds / 60} min`, seconds], ["now", 0]]) {
      this.drawing.append(svg("text", {
        x: x(age), y: HEIGHT - 6, class: `tick tick-x ${age === 0 ? "end" : "start"}`,
      }, label));
    }
    for (const line of this.lines) {
      let d = "";
      let pen = false;
      for (const p of points) {
        const v = p[line.key];
        if (v === null || !Number.isFinite(v)) {
          pen = false;
          continue;
        }
        d += `${pen ? "L" : "M"}${x(p.age).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      }
      this.drawing.append(svg("path", { d: d || "M0,0", class: `series ${line.className}` }));
    }
  }
}

// Bars, one per histogram bucket ("≤ 1", "2", "3–4", …): the batch-size distribution.
export class BarChart {
  constructor(title, format) {
    Object.assign(this, figure(title, "bar-chart"));
    this.format = format;
  }

  // bars: [{label, value}]
  update(bars, summary) {
    this.values.textContent = summary;
    const top = niceCeiling(Math.max(0, ...bars.map((b) => b.value)));
    axes(this.drawing, top, this.format);
    const slot = PLOT_W / Math.max(1, bars.length);
    bars.forEach((bar, i) => {
      const height = PLOT_H * (bar.value / top);
      const x = PAD.left + i * slot;
      this.drawing.append(
        svg("rect", {
          x: (x + slot * 0.15).toFixed(1), width: (slot * 0.7).toFixed(1),
          y: (PAD.top + PLOT_H - height).toFixed(1), height: height.toFixed(1), class: "bar",
        }, svg("title", {}, `batch size ${bar.label}: ${this.format(bar.value)}`)),
        svg("text", { x: x + slot / 2, y: HEIGHT - 6, class: "tick tick-bar" }, bar.label),
      );
    });
  }
}

// A sparkline (no axes) for the overview cards.
export function sparkline(points, key) {
  const values = points.map((p) => p[key]).filter((v) => v !== null && Number.isFinite(v));
  const top = niceCeiling(Math.max(0, ...values));
  const w = 120;
  const ht = 28;
  const seconds = span(points);
  let d = "";
  let pen = false;
  for (const p of points) {
    const v = p[key];
    if (v === null || !Number.isFinite(v)) {
      pen = false;
      continue;
    }
    const x = w * (1 - Math.min(p.age, seconds) / seconds);
    d += `${pen ? "L" : "M"}${x.toFixed(1)},${(ht - 2 - (ht - 4) * (v / top)).toFixed(1)}`;
    pen = true;
  }
  return svg("svg", { viewBox: `0 0 ${w} ${ht}`, class: "sparkline", "aria-hidden": "true" },
    svg("path", { d: d || "M0,0", class: "series" }));
}
