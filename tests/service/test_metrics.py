"""`/metrics` parses with prometheus_client's parser and carries the families dashboards use."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.service.helpers import ServerProcess


def test_metrics_parse_and_cover_the_request_path(server: ServerProcess) -> None:
    body = {"inputs": [
        {"name": n, "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]} for n in "xy"
    ]}  # fmt: skip
    assert httpx.post(f"{server.url}/v2/models/add/infer", json=body).status_code == 200
    httpx.post(f"{server.url}/v2/models/nope/infer", json=body)
    text = httpx.get(f"{server.url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "inductive_inference_requests",
        "inductive_inference_request_duration_seconds",
        "inductive_inference_queue_duration_seconds",
        "inductive_inference_compute_duration_seconds",
        "inductive_inference_batch_size",
        "inductive_inference_queue_depth",
        "inductive_inference_count",
        "inductive_inference_exec_count",
        "inductive_model_load_duration_seconds",
        "inductive_model_state",
        "inductive_store_poll_failures",
        "inductive_requests_rejected",
        "process_resident_memory_bytes",
    ):
        assert name in families, name
    samples = server.metrics()
    assert (
        samples[
            'inductive_inference_requests_total{model="add",outcome="success",protocol="http",'
            'version="1"}'
        ]
        >= 1
    )
    assert samples['inductive_model_state{model="add",state="READY",version="1"}'] == 1
    assert samples['inductive_requests_rejected_total{protocol="http",reason="not_found"}'] >= 1
    # The unknown model's name never becomes a label value.
    assert "nope" not in text
