"""The benchmark harness run for real on tiny models: the request files wrk replays are answered
correctly by our server, wrk's output is parsed, and a short run writes the report and plots.
Budget: under a minute for this file (each server start is ~2 s)."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
import pytest

from benchmarks.bodies import decode_response, json_body, write_requests
from benchmarks.closedloop import LoadError, LoadResult, parse_wrk_output
from benchmarks.compare import Side
from benchmarks.compare import measure as compare_measure
from benchmarks.config import BenchConfig
from benchmarks.contenders import CONTENDERS, launch_for
from benchmarks.harness.servers import _answers, free_ports, running_server, serve
from benchmarks.measure import Target, measure_point
from benchmarks.procstat import cpu_seconds, steal_ms, thread_times
from benchmarks.profile import compute_per_sample, cpu_by_thread, event_loop_breakdown
from benchmarks.ratio import bracketed_ratios
from benchmarks.ratio import render as render_ratio
from benchmarks.run import run, write_outputs
from benchmarks.workload import SEQUENCE_LENGTHS, collate, load_workload

needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install -y wrk)"
)


def _send(url: str, raw_request: bytes) -> tuple[int, bytes, int | None]:
    """Sends the exact bytes of a request file; returns status, body, binary header length."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw_request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        length = response.getheader("Inference-Header-Content-Length")
        return response.status, body, None if length is None else int(length)


@pytest.mark.parametrize("protocol", ["json", "binary"])
@pytest.mark.parametrize("model", ["add", "ragged"])
def test_request_files_are_answered_with_the_models_outputs(
    tiny_store: Path, tmp_path: Path, protocol: str, model: str
) -> None:
    workload = load_workload(tiny_store, model, tmp_path / "cache")
    files = write_requests(workload, protocol, tmp_path / "requests")
    assert len(files) == (len(SEQUENCE_LENGTHS) if model == "ragged" else 1)
    session = ort.InferenceSession(str(workload.model_path), providers=["CPUExecutionProvider"])
    with running_server(tiny_store, tmp_path) as server:
        for path, sample in zip(files, workload.samples, strict=True):
            status, body, header_length = _send(server.url, path.read_bytes())
            assert status == 200, body[:300]
            assert (header_length is not None) == (protocol == "binary")
            outputs = decode_response(body, header_length)
            expected = dict(
                zip([o.name for o in session.get_outputs()], session.run(None, sample), strict=True)
            )
            assert outputs.keys() == expected.keys()
            for name, value in expected.items():
                np.testing.assert_allclose(outputs[name], value, rtol=1e-6, atol=1e-6)


def test_collate_pads_ragged_samples_like_the_batcher(tiny_store: Path, tmp_path: Path) -> None:
    workload = load_workload(tiny_store, "ragged", tmp_path / "cache")
    batch = collate(workload, 4)
    assert batch["x"].shape == (4, max(SEQUENCE_LENGTHS[:4]), 2)
    assert batch["lengths"].tolist() == list(SEQUENCE_LENGTHS[:4])
    session = ort.InferenceSession(str(workload.model_path), providers=["CPUExecutionProvider"])
    padded = session.run(None, batch)[0]
    one_by_one = np.concatenate([session.run(None, s)[0] for s in workload.samples[:4]])
    np.testing.assert_allclose(padded, one_by_one, rtol=1e-6)


@needs_wrk
def test_wrk_run_is_parsed_and_matches_the_servers_counters(
    tiny_store: Path, tmp_path: Path
) -> None:
    workload = load_workload(tiny_store, "ragged", tmp_path / "cache")
    files = write_requests(workload, "binary", tmp_path / "requests")
    with running_server(tiny_store, tmp_path) as server:
        point = measure_point(server, Target("binary", workload.path, files), 4, 1.0, None)
        served = server.metrics()
    assert point["requests"] > 50
    assert point["errors"] == 0
    assert point["throughput"] == pytest.approx(point["requests"] / point["duration_s"])
    lat = point["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert point["mean_batch"] >= 1.0
    assert 0 < point["server_cpu"] <= 2.0
    # wrk counts the answers it got; the server inferred at least those (warm-up aside).
    inferred = sum(v for k, v in served.items() if k.startswith("inductive_inference_count_total"))
    assert inferred >= point["requests"]


def test_wrk_output_without_the_json_line_is_an_error() -> None:
    with pytest.raises(LoadError, match="no WRK_JSON line"):
        parse_wrk_output("Running 1s test @ http://127.0.0.1:1\n  unable to connect\n")


@needs_wrk
def test_the_floor_contender_answers_with_the_models_outputs(
    tiny_store: Path, tmp_path: Path
) -> None:
    """The floor's figure bounds what a Python server can reach only if it does the same work:
    it must answer the binary requests with the model's real outputs, batched or not."""
    workload = load_workload(tiny_store, "add", tmp_path / "cache")
    files = write_requests(workload, "binary", tmp_path / "requests")
    session = ort.InferenceSession(str(workload.model_path), providers=["CPUExecutionProvider"])
    expected = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, workload.samples[0]),
            strict=True,
        )
    )
    launch = launch_for(CONTENDERS["floor"], workload, tiny_store, tmp_path / "work")
    request = files[0].read_bytes()
    with (
        serve(launch, core=None, log_path=tmp_path / "floor.log") as running,
        ThreadPoolExecutor(8) as pool,  # concurrent requests share batches
    ):
        answers = list(pool.map(lambda _: _send(running.url, request), range(32)))
    for status, body, header_length in answers:
        assert status == 200
        outputs = decode_response(body, header_length)
        assert outputs.keys() == expected.keys()
        for name, value in expected.items():
            np.testing.assert_allclose(outputs[name], value)


@needs_wrk
@pytest.mark.parametrize("side", ["floor", "tree"])
def test_compare_measures_a_tree_or_the_floor(side: str, tiny_store: Path, tmp_path: Path) -> None:
    """`benchmarks.compare` reads CPU per request from /proc for a checkout's server or, given
    `floor`, for the floor contender: both must answer the load and show event-loop time."""
    workload = load_workload(tiny_store, "add", tmp_path / "cache")
    files = write_requests(workload, "binary", tmp_path / "requests")
    args = argparse.Namespace(
        model="add", store=tiny_store, concurrency=4, seconds=1.0,
        open_loop=(200.0,), open_loop_seconds=1.0,
    )  # fmt: skip
    tree = Path("floor") if side == "floor" else Path(__file__).resolve().parents[2]
    sample = compare_measure(Side("A", "A", tree, {}), args, files, workload)
    assert sample.throughput > 0
    assert sample.loop_us > 0
    assert sample.p50_ms > 0
    point = sample.open_loop[200.0]  # a rate far below the tiny model's capacity
    assert point.result.held
    assert 0 < point.ms("p50") <= point.ms("p99") <= point.ms("p999")
    assert point.result.sent_rate == pytest.approx(200.0, rel=0.05)


def test_ratio_divides_by_the_raw_runs_around_each_contender() -> None:
    measured = {
        "raw_batch": 16,
        "sweep_best": 1300.0,
        "brackets": [1000.0, 1200.0, 800.0],
        "served": {"binary": 880.0, "floor": 900.0},
    }
    ratios = bracketed_ratios(measured)
    assert ratios["binary"] == pytest.approx(880 / 1100)
    assert ratios["floor"] == pytest.approx(900 / 1000)


def test_ratio_report_gives_each_round_and_the_median() -> None:
    rounds = [
        {"raw_batch": 16, "sweep_best": 1100.0, "brackets": [1000.0, 1000.0, 1000.0],
         "served": {"binary": 790.0, "floor": 900.0}},
        {"raw_batch": 32, "sweep_best": 1300.0, "brackets": [1200.0, 1200.0, 1200.0],
         "served": {"binary": 1020.0, "floor": 1100.0}},
        {"raw_batch": 16, "sweep_best": 900.0, "brackets": [800.0, 800.0, 800.0],
         "served": {"binary": 660.0, "floor": 700.0}},
    ]  # fmt: skip
    meta = {"started": "now", "cpu": "cpu", "cores": 2, "python": "3", "load_before": [0.1]}
    meta |= {"server_core": 0, "client_core": 1, "duration_s": 10, "raw_seconds": 3}
    meta |= {"command": "python -m benchmarks.ratio"}
    report = render_ratio({"meta": meta, "models": {"cnn": rounds, "resnet": rounds}})
    row = "| 2 | 32 | 1,300 | 1,020 | 1,200–1,200 | 0.85 × | 1,100 | 1,200–1,200 | 0.92 × |"
    assert row in report
    assert (
        "binary: median 0.82 × raw (min 0.79, max 0.85, 3 rounds); against the sweep's best: 0.73 ×"
        in report
    )
    assert "Target ≥ 0.80 × raw: median 0.82 × — **met**." in report
    assert "Target ≥ 0.92 × raw: median 0.82 × — **missed**." in report


def test_short_run_writes_results_report_and_plots(tiny_store: Path, tmp_path: Path) -> None:
    config = BenchConfig(
        store=tiny_store,
        models=("add",),
        contenders=("raw", "binary", "json-nobatch"),
        concurrency=(1, 4),
        duration_s=1.0,
        warmup_s=1.0,
        raw_seconds=0.2,
        raw_batches=(1, 4),
        out_dir=tmp_path / "out",
        work_dir=tmp_path / "work",
    )
    results = run(config, "pytest")
    saved = json.loads((config.out_dir / "report.json").read_text())
    assert saved["models"]["add"]["raw"][1]["batch"] == 4
    contenders = saved["models"]["add"]["contenders"]
    assert set(contenders) == {"binary", "json-nobatch"}
    for entry in contenders.values():
        assert [p["concurrency"] for p in entry["points"]] == [1, 4]
        assert all(p["errors"] == 0 and p["requests"] > 0 for p in entry["points"])
    assert contenders["json-nobatch"]["points"][1]["mean_batch"] == pytest.approx(1.0)
    report = (config.out_dir / "report.md").read_text()
    assert "Inductive binary, batching on" in report
    assert "`python -m benchmarks.ratio` measures them in rounds" in report
    assert report.count("not measured") >= 5  # no cnn/resnet in this store
    for plot in ("add-throughput.png", "add-latency.png"):
        assert (config.out_dir / plot).read_bytes()[:4] == b"\x89PNG"
    write_outputs(results, config.out_dir)  # re-rendering a finished run works


def test_json_body_writes_float32_values_as_short_exact_decimals() -> None:
    values = np.array([[0.1234, 1e-7, 3.4028235e38, -0.5]], dtype=np.float32)
    body = json_body({"x": values})
    assert b"[0.1234,1e-7,3.4028235e+38,-0.5]" in body
    data = orjson.loads(body)["inputs"][0]["data"]
    np.testing.assert_array_equal(np.asarray(data, dtype=np.float32), values.ravel())


def test_cpu_time_is_split_by_thread_and_charged_per_request() -> None:
    spun, release = threading.Event(), threading.Event()

    def spin() -> None:  # 0.3 s of its own CPU time, then stays alive until read
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        spun.set()
        release.wait()

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        assert spun.wait(30)
        times = thread_times(os.getpid())
        process = cpu_seconds(os.getpid())
    finally:
        release.set()
        worker.join()
    assert worker.native_id is not None
    user, system = times[worker.native_id]
    assert user + system >= 0.25
    assert user + system < process - 0.05  # that thread's time, not the process's (imports...)
    assert os.getpid() in times

    pid = os.getpid()
    result = LoadResult(1000, 1.0, 1000.0, {}, status_errors=0, socket_errors=0)
    table, loop_us = cpu_by_thread(
        pid, {pid: (1.0, 0.0), 7: (0.0, 0.0)}, {pid: (1.25, 0.05), 7: (0.7, 0.0)}, 1.0, result
    )
    assert loop_us == pytest.approx(300)
    assert "| thread 7 | 0.70 | 0.00 | 700 |" in table
    assert "| event loop (main thread) | 0.25 | 0.05 | 300 |" in table
    assert table.index("thread 7") < table.index("event loop")  # busiest first
    assert "| all | 1.00 cores | | 1000 |" in table


def test_event_loop_time_and_compute_are_charged_per_request_and_sample() -> None:
    speedscope = {
        "shared": {"frames": [{"name": "run", "file": "/x/runners.py", "line": 118},
                              {"name": "decode", "file": "/s/decode.py", "line": 76}]},
        "profiles": [
            {"name": 'Thread 1 "MainThread"', "samples": [[0], [0, 1], [0, 1], [0, 1]],
             "weights": [1.0, 1.0, 1.0, 1.0]},
            {"name": 'Thread 2 "infer-cnn:1_0"', "samples": [[0]] * 50, "weights": [1.0] * 50},
        ],
    }  # fmt: skip
    table = event_loop_breakdown(speedscope, loop_us_per_request=100.0)
    assert "| 75.0 | `decode (decode.py:76)` |" in table  # the worker's samples do not count
    assert "| 25.0 | `run (runners.py:118)` |" in table

    line = compute_per_sample(
        {
            "inductive_inference_compute_duration_seconds_sum": 1.0,
            "inductive_inference_compute_duration_seconds_count": 10,
            "inductive_inference_batch_size_sum": 100,
        },
        {
            "inductive_inference_compute_duration_seconds_sum": 1.4,
            "inductive_inference_compute_duration_seconds_count": 110,
            "inductive_inference_batch_size_sum": 1700,
        },
    )
    assert "100, mean batch 16.0, 4.000 ms per batch = 250 µs per sample" in line


@needs_wrk
@pytest.mark.slow
def test_the_shadow_benchmark_measures_each_mirror_share(tiny_store: Path, tmp_path: Path) -> None:
    """`benchmarks.shadow` on the tiny store, one short round: every phase answered, the
    mirrored phase compared requests with agreement 1 (the same model twice)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.shadow", "--model", "add", "--store", str(tiny_store),
         "--mirrors", "0", "1", "--rounds", "1", "--seconds", "1", "--rps", "50",
         "--concurrency", "4", "--out", str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "add.json").read_text())
    plain, mirrored = results["0.0"][0], results["1.0"][0]
    for phase in (plain, mirrored):
        assert phase["fixed_rate"]["requests"] > 0
        assert phase["fixed_rate"]["failures"] == 0
        assert phase["saturated"]["errors"] == 0
    assert plain["shadow"]["compared"] == 0
    assert mirrored["shadow"]["compared"] > 0
    assert mirrored["shadow"]["samples"] == mirrored["shadow"]["agreeing"]
    assert "| 100% |" in (tmp_path / "report.md").read_text()


def test_ports_picked_together_are_distinct() -> None:
    ports = free_ports(64)
    assert len(set(ports)) == 64


def test_a_port_answering_another_protocol_is_not_ready() -> None:
    """A readiness probe that reaches a gRPC (HTTP/2) listener reads frames, not a status line:
    "not ready", so that wait_ready keeps polling until its timeout instead of crashing."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_with_http2_settings() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64")

    thread = threading.Thread(target=answer_with_http2_settings, daemon=True)
    thread.start()
    try:
        assert _answers(f"http://127.0.0.1:{port}/v2/health/ready") is False
    finally:
        thread.join(5)
        listener.close()


def test_steal_is_read_for_the_cores_asked_in_ms() -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    stat = (
        "cpu  10 0 0 0 0 0 0 9 0 0\n"
        "cpu0 5 0 0 0 0 0 0 3 0 0\n"
        "cpu1 5 0 0 0 0 0 0 6 0 0\n"
        "cpu12 5 0 0 0 0 0 0 100 0 0\n"
        "intr 1 2 3\n"
    )
    assert steal_ms((0,), stat) == pytest.approx(3000 / ticks)
    assert steal_ms((0, 1), stat) == pytest.approx(9000 / ticks)
    assert steal_ms((1, 2), stat) == pytest.approx(6000 / ticks)  # cpu12 is not cpu1 or cpu2
    assert steal_ms((0, 1)) >= 0  # this machine's own /proc/stat parses
