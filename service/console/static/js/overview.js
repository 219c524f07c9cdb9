// The overview: one card per model with its versions' states (and why a version failed), its
// version policy, runtime and batching, and the last minute's traffic, refreshed every scrape.

import { sparkline } from "./charts.js";
import { formatNumber, formatRate, formatSeconds, h, stateBadge } from "./dom.js";
import { describePolicy, versionTags } from "./policy.js";

export function describeBatching(b) {
  if (!b) return null;
  if (!b.dynamic) return "batching off";
  const parts = [`batches ≤ ${b.max_batch_size}`, `delay ${formatNumber(b.max_queue_delay_ms)} ms`,
    `queue ${b.max_queue_size}`];
  if (b.preferred_batch_sizes.length) parts.push(`preferred ${b.preferred_batch_sizes.join(", ")}`);
  if (b.default_timeout_ms !== null) parts.push(`timeout ${formatNumber(b.default_timeout_ms)} ms`);
  return parts.join(" · ");
}

export function versionLine(model, v) {
  const tags = versionTags(v.version, model.policy, model.aliases);
  return h("li", { class: "version", "data-version": v.version, "data-state": v.state },
    h("span", { class: "version-number" }, `v${v.version}`),
    stateBadge(v.state),
    tags.map((t) => h("span", { class: "tag" }, t)),
    v.reason ? h("span", { class: "reason" }, v.reason) : null);
}

function stat(label, value) {
  return h("div", { class: "stat" }, h("dt", {}, label), h("dd", {}, value));
}

function runtimeLine(model) {
  const served = model.versions.find((v) => v.version === model.default_version);
  if (!served) return "no version serving";
  return [`${served.provider} · ${served.precision}`, describeBatching(served.batching)]
    .join(" · ");
}

// A model's card: the heading (the card's one link, which may hold the keyboard focus) stays,
// the rest is redrawn every scrape.
function newCard(name) {
  const body = h("div", { class: "card-body" });
  const policy = h("span", { class: "policy" });
  const element = h("article", { class: "card", "data-model": name, "aria-labelledby": `m-${name}` },
    h("header", { class: "card-head" },
      h("h2", { id: `m-${name}` }, h("a", { href: `#/models/${name}` }, name)), policy),
    body);
  return { element, body, policy };
}

function fillCard(card, model, live) {
  const window = live.window(model.name);
  card.policy.textContent = describePolicy(model.policy, model.aliases);
  const versions = model.versions.length
    ? h("ul", { class: "versions" }, model.versions.map((v) => versionLine(model, v)))
    : h("p", { class: "muted" }, "no version loaded yet");
  card.body.replaceChildren(
    versions,
    h("dl", { class: "stats" },
      stat("Requests", formatRate(window && window.rate)),
      stat("p50", formatSeconds(window && window.p50)),
      stat("p99", formatSeconds(window && window.p99)),
      stat("Mean batch", formatNumber(window && window.meanBatch))),
    h("div", { class: "card-foot" },
      h("span", { class: "runtime" }, runtimeLine(model)),
      sparkline(live.series(model.name), "rate")));
}

function summary(doc, live) {
  const versions = doc.models.flatMap((m) => m.versions);
  const count = (state) => versions.filter((v) => v.state === state).length;
  const rate = doc.models.reduce((total, m) => total + ((live.window(m.name) || {}).rate || 0), 0);
  const server = doc.server;
  const items = [
    ["Models", String(doc.models.length)],
    ["Versions ready", String(count("READY"))],
    ["Failed", String(count("FAILED"))],
    ["Loading", String(count("LOADING"))],
    ["Requests (1 min)", live.ready ? formatRate(rate) : "–"],
    ["Provider", server.provider ? server.provider.toUpperCase() : "–"],
  ];
  return h("dl", { class: "summary" }, items.map(([label, value]) => stat(label, value)));
}

export class OverviewView {
  constructor(root) {
    this.root = root;
    this.summary = h("div");
    this.cards = h("div", { class: "cards" });
    this.byName = null; // model name → its card, in the document's order
    root.replaceChildren(
      h("div", { class: "page-head" },
        h("h1", {}, "Models"),
        h("p", { class: "muted" }, "Every model this server knows, its versions and the last minute of traffic, updated every 2 seconds.")),
      this.summary, this.cards);
  }

  update(doc, live) {
    this.summary.replaceChildren(summary(doc, live));
    const names = doc.models.map((m) => m.name);
    if (this.byName === null || names.join("\n") !== [...this.byName.keys()].join("\n")) {
      this.byName = new Map(names.map((name) => [name, newCard(name)]));
      this.cards.replaceChildren(...[...this.byName.values()].map((c) => c.element));
      if (names.length === 0) {
        this.cards.append(h("p", { class: "empty" }, "This server knows no model: its store is empty, or INDUCTIVE_MODELS names none of it."));
      }
    }
    for (const model of doc.models) fillCard(this.byName.get(model.name), model, live);
  }
}
