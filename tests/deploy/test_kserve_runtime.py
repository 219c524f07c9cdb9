"""The KServe runtime (k8s/kserve/servingruntime.yaml) and its storageUri example: the arguments
KServe passes reach the server as the store-less mode it means, on the ports it routes to, and
the example asks for what the runtime serves. (The server started with these very arguments is
tests/service/test_model_dir.py.)"""

from __future__ import annotations

import pytest

from model_store.schema import validate_model_name
from service.__main__ import parse_args
from service.settings import Settings
from tests.deploy.helpers import Obj, load_plain, one, pod_spec, serving_runtime

RUNTIME = "inductive-onnx"


def runtime_args(name: str) -> list[str]:
    """The runtime container's arguments with KServe's template filled in for `name`."""
    (container,) = serving_runtime(RUNTIME)["spec"]["containers"]
    return [arg.replace("{{.Name}}", name) for arg in container["args"]]


def _isvc() -> Obj:
    return one(load_plain("kserve/inferenceservice-storage.yaml"), "InferenceService")


def _runtime_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    (container,) = serving_runtime(RUNTIME)["spec"]["containers"]
    for var in container["env"]:
        monkeypatch.setenv(var["name"], var["value"])
    return Settings(**parse_args(runtime_args(name)))


def test_kserve_arguments_become_the_store_less_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _runtime_settings("cnn", monkeypatch)
    assert (settings.model_dir, settings.model_name) == ("/mnt/models", "cnn")
    assert settings.host == "0.0.0.0"
    (container,) = serving_runtime(RUNTIME)["spec"]["containers"]
    http, grpc = container["ports"]
    assert http["containerPort"] == settings.port
    assert grpc == {"name": "h2c", "containerPort": settings.grpc_port, "protocol": "TCP"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == settings.port, probe
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    annotations = serving_runtime(RUNTIME)["spec"]["annotations"]
    assert annotations["prometheus.kserve.io/port"] == str(settings.port)


def test_the_runtime_serves_onnx_over_v2_rest_and_grpc() -> None:
    spec = serving_runtime(RUNTIME)["spec"]
    assert [f["name"] for f in spec["supportedModelFormats"]] == ["onnx"]
    assert set(spec["protocolVersions"]) == {"v2", "grpc-v2"}
    assert all(f["autoSelect"] for f in spec["supportedModelFormats"])


def test_the_example_uses_the_runtime_through_the_storage_initializer() -> None:
    isvc = _isvc()
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == RUNTIME
    assert model["modelFormat"]["name"] == "onnx"
    assert model["storageUri"].startswith("s3://")
    # The InferenceService's name is the model's name (KServe's {{.Name}}): it must be a valid one.
    validate_model_name(isvc["metadata"]["name"])
    # The storage initializer's credentials: the predictor's service account, and its secret.
    accounts = {
        o["metadata"]["name"]: o
        for o in load_plain("kserve/inferenceservice-storage.yaml")
        if o["kind"] == "ServiceAccount"
    }
    account = accounts[isvc["spec"]["predictor"]["serviceAccountName"]]
    secrets = {s["metadata"]["name"] for s in load_plain("secrets/s3-credentials.yaml")}
    assert {s["name"] for s in account["secrets"]} <= secrets


def test_the_predictor_drains_within_its_grace_period(monkeypatch: pytest.MonkeyPatch) -> None:
    isvc = _isvc()
    pod = pod_spec(isvc)
    assert pod is not None
    (container,) = pod["containers"]
    settings = _runtime_settings(isvc["metadata"]["name"], monkeypatch)
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + settings.shutdown_grace_s
    # The model's own environment wins over the runtime's (KServe merges by name).
    env = {v["name"]: v["value"] for v in container["env"]}
    assert env["INDUCTIVE_PROVIDERS"] == "cpu"
    assert env["INDUCTIVE_HOST"] == "0.0.0.0"
