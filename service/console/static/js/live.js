// Live figures from successive /metrics snapshots: rates, latency percentiles and batch sizes are
// differences between two snapshots, never totals since the server started. Everything here is
// computed in the browser from what the server already counts: the console adds no work to the
// inference path.

import { parseMetrics, versionKey } from "./prometheus.js";

const WINDOW_SECONDS = 60; // the overview's "last minute"
export const HISTORY_SECONDS = 300; // what the charts show

// The value below which a fraction q of the observations fall, interpolated linearly inside
// its bucket as Prometheus' histogram_quantile does. `buckets`: [bound, count] pairs ascending,
// counts cumulative (deltas over a window). Null without observations; a quantile in the +Inf
// bucket is reported as the largest finite bound.
export function quantile(q, buckets) {
  if (buckets.length === 0) return null;
  const total = buckets[buckets.length - 1][1];
  if (!(total > 0)) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [bound, cumulative] of buckets) {
    if (cumulative >= rank) {
      if (bound === Infinity) return lower;
      const inBucket = cumulative - below;
      return lower + (bound - lower) * (inBucket > 0 ? (rank - below) / inBucket : 1);
    }
    lower = bound;
    below = cumulative;
  }
  return lower;
}

function sumOutcomes(outcomes) {
  return Object.values(outcomes).reduce((a, b) => a + b, 0);
}

function bucketDelta(now, then) {
  const out = [];
  for (const [bound, count] of now) out.push([bound, count - (then?.get(bound) || 0)]);
  return out.sort((a, b) => a[0] - b[0]);
}

function addBuckets(into, buckets) {
  for (const [bound, count] of buckets) into.set(bound, (into.get(bound) || 0) + count);
}

// What happened between two snapshots for a set of series (one model: every version, or one).
function between(earlier, later, keys) {
  const seconds = later.time - earlier.time;
  let requests = 0;
  let failed = 0;
  let samples = 0;
  let batches = 0;
  let queue = 0;
  const latency = new Map();
  const batch = new Map();
  for (const key of keys) {
    const now = later.series.get(key);
    if (!now) continue;
    const then = earlier.series.get(key);
    const done = sumOutcomes(now.outcomes) - (then ? sumOutcomes(then.outcomes) : 0);
    requests += done;
    failed += done - ((now.outcomes.success || 0) - (then?.outcomes.success || 0));
    samples += now.samples - (then?.samples || 0);
    batches += now.batches - (then?.batches || 0);
    queue += now.queue;
    addBuckets(latency, bucketDelta(now.latency, then?.latency));
    addBuckets(batch, bucketDelta(now.batch, then?.batch));
  }
  const latencyBuckets = [...latency].sort((a, b) => a[0] - b[0]);
  return {
    seconds,
    requests,
    rate: seconds > 0 ? requests / seconds : null,
    errorRate: seconds > 0 ? failed / seconds : null,
    p50: quantile(0.5, latencyBuckets),
    p99: quantile(0.99, latencyBuckets),
    meanBatch: batches > 0 ? samples / batches : null,
    batchBuckets: [...batch].sort((a, b) => a[0] - b[0]),
    queue,
  };
}

export class LiveMetrics {
  constructor() {
    this.snapshots = []; // {time (s), series: Map}
  }

  // A new scrape. A counter going down means the server restarted: the history starts over.
  add(text, time = performance.now() / 1000) {
    const series = parseMetrics(text);
    const last = this.snapshots[this.snapshots.length - 1];
    if (last && [...series].some(([key, s]) => {
      const before = last.series.get(key);
      return before && sumOutcomes(s.outcomes) < sumOutcomes(before.outcomes);
    })) {
      this.snapshots = [];
    }
    this.snapshots.push({ time, series });
    while (this.snapshots.length > 2 && time - this.snapshots[1].time > HISTORY_SECONDS) {
      this.snapshots.shift();
    }
  }

  get ready() {
    return this.snapshots.length >= 2;
  }

  #keys(model, version) {
    const last = this.snapshots[this.snapshots.length - 1];
    if (!last) return [];
    return [...last.series.values()]
      .filter((s) => s.model === model && (version === undefined || s.version === String(version)))
      .map((s) => versionKey(s.model, s.version));
  }

  // The last minute (or as much of it as has been seen) of a model, or of one of its versions.
  window(model, version) {
    if (!this.ready) return null;
    const last = this.snapshots[this.snapshots.length - 1];
    const first = this.snapshots.find((s) => last.time - s.time <= WINDOW_SECONDS + 1)
      || this.snapshots[0];
    if (first === last) return null;
    return between(first, last, this.#keys(model, version));
  }

  // One point per scrape interval over the charts' span: {age (s before now), ...between()}.
  series(model) {
    const keys = this.#keys(model);
    const last = this.snapshots[this.snapshots.length - 1];
    const points = [];
    for (let i = 1; i < this.snapshots.length; i += 1) {
      const point = between(this.snapshots[i - 1], this.snapshots[i], keys);
      points.push({ age: last.time - this.snapshots[i].time, ...point });
    }
    return points;
  }
}
