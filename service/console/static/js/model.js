// A model's page: its versions with live figures, the live charts, the signature and labels,
// "try it", and the version changes this server has seen.

import { BarChart, LineChart } from "./charts.js";
import {
  formatNumber, formatRate, formatSeconds, formatShape, formatTime, h, stateBadge,
} from "./dom.js";
import { describeBatching, versionLine } from "./overview.js";
import { describePolicy, versionTags } from "./policy.js";
import { TryIt } from "./tryit.js";

// Batch-size histogram buckets (cumulative, by upper bound) → one bar per bucket, "3–4" style,
// up to the bucket holding the model's largest batch.
function batchBars(buckets, maxBatch) {
  const bars = [];
  let previous = 0;
  let below = 0;
  for (const [bound, cumulative] of buckets) {
    if (previous >= maxBatch) break;
    const label = bound === Infinity ? `> ${previous}`
      : bound - previous <= 1 ? String(bound) : `${previous + 1}–${bound}`;
    bars.push({ label, value: cumulative - below });
    previous = bound;
    below = cumulative;
  }
  return bars;
}

function section(title, ...children) {
  const id = `section-${title.toLowerCase().replace(/\W+/g, "-")}`;
  return h("section", { class: "panel", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

function table(caption, headers, body) {
  return h("table", {},
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    body);
}

function signatureTable(version) {
  const row = (kind, t) => h("tr", {},
    h("td", {}, kind), h("td", {}, h("code", {}, t.name)), h("td", {}, t.datatype),
    h("td", {}, formatShape(t.shape)),
    h("td", {}, version.optional_inputs.includes(t.name) ? "filled by the server when omitted" : ""));
  return table("Inputs and outputs", ["Role", "Name", "Datatype", "Shape", "Note"], h("tbody", {},
    version.inputs.map((t) => row("input", t)), version.outputs.map((t) => row("output", t))));
}

function labelsBlock(version) {
  const entries = Object.entries(version.labels);
  if (!entries.length) return [h("p", { class: "muted" }, "No class labels: outputs are returned as tensors.")];
  return entries.map(([output, labels]) => h("div", { class: "labels" },
    h("h3", {}, "Labels of ", h("code", {}, output), ` (${labels.length})`),
    h("ol", { class: "label-list", start: "0" }, labels.map((l) => h("li", {}, l)))));
}

export class ModelView {
  constructor(root, api, name) {
    this.root = root;
    this.api = api;
    this.name = name;
    this.built = false;
    root.replaceChildren(h("p", { class: "muted" }, `Loading ${name}…`));
  }

  update(doc, live) {
    const model = doc.models.find((m) => m.name === this.name);
    if (!model) {
      this.built = false;
      this.root.replaceChildren(h("h1", {}, this.name),
        h("p", {}, "This server knows no model of that name. ", h("a", { href: "#/" }, "Back to all models")));
      return;
    }
    if (!this.built) this.#build(model, doc.server);
    this.#refresh(model, live);
  }

  #build(model, server) {
    this.built = true;
    this.policy = h("p", { class: "policy-line" });
    this.versions = h("ul", { class: "versions" });
    this.versionRows = h("tbody");
    this.charts = {
      rate: new LineChart("Requests per second", [
        { key: "rate", label: "all", className: "s1" },
        { key: "errorRate", label: "failed", className: "s2" },
      ], (v) => formatNumber(v)),
      latency: new LineChart("Latency (ms)", [
        { key: "p50ms", label: "p50", className: "s1" },
        { key: "p99ms", label: "p99", className: "s3" },
      ], (v) => formatNumber(v)),
      queue: new LineChart("Queue depth (requests waiting)", [
        { key: "queue", label: "queued", className: "s1" },
      ], (v) => formatNumber(v)),
      batch: new BarChart("Batch sizes, last minute (batches)", (v) => formatNumber(v)),
    };
    this.signature = h("div");
    this.signatureVersion = null;
    this.history = h("tbody");
    this.tryIt = new TryIt(this.api, model, server.api_keys);
    const json = (label, path) => h("a", { href: this.api.url(path) }, label);
    this.root.replaceChildren(
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/" }, "Models"), " / ", model.name),
      h("div", { class: "page-head" },
        h("h1", {}, model.name),
        this.policy,
        h("p", { class: "muted" }, "JSON: ", json("metadata", `../v2/models/${model.name}`), " · ",
          json("config", `../v2/models/${model.name}/config`))),
      this.versions,
      section("Live", h("div", { class: "charts" }, Object.values(this.charts).map((c) => c.element)),
        h("table", { class: "per-version" },
          h("caption", {}, "Per version, last minute"),
          h("thead", {}, h("tr", {}, ["Version", "State", "Runtime", "Batching", "Requests", "p50", "p99", "Mean batch"]
            .map((t) => h("th", { scope: "col" }, t)))),
          this.versionRows)),
      section("Signature", this.signature),
      this.tryIt.element,
      section("Version history", h("p", { class: "muted" }, "State changes this server has seen, newest first."),
        table("Version history", ["Time", "Version", "State", "Reason"], this.history)),
    );
  }

  #refresh(model, live) {
    this.policy.textContent = `Version policy: ${describePolicy(model.policy, model.aliases)}`;
    this.versions.replaceChildren(...model.versions.map((v) => versionLine(model, v)));
    this.tryIt.update(model);
    this.#refreshSignature(model);
    this.#refreshCharts(model, live);
    this.versionRows.replaceChildren(...model.versions.map((v) => {
      const w = live.window(model.name, v.version);
      const tags = versionTags(v.version, model.policy, model.aliases);
      return h("tr", {},
        h("th", { scope: "row" }, `v${v.version}`, tags.length ? ` (${tags.join(", ")})` : ""),
        h("td", {}, stateBadge(v.state)),
        h("td", {}, v.served ? `${v.provider} · ${v.precision}` : "–"),
        h("td", {}, describeBatching(v.batching) || "–"),
        h("td", {}, formatRate(w && w.rate)),
        h("td", {}, formatSeconds(w && w.p50)),
        h("td", {}, formatSeconds(w && w.p99)),
        h("td", {}, formatNumber(w && w.meanBatch)));
    }));
    this.history.replaceChildren(...[...model.history].reverse().map((e) => h("tr", {},
      h("td", {}, formatTime(e.time)), h("td", {}, `v${e.version}`), h("td", {}, stateBadge(e.state)),
      h("td", { class: "reason" }, e.reason))));
  }

  #refreshSignature(model) {
    const version = model.versions.find((v) => v.version === model.default_version);
    const key = version ? version.version : null;
    if (key === this.signatureVersion) return;
    this.signatureVersion = key;
    if (!version) {
      this.signature.replaceChildren(h("p", { class: "muted" }, "No version is serving, so no signature to show."));
      return;
    }
    this.signature.replaceChildren(
      h("p", { class: "muted" }, `Of v${version.version}, the version requests without a version go to.`),
      signatureTable(version), ...labelsBlock(version));
  }

  #refreshCharts(model, live) {
    const points = live.series(model.name).map((p) => ({
      ...p,
      p50ms: p.p50 === null ? null : p.p50 * 1000,
      p99ms: p.p99 === null ? null : p.p99 * 1000,
    }));
    const now = points[points.length - 1];
    const w = live.window(model.name);
    const c = this.charts;
    c.rate.update(points, now ? `now ${formatRate(now.rate)}, failed ${formatRate(now.errorRate)}` : "waiting for data");
    c.latency.update(points, now ? `now p50 ${formatSeconds(now.p50)}, p99 ${formatSeconds(now.p99)}` : "waiting for data");
    c.queue.update(points, now ? `now ${formatNumber(now.queue)} waiting` : "waiting for data");
    const served = model.versions.find((v) => v.version === model.default_version);
    const maxBatch = served ? served.batching.max_batch_size : 1024;
    c.batch.update(w ? batchBars(w.batchBuckets, maxBatch) : [],
      w && w.meanBatch !== null ? `mean batch size ${formatNumber(w.meanBatch)}` : "no batch yet");
  }
}
