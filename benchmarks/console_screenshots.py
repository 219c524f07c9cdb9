"""Screenshots of the web console on the trained demo models, for the README.

    python -m benchmarks.console_screenshots [--store benchmarks/.store] [--load-seconds 45]

1. The demo models are trained into the store when missing (`python -m training demo`).
2. `python -m service` serves a copy of the store (the store given is never written to). Once it
   serves, the copy gets a `gru` version whose ONNX file is cut in half (with a manifest that
   matches it, as a faulty publisher could leave): the overview then shows that version failed
   to load, with its reason, while the one before keeps serving.
3. wrk (`apt-get install -y wrk`) sends a steady load to every model while the live charts
   fill, at low concurrency so that batches stay mixed.
4. Debian's Chromium (`apt-get install -y chromium`) takes the overview, `cnn`'s page and its
   "try it" panel after a "7" is drawn on the pad, into `benchmarks/results/console/`.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path

from playwright.sync_api import ViewportSize, expect, sync_playwright

from benchmarks.bodies import http_request, json_body
from benchmarks.closedloop import run_wrk
from benchmarks.config import DEFAULT_STORE
from benchmarks.harness.servers import REPO_ROOT, running_server
from benchmarks.workload import ensure_store, make_samples
from model_store import open_store
from tests.console.browser import ConsolePage, launch
from tests.security.forge import forge_version

log = logging.getLogger("benchmarks.console_screenshots")

OUT_DIR = REPO_ROOT / "benchmarks" / "results" / "console"
MODELS = ("cnn", "resnet", "gru", "transformer")
# A "7" inside the pad's centre square: the bar, then the stem (canvas pixels).
SEVEN = [(92.0, 78.0), (130.0, 76.0), (168.0, 76.0), (190.0, 80.0), (172.0, 120.0),
         (154.0, 160.0), (140.0, 196.0), (132.0, 214.0)]  # fmt: skip
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}


def _publish_broken_version(store: Path, name: str) -> int:
    """The latest version again, every file as it is but the model cut in half."""
    opened = open_store(str(store))
    latest = opened.list_versions(name)[-1]
    manifest = opened.manifest(name, latest)
    directory = store / name / str(latest)
    model = (directory / manifest.model_file).read_bytes()
    files: dict[str, bytes | Path] = {
        f.path: (directory / f.path).read_bytes() for f in manifest.files
    }
    files[manifest.model_file] = model[: len(model) // 2]
    return forge_version(store, name, files)


def _requests(store: Path, work: Path) -> list[Path]:
    files = []
    opened = open_store(str(store))
    for name in MODELS:
        manifest = opened.manifest(name, opened.resolve(name))
        for i, sample in enumerate(make_samples(manifest.inputs, opened.config(name), seed=0)):
            path = work / f"{name}-{i}.http"
            path.write_bytes(http_request(f"/v2/models/{name}/infer", json_body(sample)))
            files.append(path)
    return files


def take(store: Path, load_seconds: int, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="console-shots-") as tmp:
        work = Path(tmp)
        copy = work / "store"
        shutil.copytree(store, copy)
        requests = _requests(copy, work)
        env = {"INDUCTIVE_POLL_INTERVAL_S": "1"}
        with running_server(copy, work, env) as server, sync_playwright() as playwright:
            browser = launch(playwright)
            console = ConsolePage.open(browser, server.url)
            page = console.page
            page.set_viewport_size(VIEWPORT)
            broken = _publish_broken_version(copy, "gru")
            console.goto()
            expect(page.locator("article.card")).to_have_count(len(MODELS), timeout=30_000)
            failed = page.locator(f'article[data-model="gru"] li[data-version="{broken}"]')
            expect(failed).to_contain_text("failed", timeout=30_000)
            load = threading.Thread(
                target=run_wrk,
                args=(server.url, requests),
                kwargs={"connections": 12, "duration_s": load_seconds + 20, "core": None},
            )
            load.start()
            log.info("load for %d s while the live figures fill", load_seconds)
            time.sleep(load_seconds)
            shots = [out_dir / "overview.png", out_dir / "model.png", out_dir / "try-it.png"]
            page.screenshot(path=shots[0], full_page=True)
            page.get_by_role("link", name="cnn", exact=True).click()
            expect(page.locator("figure.chart")).to_have_count(4)
            time.sleep(4)  # two scrapes: every chart drawn
            page.screenshot(path=shots[1])
            console.draw(SEVEN)
            panel = page.locator("section.tryit")
            expect(panel.locator(".prediction ol.classes li")).to_have_count(3, timeout=30_000)
            panel.screenshot(path=shots[2])
            load.join()
            assert console.foreign_requests() == [], console.foreign_requests()
            browser.close()
    return shots


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--load-seconds", type=int, default=45)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    ensure_store(args.store, MODELS)
    for shot in take(args.store, args.load_seconds, args.out):
        log.info("wrote %s", shot)


if __name__ == "__main__":
    main()
