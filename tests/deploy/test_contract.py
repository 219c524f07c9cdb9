"""The manifests and the Dockerfile ask only for what the code really accepts: settings that
`service.settings.Settings` knows (and whose values it validates), metrics that
`service.metrics` exports, training commands the training CLI parses, and probe routes the real
server answers."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator

import pytest
import yaml

from service.settings import ENV_PREFIX, Settings
from tests.deploy.dockerfile import parse
from tests.deploy.helpers import (
    DOCKERFILE,
    K8S,
    SERVE_TARGETS,
    SERVING_BUILDS,
    all_objects,
    configmap_data,
    load_plain,
    one,
    render,
    workloads,
)


def _env_names() -> Iterator[tuple[str, str]]:
    """(where, name) of every environment variable the deployment sets."""
    stages = parse(DOCKERFILE.read_text())
    for target in sorted(set(SERVE_TARGETS.values())):
        for name in stages[target].env():
            yield f"Dockerfile {target}", name
    env_sources: set[str] = set()
    for source, _obj, spec in workloads():
        for container in spec["containers"]:
            for var in container.get("env", []):
                yield source, var["name"]
            for ref in container.get("envFrom", []):
                env_sources.add((ref.get("configMapRef") or ref["secretRef"])["name"])
    # ConfigMaps and Secrets that pods take their environment from (not the dashboard's).
    for source, obj in all_objects():
        if obj["kind"] in ("ConfigMap", "Secret") and obj["metadata"]["name"] in env_sources:
            for name in obj.get("data", {}) | obj.get("stringData", {}):
                yield source, name


def test_every_inductive_variable_is_a_setting() -> None:
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    seen = {(where, name) for where, name in _env_names() if name.startswith(ENV_PREFIX)}
    unknown = sorted((where, name) for where, name in seen if name not in fields)
    assert not unknown, f"not fields of service.settings.Settings: {unknown}"
    # The check is not vacuous: the store, port and shutdown grace are set everywhere we serve.
    assert {"INDUCTIVE_STORE", "INDUCTIVE_PORT", "INDUCTIVE_SHUTDOWN_GRACE_S"} <= {
        n for _, n in seen
    }


def test_other_variables_are_ones_the_libraries_read() -> None:
    known = {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION",
        "PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "HOME", "CUDA_CACHE_PATH",
    }  # fmt: skip
    # The retraining's settings are read by its script (k8s/training/retrain.sh).
    script = (K8S / "training" / "retrain.sh").read_text()
    read_by_script = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", script))
    other = {name for _, name in _env_names() if not name.startswith(ENV_PREFIX)}
    assert other <= known | read_by_script, other - known - read_by_script
    assert {"RETRAIN_MODELS", "GC_KEEP"} <= other & read_by_script


@pytest.mark.parametrize("build", SERVING_BUILDS)
def test_settings_values_are_accepted(build: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the Settings a replica would build from its environment: image ENV, then the
    ConfigMap, the Secret templates and the container's own env (later wins, as in a pod)."""
    objs = render(build)
    (server,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = dict(parse(DOCKERFILE.read_text())[SERVE_TARGETS[build]].env())
    secrets = {s["metadata"]["name"]: s["stringData"] for p in ("admin-token", "s3-credentials")
               for s in load_plain(f"secrets/{p}.yaml")}  # fmt: skip
    for source in server["envFrom"]:
        if "configMapRef" in source:
            env.update(configmap_data(objs, source["configMapRef"]["name"]))
        else:
            env.update(secrets[source["secretRef"]["name"]])
    for var in server["env"]:
        ref = var.get("valueFrom", {})
        if "secretKeyRef" in ref:
            env[var["name"]] = secrets[ref["secretKeyRef"]["name"]][ref["secretKeyRef"]["key"]]
        elif "resourceFieldRef" in ref:
            # What the kubelet writes: the CPU limit in whole cores (divisor 1), rounded up.
            env[var["name"]] = str(_cores(str(server["resources"]["limits"]["cpu"])))
        else:
            env[var["name"]] = var["value"]
    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith(ENV_PREFIX):
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.host == "0.0.0.0"
    assert settings.port == 8000
    assert settings.intra_op_threads >= 1
    assert settings.admin_token is not None
    assert settings.store_is_remote == (build == "overlays/s3")
    assert settings.model_control_mode == "poll"  # replicas follow the store: no restarts


def _cores(quantity: str) -> int:
    return math.ceil(int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity))


def _exported_metrics() -> dict[str, set[str]]:
    """Sample name -> label names, as /metrics writes them (counters get _total, histograms
    _bucket/_sum/_count)."""
    from prometheus_client.registry import CollectorRegistry

    from service.metrics import Metrics

    registry: CollectorRegistry = Metrics().registry
    out: dict[str, set[str]] = {}
    for family in registry.collect():
        samples = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
        }.get(family.type, ("",))
        labels = set(getattr(registry._names_to_collectors.get(family.name), "_labelnames", ()))
        for suffix in samples:
            out[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    # The GPU collector registers only where NVML answers; its names are read from the source.
    source = (K8S.parent / "service/metrics.py").read_text()
    for name in re.findall(r'GaugeMetricFamily\(\s*"(inductive_\w+)"', source):
        out[name] = {"gpu"}
    return out


def _promql_sources() -> Iterator[tuple[str, str]]:
    for rule_file in ("monitoring/prometheusrule.yaml",):
        for group in load_plain(rule_file)[0]["spec"]["groups"]:
            for rule in group["rules"]:
                yield rule.get("alert") or rule["record"], rule["expr"]
    adapter = yaml.safe_load((K8S / "autoscaling/prometheus-adapter-values.yaml").read_text())
    for rule in adapter["rules"]["custom"]:
        yield rule["name"]["as"], rule["seriesQuery"]
    dashboard = json.loads((K8S / "monitoring/grafana-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield variable["name"], variable["definition"]


def test_alerts_and_dashboard_use_exported_metrics() -> None:
    exported = _exported_metrics()
    # Labels Prometheus adds to every scraped series (ServiceMonitor target labels).
    target_labels = {"namespace", "pod", "job", "service", "instance", "container", "endpoint"}
    used = 0
    for where, expr in _promql_sources():
        # A metric name not preceded by ':' (recording-rule names embed metric names).
        for match in re.finditer(r"(?<![:\w])(inductive_\w+)(\{[^}]*\})?", expr):
            name, matchers = match[1], match[2] or ""
            assert name in exported, f"{where}: {name} is not exported by service/metrics.py"
            for label in re.findall(r"(\w+)\s*[=!]~?", matchers):
                assert label in exported[name] | target_labels, f"{where}: {name} has no {label}"
            used += 1
        for by in re.findall(r"by \(([^)]*)\)", expr):
            for label in (s.strip() for s in by.split(",")):
                known = set().union(*exported.values()) | target_labels
                assert label in known, f"{where}: no metric has a label {label!r}"
    assert used > 20


@pytest.mark.parametrize("build", SERVING_BUILDS)
def test_seed_job_fills_the_store_the_retraining_keeps_up(build: str) -> None:
    """The one-off template's arguments are accepted by the training CLI and publish the demo
    models to the retraining's store; the scheduled retraining names exactly those models."""
    from training.cli import DEMO_MODELS, build_parser

    objs = render(build)
    settings = configmap_data(objs, "inductive-training")
    seed = one(objs, "CronJob", "inductive-seed-models")
    (container,) = seed["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    # Kubernetes expands $(VAR) from the container's environment before exec.
    args = [a.replace("$(INDUCTIVE_STORE)", settings["INDUCTIVE_STORE"]) for a in container["args"]]
    assert "$(" not in " ".join(args)
    ns = build_parser().parse_args(args)
    assert ns.command == "demo"
    assert ns.store == settings["INDUCTIVE_STORE"]
    assert settings["RETRAIN_MODELS"].split() == [d.name for d in DEMO_MODELS]
