"""The web console in a real headless Chromium, against a real server on demo-shaped models."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import Error as PlaywrightError

from benchmarks.bodies import http_request, json_body
from benchmarks.closedloop import LoadResult, run_wrk
from service.http.routes.console import CONTENT_SECURITY_POLICY
from tests.console import digit
from tests.console.browser import ConsolePage
from tests.console.demo_store import MODELS
from tests.security.forge import forge_version
from tests.service.helpers import ServerProcess, running_server

# The machine running CI is small and busy: waits are generous, successes are quick.
expect.set_options(timeout=30_000)

# A vertical stroke down the middle of the pad, one mouse event every 10 canvas pixels.
STROKE = [(140.0, 60.0 + 10.0 * k) for k in range(17)]
KEY = "browser-test-key"


def _classes(doc: dict[str, Any], output: str = "logits") -> list[tuple[str, str]]:
    """(label, "score S") of a classification output, best first, as the page words them."""
    data = next(o for o in doc["outputs"] if o["name"] == output)["data"]
    rows = [text.split(":", 2) for text in data]
    return [(label, f"score {score}") for score, _, label in rows]


def _shown_classes(scope: Any) -> list[tuple[str, str]]:
    items = scope.locator("ol.classes li")
    labels = items.locator(".class-label").all_inner_texts()
    scores = items.locator(".class-score").all_inner_texts()
    return list(zip(labels, scores, strict=True))


def _infer(server: ServerProcess, model: str, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        f"{server.url}/v2/models/{model}/infer", json=body, headers=headers, timeout=30
    )


def _is_infer(request: Any, model: str) -> bool:
    return request.method == "POST" and request.url.endswith(f"/v2/models/{model}/infer")


# --- overview ---------------------------------------------------------------------------------


def test_overview_lists_the_four_models_and_their_states(console: ConsolePage) -> None:
    console.goto()
    page = console.page
    cards = page.locator("article.card")
    expect(cards).to_have_count(len(MODELS))
    assert sorted(cards.locator("h2").all_inner_texts()) == sorted(MODELS)
    for name in MODELS:
        card = page.locator(f'article.card[data-model="{name}"]')
        # The state is a word beside its colour: "✓ ready".
        expect(card.locator('li.version[data-version="1"] .state')).to_have_text("✓ready")
        expect(card.locator(".policy")).to_have_text("latest version")
        expect(card.locator(".runtime")).to_have_text(
            "CPU · fp32 · batches ≤ 64 · delay 0 ms · queue 1024"
        )
    models = page.locator(".summary .stat", has_text="Models")
    expect(models.locator("dd")).to_have_text(str(len(MODELS)))
    assert console.errors == []


def test_a_version_that_fails_to_load_appears_with_its_reason(
    console: ConsolePage, console_server: ServerProcess, demo_store: Path
) -> None:
    console.goto()
    page = console.page
    card = page.locator('article.card[data-model="gru"]')
    expect(card.locator('li.version[data-version="1"]')).to_contain_text("ready")
    model_file = demo_store / "gru" / "1" / "model.onnx"
    truncated = model_file.read_bytes()[: model_file.stat().st_size // 2]
    version = forge_version(demo_store, "gru", {"model.onnx": truncated})
    failed = card.locator(f'li.version[data-version="{version}"]')
    expect(failed.locator(".state")).to_have_text("✕failed")
    doc = httpx.get(f"{console_server.url}/console/api/models").json()
    gru = next(m for m in doc["models"] if m["name"] == "gru")
    reason = next(v["reason"] for v in gru["versions"] if v["version"] == version)
    assert reason
    expect(failed.locator(".reason")).to_have_text(reason)
    expect(card.locator('li.version[data-version="1"] .state')).to_have_text("✓ready")
    # The model page's history holds the failure, newest first.
    console.goto("#/models/gru")
    newest = page.locator("section", has_text="Version history").locator("tbody tr").first
    expect(newest).to_contain_text(f"v{version}")
    expect(newest).to_contain_text("failed")
    expect(newest.locator(".reason")).to_have_text(reason)


# --- try it -----------------------------------------------------------------------------------


def test_a_drawn_vertical_stroke_returns_a_prediction(
    console: ConsolePage, console_server: ServerProcess
) -> None:
    console.goto("#/models/cnn")
    page = console.page
    page.locator("canvas.pad").wait_for()
    with page.expect_request(lambda r: _is_infer(r, "cnn")) as sent:
        console.draw(STROKE)
    body = json.loads(sent.value.post_data or "")
    [tensor] = body["inputs"]
    assert (tensor["name"], tensor["shape"], tensor["datatype"]) == ("x", [1, 1, 28, 28], "FP32")
    expected = digit.tensor(digit.ink(STROKE))
    assert np.array_equal(
        np.array(tensor["data"], dtype=np.float64).reshape(1, 1, 28, 28), expected
    )
    inked_columns = np.flatnonzero(expected.sum(axis=(0, 1, 2)))
    assert inked_columns.tolist() == [13, 14]  # canvas columns 130-149: a bar in the middle
    assert body["outputs"] == [{"name": "logits", "parameters": {"classification": 3}}]
    direct = _infer(console_server, "cnn", {
        "inputs": [{"name": "x", "shape": [1, 1, 28, 28], "datatype": "FP32",
                    "data": expected.ravel().tolist()}],
        "outputs": body["outputs"],
    })  # fmt: skip
    assert direct.status_code == 200, direct.text
    prediction = page.locator(".prediction")
    expect(prediction.locator("ol.classes li")).to_have_count(3)
    assert _shown_classes(prediction) == _classes(direct.json())


def test_a_typed_tensor_is_sent_and_the_snippets_reproduce_it(
    console: ConsolePage, console_server: ServerProcess
) -> None:
    console.goto("#/models/gru")
    page = console.page
    x = np.round(np.random.default_rng(1).standard_normal((2, 12)), 3)
    page.get_by_label("x FP32").fill(json.dumps(x.tolist()))
    with page.expect_request(lambda r: _is_infer(r, "gru")) as sent:
        page.get_by_role("button", name="Send request").click()
    body = json.loads(sent.value.post_data or "")
    # One sample of 2 steps; `lengths` left out for the server to fill.
    assert body["inputs"] == [
        {"name": "x", "shape": [1, 2, 12], "datatype": "FP32", "data": x.ravel().tolist()}
    ]
    direct = _infer(console_server, "gru", body)
    assert direct.status_code == 200, direct.text
    result = page.locator(".tensor-entry .result")
    expect(result.locator("ol.classes li")).to_have_count(3)
    assert _shown_classes(result) == _classes(direct.json())

    curl = page.locator("pre.snippet.curl").text_content() or ""
    assert curl.startswith(f"curl -sS -X POST '{console_server.url}/v2/models/gru/infer'")
    ran = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0, ran.stderr
    assert _classes(json.loads(ran.stdout)) == _classes(direct.json())

    script = page.locator("pre.snippet.tritonclient").text_content() or ""
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    printed = re.findall(r"b'([^']*)'", ran.stdout)
    assert [(t.split(":", 2)[2], f"score {t.split(':')[0]}") for t in printed] == _classes(
        direct.json()
    )


def test_server_errors_are_shown_in_the_servers_words(
    console: ConsolePage, console_server: ServerProcess
) -> None:
    console.goto("#/models/gru")
    page = console.page
    page.get_by_label("x FP32").fill("[[1, 2, 3]]")  # 3 features where the model takes 12
    with page.expect_request(lambda r: _is_infer(r, "gru")) as sent:
        page.get_by_role("button", name="Send request").click()
    direct = _infer(console_server, "gru", json.loads(sent.value.post_data or ""))
    assert direct.status_code == 400
    error = page.locator(".tensor-entry .result .error")
    expect(error.locator("strong")).to_have_text("HTTP 400")
    expect(error.locator(".server-message")).to_have_text(direct.json()["error"])
    # What the page cannot even send is said before sending.
    page.get_by_label("x FP32").fill("[[1, 2], [3]]")
    page.get_by_role("button", name="Send request").click()
    expect(error.locator(".server-message")).to_contain_text("rows must all be the same length")


def test_a_npy_file_is_read_in_the_browser(
    console: ConsolePage, console_server: ServerProcess, tmp_path: Path
) -> None:
    x = np.random.default_rng(2).random((1, 1, 28, 28))  # float64, as numpy makes by default
    np.save(tmp_path / "digit.npy", x)
    console.goto("#/models/resnet")
    page = console.page
    page.get_by_text("Send a tensor").click()  # folded under the digit pad
    page.locator('.tensor-entry input[type="file"]').set_input_files(tmp_path / "digit.npy")
    expect(page.locator(".file-note")).to_contain_text(
        "digit.npy: FP64 [1, 1, 28, 28], sent as FP32"
    )
    page.get_by_label("Version", exact=True).select_option("1")  # this version, not the default
    with page.expect_request(lambda r: r.method == "POST") as sent:
        page.get_by_role("button", name="Send request").click()
    assert sent.value.url == f"{console_server.url}/v2/models/resnet/versions/1/infer"
    body = json.loads(sent.value.post_data or "")
    assert body["inputs"][0]["shape"] == [1, 1, 28, 28]
    assert body["inputs"][0]["data"] == x.ravel().tolist()
    direct = _infer(console_server, "resnet", body)
    result = page.locator(".tensor-entry .result")
    expect(result.locator("ol.classes li")).to_have_count(3)
    assert _shown_classes(result) == _classes(direct.json())
    expect(result.locator(".answer-head")).to_contain_text("v1")
    assert 'model_version="1"' in (page.locator("pre.snippet.tritonclient").text_content() or "")


def test_the_npy_reader_agrees_with_numpy(console: ConsolePage) -> None:
    console.goto()
    arrays = {
        "<f4": np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3),
        ">f4": np.linspace(-2, 2, 6, dtype=">f4").reshape(3, 2),
        "<f2": np.array([0.5, -1.25, 65504, 6e-8], dtype=np.float16),
        "<f8": np.array([[1e-300, -3.5]]),
        "<i8": np.array([-(2**40), 7], dtype=np.int64),
        "|u1": np.arange(5, dtype=np.uint8).reshape(1, 5),
        "|b1": np.array([True, False, True]),
        "scalar": np.array(3.0, dtype=np.float32),
    }
    files = {}
    for name, array in arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, array)
        files[name] = list(buffer.getvalue())
    read = console.page.evaluate(
        """async (files) => {
          const { readNpy } = await import("./js/npy.js");
          const out = {};
          for (const [name, bytes] of Object.entries(files)) {
            out[name] = readNpy(new Uint8Array(bytes).buffer);
          }
          return out;
        }""",
        files,
    )
    for name, array in arrays.items():
        assert read[name]["shape"] == list(array.shape), name
        assert read[name]["data"] == array.ravel().tolist(), name
    assert read["<f4"]["datatype"] == "FP32"
    assert read["<i8"]["datatype"] == "INT64"
    assert read["|b1"]["datatype"] == "BOOL"


def test_version_policies_are_shown_by_kind_and_fields(console: ConsolePage) -> None:
    """Known kinds in words, a canary with its weight (and the version it tags), and a kind this
    page does not know by its fields."""
    console.goto()
    shown = console.page.evaluate(
        """async () => {
          const { describePolicy, versionTags } = await import("./js/policy.js");
          const base = { latest: 1, versions: [], alias: "stable" };
          const canary = { ...base, kind: "canary", candidate: 3, weight: 0.1, mirror: 0.05 };
          return [
            describePolicy({ ...base, kind: "latest" }, {}),
            describePolicy({ ...base, kind: "latest", latest: 2 }, {}),
            describePolicy({ ...base, kind: "specific", versions: [1, 3] }, {}),
            describePolicy({ ...base, kind: "alias" }, { stable: 2 }),
            describePolicy({ ...base, kind: "alias" }, {}),
            describePolicy(canary, { stable: 2 }),
            describePolicy({ ...base, kind: "shadow", target: 4 }, {}),
            versionTags(3, canary, { stable: 2 }),
            versionTags(2, canary, { stable: 2 }),
          ];
        }"""
    )
    assert shown == [
        "latest version",
        "latest 2 versions",
        "versions 1, 3",
        "alias stable → v2",
        "alias stable → not set",
        "canary: v3 takes 10 %, mirror 5 %; stable → v2",
        "shadow: latest 1, alias stable, target 4",
        ["canary 10 %"],
        ["stable"],
    ]


# --- live figures -----------------------------------------------------------------------------


def test_the_page_reads_metrics_and_quantiles_as_prometheus_does(
    console: ConsolePage, console_server: ServerProcess
) -> None:
    console.goto()
    x = np.zeros((1, 1, 28, 28), np.float32)
    body = {"inputs": [{"name": "x", "shape": [1, 1, 28, 28], "datatype": "FP32",
                        "data": x.ravel().tolist()}]}  # fmt: skip
    for _ in range(3):
        assert _infer(console_server, "resnet", body).status_code == 200
    text = httpx.get(f"{console_server.url}/metrics").text
    samples = console_server.metrics()
    parsed = console.page.evaluate(
        """async (text) => {
          const { parseMetrics, versionKey } = await import("./js/prometheus.js");
          const { quantile } = await import("./js/live.js");
          const s = parseMetrics(text).get(versionKey("resnet", "1"));
          return {
            outcomes: s.outcomes, samples: s.samples, batches: s.batches, queue: s.queue,
            latency: [...s.latency].map(([b, c]) => [String(b), c]),
            q: [quantile(0.5, [[0.001, 10], [0.01, 60], [Infinity, 100]]),
                quantile(0.99, [[0.001, 10], [0.01, 60], [Infinity, 100]]),
                quantile(0.05, [[0.001, 10], [0.01, 60], [Infinity, 100]]),
                quantile(0.5, [[1, 0], [Infinity, 0]])],
          };
        }""",
        text,
    )
    labels = 'model="resnet",version="1"'

    def over_protocols(name: str, label: str, value: str) -> float:
        """The sum over the front doors (`protocol`: HTTP and gRPC) of one series' samples."""
        total = 0.0
        for protocol in ("grpc", "http"):
            labels = {label: value, "model": "resnet", "protocol": protocol, "version": "1"}
            text = ",".join(f'{key}="{labels[key]}"' for key in sorted(labels))
            total += samples.get(f"{name}{{{text}}}", 0.0)
        return total

    assert parsed["outcomes"]["success"] >= 3  # other tests of this module served resnet too
    for outcome, value in parsed["outcomes"].items():
        assert over_protocols("inductive_inference_requests_total", "outcome", outcome) == value
    assert parsed["samples"] == samples[f"inductive_inference_count_total{{{labels}}}"]
    assert parsed["batches"] == samples[f"inductive_inference_exec_count_total{{{labels}}}"]
    bucket = "inductive_inference_request_duration_seconds_bucket"
    for bound, count in parsed["latency"]:
        le = "+Inf" if bound == "Infinity" else repr(float(bound))
        assert over_protocols(bucket, "le", le) == count
    # histogram_quantile: linear inside the bucket; the +Inf bucket gives its lower bound.
    assert parsed["q"] == pytest.approx([0.001 + 0.009 * 40 / 50, 0.01, 0.0005, None])


needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install -y wrk)"
)


def _rate_path(page: Page) -> str:
    chart = page.locator("figure.chart", has_text="Requests per second")
    return chart.locator("path.series.s1").get_attribute("d") or ""


@needs_wrk
def test_the_live_charts_change_while_wrk_sends_load(
    console: ConsolePage, console_server: ServerProcess, tmp_path: Path
) -> None:
    # transformer: no other test sends it traffic, so its charts start flat.
    console.goto("#/models/transformer")
    page = console.page
    rate = page.locator("figure.chart", has_text="Requests per second").locator(".chart-values")
    expect(rate).to_have_text("now 0/s, failed 0/s")
    flat = _rate_path(page)
    batches = page.locator("figure.chart", has_text="Batch sizes").locator("rect.bar")
    assert all(float(h or 0) == 0 for h in [b.get_attribute("height") for b in batches.all()])
    x = np.random.default_rng(3).standard_normal((1, 7, 12)).astype(np.float32)
    request = tmp_path / "transformer.http"
    request.write_bytes(http_request("/v2/models/transformer/infer", json_body({"x": x})))
    results: list[LoadResult] = []
    load = threading.Thread(
        target=lambda: results.append(
            run_wrk(console_server.url, [request], connections=4, duration_s=6, core=None)
        )
    )
    load.start()
    try:
        expect(rate).to_have_text(re.compile(r"^now [1-9][\d,.]*/s, failed 0/s$"))
        latency = page.locator("figure.chart", has_text="Latency").locator(".chart-values")
        expect(latency).to_have_text(re.compile(r"^now p50 [\d.]+ ms, p99 [\d.]+ ms$"))
        assert _rate_path(page) != flat
        expect(page.locator("table.per-version tbody tr").first).not_to_contain_text("0/s")
    finally:
        load.join()
    assert results[0].requests > 0
    assert results[0].errors == 0
    assert any(float(b.get_attribute("height") or 0) > 0 for b in batches.all())
    page.get_by_role("link", name="Models").first.click()  # the same page, its history kept
    requests = page.locator('article.card[data-model="transformer"] .stat', has_text="Requests")
    expect(requests.locator("dd")).to_have_text(re.compile(r"^[1-9][\d,.]*/s$"))


# --- safety -----------------------------------------------------------------------------------


def test_the_console_has_a_csp_and_requests_nothing_outside_its_origin(
    console: ConsolePage, console_server: ServerProcess
) -> None:
    page = console.page
    response = page.goto(f"{console_server.url}/console/")
    assert response is not None
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    expect(page.locator("article.card")).to_have_count(len(MODELS))
    page.get_by_role("link", name="cnn", exact=True).click()
    with page.expect_request(lambda r: _is_infer(r, "cnn")):
        console.draw(STROKE)
    expect(page.locator(".prediction ol.classes li")).to_have_count(3)
    page.get_by_role("link", name="API docs").click()
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Inductive")
    assert console.foreign_requests() == []
    assert console.errors == []
    assert {r.method for r in console.requests} == {"GET", "POST"}
    posts = [r.url for r in console.requests if r.method == "POST"]
    assert posts == [f"{console_server.url}/v2/models/cnn/infer"]  # never the repository API
    # The policy is enforced: an inline script is refused.
    console.goto()
    expect(page.locator("article.card")).to_have_count(len(MODELS))
    with pytest.raises(PlaywrightError, match="violates the following Content Security Policy"):
        page.add_script_tag(content="window.inlineRan = true;")
    assert page.evaluate("window.inlineRan === undefined")


def test_with_api_keys_the_console_refuses_without_a_key_and_works_with_one(
    browser: Browser, demo_store: Path, tmp_path: Path
) -> None:
    env = {"INDUCTIVE_API_KEYS": KEY, "INDUCTIVE_MODELS": "cnn"}  # one model: a quicker start
    with running_server(demo_store, tmp_path, env) as server:
        console = ConsolePage.open(browser, server.url)
        page = console.page
        console.goto()
        panel = page.locator("#key-panel")
        expect(panel).to_be_visible()
        expect(page.locator("#key-message")).to_have_text(
            "This server needs an API key: "
            "the console needs an 'Authorization: Bearer <token>' header"
        )
        expect(page.locator("main")).to_contain_text("needs an API key")
        assert page.locator("article.card").count() == 0

        page.get_by_role("textbox", name="API key").fill("not-the-key")
        page.get_by_role("button", name="Use this key").click()
        expect(page.locator("#key-message")).to_have_text(
            "The server refused this key: the bearer token is not valid for the console"
        )

        page.get_by_role("textbox", name="API key").fill(KEY)
        page.get_by_role("button", name="Use this key").click()
        expect(page.locator("article.card")).to_have_count(1)
        expect(panel).to_be_hidden()
        assert page.evaluate("localStorage.length") == 0  # kept in memory only
        page.get_by_role("link", name="cnn", exact=True).click()
        with page.expect_request(lambda r: _is_infer(r, "cnn")) as sent:
            console.draw(STROKE)
        assert sent.value.headers["authorization"] == f"Bearer {KEY}"
        expect(page.locator(".prediction ol.classes li")).to_have_count(3)
        assert "INDUCTIVE_API_KEY" in (page.locator("pre.snippet.curl").text_content() or "")
        assert KEY not in (page.locator(".reproduce").text_content() or "")

        page.reload()  # a key kept in memory is gone with the page
        expect(panel).to_be_visible()
        page.get_by_role("textbox", name="API key").fill(KEY)
        page.get_by_label("Remember on this device").check()
        page.get_by_role("button", name="Use this key").click()
        expect(page.locator("h1")).to_have_text("cnn")
        page.reload()
        expect(page.locator("h1")).to_have_text("cnn")
        expect(panel).to_be_hidden()
        assert page.evaluate("Object.values(localStorage)") == [KEY]

        page.get_by_role("button", name="API key").click()
        page.get_by_role("button", name="Forget the key").click()
        expect(panel).to_be_visible()
        assert page.evaluate("localStorage.length") == 0
        assert console.foreign_requests() == []
        page.close()


# --- accessibility ----------------------------------------------------------------------------


def _focused(page: Page) -> str:
    return str(
        page.evaluate("document.activeElement.textContent.trim() || document.activeElement.id")
    )


def test_keyboard_reaches_everything_and_every_control_is_labelled(console: ConsolePage) -> None:
    console.goto()
    page = console.page
    expect(page.locator("article.card")).to_have_count(len(MODELS))
    page.keyboard.press("Tab")
    assert _focused(page) == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    for _ in range(30):
        page.keyboard.press("Tab")
        if _focused(page) == "cnn":
            break
    else:
        pytest.fail("the keyboard never reached the cnn model's link")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("cnn")
    assert page.evaluate("location.hash") == "#/models/cnn"
    wanted = {"Clear", "Send a tensor (JSON, or a .npy file)", "version"}
    reached: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(_focused(page))
        if page.evaluate("document.activeElement.tagName") == "SELECT":
            reached.append("version")
        if wanted <= set(reached):
            break
    assert wanted <= set(reached), reached
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea, button, canvas")]
          .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                  && !el.textContent.trim())
          .map((el) => el.outerHTML)"""
    )
    assert unlabelled == []
    states = page.locator(".state").all_text_contents()
    assert states
    assert all(
        re.fullmatch(r"\S(ready|loading|unloading|unavailable|failed)", s) for s in states
    ), states
