"""Autoscaling on what users feel: the HPA of every serving overlay scales on the per-pod
requests-in-flight metric that the committed prometheus-adapter rule serves (CPU only as a
secondary metric, and not at all on GPU nodes), scales down slowly, and its pods spread across
nodes. The rule's PromQL is evaluated by a real Prometheus over a real server under wrk load."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from benchmarks import adapter_rule
from tests.deploy.helpers import SERVING_BUILDS, Obj, one, render


def _hpa(build: str) -> Obj:
    return one(render(build), "HorizontalPodAutoscaler", "inductive")["spec"]


def _pods_metric(hpa: Obj) -> Obj:
    (metric,) = [m for m in hpa["metrics"] if m["type"] == "Pods"]
    return metric["pods"]


@pytest.mark.parametrize("build", SERVING_BUILDS)
def test_hpa_scales_on_the_adapter_metric(build: str) -> None:
    hpa = _hpa(build)
    rule = adapter_rule.load_rule()
    pods = _pods_metric(hpa)
    assert pods["metric"]["name"] == rule.metric
    assert pods["target"]["type"] == "AverageValue"
    assert float(pods["target"]["averageValue"]) > 0
    # The serving signal comes first; CPU is only a secondary metric, and none on GPU nodes.
    assert hpa["metrics"][0]["type"] == "Pods"
    others = [(m["type"], m.get("resource", {}).get("name")) for m in hpa["metrics"][1:]]
    assert others == ([] if build in ("overlays/gpu", "overlays/s3") else [("Resource", "cpu")])
    # Scale-down waits out short dips instead of flapping.
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 120


def test_adapter_rule_is_what_prometheus_adapter_expects() -> None:
    rule = adapter_rule.load_rule()
    assert rule.series == "inductive_inference_request_duration_seconds_sum"
    # Every field the template uses is one the adapter fills for a Pods metric.
    fields = set(re.findall(r"<<\s*\.(\w+)\s*>>", rule.query_template))
    assert fields == {"Series", "LabelMatchers", "GroupBy"}
    one_pod = adapter_rule.adapter_query(rule, "inductive", ["p-0"])
    assert one_pod == (
        "sum by (pod) (rate(inductive_inference_request_duration_seconds_sum"
        '{namespace="inductive",pod="p-0"}[1m]))'
    )
    assert 'pod=~"p-0|p-1"' in adapter_rule.adapter_query(rule, "inductive", ["p-0", "p-1"])


@pytest.mark.parametrize("build", SERVING_BUILDS)
def test_replicas_spread_across_nodes(build: str) -> None:
    deployment = one(render(build), "Deployment", "inductive")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    constraints = {
        c["topologyKey"]: c
        for c in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    }
    node = constraints["kubernetes.io/hostname"]
    assert node["maxSkew"] == 1
    assert node["whenUnsatisfiable"] == "DoNotSchedule"
    # Only schedulable nodes count as domains (GPU taints on a CPU overlay would block it).
    assert node["nodeTaintsPolicy"] == "Honor"
    for constraint in constraints.values():
        selector = constraint["labelSelector"]["matchLabels"]
        assert selector
        assert selector.items() <= pod_labels.items()


@pytest.mark.slow
def test_rule_promql_matches_the_servers_own_counters(tmp_path: Path) -> None:
    """Prometheus scrapes a server under wrk load; the adapter's query, filled for two pods,
    gives each pod the mean requests in flight computed from two reads of /metrics."""
    if shutil.which("prometheus") is None:
        pytest.skip(adapter_rule.INSTALL_HINT)
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed: apt-get install -y wrk")
    evaluation = adapter_rule.evaluate(window_s=10, connections=8, work=tmp_path)
    assert set(evaluation.per_pod) == set(adapter_rule.PODS)
    assert evaluation.wrk["errors"] == 0
    # A closed loop of 8 connections: between 0 and 8 requests are ever in flight.
    assert 0.5 < evaluation.expected <= evaluation.connections
    assert evaluation.worst_relative_error < 0.1, evaluation
