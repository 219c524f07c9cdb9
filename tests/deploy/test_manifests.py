"""Every manifest renders, validates against the Kubernetes schemas and holds the promises of
k8s/README.md (security, probes, graceful termination, matching selectors and references).

Built-in kinds are validated by `kubernetes-validate` (strict: unknown fields fail) against its
bundled Kubernetes 1.37 schemas. The three custom resources (ServiceMonitor, PrometheusRule,
InferenceService) have no schema there, so their structure is checked here field by field.
"""

from __future__ import annotations

import json
import re

import kubernetes_validate
import pytest

from tests.deploy.helpers import (
    BUILDS,
    K8S,
    PLAIN_FILES,
    SERVING_BUILDS,
    Obj,
    all_objects,
    configmap_data,
    load_plain,
    one,
    pod_spec,
    render,
    serving_runtime,
    workloads,
)

K8S_VERSION = "1.37"
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("serving.kserve.io/v1beta1", "InferenceService"),
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"),
}
# The fields of KServe's ServingRuntimeSpec (ServingRuntimePodSpec inlined), of a supported
# model format, and the protocol versions it knows (its CRD, serving.kserve.io v1alpha1).
SERVING_RUNTIME_FIELDS = {
    "supportedModelFormats", "multiModel", "disabled", "protocolVersions", "builtInAdapter",
    "grpcEndpoint", "grpcDataEndpoint", "httpDataEndpoint", "replicas", "storageHelper",
    "containers", "volumes", "nodeSelector", "affinity", "tolerations", "labels", "annotations",
    "imagePullSecrets", "schedulerName", "hostIPC", "hostNetwork", "dnsPolicy", "workerSpec",
}  # fmt: skip
MODEL_FORMAT_FIELDS = {"name", "version", "autoSelect", "priority"}
PROTOCOL_VERSIONS = {"v1", "v2", "grpc-v1", "grpc-v2"}


@pytest.mark.parametrize("build", BUILDS)
def test_build_renders_to_valid_objects(build: str) -> None:
    objs = render(build)
    assert objs, f"{build} renders nothing"
    for obj in objs:
        _validate(obj)


@pytest.mark.parametrize("path", PLAIN_FILES)
def test_plain_file_is_valid(path: str) -> None:
    for obj in load_plain(path):
        _validate(obj)


def _validate(obj: Obj) -> None:
    if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
        _check_custom(obj)
        return
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        name = obj["metadata"].get("name") or obj["metadata"].get("generateName")
        pytest.fail(f"{obj['kind']} {name}: {exc.message} at {list(exc.path)}")


def _check_custom(obj: Obj) -> None:
    meta, spec = obj["metadata"], obj["spec"]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", meta["name"])
    kind = obj["kind"]
    if kind == "ServiceMonitor":
        assert spec["selector"]["matchLabels"]
        for endpoint in spec["endpoints"]:
            assert endpoint["port"]
            assert endpoint["path"].startswith("/")
            assert re.fullmatch(r"\d+[smh]", endpoint["interval"])
    elif kind == "PrometheusRule":
        for group in spec["groups"]:
            assert group["name"]
            assert group["rules"]
            for rule in group["rules"]:
                assert ("alert" in rule) != ("record" in rule), rule
                assert isinstance(rule["expr"], str)
                assert rule["expr"].strip()
                if "alert" in rule:
                    assert rule["labels"]["severity"] in ("critical", "warning", "info")
                    assert rule["annotations"]["summary"]
                    assert rule["annotations"]["description"]
                    assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s"))
    elif kind == "ClusterServingRuntime":
        assert set(spec) <= SERVING_RUNTIME_FIELDS, set(spec) - SERVING_RUNTIME_FIELDS
        for fmt in spec["supportedModelFormats"]:
            assert set(fmt) <= MODEL_FORMAT_FIELDS, fmt
            assert isinstance(fmt["name"], str)
            assert isinstance(fmt.get("autoSelect", False), bool)
            assert isinstance(fmt.get("priority", 1), int)
        assert set(spec["protocolVersions"]) <= PROTOCOL_VERSIONS
        assert all(isinstance(v, str) for v in spec.get("annotations", {}).values())
        (container,) = spec["containers"]
        assert container["name"] == "kserve-container"
        # Its containers and volumes are core/v1 ones: validate them as a Pod's.
        _validate({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kserve-runtime"},
            "spec": {"containers": spec["containers"], "volumes": spec.get("volumes", [])},
        })  # fmt: skip
    elif kind == "InferenceService" and "model" in spec["predictor"]:
        model = spec["predictor"]["model"]
        runtime = serving_runtime(model["runtime"])["spec"]
        formats = {f["name"] for f in runtime["supportedModelFormats"]}
        assert model["modelFormat"]["name"] in formats
        assert model["protocolVersion"] in runtime["protocolVersions"]
        assert re.fullmatch(r"(s3|gs|pvc|hf|oci|https?)://\S+", model["storageUri"])
        # What KServe runs: the runtime's container with the model's fields on top.
        pod = pod_spec(obj)
        assert pod is not None
        replicas = ("minReplicas", "maxReplicas")
        _validate({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kserve-predictor"},
            "spec": {k: v for k, v in pod.items() if k not in replicas},
        })  # fmt: skip
    elif kind == "InferenceService":
        predictor = spec["predictor"]
        (container,) = predictor["containers"]
        assert container["name"] == "kserve-container"
        assert container["image"]
        # The predictor's container is itself a core/v1 Container: validate it as part of a Pod.
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "kserve-predictor"},
            "spec": {
                k: v
                for k, v in predictor.items()
                if k not in ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget")
            },
        }
        _validate(pod)


def test_custom_resources_are_checked() -> None:
    """The structural checks above really run: each custom kind appears somewhere."""
    kinds = {(o["apiVersion"], o["kind"]) for _, o in all_objects()}
    assert kinds >= CUSTOM_KINDS


def test_every_pod_runs_locked_down() -> None:
    for source, obj, spec in workloads():
        where = f"{source}: {obj['kind']} {obj['metadata'].get('name')}"
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True, where
        assert pod_ctx["runAsUser"] == 10001, where  # the uid the Dockerfile creates
        assert pod_ctx["seccompProfile"]["type"] == "RuntimeDefault", where
        # Nothing here talks to the Kubernetes API (the default would mount a token).
        assert spec["automountServiceAccountToken"] is False, where
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in ctx["capabilities"], where
            limits = container["resources"]["limits"]
            assert {"cpu", "memory"} <= limits.keys(), where
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: /tmp must be writable"


@pytest.mark.parametrize("build", SERVING_BUILDS)
def test_server_probes_and_port(build: str) -> None:
    objs = render(build)
    deployment = one(objs, "Deployment", "inductive")
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    port, grpc_port = server["ports"]
    assert port == {"name": "http", "containerPort": 8000, "protocol": "TCP"}
    assert grpc_port == {"name": "grpc", "containerPort": 8001, "protocol": "TCP"}
    probes = {
        kind: server[kind]["httpGet"]
        for kind in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert probes["readinessProbe"]["path"] == "/v2/health/ready"
    assert probes["livenessProbe"]["path"] == "/v2/health/live"
    assert probes["startupProbe"]["path"] == "/v2/health/live"
    assert {p["port"] for p in probes.values()} == {"http"}
    settings = configmap_data(objs, server["envFrom"][0]["configMapRef"]["name"])
    assert int(settings["INDUCTIVE_PORT"]) == port["containerPort"]
    assert int(settings["INDUCTIVE_GRPC_PORT"]) == grpc_port["containerPort"]
    assert settings["INDUCTIVE_HOST"] == "0.0.0.0"  # reachable from the kubelet and the Service
    service = one(objs, "Service", "inductive")
    http, grpc = service["spec"]["ports"]
    assert http["targetPort"] == "http"
    assert grpc == {
        "name": "grpc", "port": 8001, "targetPort": "grpc", "protocol": "TCP",
        "appProtocol": "grpc",
    }  # fmt: skip


@pytest.mark.parametrize("build", SERVING_BUILDS)
def test_termination_outlasts_the_drain(build: str) -> None:
    """grace period > preStop sleep + INDUCTIVE_SHUTDOWN_GRACE_S, or Kubernetes kills a drain."""
    objs = render(build)
    spec = one(objs, "Deployment", "inductive")["spec"]["template"]["spec"]
    (server,) = spec["containers"]
    settings = configmap_data(objs, server["envFrom"][0]["configMapRef"]["name"])
    pre_stop = server["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(settings["INDUCTIVE_SHUTDOWN_GRACE_S"])
    assert pre_stop >= 5, "the endpoint needs a few seconds to leave the load balancers"
    assert spec["terminationGracePeriodSeconds"] > pre_stop + drain


def test_kserve_example_drains_like_the_deployment() -> None:
    (isvc,) = load_plain("kserve/inferenceservice.yaml")
    predictor = isvc["spec"]["predictor"]
    (container,) = predictor["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(env["INDUCTIVE_SHUTDOWN_GRACE_S"])
    assert predictor["terminationGracePeriodSeconds"] > pre_stop + drain
    assert container["ports"][0]["containerPort"] == 8000
    assert container["ports"][1] == {"name": "h2c", "containerPort": 8001, "protocol": "TCP"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert env["INDUCTIVE_STORE"].startswith("s3://")


@pytest.mark.parametrize("build", SERVING_BUILDS)
def test_selectors_match_the_server_pods(build: str) -> None:
    objs = render(build)
    deployment = one(objs, "Deployment", "inductive")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = {
        "Deployment": deployment["spec"]["selector"]["matchLabels"],
        "Service": one(objs, "Service")["spec"]["selector"],
        "PodDisruptionBudget": one(objs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        "NetworkPolicy": one(objs, "NetworkPolicy", "inductive")["spec"]["podSelector"][
            "matchLabels"
        ],
    }
    for kind, selector in selectors.items():
        assert selector, f"{kind}: an empty selector would select every pod"
        assert selector.items() <= pod_labels.items(), kind
    hpa = one(objs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "inductive",
    }
    assert hpa["minReplicas"] >= 2, "one replica left cannot honour the PodDisruptionBudget"
    netpol_ports = {
        p["port"]
        for r in one(objs, "NetworkPolicy", "inductive")["spec"]["ingress"]
        for p in r["ports"]
    }
    assert netpol_ports == {8000, 8001}
    monitor = one(render("monitoring"), "ServiceMonitor")["spec"]
    service = one(objs, "Service")
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["endpoints"]} <= {
        p["name"] for p in service["spec"]["ports"]
    }
    assert service["metadata"]["namespace"] in monitor["namespaceSelector"]["matchNames"]


@pytest.mark.parametrize("build", SERVING_BUILDS)
def test_references_resolve(build: str) -> None:
    """Every ConfigMap, Secret, volume, claim and ServiceAccount a pod names exists: in the build,
    or (Secrets) in the templates of k8s/secrets/ that users create once."""
    objs = render(build)
    templates = {
        s["metadata"]["name"]: set(s["stringData"])
        for path in PLAIN_FILES
        if path.startswith("secrets/")
        for s in load_plain(path)
    }
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for obj in objs:
        spec = pod_spec(obj)
        if spec is None:
            continue
        assert ("ServiceAccount", spec["serviceAccountName"]) in names
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in names
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, mount
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in names
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in templates
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in templates[ref["name"]], var


def test_gpu_overlay_asks_for_a_gpu() -> None:
    for build in ("overlays/gpu", "overlays/s3"):
        objs = render(build)
        spec = one(objs, "Deployment")["spec"]["template"]["spec"]
        (server,) = spec["containers"]
        assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
        assert spec["nodeSelector"]
        settings = configmap_data(objs, server["envFrom"][0]["configMapRef"]["name"])
        assert settings["INDUCTIVE_PROVIDERS"] == "cuda"
    cpu = render("overlays/cpu")
    (server,) = one(cpu, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "nvidia.com/gpu" not in server["resources"]["limits"]
    assert (
        configmap_data(cpu, server["envFrom"][0]["configMapRef"]["name"])["INDUCTIVE_PROVIDERS"]
        == "cpu"
    )


def test_s3_overlay_serves_from_s3() -> None:
    objs = render("overlays/s3")
    (server,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    store = configmap_data(objs, server["envFrom"][0]["configMapRef"]["name"])["INDUCTIVE_STORE"]
    assert re.fullmatch(r"s3://[a-z0-9.-]+/\S+", store)
    assert {s["secretRef"]["name"] for s in server["envFrom"] if "secretRef" in s} == {
        "inductive-s3"
    }
    assert not [o for o in objs if o["kind"] == "PersistentVolumeClaim"]
    assert "/models" not in {m["mountPath"] for m in server["volumeMounts"]}
    (isvc,) = load_plain("kserve/inferenceservice.yaml")
    (container,) = isvc["spec"]["predictor"]["containers"]
    assert {e["name"]: e.get("value") for e in container["env"]}["INDUCTIVE_STORE"] == store


def test_grafana_dashboard_is_valid_json() -> None:
    cm = one(render("monitoring"), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = cm["data"].values()
    dashboard = json.loads(text)
    assert text == (K8S / "monitoring/grafana-dashboard.json").read_text()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"]
            assert all(t["expr"] for t in panel["targets"])
