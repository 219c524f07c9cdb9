"""Driving the console in Debian's Chromium through Playwright for Python.

`playwright install` downloads a browser build of its own, which CI cannot; the system's
`chromium` (apt-get install chromium, as .ci/run does) is driven instead. As root it needs
`--no-sandbox`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, Playwright, Request

from tests.console.digit import Point

CHROMIUM_MISSING = (
    "no Chromium to drive: install Debian's (apt-get install -y chromium, as root; .ci/run does)"
)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch(playwright: Playwright) -> Browser:
    path = chromium_path()
    assert path is not None, CHROMIUM_MISSING
    return playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class ConsolePage:
    """A page with everything it requested and every error it logged."""

    page: Page
    base: str  # the server's origin: http://127.0.0.1:PORT
    requests: list[Request] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, browser: Browser, base: str) -> ConsolePage:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        opened = cls(page, base)
        page.on("request", lambda request: opened.requests.append(request))
        page.on("pageerror", lambda error: opened.errors.append(f"page error: {error}"))
        page.on(
            "console",
            lambda m: (
                opened.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        return opened

    def goto(self, route: str = "") -> None:
        """`route`: the console's own ("#/models/cnn"); the page is /console/."""
        self.page.goto(f"{self.base}/console/{route}")

    def foreign_requests(self) -> list[str]:
        return [r.url for r in self.requests if origin(r.url) != self.base]

    def draw(self, points: list[Point]) -> None:
        """A stroke through `points` (canvas pixels of the digit pad), one mouse event each."""
        canvas = self.page.locator("canvas.pad")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box is not None
        assert (box["width"], box["height"]) == (280, 280), box  # one CSS pixel per canvas pixel
        mouse = self.page.mouse
        mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
        mouse.down()
        for x, y in points[1:]:
            mouse.move(box["x"] + x, box["y"] + y)
        mouse.up()
