"""The scheduled retraining in every overlay: the store it writes is the one the server reads,
it runs `retrain` then `gc`, and its script (run here for real, with a fake `python` on PATH that
exits as told) treats exit 3 as success and anything but 0 or 3 as a failure."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from model_store.cli import build_parser as store_parser
from tests.deploy.helpers import K8S, SERVING_BUILDS, Obj, configmap_data, one, render

SCRIPT_DIR = "/opt/retrain"
SCRIPT_KEY = "retrain.sh"


def _pod(objs: list[Obj], name: str) -> Obj:
    spec: Obj = one(objs, "CronJob", name)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def _server(objs: list[Obj]) -> Obj:
    (server,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return server


def _store(objs: list[Obj], container: Obj) -> str:
    (name,) = [s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s]
    return configmap_data(objs, name)["INDUCTIVE_STORE"]


@pytest.mark.parametrize("build", SERVING_BUILDS)
def test_every_overlay_has_the_retraining_cronjob_running_the_script(build: str) -> None:
    objs = render(build)
    pod = _pod(objs, "inductive-retrain")
    (job,) = pod["containers"]
    assert job["command"] == ["/bin/sh", f"{SCRIPT_DIR}/{SCRIPT_KEY}"]
    assert "args" not in job  # the image's entrypoint (python -m training) is not used
    (mount,) = [m for m in job["volumeMounts"] if m["mountPath"] == SCRIPT_DIR]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    shipped = configmap_data(objs, volume["configMap"]["name"])[SCRIPT_KEY]
    assert shipped == (K8S / "training" / SCRIPT_KEY).read_text()
    cron = one(objs, "CronJob", "inductive-retrain")["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert pod["restartPolicy"] == "Never"


@pytest.mark.parametrize("build", ["overlays/cpu", "overlays/gpu"])
def test_volume_overlays_retrain_into_the_servers_claim(build: str) -> None:
    objs = render(build)
    server_pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    server = _server(objs)
    job_pod = _pod(objs, "inductive-retrain")
    (job,) = job_pod["containers"]
    store = _store(objs, server)
    assert _store(objs, job) == store

    def claim_at(pod: Obj, container: Obj, path: str) -> tuple[str, bool]:
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == path]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        return volume["persistentVolumeClaim"]["claimName"], bool(mount.get("readOnly"))

    server_claim, server_read_only = claim_at(server_pod, server, store)
    job_claim, job_read_only = claim_at(job_pod, job, store)
    assert server_claim == job_claim
    assert server_read_only
    assert not job_read_only  # the job publishes and deletes versions
    # Server replicas are spread over nodes and the job runs beside them: one claim mounted on
    # several nodes at once needs ReadWriteMany.
    claim = one(objs, "PersistentVolumeClaim", server_claim)
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert {s.get("secretRef", {}).get("name") for s in job["envFrom"]} == {None}


def test_s3_overlay_retrains_into_the_servers_bucket() -> None:
    objs = render("overlays/s3")
    server = _server(objs)
    for name in ("inductive-retrain", "inductive-seed-models"):
        pod = _pod(objs, name)
        (job,) = pod["containers"]
        assert _store(objs, job) == _store(objs, server)
        assert _store(objs, job).startswith("s3://")
        secrets = {s["secretRef"]["name"] for s in job["envFrom"] if "secretRef" in s}
        assert secrets == {s["secretRef"]["name"] for s in server["envFrom"] if "secretRef" in s}
        assert "persistentVolumeClaim" not in str(pod["volumes"])
        assert "/models" not in {m["mountPath"] for m in job["volumeMounts"]}


@pytest.mark.parametrize("build", SERVING_BUILDS)
def test_seed_template_is_suspended_and_mirrors_the_retraining_pod(build: str) -> None:
    objs = render(build)
    seed = one(objs, "CronJob", "inductive-seed-models")
    retrain = one(objs, "CronJob", "inductive-retrain")
    assert seed["spec"]["suspend"] is True
    assert "suspend" not in retrain["spec"]
    seed_pod, retrain_pod = _pod(objs, "inductive-seed-models"), _pod(objs, "inductive-retrain")
    assert {k: v for k, v in seed_pod.items() if k != "containers"} == {
        k: v for k, v in retrain_pod.items() if k != "containers"
    }
    (seed_c,), (retrain_c,) = seed_pod["containers"], retrain_pod["containers"]
    differ = ("command", "args")
    assert {k: v for k, v in seed_c.items() if k not in differ} == {
        k: v for k, v in retrain_c.items() if k not in differ
    }


# The script, run for real.

FAKE_PYTHON = """#!/bin/sh
# Records each call; exits as FAKE_EXIT_<model> (retrain) or FAKE_GC_EXIT_<model> (gc) say.
echo "$*" >> "$FAKE_LOG"
case "$2" in
    training) model=$5; eval "code=\\${FAKE_EXIT_$model:-0}" ;;
    model_store) model=$6; eval "code=\\${FAKE_GC_EXIT_$model:-0}" ;;
    *) code=99 ;;
esac
exit "$code"
"""


@dataclass(frozen=True)
class ScriptRun:
    returncode: int
    calls: list[list[str]]
    output: str


RunScript = Callable[..., ScriptRun]


@pytest.fixture
def run_script(tmp_path: Path) -> RunScript:
    """Run the ConfigMap's retrain.sh with /bin/sh and a fake `python` first on PATH."""
    if shutil.which("sh") is None:
        pytest.skip("no /bin/sh")
    shipped = configmap_data(render("overlays/cpu"), "inductive-retrain-script")[SCRIPT_KEY]
    script = tmp_path / SCRIPT_KEY
    script.write_text(shipped)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / "calls.log"

    def run(**env: str) -> ScriptRun:
        log.write_text("")
        base = {
            "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin",
            "FAKE_LOG": str(log),
            "INDUCTIVE_STORE": "/models",
            "RETRAIN_MODELS": "cnn resnet gru",
            "GC_KEEP": "5",
        }
        out = subprocess.run(
            ["/bin/sh", str(script)],
            env={k: v for k, v in {**base, **env}.items() if v is not None},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        calls = [line.split() for line in log.read_text().splitlines()]
        return ScriptRun(out.returncode, calls, out.stdout + out.stderr)

    return run


def _retrained(run: ScriptRun) -> list[str]:
    return [c[4] for c in run.calls if c[1] == "training"]


def _collected(run: ScriptRun) -> list[str]:
    return [c[5] for c in run.calls if c[1] == "model_store"]


def test_script_retrains_every_model_then_collects_garbage(run_script: RunScript) -> None:
    run = run_script()
    assert run.returncode == 0, run.output
    assert run.calls == [
        ["-m", "training", "retrain", "--model", "cnn", "--store", "/models"],
        ["-m", "training", "retrain", "--model", "resnet", "--store", "/models"],
        ["-m", "training", "retrain", "--model", "gru", "--store", "/models"],
        ["-m", "model_store", "--store", "/models", "gc", "cnn", "--keep", "5"],
        ["-m", "model_store", "--store", "/models", "gc", "resnet", "--keep", "5"],
        ["-m", "model_store", "--store", "/models", "gc", "gru", "--keep", "5"],
    ]
    for call in run.calls[3:]:  # the real model_store CLI accepts what the script runs
        ns = store_parser().parse_args(call[2:])
        assert (ns.command, ns.store, ns.keep) == ("gc", "/models", 5)


def test_exit_3_champion_kept_is_success(run_script: RunScript) -> None:
    run = run_script(FAKE_EXIT_cnn="3", FAKE_EXIT_gru="3")
    assert run.returncode == 0, run.output
    assert "cnn: champion kept" in run.output
    assert _collected(run) == ["cnn", "resnet", "gru"]


@pytest.mark.parametrize("status", ["1", "2", "137"])
def test_any_other_exit_fails_the_job_but_every_model_is_tried_and_collected(
    run_script: RunScript,
    status: str,
) -> None:
    run = run_script(FAKE_EXIT_resnet=status)
    assert run.returncode == 1
    assert f"resnet: retrain failed (exit {status})" in run.output
    assert _retrained(run) == ["cnn", "resnet", "gru"]
    assert _collected(run) == ["cnn", "resnet", "gru"]


def test_a_failed_gc_fails_the_job(run_script: RunScript) -> None:
    run = run_script(FAKE_GC_EXIT_gru="1")
    assert run.returncode == 1
    assert "gru: gc failed" in run.output
    assert _collected(run) == ["cnn", "resnet", "gru"]


def test_shards_prefix_and_epochs_come_from_the_config(run_script: RunScript) -> None:
    run = run_script(RETRAIN_DATA="s3://bucket/labelled/", RETRAIN_EPOCHS="4", RETRAIN_MODELS="cnn")
    assert run.returncode == 0, run.output
    assert run.calls[0] == [
        "-m", "training", "retrain", "--model", "cnn", "--store", "/models",
        "--data", "s3://bucket/labelled/cnn", "--epochs", "4",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RETRAIN_MODELS": ""}, "INDUCTIVE_STORE and RETRAIN_MODELS must both be set"),
        ({"INDUCTIVE_STORE": ""}, "INDUCTIVE_STORE and RETRAIN_MODELS must both be set"),
        ({"GC_KEEP": "five"}, "GC_KEEP must be a whole number, not 'five'"),
    ],
)
def test_bad_settings_stop_before_anything_runs(
    run_script: RunScript, env: dict[str, str], message: str
) -> None:
    run = run_script(**env)
    assert run.returncode == 1
    assert message in run.output
    assert run.calls == []


def test_the_training_cli_accepts_the_retrain_command(run_script: RunScript) -> None:
    from training.cli import build_parser

    parser = build_parser()
    run = run_script(RETRAIN_DATA="/shards", RETRAIN_EPOCHS="2")
    for call in run.calls[:3]:
        ns = parser.parse_args(call[2:])
        assert (ns.command, ns.store, ns.data, ns.epochs) == (
            "retrain",
            "/models",
            f"/shards/{ns.model}",
            2,
        )
