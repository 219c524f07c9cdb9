"""Property-based fuzzing of the HTTP API with schemathesis: the server's own OpenAPI document
(FastAPI's `/openapi.json`) and the official Open Inference Protocol spec, whose infer route our
document lacks (inference is answered by the connection, not a FastAPI route). Valid and invalid
requests alike must never get a 5xx, and every error body must be `{"error": "..."}`.

Each operation gets a bounded, derandomised run (the same examples on every run), so a failure is
reproducible and the whole file stays within the reliability budget.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Err
from schemathesis.schemas import BaseSchema

from tests.reliability.contract import contract_violation
from tests.service.helpers import ServerProcess, running_server

# The official Open Inference Protocol OpenAPI document (`open_inference_rest.yaml`, published
# with KServe) is not part of this repository: name its path in OIP_REST_SPEC to fuzz against it.
OFFICIAL = Path(os.environ.get("OIP_REST_SPEC", "open_inference_rest.yaml"))
MAX_EXAMPLES = 40  # per operation and generation mode
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    # No shrinking: every violation is recorded as found, and the run time stays bounded.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
# Path parameters that reach a served model, so that generated bodies get past the lookup and
# into decoding and validation (random names are fuzzed by the metadata routes).
REAL_MODEL = {"MODEL_NAME": "add", "MODEL_VERSION": "1", "name": "add", "version": "1"}


def _fuzz(
    schema: BaseSchema, base_url: str, *, real_model: bool, headers: dict[str, str] | None = None
) -> tuple[list[str], Counter[tuple[str, int]]]:
    """Runs every operation in both generation modes; returns the contract violations and how
    many responses each (operation, status) got."""
    violations: list[str] = []
    statuses: Counter[tuple[str, int]] = Counter()
    with requests.Session() as session:
        session.headers.update(headers or {})
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise AssertionError(f"the schema has an operation it cannot test: {result.err()}")
            operation = result.ok()
            names = {p.name for p in operation.path_parameters}
            overrides = {k: v for k, v in REAL_MODEL.items() if k in names}
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                strategy = operation.as_strategy(
                    mode, path_parameters=overrides if real_model and overrides else None
                )
                label = f"{operation.label} [{mode.value}]"
                try:
                    _examples(strategy, label, session, base_url, violations, statuses)()
                except Unsatisfiable:
                    # Nothing to make invalid: an operation without parameters or body.
                    assert mode is GenerationMode.NEGATIVE, label
    return violations, statuses


def _examples(
    strategy: Any,
    label: str,
    session: requests.Session,
    base_url: str,
    violations: list[str],
    statuses: Counter[tuple[str, int]],
) -> Any:
    @FUZZ
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, session=session, timeout=30)
        statuses[case.operation.label, response.status_code] += 1
        content_type = (response.headers.get("content-type") or [""])[0]
        problem = contract_violation(response.status_code, content_type, response.content)
        if problem is not None:
            violations.append(f"{label}: {case.as_curl_command()} → {problem}")

    return run


@pytest.fixture(scope="module")
def official_schema() -> BaseSchema:
    if not OFFICIAL.is_file():
        pytest.skip(f"no Open Inference Protocol spec at {OFFICIAL} (set OIP_REST_SPEC)")
    raw = yaml.safe_load(OFFICIAL.read_text())
    # The spec writes path templates as `${NAME}`; OpenAPI's are `{NAME}` (else a literal `$`
    # would precede every generated value).
    raw["paths"] = {path.replace("${", "{"): item for path, item in raw["paths"].items()}
    return schemathesis.openapi.from_dict(raw)


def test_own_openapi_document(server: ServerProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    assert schema.get_all_operations(), "the server's OpenAPI document lists no operation"
    violations, statuses = _fuzz(schema, server.url, real_model=False)
    assert not violations, "\n".join(violations[:20])
    assert statuses[("GET /v2/models/{name}", 404)] > 0, statuses


def test_repository_api_with_the_admin_token(
    store: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The repository routes past the token check: load/unload/index with generated names and
    bodies (a server of its own, so that unloading cannot disturb the other tests)."""
    token = "fuzz-admin-token"
    env = {"INDUCTIVE_MODEL_CONTROL_MODE": "explicit", "INDUCTIVE_ADMIN_TOKEN": token}
    with running_server(store, tmp_path_factory.mktemp("admin"), env) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json").include(
            path_regex="^/v2/repository/"
        )
        violations, statuses = _fuzz(
            schema, server.url, real_model=False, headers={"Authorization": f"Bearer {token}"}
        )
        assert not violations, "\n".join(violations[:20])
        assert statuses["POST /v2/repository/index", 200] > 0, statuses
        assert statuses["POST /v2/repository/models/{name}/load", 404] > 0, statuses
        assert server.process.poll() is None


@pytest.mark.parametrize("real_model", [False, True], ids=["any-model", "served-model"])
def test_official_open_inference_spec(
    server: ServerProcess, official_schema: BaseSchema, real_model: bool
) -> None:
    violations, statuses = _fuzz(official_schema, server.url, real_model=real_model)
    assert not violations, "\n".join(violations[:20])
    # The generated requests reached the infer handler; with a served model, its decoding and
    # validation (which answer 400).
    infer = "POST /v2/models/{MODEL_NAME}/versions/{MODEL_VERSION}/infer"
    answered = {status for (label, status) in statuses if label == infer}
    assert (answered == {400}) if real_model else answered <= {400, 404}, statuses
    # The fuzzing left the server healthy.
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
