"""The peer servers users pick instead of ours, each with the knobs it offers and how to start it
on one of our models: MLServer, KServe's Python model server, LitServe, BentoML.

Each runs from its own virtualenv (venvs.py) and serves the model's ONNX file with ONNX Runtime,
one intra-op thread, like every contender. A peer's `grid` lists the values of each of its own
tuning knobs that the suite sweeps, so that it is compared at its best setting, not at ours.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.contenders.venvs import ensure_venv
from benchmarks.harness.servers import Launch, free_port, free_ports
from benchmarks.workload import Workload

HERE = Path(__file__).resolve().parent
Setting = dict[str, int | float]


@dataclass(frozen=True)
class PeerLaunch:
    """A launch of a peer, and the gRPC port it also listens on (None: no gRPC)."""

    launch: Launch
    grpc_port: int | None = None


@dataclass(frozen=True)
class Peer:
    key: str
    label: str  # the product and its pinned version
    protocols: tuple[str, ...]  # measured on every launch: json, binary, grpc
    grid: dict[str, tuple[int | float, ...]]  # each knob and the values swept
    build: Callable[[Workload, Setting, Path], PeerLaunch]
    quick: Setting  # the one setting a smoke run uses: a sensible tuning, not a search
    window: str | None = None  # the knob that matters only when batching (how long to wait)
    note: str = ""  # what the report must say about how this peer is run
    one_input_only: bool = False  # cannot serve models with several inputs

    def settings(self, ragged: bool = False, grid_name: str = "full") -> list[Setting]:
        """Every combination of the grid's values ("quick": the quick setting alone). None of
        these peers pads sequences of different lengths into one batch: for ragged models
        they run with batch size 1, and the batching window (which would only delay requests)
        at its first value."""
        grid: dict[str, tuple[int | float, ...]] = (
            dict(self.grid) if grid_name == "full" else {k: (v,) for k, v in self.quick.items()}
        )
        if ragged and "max_batch_size" in grid:
            grid["max_batch_size"] = (1,)
            if self.window is not None:
                grid[self.window] = self.grid[self.window][:1]
        keys = list(grid)
        return [
            dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())
        ]

    def unsupported(self, workload: Workload) -> str | None:
        """Why this peer cannot serve `workload`, or None."""
        if self.one_input_only and (len(workload.inputs) > 1 or len(workload.outputs) > 1):
            return f"{self.label} batches one input and one output per request here"
        return None


def _ms(setting: Setting, key: str) -> float:
    return float(setting[key]) / 1000


# --- MLServer ----------------------------------------------------------------------------------


def _mlserver(workload: Workload, setting: Setting, work: Path) -> PeerLaunch:
    """A model repository folder: settings.json (ports, parallel workers) and the model's folder
    (model-settings.json with the adaptive batching knobs, and our ONNX Runtime runtime)."""
    python = ensure_venv("mlserver")
    port, grpc_port, metrics_port = free_ports(3)
    # A folder per launch: MLServer reads it when it starts, and must not see the next one's.
    repo = work / f"mlserver-{workload.name}-{port}"
    shutil.rmtree(repo, ignore_errors=True)
    model_dir = repo / workload.name
    model_dir.mkdir(parents=True)
    shutil.copyfile(HERE / "mlserver_runtime.py", model_dir / "onnx_runtime.py")
    model_settings = {
        "name": workload.name,
        "implementation": "onnx_runtime.OnnxRuntime",
        "parameters": {"uri": str(workload.model_path.resolve())},
        # MLServer turns adaptive batching on when max_batch_size > 1; max_batch_time is the
        # window it waits for a batch to fill.
        "max_batch_size": setting["max_batch_size"],
        "max_batch_time": _ms(setting, "max_batch_time_ms"),
    }
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    settings = {
        "http_port": port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "host": "127.0.0.1",
        "debug": False,
        # 0 runs the model in the server's process; N > 0 in N worker processes.
        "parallel_workers": setting["workers"],
    }
    (repo / "settings.json").write_text(json.dumps(settings, indent=2))
    launch = Launch(
        [str(python.with_name("mlserver")), "start", str(repo)],
        port,
        ready_path=f"/v2/models/{workload.name}/ready",
    )
    return PeerLaunch(launch, grpc_port)


# --- KServe ------------------------------------------------------------------------------------


def _kserve(workload: Workload, setting: Setting, work: Path) -> PeerLaunch:
    python = ensure_venv("kserve")
    port, grpc_port = free_ports(2)
    argv = [
        *(str(python), str(HERE / "kserve_server.py")),
        *("--model-path", str(workload.model_path.resolve()), "--model_name", workload.name),
        *("--http_port", str(port), "--grpc_port", str(grpc_port)),
        *("--workers", str(setting["workers"]), "--event-loop", "uvloop"),
        # One log line per request is on by default; a tuned deployment turns it off.
        *("--enable_latency_logging", "false", "--configure_logging", "false"),
    ]
    if setting.get("predict_in_thread"):
        argv.append("--predict-in-thread")
    launch = Launch(argv, port, ready_path=f"/v2/models/{workload.name}/ready", cwd=work)
    return PeerLaunch(launch, grpc_port)


# --- LitServe ----------------------------------------------------------------------------------


def _litserve(workload: Workload, setting: Setting, work: Path) -> PeerLaunch:
    python = ensure_venv("litserve")
    port = free_port()
    argv = [
        *(
            str(python),
            str(HERE / "litserve_server.py"),
            "--model",
            str(workload.model_path.resolve()),
        ),
        *("--name", workload.name, "--port", str(port)),
        *("--max-batch-size", str(setting["max_batch_size"])),
        *("--batch-timeout-ms", str(setting["batch_timeout_ms"])),
        *("--workers", str(setting["workers"])),
    ]
    if setting.get("fast_queue"):
        argv.append("--fast-queue")
    # LitServe's /health answers 200 once its inference workers are up.
    return PeerLaunch(Launch(argv, port, ready_path="/health", cwd=work))


# --- BentoML -----------------------------------------------------------------------------------


def _bentoml(workload: Workload, setting: Setting, work: Path) -> PeerLaunch:
    python = ensure_venv("bentoml")
    port = free_port()
    directory = work / f"bentoml-{workload.name}"
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "bentoml_service.py", directory / "bentoml_service.py")
    env = {
        "PEER_MODEL_PATH": str(workload.model_path.resolve()),
        "PEER_MODEL_NAME": workload.name,
        "PEER_WORKERS": str(setting["workers"]),
        "PEER_BATCHABLE": "true" if setting["max_batch_size"] > 1 else "false",
        "PEER_MAX_BATCH_SIZE": str(setting["max_batch_size"]),
        "PEER_MAX_LATENCY_MS": str(setting["max_latency_ms"]),
        # BentoML keeps its home (models, bentos, tmp) here rather than in ~/bentoml.
        "BENTOML_HOME": str(directory / "home"),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    argv = [
        *(str(python.with_name("bentoml")), "serve", "bentoml_service:OnnxService"),
        *("--host", "127.0.0.1", "--port", str(port)),
    ]
    return PeerLaunch(Launch(argv, port, ready_path="/readyz", env=env, cwd=directory))


MLSERVER = Peer(
    "mlserver",
    "MLServer 1.7.1",
    ("json", "grpc"),
    {
        "max_batch_size": (8, 32, 64),
        "max_batch_time_ms": (0, 1, 2, 5, 10),
        "workers": (0, 1),  # parallel_workers
    },
    _mlserver,
    quick={"max_batch_size": 32, "max_batch_time_ms": 5, "workers": 0},
    window="max_batch_time_ms",
    note="MLServer cannot pad sequences of different lengths into one batch: on ragged models "
    "it runs with max_batch_size 1.",
)
KSERVE = Peer(
    "kserve",
    "KServe 0.21.0 (Python model server)",
    ("json", "binary", "grpc"),
    # No batching of its own. Its one knob for one core: run the model on the event loop or in
    # a thread.
    {"workers": (1,), "predict_in_thread": (0, 1)},
    _kserve,
    quick={"workers": 1, "predict_in_thread": 0},
    note="KServe's Python server has no batching of its own (KServe batches in its Go agent, "
    "a Kubernetes sidecar). `--workers 2` is not swept: KServe pings each worker process 5 s "
    "after starting it and kills and restarts one that has not answered, and two workers "
    "importing KServe on one core take longer than that, so they never came up here.",
)
LITSERVE = Peer(
    "litserve",
    "LitServe 0.2.19",
    ("json",),
    {
        "max_batch_size": (8, 32, 64),
        "batch_timeout_ms": (0, 1, 2, 5, 10),
        "workers": (1, 2),  # workers_per_device: inference processes
    },
    _litserve,
    quick={"max_batch_size": 32, "batch_timeout_ms": 2, "workers": 1},
    window="batch_timeout_ms",
    note="LitServe has no V2 protocol of its own: its API decodes the same V2 JSON body and "
    "answers V2 JSON, the code a user writes.",
)
BENTOML = Peer(
    "bentoml",
    "BentoML 1.4.40",
    ("json",),
    {
        "max_batch_size": (8, 32, 64),
        # Its dispatcher sizes batches to meet this latency budget and refuses (503) what it
        # expects to miss it; 60000 is BentoML's default.
        "max_latency_ms": (100, 1000, 60000),
        "workers": (1, 2),
    },
    _bentoml,
    quick={"max_batch_size": 32, "max_latency_ms": 1000, "workers": 1},
    window="max_latency_ms",
    note="BentoML's endpoint takes the V2 JSON body as is and answers with the request's list "
    "of V2 output tensors (a batchable API answers its slice of the batch, not an object).",
    one_input_only=True,
)
PEERS = {peer.key: peer for peer in (MLSERVER, KSERVE, LITSERVE, BENTOML)}
