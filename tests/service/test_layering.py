"""The inference path is the connection's own: importing it loads no web framework, so nothing
of FastAPI or Starlette runs per inference request (they answer the other routes only)."""

from __future__ import annotations

import subprocess
import sys

from tests.service.helpers import REPO_ROOT

SCRIPT = """
import sys
import service.http.connection, service.http.runner, service.inference.call
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"fastapi", "starlette"})
print(",".join(loaded))
"""


def test_the_inference_path_imports_no_web_framework() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"imported by the inference path: {result.stdout}"
