// Building the page: elements from data, text always through textContent (never innerHTML), so
// that a model name or a server message can never become markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(element, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

// h("a", {href: "#/"}, "Models") → <a href="#/">Models</a>; strings become text nodes.
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

let nextId = 0;

// A page-unique id, for label/for and aria-describedby pairs.
export function uid(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

export function formatNumber(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1000) return Math.round(value).toLocaleString("en-US");
  return Number(value.toPrecision(digits)).toString();
}

export function formatRate(perSecond) {
  return perSecond === null ? "–" : `${formatNumber(perSecond)}/s`;
}

// Seconds → "0.42 ms", "12.5 ms", "1.2 s".
export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return `${formatNumber(seconds * 1000)} ms`;
  return `${formatNumber(seconds)} s`;
}

export function formatShape(shape) {
  return `[${shape.join(", ")}]`;
}

export function formatTime(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

// Version states, as the repository index names them: each has a word and a symbol, so that
// colour is never the only sign of a state.
const STATES = {
  READY: ["✓", "ready"],
  LOADING: ["◌", "loading"],
  UNLOADING: ["◌", "unloading"],
  UNAVAILABLE: ["–", "unavailable"],
  FAILED: ["✕", "failed"],
};

export function stateBadge(state) {
  const [symbol, word] = STATES[state] || ["?", state.toLowerCase()];
  return h("span", { class: `state state-${state.toLowerCase()}` },
    h("span", { class: "state-symbol", "aria-hidden": "true" }, symbol), word);
}
