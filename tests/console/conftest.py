"""Fixtures for the browser tests: one Chromium, one store shaped like the demo's, and one real
server on it for the package (each test opens its own page). Where no Chromium is installed,
every test here is skipped, saying why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.console.browser import CHROMIUM_MISSING, ConsolePage, chromium_path, launch
from tests.console.demo_store import build_demo_store
from tests.service.helpers import ServerProcess, running_server

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if chromium_path() is not None:
        return
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=CHROMIUM_MISSING))


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("console-demo")
    return build_demo_store(root / "store", root / "models")


@pytest.fixture(scope="package")
def console_server(
    demo_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Polls the store twice a second, so that a version published by a test shows quickly."""
    env = {"INDUCTIVE_POLL_INTERVAL_S": "0.5"}
    with running_server(demo_store, tmp_path_factory.mktemp("console-server"), env) as server:
        yield server


@pytest.fixture
def console(browser: Browser, console_server: ServerProcess) -> Iterator[ConsolePage]:
    opened = ConsolePage.open(browser, console_server.url)
    yield opened
    opened.page.close()
