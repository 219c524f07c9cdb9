"""The serving install has no torch: importing the service and starting the app must not load it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.service.helpers import REPO_ROOT

SCRIPT = """
import asyncio, sys
import service, service.__main__
from service.http.app import create_app
from service.settings import Settings

async def start_and_stop():
    app = create_app(Settings(store=sys.argv[1], providers="cpu"))
    manager = app.state.manager
    await manager.prepare()
    await manager.load_all()
    assert manager.ready and manager.served_versions("add") == [1]
    await manager.close()

asyncio.run(start_and_stop())
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print("TORCH:", loaded)
"""


def test_service_never_imports_torch(store: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(store)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "TORCH: []" in result.stdout, result.stdout
