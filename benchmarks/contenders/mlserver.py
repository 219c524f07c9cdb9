"""MLServer 1.7.1 as a contender: its own virtualenv (installed on first use), a model folder
with our ~30-line ONNX Runtime runtime, and adaptive batching on."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.servers import Launch, free_port

MLSERVER_VERSION = "1.7.1"
VENV = Path(__file__).resolve().parents[1] / ".mlserver-venv"
# MLServer 1.7.1 breaks with uvloop 0.22 (its event-loop policy fails at start-up).
_PACKAGES = [f"mlserver=={MLSERVER_VERSION}", "onnxruntime", "onnx", "uvloop<0.22"]
log = logging.getLogger(__name__)
_RUNTIME = Path(__file__).with_name("mlserver_runtime.py")


def ensure_venv(venv: Path = VENV) -> Path:
    """The `mlserver` executable of the suite's venv, installing it when missing."""
    executable = venv / "bin" / "mlserver"
    if executable.exists():
        return executable
    log.info("installing MLServer %s into %s (once)", MLSERVER_VERSION, venv)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *_PACKAGES], check=True)
    return executable


def mlserver_launch(
    model_name: str,
    model_path: Path,
    workdir: Path,
    *,
    max_batch_size: int,
    max_batch_time_s: float,
) -> Launch:
    """A repository folder with settings.json and the model's folder; `max_batch_size` 1 turns
    adaptive batching off (needed for ragged inputs: MLServer concatenates requests along the
    first axis and cannot pad sequences of different lengths)."""
    executable = ensure_venv()
    repo = workdir / f"mlserver-{model_name}"
    shutil.rmtree(repo, ignore_errors=True)
    model_dir = repo / model_name
    model_dir.mkdir(parents=True)
    shutil.copyfile(_RUNTIME, model_dir / "onnx_runtime.py")
    model_settings = {
        "name": model_name,
        "implementation": "onnx_runtime.OnnxRuntime",
        "parameters": {"uri": str(model_path.resolve())},
        "max_batch_size": max_batch_size,
        "max_batch_time": max_batch_time_s,
    }
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    port = free_port()
    settings = {
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "host": "127.0.0.1",
        "debug": False,
    }
    (repo / "settings.json").write_text(json.dumps(settings, indent=2))
    return Launch(
        argv=[str(executable), "start", str(repo)],
        port=port,
        ready_path=f"/v2/models/{model_name}/ready",
    )
