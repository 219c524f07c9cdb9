"""Every contender the benchmark compares starts on a tiny model and answers what raw ONNX
Runtime computes, in every protocol it is measured in, with requests batched together: a peer
whose setup rotted (a pin, an API change, a wrong answer) fails here, not in a record run.

The peers' venvs are built by the first test that needs them (benchmarks/contenders/venvs.py,
seconds with uv's cache, about a minute without) and reused while their locks are unchanged.
"""

from __future__ import annotations

import http.client
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from benchmarks import grpc_wire
from benchmarks.bodies import binary_body, decode_response, http_request, json_body, write_requests
from benchmarks.closedloop import run_h2load
from benchmarks.config import BenchConfig
from benchmarks.contenders import CONTENDERS, PEERS, launch_for
from benchmarks.harness.models import matmul_chain
from benchmarks.harness.servers import publish, serve
from benchmarks.head_to_head import head_to_head
from benchmarks.measure import Target, grpc_body, run_contender
from benchmarks.workload import Sample, Workload, load_workload

needs_nghttp2 = pytest.mark.skipif(
    shutil.which("h2load") is None or shutil.which("nghttp") is None,
    reason="h2load and nghttp are not installed (apt-get install -y nghttp2-client)",
)
REQUESTS = 16  # concurrent, so that batching servers batch them


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-input, one-output model every peer can serve: x FP32 [-1, 8] → y, two MatMuls."""
    root = tmp_path_factory.mktemp("contenders")
    publish(root / "store", "tiny", matmul_chain(root, width=8, depth=2, name="tiny"))
    return root / "store"


@pytest.fixture(scope="module")
def tiny(tiny_store: Path) -> Workload:
    return load_workload(tiny_store, "tiny", tiny_store.parent / "cache")


def _samples(count: int) -> list[Sample]:
    rng = np.random.default_rng(7)
    return [{"x": rng.standard_normal((1, 8)).astype(np.float32)} for _ in range(count)]


def _expected(workload: Workload, sample: Sample) -> np.ndarray:
    session = ort.InferenceSession(str(workload.model_path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["y"], sample)[0])


def _post(port: int, raw: bytes) -> tuple[int, bytes, int | None]:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(raw)
        response = http.client.HTTPResponse(sock)
        response.begin()
        length = response.getheader("Inference-Header-Content-Length")
        return response.status, response.read(), None if length is None else int(length)


def _http_answers(port: int, workload: Workload, protocol: str, samples: list[Sample]) -> list:
    def one(sample: Sample) -> np.ndarray:
        if protocol == "json":
            raw = http_request(workload.path, json_body(sample))
        else:
            raw = http_request(workload.path, *binary_body(sample))
        status, body, header_length = _post(port, raw)
        assert status == 200, body[:500]
        return decode_response(body, header_length)["y"]

    with ThreadPoolExecutor(REQUESTS) as pool:
        return list(pool.map(one, samples))


def _grpc_answers(port: int, workload: Workload, samples: list[Sample], work: Path) -> list:
    def one(pair: tuple[int, Sample]) -> np.ndarray:
        body = work / f"grpc-{pair[0]}.bin"
        body.write_bytes(grpc_wire.infer_request(workload.name, pair[1]))
        answer = grpc_wire.call(port, body)
        assert answer, "the gRPC call failed"
        return grpc_wire.infer_response(answer)["y"]

    with ThreadPoolExecutor(REQUESTS) as pool:
        return list(pool.map(one, enumerate(samples)))


def _check(answers: list, samples: list[Sample], workload: Workload) -> None:
    for answer, sample in zip(answers, samples, strict=True):
        np.testing.assert_allclose(answer, _expected(workload, sample), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("key", ["binary", "json", "floor", "naive"])
def test_our_contenders_answer_like_onnx_runtime(
    key: str, tiny_store: Path, tiny: Workload, tmp_path: Path
) -> None:
    contender = CONTENDERS[key]
    samples = _samples(REQUESTS)
    launch = launch_for(contender, tiny, tiny_store, tmp_path)
    with serve(launch, log_path=tmp_path / f"{key}.log") as server:
        answers = _http_answers(server.port, tiny, contender.protocol, samples)
    _check(answers, samples, tiny)


@needs_nghttp2
def test_our_grpc_contender_answers_like_onnx_runtime_and_is_measured_by_h2load(
    tiny_store: Path, tiny: Workload, tmp_path: Path
) -> None:
    """`ours-grpc`: our service's gRPC door, sent the frame h2load replays in the suite."""
    contender = CONTENDERS["ours-grpc"]
    samples = _samples(REQUESTS)
    launch = launch_for(contender, tiny, tiny_store, tmp_path)
    grpc_port = int(launch.grpc_address.rsplit(":", 1)[1])
    with serve(launch, log_path=tmp_path / "ours-grpc.log"):
        answers = _grpc_answers(grpc_port, tiny, samples, tmp_path)
    _check(answers, samples, tiny)
    # The suite's own path: run_contender finds the launch's gRPC port and h2load loads it.
    config = BenchConfig(
        store=tiny_store, concurrency=(2,), duration_s=1, warmup_s=1, work_dir=tmp_path
    )
    body = grpc_body(tiny, tmp_path)
    entry = run_contender(contender, config, tiny, Target("grpc", "", [body]))
    assert "error" not in entry, entry
    [point] = entry["points"]
    assert point["requests"] > 0
    assert point["errors"] == 0  # every call answered a whole ModelInferResponse
    assert point["mean_batch"] is not None


def test_head_to_head_alternates_two_running_servers_and_brackets_each_peer_point(
    tiny_store: Path, tiny: Workload, tmp_path: Path
) -> None:
    """Ours against the floor (standing in for a peer: no venv to build), both up at once: a
    point of ours before and after each of the other's, the idle one's CPU recorded."""
    config = BenchConfig(
        store=tiny_store, duration_s=0.5, warmup_s=0.5, head_to_head_rounds=2,
        head_to_head_concurrency=4, work_dir=tmp_path,
    )  # fmt: skip
    ours = launch_for(CONTENDERS["binary"], tiny, tiny_store, tmp_path)
    floor = launch_for(CONTENDERS["floor"], tiny, tiny_store, tmp_path)
    target = Target("binary", tiny.path, write_requests(tiny, "binary", tmp_path / "requests"))
    duel = head_to_head(config, (ours, target), (floor, target), tmp_path / "logs", "duel")
    assert "error" not in duel, duel
    assert len(duel["ours"]) == 3
    assert len(duel["peer"]) == 2
    for point in [*duel["ours"], *duel["peer"]]:
        assert point["requests"] > 0
        assert point["errors"] == 0
        assert point["concurrency"] == 4
        assert 0 <= point["idle_server_cpu"] < 0.5  # the other server waited, idle
    ours_rps = [p["throughput"] for p in duel["ours"]]
    expected = [(ours_rps[i] + ours_rps[i + 1]) / 2 / p["throughput"]
                for i, p in enumerate(duel["peer"])]  # fmt: skip
    assert duel["ratios"] == pytest.approx(expected)
    assert duel["ratio"] == pytest.approx(sum(expected) / 2)
    assert duel["errors"] == 0
    assert duel["peer_errors"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("key", list(PEERS))
def test_peer_answers_like_onnx_runtime_in_every_protocol(
    key: str, tiny: Workload, tmp_path: Path
) -> None:
    peer = PEERS[key]
    samples = _samples(REQUESTS)
    # Correctness only: no latency budget for BentoML to refuse requests by on a busy machine.
    setting = {**peer.quick, **({"max_latency_ms": 60000} if key == "bentoml" else {})}
    launched = peer.build(tiny, setting, tmp_path)
    with serve(launched.launch, log_path=tmp_path / f"{key}.log") as server:
        for protocol in peer.protocols:
            if protocol == "grpc" and shutil.which("nghttp") is None:
                continue  # checked where nghttp2-client is installed (CI installs it)
            if protocol == "grpc":
                assert launched.grpc_port is not None
                answers = _grpc_answers(launched.grpc_port, tiny, samples, tmp_path)
            else:
                answers = _http_answers(server.port, tiny, protocol, samples)
            _check(answers, samples, tiny)


@needs_nghttp2
@pytest.mark.slow
def test_h2load_counts_failed_grpc_calls_that_answer_http_200(
    tiny: Workload, tmp_path: Path
) -> None:
    """A gRPC call that fails answers HTTP 200 with its error in a trailer, which h2load counts
    as a success: the harness must count it an error (from the DATA bytes it got)."""
    peer = PEERS["kserve"]
    launched = peer.build(tiny, peer.quick, tmp_path)
    good, bad = tmp_path / "good.bin", tmp_path / "bad.bin"
    good.write_bytes(grpc_wire.infer_request(tiny.name, tiny.samples[0]))
    bad.write_bytes(grpc_wire.infer_request("no-such-model", tiny.samples[0]))
    assert launched.grpc_port is not None
    url = f"http://127.0.0.1:{launched.grpc_port}{grpc_wire.INFER_PATH}"
    with serve(launched.launch, log_path=tmp_path / "kserve.log"):
        answer_bytes = len(grpc_wire.call(launched.grpc_port, good))
        assert grpc_wire.call(launched.grpc_port, bad) == b""
        results = {
            body.name: run_h2load(url, body, connections=2, duration_s=1, core=None,
                                  headers=grpc_wire.HEADERS, answer_bytes=answer_bytes)
            for body in (good, bad)
        }  # fmt: skip
    assert results["good.bin"].requests > 0
    assert results["good.bin"].errors == 0
    assert results["bad.bin"].requests > 0
    assert results["bad.bin"].status_errors == results["bad.bin"].requests


def test_each_peer_sweeps_its_whole_grid_and_pins_batching_for_ragged_models() -> None:
    mlserver = PEERS["mlserver"]
    settings = mlserver.settings()
    assert len(settings) == 3 * 5 * 2
    assert {s["max_batch_time_ms"] for s in settings} == {0, 1, 2, 5, 10}
    assert {s["workers"] for s in settings} == {0, 1}
    assert mlserver.settings(grid_name="quick") == [mlserver.quick]
    # Sequences of different lengths cannot share a batch in any peer: batch size 1, no window,
    # every other knob still swept.
    assert mlserver.settings(ragged=True) == [
        {"max_batch_size": 1, "max_batch_time_ms": 0, "workers": 0},
        {"max_batch_size": 1, "max_batch_time_ms": 0, "workers": 1},
    ]
    kserve = PEERS["kserve"]
    assert kserve.settings(ragged=True) == kserve.settings()
    assert len(PEERS["litserve"].settings()) == 30
    assert len(PEERS["bentoml"].settings()) == 18
