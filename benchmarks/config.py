"""What one benchmark run measures: models, contenders, concurrency, durations, cores, paths."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_STORE = BENCH_DIR / ".store"
WORK_DIR = BENCH_DIR / ".work"
RESULTS_DIR = BENCH_DIR / "results"
MODELS = ("cnn", "resnet", "gru", "transformer")
CONCURRENCY = (1, 8, 32, 128)


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    kind: str  # "ours", "floor", "naive" or "mlserver"
    protocol: str  # "json" or "binary"
    batching: bool = True


CONTENDERS = {
    c.key: c
    for c in (
        Contender("binary", "Inductive binary, batching on", "ours", "binary"),
        Contender("binary-nobatch", "Inductive binary, batching off", "ours", "binary", False),
        Contender("json", "Inductive JSON, batching on", "ours", "json"),
        Contender("json-nobatch", "Inductive JSON, batching off", "ours", "json", False),
        Contender("floor", "floor: minimal batching server on uvloop", "floor", "binary"),
        Contender("naive", "naive FastAPI + ONNX Runtime", "naive", "json", False),
        Contender("mlserver", "MLServer 1.7.1, adaptive batching", "mlserver", "json"),
    )
}
# "raw" (ONNX Runtime in-process) is selectable with the servers but runs no server.
ALL_CONTENDERS = ("raw", *CONTENDERS)


@dataclass(frozen=True)
class BenchConfig:
    store: Path = DEFAULT_STORE
    models: tuple[str, ...] = MODELS
    contenders: tuple[str, ...] = ALL_CONTENDERS
    concurrency: tuple[int, ...] = CONCURRENCY
    duration_s: float = 10.0  # per measured point
    warmup_s: float = 3.0  # per server launch, before its first point
    raw_seconds: float = 3.0  # per raw ONNX Runtime batch size
    raw_batches: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
    server_core: int = 0
    client_core: int = 1
    out_dir: Path = RESULTS_DIR / "cpu"
    work_dir: Path = WORK_DIR

    def __post_init__(self) -> None:
        unknown = set(self.contenders) - set(ALL_CONTENDERS)
        if unknown:
            raise ValueError(
                f"unknown contenders {sorted(unknown)}; choose from {', '.join(ALL_CONTENDERS)}"
            )
        if self.server_core == self.client_core:
            raise ValueError(
                "the server and wrk need different cores (--server-core, --client-core)"
            )


def quick(config: BenchConfig) -> BenchConfig:
    """The smoke-test run: cnn only, one concurrency, seconds instead of minutes."""
    return replace(
        config,
        models=("cnn",),
        concurrency=(32,),
        duration_s=3.0,
        warmup_s=1.0,
        raw_seconds=1.0,
        raw_batches=(1, 32, 64),
        out_dir=WORK_DIR / "quick",
    )
