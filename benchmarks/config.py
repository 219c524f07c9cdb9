"""What one run of the suite measures: models, contenders, concurrency, durations, cores, the
peers' sweep and the open-loop latency curves, and where results go."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.contenders import CONTENDERS, PEERS

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_STORE = BENCH_DIR / ".store"
WORK_DIR = BENCH_DIR / ".work"
RESULTS_DIR = BENCH_DIR / "results"
MODELS = ("cnn", "resnet", "gru", "transformer")
CONCURRENCY = (1, 8, 32, 128)
# "raw" (ONNX Runtime in-process) is selectable with the servers but runs no server.
ALL_CONTENDERS = ("raw", *CONTENDERS, *PEERS)
# Open-loop curves: ours in both protocols and every peer at its best setting.
OPEN_LOOP_CONTENDERS = ("binary", "json", *PEERS)


@dataclass(frozen=True)
class BenchConfig:
    store: Path = DEFAULT_STORE
    models: tuple[str, ...] = MODELS
    contenders: tuple[str, ...] = ALL_CONTENDERS
    concurrency: tuple[int, ...] = CONCURRENCY
    duration_s: float = 5.0  # per measured point
    warmup_s: float = 3.0  # per server launch, before its first point
    raw_seconds: float = 3.0  # per raw ONNX Runtime batch size
    raw_batches: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
    server_core: int = 0
    client_core: int = 1
    out_dir: Path = RESULTS_DIR / "cpu"
    work_dir: Path = WORK_DIR
    # The peers' sweep: every setting of each peer's grid ("quick": one tuned setting each).
    peer_models: tuple[str, ...] = ("cnn",)
    peer_grid: str = "full"
    peer_duration_s: float = 2.0  # per sweep point
    peer_warmup_s: float = 1.0  # per protocol of each launch
    # Open-loop latency at fractions of each server's closed-loop capacity, then a search for
    # the highest rate held with p99 within the SLO.
    open_loop_models: tuple[str, ...] = ("cnn",)
    open_loop_contenders: tuple[str, ...] = OPEN_LOOP_CONTENDERS
    open_loop_s: float = 5.0  # per point
    open_loop_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
    open_loop_connections: int = 256
    # A point during which the hypervisor took CPU time from the server's or the generator's
    # core (/proc/stat steal) is measured again, at most this many times (its tail is the VM's).
    open_loop_retries: int = 2
    slo_ms: float = 25.0
    slo_steps: int = 3  # bisection steps between the fastest rate held and the slowest missed
    # Ours against each peer's best setting again, side by side in alternating rounds
    # (head_to_head.py): the peer targets are judged on the median ratio of these rounds.
    head_to_head_rounds: int = 5
    head_to_head_concurrency: int = 32

    def __post_init__(self) -> None:
        unknown = set(self.contenders) - set(ALL_CONTENDERS)
        if unknown:
            raise ValueError(
                f"unknown contenders {sorted(unknown)}; choose from {', '.join(ALL_CONTENDERS)}"
            )
        unknown = set(self.open_loop_contenders) - set(OPEN_LOOP_CONTENDERS)
        if unknown:
            raise ValueError(
                f"no open-loop curve for {sorted(unknown)}; choose from "
                + ", ".join(OPEN_LOOP_CONTENDERS)
            )
        if self.server_core == self.client_core:
            raise ValueError(
                "the server and the load generator need different cores (--server-core, "
                "--client-core)"
            )
        if self.peer_grid not in ("full", "quick"):
            raise ValueError(f"peer_grid {self.peer_grid!r}: expected 'full' or 'quick'")

    @property
    def peers(self) -> tuple[str, ...]:
        return tuple(key for key in self.contenders if key in PEERS)


def quick(config: BenchConfig) -> BenchConfig:
    """The whole report in minutes: every model, section and target of a record run, at the
    two concurrencies the targets read (1 and 32), the peers at one tuned setting each, fewer
    raw batch sizes and open-loop rates, seconds per point. About 10 minutes on a 2-core
    machine (each part's seconds are in the report); figures to check the suite, not records."""
    return replace(
        config,
        concurrency=(1, 32),
        duration_s=2.0,
        warmup_s=1.0,
        raw_seconds=0.5,
        raw_batches=(1, 8, 32, 64),
        peer_grid="quick",
        peer_duration_s=2.0,
        peer_warmup_s=1.0,
        open_loop_s=2.0,
        open_loop_fractions=(0.5, 0.9),
        open_loop_retries=0,
        slo_steps=1,
        head_to_head_rounds=2,
        out_dir=WORK_DIR / "quick",
    )


def short(config: BenchConfig) -> BenchConfig:
    """Everything the full run does (every model, concurrency, peer setting and open-loop
    point) with about a second per point: proves the whole suite end to end."""
    return replace(
        config,
        duration_s=1.0,
        warmup_s=1.0,
        raw_seconds=0.3,
        peer_duration_s=1.0,
        peer_warmup_s=0.5,
        open_loop_s=1.0,
        head_to_head_rounds=2,
        out_dir=WORK_DIR / "short",
    )
