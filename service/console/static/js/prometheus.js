// Reading the server's /metrics (Prometheus text format 0.0.4) into one snapshot per model
// version: request counters by outcome, the latency and batch-size histograms, the sample and
// batch counters, and the queue depth. Only the inductive_inference_* families are kept.

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
const PREFIX = "inductive_inference_";

function unescape(value) {
  return value.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
}

function parseValue(text) {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

// One series per model version, keyed "model\u0000version".
export function versionKey(model, version) {
  return `${model}\u0000${version}`;
}

function emptySeries(model, version) {
  return {
    model,
    version,
    outcomes: {},
    latency: new Map(), // bound (seconds) → cumulative count
    batch: new Map(), // bound (samples) → cumulative count
    samples: 0,
    batches: 0,
    queue: 0,
  };
}

// Text exposition → Map(versionKey → series).
export function parseMetrics(text) {
  const series = new Map();
  const get = (labels) => {
    const key = versionKey(labels.model, labels.version);
    if (!series.has(key)) series.set(key, emptySeries(labels.model, labels.version));
    return series.get(key);
  };
  for (const line of text.split("\n")) {
    if (!line.startsWith(PREFIX)) continue;
    const match = LINE.exec(line);
    if (!match) continue;
    const [, name, labelText, valueText] = match;
    const labels = {};
    for (const [, key, value] of (labelText || "").matchAll(LABEL)) labels[key] = unescape(value);
    if (labels.model === undefined || labels.version === undefined) continue;
    const value = parseValue(valueText);
    const s = get(labels);
    const metric = name.slice(PREFIX.length);
    // Requests and their latency are counted per front door (`protocol`: HTTP, gRPC): a
    // version's figure is the sum over the doors.
    if (metric === "requests_total") {
      s.outcomes[labels.outcome] = (s.outcomes[labels.outcome] ?? 0) + value;
    } else if (metric === "request_duration_seconds_bucket") {
      const bound = parseValue(labels.le);
      s.latency.set(bound, (s.latency.get(bound) ?? 0) + value);
    } else if (metric === "batch_size_bucket") {
      s.batch.set(parseValue(labels.le), value);
    } else if (metric === "count_total") {
      s.samples = value;
    } else if (metric === "exec_count_total") {
      s.batches = value;
    } else if (metric === "queue_depth") {
      s.queue = value;
    }
  }
  return series;
}
