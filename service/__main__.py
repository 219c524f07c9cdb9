"""`python -m service` / `inductive-serve`: settings from INDUCTIVE_* variables, flags override.

One process: our HTTP connections (service/http/connection.py) run by uvicorn on uvloop
(service/http/runner.py). SIGTERM starts a graceful drain: readiness turns false and new inference
requests get 503 at once, everything already accepted or queued completes, then the process stops
— all within `shutdown_grace_s`. A second signal forces exit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from model_store.backends.plain import PlainDirectoryError, check_model_dir
from service.batching.batcher import Batcher
from service.http.app import create_app
from service.http.runner import run
from service.logging import configure
from service.observability.access_log import AccessLogConfigError
from service.observability.tracing import TracingConfigError
from service.runtime.memory import keep_batch_buffers, trim_periodically
from service.settings import Settings

# Flag → settings field; the help text comes from the field's description.
_FLAGS = {
    "store": str, "model_dir": str, "model_name": str, "cache_dir": str, "models": str,
    "model_control_mode": str,
    "poll_interval_s": float, "host": str, "port": int, "providers": str,
    "cuda_device_id": int, "intra_op_threads": int, "batch_threads": int, "precision": str,
    "max_batch_size": int, "max_queue_delay_ms": float, "max_queue_size": int,
    "default_timeout_ms": float, "shutdown_grace_s": float, "shutdown_delay_s": float,
    "log_format": str, "log_level": str, "body_timeout_s": float, "header_timeout_s": float,
    "max_connections": int, "memory_budget_mb": float,
    "grpc_port": str,
}  # fmt: skip


def parse_args(argv: list[str] | None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="inductive-serve",
        description="Serve the models of a store (or, with --model-dir and --model-name, one "
        "plain directory) over the Open Inference Protocol. Every flag overrides the INDUCTIVE_* "
        "environment variable of the same name; KServe's --model_dir, --model_name, --http_port "
        "and --grpc_port spellings are accepted.",
    )
    fields = Settings.model_fields
    for name, kind in _FLAGS.items():
        parser.add_argument(*_spellings(name), dest=name, type=kind, help=fields[name].description)
    # KServe starts a runtime with --http_port (and --grpc_port, --model_dir, --model_name).
    parser.add_argument("--http-port", "--http_port", dest="port", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--batching", dest="batching", action=argparse.BooleanOptionalAction, default=None,
        help=fields["batching"].description,
    )  # fmt: skip
    return {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}


def _spellings(name: str) -> list[str]:
    """--model-dir, and --model_dir as KServe spells its runtime arguments."""
    dashed = f"--{name.replace('_', '-')}"
    return [dashed] if "_" not in name else [dashed, f"--{name}"]


def main(argv: list[str] | None = None) -> None:
    try:
        settings = Settings(**parse_args(argv))
    except ValidationError as exc:
        sys.exit(f"invalid settings:\n{exc}")
    if settings.model_dir is not None:
        # A directory that cannot be served stops the process at once with one line (KServe
        # shows it as the container's last words), rather than a server that never gets ready.
        try:
            check_model_dir(Path(settings.model_dir))
        except PlainDirectoryError as exc:
            sys.exit(f"cannot serve {exc}")
    configure(settings.log_format, settings.log_level)
    if not settings.cpu_mem_arena:
        # Before any thread allocates: glibc fixes its number of arenas at the first thread's.
        keep_batch_buffers()  # runtime/memory.py
        if settings.memory_trim_interval_s:
            trim_periodically(settings.memory_trim_interval_s, lambda: Batcher.started_in_process)
    try:
        app = create_app(settings)
    except TracingConfigError as exc:
        sys.exit(f"invalid OpenTelemetry settings: {exc}")
    except AccessLogConfigError as exc:
        sys.exit(f"invalid access log settings: {exc}")
    run(settings, app)


if __name__ == "__main__":
    main()
