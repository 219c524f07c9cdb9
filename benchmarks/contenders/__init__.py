"""Every server the benchmarks measure, and how to launch each on a model.

- `ours`: `python -m service`, JSON or binary tensors, batching on or off; and its gRPC door
  (`ours-grpc`, under h2load like the peers' gRPC).
- `floor` (floor_uvloop.py): the least a batching Python server on uvloop does per request.
- `naive` (naive_fastapi.py): FastAPI + one `session.run` per request.
- the peers (peers.py): MLServer, KServe, LitServe and BentoML, each from its own venv, each
  with the knobs the suite sweeps to find its best setting.

Every launch goes through `benchmarks.harness.servers.serve`. The scripts in this package run as
their own processes (the peers' in their own venvs); the suite never imports them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.contenders.peers import PEERS, Peer, PeerLaunch, Setting
from benchmarks.harness.servers import Launch, free_port, service_launch
from benchmarks.workload import Workload

HERE = Path(__file__).resolve().parent

__all__ = [
    "CONTENDERS",
    "PEERS",
    "Contender",
    "Peer",
    "PeerLaunch",
    "Setting",
    "launch_for",
    "ours_launch",
]


@dataclass(frozen=True)
class Contender:
    """A server with one fixed setting, measured over one protocol."""

    key: str
    label: str
    kind: str  # "ours", "floor" or "naive"
    protocol: str  # "json", "binary" or "grpc"
    batching: bool = True


CONTENDERS = {
    c.key: c
    for c in (
        Contender("binary", "Inductive binary, batching on", "ours", "binary"),
        Contender("binary-nobatch", "Inductive binary, batching off", "ours", "binary", False),
        Contender("json", "Inductive JSON, batching on", "ours", "json"),
        Contender("json-nobatch", "Inductive JSON, batching off", "ours", "json", False),
        Contender("ours-grpc", "Inductive gRPC, batching on", "ours", "grpc"),
        Contender("floor", "floor: minimal batching server on uvloop", "floor", "binary"),
        Contender("naive", "naive FastAPI + ONNX Runtime", "naive", "json", False),
    )
}


def ours_launch(
    store: Path,
    work_dir: Path,
    model: str,
    batching: bool,
    *,
    providers: str = "cpu",
    intra_op_threads: int = 1,
    extra_env: dict[str, str] | None = None,
) -> Launch:
    """`python -m service` serving only `model`, loaded once (no store polling during a run)."""
    return service_launch(
        {
            "INDUCTIVE_STORE": str(store),
            "INDUCTIVE_MODELS": model,
            "INDUCTIVE_MODEL_CONTROL_MODE": "none",
            "INDUCTIVE_PROVIDERS": providers,
            "INDUCTIVE_INTRA_OP_THREADS": str(intra_op_threads),
            "INDUCTIVE_LOG_LEVEL": "warning",
            "INDUCTIVE_BATCHING": "true" if batching else "false",
            "INDUCTIVE_CACHE_DIR": str(work_dir / "cache"),
            **(extra_env or {}),
        },
        ready_path=f"/v2/models/{model}/ready",  # ready once this model is
    )


def launch_for(contender: Contender, workload: Workload, store: Path, work_dir: Path) -> Launch:
    if contender.kind == "ours":
        return ours_launch(store, work_dir, workload.name, contender.batching)
    port = free_port()
    script = HERE / ("naive_fastapi.py" if contender.kind == "naive" else "floor_uvloop.py")
    argv = [
        *(sys.executable, str(script), "--model", str(workload.model_path)),
        *("--name", workload.name, "--port", str(port)),
    ]
    return Launch(argv, port, ready_path=f"/v2/models/{workload.name}/ready")
