"""Traffic capture without a server: which models fit a shard, the shards built from captured
requests, and the writer's bounds (rate, queue, total size) and failures. tests/e2e/test_capture.py
captures from a real server into a directory and into S3."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from model_store import Manifest, ModelConfig, Producer, RaggedInput, TensorSpec
from model_store.prefix import open_prefix
from model_store.shards import ShardError, read_shard
from service.capture import CaptureWriter, VersionCapture, capturable_input
from service.capture.shards import Captured, build_shard, shard_name
from service.metrics import Metrics
from service.model_io.signature import ModelSignature
from service.settings import Settings

RAGGED = RaggedInput(input="x", axis=1, lengths_input="lengths")


def signature(inputs: list[TensorSpec], outputs: list[TensorSpec], *ragged: RaggedInput
              ) -> ModelSignature:  # fmt: skip
    manifest = Manifest(name="m", version=1, inputs=tuple(inputs), outputs=tuple(outputs),
                        producer=Producer(package="test"))  # fmt: skip
    return ModelSignature.build(manifest, ModelConfig(ragged_inputs=ragged), 8)


def spec(name: str, shape: tuple[int, ...], datatype: str = "FP32") -> TensorSpec:
    return TensorSpec(name=name, datatype=datatype, shape=shape)


LOGITS = spec("logits", (-1, 3))


@pytest.mark.parametrize(
    ("inputs", "outputs", "ragged", "fit"),
    [
        ([spec("x", (-1, 1, 8, 8))], [LOGITS], (), ("x", None)),
        ([spec("x", (-1, -1, 12)), spec("lengths", (-1,), "INT64")], [LOGITS], (RAGGED,),
         ("x", RAGGED)),
        ([spec("x", (-1, 4)), spec("y", (-1, 4))], [LOGITS], (), "it takes 2 inputs"),
        ([spec("ids", (-1, 4), "INT64")], [LOGITS], (), "its input 'ids' is INT64"),
        ([spec("x", (-1, -1, 12))], [LOGITS], (), "'x' [-1, -1, 12] varies in size"),
        ([spec("x", (-1, 4))], [spec("tokens", (-1, -1))], (), "output 'tokens' (FP32 [-1, -1])"),
        ([spec("x", (-1, 4))], [spec("tag", (-1, 1), "BYTES")], (), "output 'tag' (BYTES"),
        ([spec("x", (4,))], [spec("y", (3,))], (), "it has no batch axis"),
    ],
)  # fmt: skip
def test_which_models_a_shard_holds(
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    ragged: tuple[RaggedInput, ...],
    fit: object,
) -> None:
    got = capturable_input(signature(inputs, outputs, *ragged), ragged)
    if isinstance(fit, str):
        assert isinstance(got, str)
        assert fit in got, got
    else:
        assert got == fit


# --- shards ----------------------------------------------------------------------------------


def captured(capture: object, x: np.ndarray, rid: str, when: float, **extra: np.ndarray
             ) -> Captured:  # fmt: skip
    outputs = {"logits": np.arange(len(x) * 3, dtype=np.float32).reshape(len(x), 3)}
    size = x.nbytes + outputs["logits"].nbytes
    return Captured(capture, {"x": x, **extra}, outputs, rid, when, len(x), size)  # type: ignore[arg-type]


def test_a_shard_of_images_reads_back_with_its_provenance() -> None:
    a = np.random.rand(2, 1, 8, 8).astype(np.float32)
    b = np.random.rand(1, 1, 8, 8).astype(np.float32)
    data = build_shard("cnn", 3, "x", None, [captured(None, a, "r1", 10.0),
                                              captured(None, b, "", 11.0)])  # fmt: skip
    shard = read_shard(data, "s")
    assert np.array_equal(shard.x, np.concatenate([a, b]))
    assert shard.y.tolist() == [-1, -1, -1]
    assert shard.lengths is None
    assert shard.outputs["logits"].shape == (3, 3)
    assert shard.meta["request_id"].tolist() == ["r1", "r1", ""]
    assert shard.meta["version"].tolist() == [3, 3, 3]
    assert shard.meta["time"].tolist() == [10.0, 10.0, 11.0]
    assert str(shard.meta["model"]) == "cnn"
    with pytest.raises(ShardError, match="3 of 3 samples are not labelled"):
        shard.check((1, 8, 8), 10, sequence=False)
    with_labels = type(shard)(shard.name, shard.x, np.array([1, 2, 3]), None)
    with_labels.check((1, 8, 8), 10, sequence=False)


def test_sequences_are_padded_with_zeros_beside_their_lengths() -> None:
    short = np.ones((1, 3, 2), np.float32)
    long = np.full((2, 5, 2), 2.0, np.float32)
    sent = np.array([4, 5])  # the client sent lengths shorter than its tensor for one sample
    entries = [captured(None, short, "a", 1.0), captured(None, long, "b", 2.0, lengths=sent)]
    data = build_shard("gru", 1, "x", RAGGED, entries)
    shard = read_shard(data, "s")
    assert shard.x.shape == (3, 5, 2)
    assert shard.lengths is not None
    assert shard.lengths.tolist() == [3, 4, 5]
    assert np.array_equal(shard.x[0, :3], short[0])
    assert not shard.x[0, 3:].any()
    assert np.array_equal(shard.x[1:], long)
    labelled = type(shard)(shard.name, shard.x, np.array([0, 1, 0]), shard.lengths)
    labelled.check((-1, 2), 2, sequence=True)


def test_shard_names_carry_model_version_time_and_a_sequence() -> None:
    when = datetime(2026, 12, 1, 4, 5, 6, tzinfo=UTC)
    assert shard_name("cnn", 3, when, "ab12cd34-000007") == (
        "cnn-v3-20261201T040506Z-ab12cd34-000007.npz"
    )


# --- the writer --------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


WRITER_METRICS: dict[int, Metrics] = {}


def writer(target: Path, clock: Callable[[], float] = time.monotonic, **settings: object
           ) -> CaptureWriter:  # fmt: skip
    chosen = Settings(capture_uri=str(target), capture_sample_rate=1.0,
                      **settings)  # type: ignore[arg-type]  # fmt: skip
    metrics = Metrics()
    made = CaptureWriter(chosen, metrics, open_prefix, clock)
    WRITER_METRICS[id(made)] = metrics
    return made


def metrics_of(w: CaptureWriter) -> Metrics:
    return WRITER_METRICS[id(w)]


def capture_of(w: CaptureWriter, metrics: Metrics | None = None) -> VersionCapture:
    return VersionCapture(w, "m", 1, "x", None, (metrics or Metrics()).for_capture("m", 1))


def request(samples: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.random.rand(samples, 4).astype(np.float32)}


def answer(samples: int = 1) -> dict[str, np.ndarray]:
    return {"logits": np.zeros((samples, 3), np.float32)}


def outcomes(metrics: Metrics) -> dict[str, float]:
    return {
        o: metrics.registry.get_sample_value(
            "inductive_capture_requests_total", {"model": "m", "version": "1", "outcome": o}
        ) or 0.0
        for o in ("queued", "rate_limited", "queue_full", "stopped")
    }  # fmt: skip


def test_the_rate_bound_holds_on_average(tmp_path: Path) -> None:
    clock = FakeClock()
    w = writer(tmp_path / "captures", clock, capture_max_samples_per_s=10.0)
    metrics = Metrics()
    capture = capture_of(w, metrics)
    for _ in range(30):
        capture.offer(request(), answer(), None)
    assert outcomes(metrics)["queued"] == 10  # one second's worth at once
    clock.t += 0.5
    for _ in range(30):
        capture.offer(request(), answer(), None)
    assert outcomes(metrics) == {"queued": 15, "rate_limited": 45, "queue_full": 0, "stopped": 0}
    clock.t += 10
    capture.offer(request(25), answer(25), None)  # larger than a second: taken, in debt
    capture.offer(request(), answer(), None)
    clock.t += 1.0
    capture.offer(request(), answer(), None)  # still 5 samples in debt
    assert outcomes(metrics)["queued"] == 16


def test_a_full_queue_turns_captures_away_and_never_blocks(tmp_path: Path) -> None:
    w = writer(tmp_path / "captures", capture_queue_bytes=1000)  # never started: nothing drains
    metrics = Metrics()
    capture = capture_of(w, metrics)
    started = time.perf_counter()
    for _ in range(100):
        capture.offer(request(), answer(), None)  # 16 + 12 bytes each
    assert time.perf_counter() - started < 0.5
    assert outcomes(metrics)["queued"] == 1000 // 28
    assert outcomes(metrics)["queue_full"] == 100 - 1000 // 28


def samples(metrics: Metrics, outcome: str) -> float:
    labels = {"model": "m", "version": "1", "outcome": outcome}
    return metrics.registry.get_sample_value("inductive_capture_samples_total", labels) or 0.0


def wait_for(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_shards_are_written_when_full_or_old_and_at_close(tmp_path: Path) -> None:
    w = writer(tmp_path / "captures", capture_shard_samples=4, capture_flush_interval_s=0.3)
    metrics = Metrics()
    capture = capture_of(w, metrics)
    w.start()
    for _ in range(5):
        capture.offer(request(), answer(), None)
    target = tmp_path / "captures"
    wait_for(lambda: samples(metrics, "written") == 4)  # one full shard
    wait_for(lambda: samples(metrics, "written") == 5)  # the rest, once old enough
    capture.offer(request(2), answer(2), None)

    import asyncio

    asyncio.run(w.close())  # writes what is buffered
    names = sorted(p.name for p in target.iterdir())
    assert len(names) == 3
    assert all(n.startswith("m-v1-") and n.endswith(".npz") for n in names)
    assert sorted(len(read_shard(p.read_bytes(), p.name)) for p in target.iterdir()) == [1, 2, 4]


def test_capture_stops_at_the_size_bound_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one = build_shard("m", 1, "x", None, [captured(None, np.zeros((2, 4), np.float32), "r", 0.0)])
    w = writer(tmp_path / "captures", capture_shard_samples=2, capture_max_bytes=len(one) + 100)
    metrics = Metrics()
    capture = capture_of(w, metrics)
    w.start()
    with caplog.at_level(logging.WARNING, logger="service.capture.writer"):
        for _ in range(2):
            capture.offer(request(), answer(), None)
        wait_for(lambda: samples(metrics, "written") == 2)
        for _ in range(4):
            capture.offer(request(), answer(), None)
        wait_for(lambda: w.stopped)
        wait_for(lambda: samples(metrics, "over_size") == 4)
        capture.offer(request(), answer(), None)
    assert outcomes(metrics)["stopped"] == 1
    assert len(list((tmp_path / "captures").iterdir())) == 1
    assert metrics_of(w).registry.get_sample_value("inductive_capture_stopped") == 1
    stopped = [r for r in caplog.records if "capture stopped" in r.getMessage()]
    assert len(stopped) == 1


def test_a_target_that_cannot_be_written_loses_shards_counted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    w = writer(blocker / "captures", capture_shard_samples=1)  # a file is in the way
    metrics = Metrics()
    capture = capture_of(w, metrics)
    w.start()
    with caplog.at_level(logging.WARNING, logger="service.capture.writer"):
        for _ in range(5):
            capture.offer(request(), answer(), None)
        wait_for(lambda: samples(metrics, "failed") == 5)
    assert outcomes(metrics)["queued"] == 5
    failures = [r for r in caplog.records if "could not be written" in r.getMessage()]
    assert len(failures) == 1
    assert "NotADirectoryError" in failures[0].getMessage()
