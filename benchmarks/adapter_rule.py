"""Evaluates the autoscaling rule of k8s/autoscaling/ on a real server under wrk load.

    python -m benchmarks.adapter_rule [--window 60] [--connections 8] [--out DIR]

1. publishes a small model (chained MatMuls) into a temporary store and starts our server on
   127.0.0.1;
2. starts Debian's `prometheus` (`apt-get install -y prometheus`) listening on 127.0.0.1 only,
   with its own temporary data directory and one scrape target, that server, every second, under
   two label sets `{namespace="inductive", pod="inductive-0"|"inductive-1"}`, the labels a
   Kubernetes scrape adds (two pods, so the query is built the way prometheus-adapter builds it
   for a whole HPA: `pod=~"a|b"` grouped by pod);
3. runs wrk against the server and, during the load, reads /metrics itself twice, `window`
   seconds apart;
4. fills the rule's `metricsQuery` template as prometheus-adapter does (`<<.Series>>`,
   `<<.LabelMatchers>>`, `<<.GroupBy>>`), with its range set to that window, evaluates it through
   Prometheus' HTTP API at the time of the second read, and compares each pod's value with the
   one computed from the two reads: (sum₂ − sum₁) / (t₂ − t₁) of the request-duration histogram's
   `_sum` series, the mean number of requests in flight over the window.

The default window is the rule's own (1m), so that the committed query runs unchanged; a shorter
`--window` (the test uses one) replaces only its range. Writes `adapter-rule.json` and
`adapter-rule.md` to `--out` (default benchmarks/results/autoscaling/).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.bodies import http_request, json_body
from benchmarks.closedloop import run_wrk
from benchmarks.harness.models import matmul_chain
from benchmarks.harness.servers import free_port, publish, running_server

REPO = Path(__file__).resolve().parents[1]
ADAPTER_VALUES = REPO / "k8s/autoscaling/prometheus-adapter-values.yaml"
RESULTS = REPO / "benchmarks/results/autoscaling"
NAMESPACE = "inductive"
PODS = ("inductive-0", "inductive-1")
SCRAPE_INTERVAL_S = 1.0
WARMUP_S = 3.0
# What the signal means, independent of the rule: request-seconds accumulated per second, i.e.
# the mean number of requests in flight (Little's law). The reads of /metrics use this series
# whatever the rule says, so a rule that queried anything else would disagree with them.
IN_FLIGHT_SERIES = "inductive_inference_request_duration_seconds_sum"
INSTALL_HINT = "prometheus is not installed: apt-get update && apt-get install -y prometheus"
_RANGE = re.compile(r"\[(\d+[smh])\]")


@dataclass(frozen=True)
class AdapterRule:
    """One custom rule of the adapter's values file."""

    metric: str  # the name the custom metrics API serves (`name.as`)
    series: str  # the Prometheus series its seriesQuery discovers
    query_template: str  # metricsQuery, with prometheus-adapter's << >> template fields
    window: str  # the range of its rate(), e.g. "1m"


def load_rule(path: Path = ADAPTER_VALUES) -> AdapterRule:
    (rule,) = yaml.safe_load(path.read_text())["rules"]["custom"]
    series = rule["seriesQuery"].partition("{")[0]
    assert re.fullmatch(rule["name"]["matches"], series), (rule["name"], series)
    ranges = _RANGE.findall(rule["metricsQuery"])
    assert len(ranges) == 1, f"expected one range selector in {rule['metricsQuery']!r}"
    return AdapterRule(rule["name"]["as"], series, rule["metricsQuery"], ranges[0])


def _go_quote(value: str) -> str:
    """Go's %q for the plain strings of label values (JSON escapes them the same way)."""
    return json.dumps(value)


def adapter_query(rule: AdapterRule, namespace: str, pods: Sequence[str]) -> str:
    """The PromQL prometheus-adapter sends for the Pods metric of `pods`: the namespace matcher,
    then the pod matcher (`=` for one pod, `=~"a|b"` for several), grouped by pod."""
    pod = "|".join(pods)
    matchers = [
        f"namespace={_go_quote(namespace)}",
        f"pod={'~' if len(pods) > 1 else ''}{_go_quote(pod)}",
    ]
    query = (
        rule.query_template.replace("<<.Series>>", rule.series)
        .replace("<<.LabelMatchers>>", ",".join(matchers))
        .replace("<<.GroupBy>>", "pod")
    )
    assert "<<" not in query, f"a template field this evaluation does not fill: {query}"
    return query


def with_window(query: str, seconds: float) -> str:
    return _RANGE.sub(f"[{round(seconds)}s]", query)


def window_seconds(window: str) -> float:
    return float(window[:-1]) * {"s": 1, "m": 60, "h": 3600}[window[-1]]


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        raise FileNotFoundError(INSTALL_HINT)
    return path


@contextmanager
def prometheus(target: str, work: Path) -> Iterator[str]:
    """A Prometheus on 127.0.0.1 scraping `target` (host:port) every second as each of PODS."""
    work.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S:g}s"},
        "scrape_configs": [
            {
                "job_name": "inductive",
                "scrape_interval": f"{SCRAPE_INTERVAL_S:g}s",
                "scrape_timeout": f"{SCRAPE_INTERVAL_S:g}s",
                "static_configs": [
                    {"targets": [target], "labels": {"namespace": NAMESPACE, "pod": pod}}
                    for pod in PODS
                ],
            }
        ],
    }
    config_path = work / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [
        prometheus_binary(),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={work / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
    ]
    url = f"http://127.0.0.1:{port}"
    with (work / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"{url}/-/ready"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "prometheus did not become ready:\n"
                    + (work / "prometheus.log").read_text(errors="replace")[-3000:]
                )
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def scrape_sum(metrics_url: str, series: str) -> tuple[float, float]:
    """(unix time of the read, sum of every `series` sample in /metrics), the time taken
    halfway through the request."""
    before = time.time()
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    at = (before + time.time()) / 2
    total = sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == series
    )
    return at, total


def wait_for_samples(prometheus_url: str, series: str, timeout_s: float = 30) -> None:
    """Until Prometheus holds a sample of `series` for every pod: its first scrape comes a few
    seconds after it starts (target discovery is applied on a timer), and a window that begins
    before it would be extrapolated, not measured."""
    deadline = time.monotonic() + timeout_s
    while len(instant_query(prometheus_url, f"count by (pod) ({series})", time.time())) < len(PODS):
        if time.monotonic() > deadline:
            raise TimeoutError(f"prometheus scraped no {series} within {timeout_s} s")
        time.sleep(SCRAPE_INTERVAL_S / 4)


def instant_query(prometheus_url: str, expr: str, at: float) -> dict[str, float]:
    """Value per pod of `expr` evaluated at unix time `at`."""
    params = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/query?{params}", timeout=10) as r:
        doc = json.load(r)
    assert doc["status"] == "success", doc
    return {item["metric"]["pod"]: float(item["value"][1]) for item in doc["data"]["result"]}


@dataclass(frozen=True)
class Evaluation:
    query: str  # exactly what was sent to Prometheus
    window_s: float
    connections: int
    expected: float  # mean requests in flight from the two /metrics reads
    per_pod: dict[str, float]  # the query's value for each pod
    wrk: dict[str, Any]

    @property
    def worst_relative_error(self) -> float:
        if self.expected <= 0 or not self.per_pod:
            return float("inf")  # no load reached the server, or Prometheus found no series
        return max(abs(v - self.expected) / self.expected for v in self.per_pod.values())


def _request_files(work: Path, width: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        sample = {"x": rng.standard_normal((1, width)).astype(np.float32).round(4)}
        path = work / f"slow-{i}.http"
        path.write_bytes(http_request("/v2/models/slow/infer", json_body(sample)))
        paths.append(path)
    return paths


def evaluate(window_s: float | None, connections: int, work: Path) -> Evaluation:
    """Runs the whole check once; `window_s` None = the rule's own window."""
    rule = load_rule()
    window = window_seconds(rule.window) if window_s is None else window_s
    query = with_window(adapter_query(rule, NAMESPACE, PODS), window)
    width = 256
    store = work / "store"
    publish(store, "slow", matmul_chain(work, width=width))
    env = {"INDUCTIVE_MODEL_CONTROL_MODE": "none"}
    with running_server(store, work, env) as server:
        requests = _request_files(work, width)
        host_port = server.url.removeprefix("http://")
        with prometheus(host_port, work / "prometheus") as prom:
            wait_for_samples(prom, rule.series)
            # The load outlasts the second read by two scrapes, so the window is loaded to its end.
            duration = WARMUP_S + window + 3 * SCRAPE_INTERVAL_S
            with ThreadPoolExecutor(max_workers=1) as pool:
                load = pool.submit(
                    run_wrk,
                    server.url + "/v2/models/slow/infer",
                    requests,
                    connections=connections,
                    duration_s=duration,
                    core=None,
                )
                time.sleep(WARMUP_S)
                t0, sum0 = scrape_sum(server.url + "/metrics", IN_FLIGHT_SERIES)
                time.sleep(max(0.0, t0 + window - time.time()))
                t1, sum1 = scrape_sum(server.url + "/metrics", IN_FLIGHT_SERIES)
                # Prometheus holds the samples up to t1 once its next scrape is stored.
                time.sleep(2 * SCRAPE_INTERVAL_S)
                per_pod = instant_query(prom, query, t1)
                wrk = load.result()
    return Evaluation(
        query=query,
        window_s=t1 - t0,
        connections=connections,
        expected=(sum1 - sum0) / (t1 - t0),
        per_pod=per_pod,
        wrk=wrk.to_dict(),
    )


def report(evaluation: Evaluation) -> str:
    expected = evaluation.expected
    rows = "\n".join(
        f"| {pod} | {value:.3f} | {100 * (value - expected) / expected:+.1f} % |"
        for pod, value in sorted(evaluation.per_pod.items())
    )
    return f"""# The autoscaling signal on a real server

`python -m benchmarks.adapter_rule` (this file's figures; machine load shows in wrk's rate).

The prometheus-adapter rule of `k8s/autoscaling/prometheus-adapter-values.yaml`, filled the way
the adapter fills it for an HPA over two pods, evaluated by Prometheus over its scrapes of our
server under wrk load ({evaluation.connections} connections,
{evaluation.wrk["throughput"]:.0f} req/s):

```
{evaluation.query}
```

Mean requests in flight over the same {evaluation.window_s:.1f} s, from two reads of /metrics
(difference of `inductive_inference_request_duration_seconds_sum` / seconds between the reads):
**{evaluation.expected:.3f}**.

| pod | the rule's value | vs the two reads |
| --- | --- | --- |
{rows}
"""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=None,
                        help="seconds between the two reads and the query's range "
                             "(default: the rule's own)")  # fmt: skip
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="adapter-rule-") as tmp:
        evaluation = evaluate(args.window, args.connections, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {**asdict(evaluation), "worst_relative_error": evaluation.worst_relative_error}
    (args.out / "adapter-rule.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.out / "adapter-rule.md").write_text(report(evaluation))
    print(report(evaluation))


if __name__ == "__main__":
    main()
