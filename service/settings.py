"""Server settings: environment variables prefixed `INDUCTIVE_`, overridable by CLI flags.

Nothing is read at import time: `get_settings()` builds (and caches) the settings the process runs
with, while tests build their own `Settings(...)` and hand it to `create_app`.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model_store.schema import validate_model_name

ENV_PREFIX = "INDUCTIVE_"

ProviderName = Literal["auto", "cuda", "tensorrt", "cpu"]


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # --- where models come from -----------------------------------------------------------
    store: str = Field(
        default="./store",
        description="Model store: a directory, or s3://bucket/prefix for S3-compatible storage.",
    )
    model_dir: str | None = Field(
        default=None,
        description="Serve this plain directory (model.onnx, its external data, an optional "
        "config.json) as one model named model_name, version 1, instead of a store: KServe's "
        "storage initializer hands the runtime /mnt/models. The store is then not read.",
    )
    model_name: str | None = Field(
        default=None, description="The name the model of model_dir is served under."
    )
    cache_dir: str = Field(
        default="./.cache/models",
        description="Local directory where versions from an object store are synced and verified.",
    )
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated model names to serve; empty serves every model in the store "
        "(in explicit mode: none until the repository API loads one).",
    )
    model_control_mode: Literal["poll", "explicit", "none"] = Field(
        default="poll",
        description="poll: follow the store; explicit: load only what models lists, then only "
        "the repository API loads/unloads; none: load once at start-up.",
    )
    poll_interval_s: float = Field(default=5.0, gt=0, description="Seconds between store polls.")
    removal_grace_s: float = Field(
        default=60.0,
        ge=0,
        description="Poll mode: a model gone from the store (its directory, or every complete "
        "version) keeps serving this many seconds, then is unloaded (its queued requests "
        "finish first), logged and counted in inductive_models_removed_total. An unreachable "
        "store never counts as gone. A deletion made outside the store's API writes no change "
        "marker and is seen at the next full read of the store (within a minute).",
    )
    ready_requires: Literal["all", "any"] = Field(
        default="all",
        description="When /v2/health/ready answers 200: all = every model to serve "
        "(INDUCTIVE_MODELS, else every model in the store) has a READY version; any = at least "
        "one model has. Never while nothing is served.",
    )

    # --- HTTP -----------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address to bind.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port to bind (0 = any free).")
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    max_tensor_elements: int = Field(
        default=16 * 1024 * 1024, ge=1, description="Largest element count of one input tensor."
    )
    max_sequence_length: int = Field(
        default=0,
        ge=0,
        description="The longest a ragged input's variable axis may be in a request (400 "
        "above), for model versions whose config gives no max_length of its own; 0 = no limit. "
        "A version's config is frozen when it is published: this bounds versions published "
        "without one (benchmarks/results/reliability/long-sequences.md).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated CORS origins; empty turns CORS off."
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="A request body must arrive within this many seconds (slow-client guard).",
    )
    timeout_keep_alive_s: float = Field(
        default=5.0, gt=0, description="Idle keep-alive connections are closed after this."
    )
    header_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="A request's headers must arrive within this many seconds of the connection "
        "opening or of the previous response, and a body gets this much grace before its "
        "minimum rate applies (slow-client guard); default: timeout_keep_alive_s.",
    )
    body_min_rate: int = Field(
        default=16 * 1024,
        ge=1,
        description="After the header timeout's grace, a request body must keep up this many "
        "bytes a second or its connection is closed (slow-client guard).",
    )
    max_connections: int = Field(
        default=4096,
        ge=1,
        description="Connections served at once; a request on one more gets a 503 and its "
        "connection is closed.",
    )
    max_header_line_bytes: int = Field(
        default=8 * 1024,
        ge=256,
        description="Longest request line (414 above) or header line (431 above).",
    )
    max_head_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest request head: request line and every header together (431 above).",
    )
    max_headers: int = Field(
        default=100, ge=8, description="Most header fields a request may carry (431 above)."
    )
    send_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="A client that takes none of the server's response bytes for this long "
        "(its connection's send buffer stays full) is disconnected.",
    )
    linger_s: float = Field(
        default=10.0,
        ge=0,
        description="After an error answered before the request's body was read (413, 431, "
        "bad framing), how long the rest of what the client sends is read and discarded "
        "before the connection closes, so that a client sending its whole body first still "
        "reads the error instead of a reset.",
    )
    linger_max_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=0,
        description="The most bytes read and discarded that way on one connection.",
    )
    shutdown_grace_s: float = Field(
        default=25.0, ge=0, description="On SIGTERM, how long accepted requests may take to finish."
    )
    shutdown_delay_s: float = Field(
        default=0.0,
        ge=0,
        description="On SIGTERM, keep the listener open answering 503 (readiness false) at least "
        "this long, so load balancers see it before connections are refused; within the grace.",
    )

    # --- gRPC -----------------------------------------------------------------------------
    grpc_port: int | None = Field(
        default=8001,
        ge=0,
        le=65535,
        description="Port of the gRPC door (Open Inference Protocol over gRPC, same host); "
        "0 = any free, off = no gRPC door.",
    )
    grpc_keepalive_time_s: float = Field(
        default=60.0,
        gt=0,
        description="gRPC: ping a client whose connection has been silent this long, to find "
        "dead peers (and keep idle connections open through proxies).",
    )
    grpc_keepalive_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="gRPC: close a connection whose keepalive ping gets no answer within this.",
    )
    grpc_min_ping_interval_s: float = Field(
        default=10.0,
        gt=0,
        description="gRPC: the shortest interval between a client's keepalive pings that is "
        "tolerated; a client pinging more often is sent GOAWAY (too_many_pings).",
    )
    grpc_max_connection_age_s: float | None = Field(
        default=None,
        gt=0,
        description="gRPC: close connections older than this (GOAWAY), so that clients "
        "reconnect and spread over replicas added since; unset = never.",
    )
    grpc_max_connection_age_grace_s: float = Field(
        default=30.0,
        ge=0,
        description="gRPC: how long calls in flight on a connection past its maximum age may "
        "take to finish.",
    )

    # --- security -------------------------------------------------------------------------
    console: bool | None = Field(
        default=None,
        description="Serve the web console at /console (read-only pages: models, live metrics, "
        "try-it); default: on when `host` is a loopback address, off otherwise.",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for /v2/repository/* and the gRPC repository RPCs "
        "(`authorization` metadata); unset disables the repository API.",
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated bearer keys required for inference (HTTP header or gRPC "
        "metadata `authorization: Bearer <key>`); empty means open.",
    )

    # --- ONNX Runtime ---------------------------------------------------------------------
    providers: ProviderName = Field(
        default="auto", description="auto (CUDA when usable, else CPU), cuda, tensorrt or cpu."
    )
    cuda_device_id: int = Field(default=0, ge=0, description="GPU used by the CUDA provider.")
    trt_engine_cache: str | None = Field(
        default=None,
        description="Directory for TensorRT engine caches (tensorrt provider): each model file "
        "gets a subdirectory named by its sha256, so a reload or a new pod sharing the directory "
        "reuses the engine instead of building it again.",
    )
    intra_op_threads: int = Field(
        default=0,
        ge=0,
        description="ONNX Runtime intra-op threads; 0 = the CPUs the process can use (its "
        "affinity, bounded by its cgroup's CPU quota).",
    )
    inter_op_threads: int = Field(default=1, ge=1, description="ONNX Runtime inter-op threads.")
    batch_threads: int = Field(
        default=0,
        ge=0,
        description="Threads computing batches, shared by every model version (one version "
        "computes one batch at a time); 0 = twice the CPUs the process can use, at least 4.",
    )
    batches_on_loop: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Run short batches on the event loop's thread rather than a worker thread "
        "(benchmarks/results/one-cpu/). auto: when the process can use one CPU only (its "
        "affinity or its cgroup's CPU quota) and serves on CPU, where a worker thread cannot "
        "compute while the loop reads anyway and the handoff only costs.",
    )
    loop_batch_max_ms: float = Field(
        default=20.0,
        gt=0,
        description="With batches on the loop: a batch expected to take longer than this (its "
        "model's last time per sample × its samples) runs on a worker thread, so that "
        "health probes and other requests never wait longer than this for the loop.",
    )
    worker_nice: int = Field(
        default=5,
        ge=0,
        le=19,
        description="Nice value added to the threads running batches (Linux), so that the "
        "event loop answers and refuses requests at once while a batch computes on the same "
        "cores; 0 = same priority.",
    )
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        default="all", description="ONNX Runtime graph optimisation level."
    )
    io_binding: bool = Field(
        default=True, description="Bind inputs/outputs on the GPU to avoid double copies."
    )
    cpu_mem_arena: bool = Field(
        default=False,
        description="ONNX Runtime's CPU memory arena. Off by default: the arena keeps the largest "
        "batch's buffers for the session's life, per session (the demo cnn: 20.3 MB per loaded "
        "model with it, 4.9 MB without, for 4.6 MB of weights); without it, batch-64 cnn runs "
        "took about 5 % more CPU per sample, batch 1 the same (benchmarks/results/model-memory/).",
    )
    memory_trim_interval_s: float = Field(
        default=1.0,
        ge=0,
        description="Without the CPU arena: every this many seconds, give the allocator's free "
        "memory back to the system (malloc_trim) if no batch started since the last tick; "
        "0 = only after model loads and unloads.",
    )
    mem_pattern: bool = Field(
        default=True,
        description="ONNX Runtime's memory pattern planning (pre-allocates a batch's buffers "
        "from the shapes of the previous run).",
    )
    precision: Literal["fp32", "fp16", "int8", "auto"] = Field(
        default="fp32",
        description="Which published variant to serve; auto = fp16 on GPU, fp32 on CPU.",
    )

    # --- dynamic batching (unset = each model's config.json) -------------------------------
    batching: bool = Field(default=True, description="Dynamic batching on or off.")
    max_batch_size: int | None = Field(default=None, ge=1, description="Override: max batch size.")
    max_queue_delay_ms: float | None = Field(
        default=None, ge=0, description="Override: how long a batch may wait to fill."
    )
    max_queue_size: int | None = Field(
        default=None, ge=1, description="Override: queued requests per version before 503."
    )
    default_timeout_ms: float | None = Field(
        default=None, gt=0, description="Override: request timeout when the client sets none."
    )

    # --- memory budget (off unless memory_budget_mb is set) -----------------------------
    memory_budget_mb: float | None = Field(
        default=None,
        gt=0,
        description="Memory the loaded models may take together, in MB. Set: models load on "
        "their first request (pinned ones at start-up) and the least recently used are "
        "unloaded when a load would pass it; unset: every model loads at start-up.",
    )
    model_overhead_mb: float = Field(
        default=2.0,
        ge=0,
        description="With a memory budget: what a loaded model is expected to take beyond "
        "model_memory_factor × its weights (session, graph, warm-up buffers), until its load "
        "measures it.",
    )
    model_memory_factor: float = Field(
        default=1.5,
        ge=1,
        description="With a memory budget: a model's expected resident size per byte of its "
        "weights file, until its load measures it.",
    )

    # --- canary shadow ----------------------------------------------------------------------
    shadow_max_inflight: int = Field(
        default=64,
        ge=1,
        description="A shadow (a canary's mirror share) keeps at most this many mirrored requests "
        "in flight per model; beyond, mirrored requests are dropped and counted.",
    )
    shadow_max_queue: int = Field(
        default=32,
        ge=1,
        description="A mirrored request is dropped (and counted) when the candidate's queue "
        "already holds this many requests: a candidate that is behind never holds the "
        "champion's answers up.",
    )

    # --- traffic capture (off unless capture_uri is set) ---------------------------------
    capture_uri: str | None = Field(
        default=None,
        description="Write a sample of the served requests and their answers as shards to this "
        "directory or s3://bucket/prefix (service/README.md); unset: no capture.",
    )
    capture_sample_rate: float = Field(
        default=0.01, gt=0, le=1, description="Share of the requests captured (each one whole)."
    )
    capture_max_samples_per_s: float = Field(
        default=100.0,
        gt=0,
        description="At most this many samples a second are captured, all models together; "
        "more are dropped and counted.",
    )
    capture_max_bytes: int = Field(
        default=1024**3,
        ge=1,
        description="Capture stops (and logs it once) when the shards this process wrote would "
        "pass this many bytes.",
    )
    capture_shard_samples: int = Field(
        default=1000, ge=1, description="Samples per shard (one model version each)."
    )
    capture_flush_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="A version's captured samples are written at the latest this long after "
        "the first of them, even if the shard is not full.",
    )
    capture_queue_bytes: int = Field(
        default=64 * 1024**2,
        ge=1,
        description="Captured requests waiting for the writer thread hold at most this many "
        "bytes; beyond, requests are not captured (counted), never delayed.",
    )

    # --- logs -----------------------------------------------------------------------------
    log_format: Literal["json", "text"] = Field(default="json", description="json lines or text.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info")
    access_log: bool = Field(
        default=False,
        description="One JSON line per inference request (HTTP and gRPC): time, request and "
        "trace ids, client, protocol, model, version, status, bytes in and out, queue, compute "
        "and total ms, batch size.",
    )
    access_log_sample_rate: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of inference requests the access log writes a line for (1 = all).",
    )
    access_log_path: str = Field(
        default="-",
        description="Where access log lines go: - for standard output, else a file appended to.",
    )

    @field_validator("models", "cors_origins", "api_keys", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("grpc_port", mode="before")
    @classmethod
    def _port_or_off(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "off":
            return None
        return value

    @model_validator(mode="after")
    def _tensorrt_needs_cache(self) -> Settings:
        if self.trt_engine_cache is not None and not os.path.isabs(self.trt_engine_cache):
            raise ValueError(
                f"INDUCTIVE_TRT_ENGINE_CACHE={self.trt_engine_cache!r} must be an absolute path"
            )
        return self

    @model_validator(mode="after")
    def _model_dir_needs_a_name(self) -> Settings:
        if (self.model_dir is None) != (self.model_name is None):
            raise ValueError(
                "model_dir and model_name go together: --model-dir DIR --model-name NAME "
                "(INDUCTIVE_MODEL_DIR, INDUCTIVE_MODEL_NAME)"
            )
        if self.model_name is not None:
            validate_model_name(self.model_name)
            if self.models and self.models != [self.model_name]:
                raise ValueError(
                    f"models={','.join(self.models)} with model_dir: the directory serves one "
                    f"model, {self.model_name!r}; leave models unset"
                )
        return self

    @property
    def store_is_remote(self) -> bool:
        return self.store.startswith("s3://")

    @property
    def console_enabled(self) -> bool:
        """The console setting, or by default whether only this machine can reach the server:
        an operator exposing it further says so with INDUCTIVE_CONSOLE=true."""
        if self.console is not None:
            return self.console
        return _is_loopback(self.host)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve to anything
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
