"""Rendering and walking the deployment manifests (k8s/) for the deploy tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
DOCKERFILE = REPO / "Dockerfile"

# Every kustomization a user applies (k8s/README.md), rendered as `kubectl kustomize` would.
BUILDS = ("overlays/cpu", "overlays/gpu", "overlays/s3", "monitoring")
SERVING_BUILDS = ("overlays/cpu", "overlays/gpu", "overlays/s3")
# The Dockerfile target whose image each serving build runs.
SERVE_TARGETS = {"overlays/cpu": "serve-cpu", "overlays/gpu": "serve", "overlays/s3": "serve"}
# Files applied or created as they are, outside any kustomize build.
PLAIN_FILES = (
    "secrets/admin-token.yaml",
    "secrets/s3-credentials.yaml",
    "kserve/inferenceservice.yaml",
    "kserve/servingruntime.yaml",
    "kserve/inferenceservice-storage.yaml",
)
# Fields of KServe's ModelSpec (predictor.model) that are not core/v1 Container fields.
MODEL_SPEC_FIELDS = {"modelFormat", "runtime", "protocolVersion", "storageUri", "storage"}

Obj = dict[str, Any]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl (with kustomize built in) is not installed")
    return path


@cache
def _render(build: str) -> tuple[Obj, ...]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(K8S / build)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, f"kubectl kustomize {build} failed:\n{out.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def render(build: str) -> list[Obj]:
    """The objects of one kustomize build (deep copies are the caller's business: don't mutate)."""
    return list(_render(build))


def load_plain(path: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all((K8S / path).read_text()) if doc]


def all_objects() -> Iterator[tuple[str, Obj]]:
    """(where it comes from, object) for every object users apply or create."""
    for build in BUILDS:
        for obj in render(build):
            yield build, obj
    for path in PLAIN_FILES:
        for obj in load_plain(path):
            yield path, obj


def one(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [
        o for o in objs if o["kind"] == kind and (name is None or o["metadata"].get("name") == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(obj: Obj) -> Obj | None:
    """The pod spec inside a workload, None for objects that run no pods."""
    kind = obj["kind"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "InferenceService":
        predictor = obj["spec"]["predictor"]
        return runtime_pod(predictor) if "model" in predictor else predictor
    return None


def serving_runtime(name: str) -> Obj:
    """The ClusterServingRuntime of k8s/kserve with that name."""
    return one(load_plain("kserve/servingruntime.yaml"), "ClusterServingRuntime", name)


def runtime_pod(predictor: Obj) -> Obj:
    """The pod KServe runs for a predictor with a `model`: its runtime's container, with the
    model's own container fields on top (KServe merges them so), plus the predictor's pod
    fields. The storage initializer KServe adds is KServe's, not ours."""
    model = predictor["model"]
    runtime = serving_runtime(model["runtime"])["spec"]
    (container,) = runtime["containers"]
    merged = dict(container)
    for key, value in model.items():
        if key in MODEL_SPEC_FIELDS:
            continue
        if key == "env":  # merged by name, the model's value winning
            names = {v["name"] for v in value}
            value = [v for v in container.get("env", []) if v["name"] not in names] + value
        merged[key] = value
    pod = {k: v for k, v in predictor.items() if k != "model"}
    pod["containers"] = [merged]
    pod["volumes"] = runtime.get("volumes", []) + predictor.get("volumes", [])
    return pod


def workloads() -> Iterator[tuple[str, Obj, Obj]]:
    """(source, object, pod spec) for every object that runs pods."""
    for source, obj in all_objects():
        spec = pod_spec(obj)
        if spec is not None:
            yield source, obj, spec


def configmap_data(objs: list[Obj], ref_name: str) -> dict[str, str]:
    return one(objs, "ConfigMap", ref_name).get("data", {})
