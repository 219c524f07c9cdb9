# Three images from one file (see k8s/README.md for their contents and expected sizes):
#   docker build --target serve     -t inductive-serve:0.1.0 .      # GPU: CUDA 13, onnxruntime-gpu
#   docker build --target serve-cpu -t inductive-serve-cpu:0.1.0 .  # CPU: python:3.12-slim
#   docker build --target train     -t inductive-train:0.1.0 .      # training CLI, CPU torch
#
# The serving images install exactly the hashed pins of .ci/requirements-serve*.lock (made for
# their Python, 3.12, by .ci/lock.sh; audited by .ci/audit.sh), then inductive's own wheel without
# dependencies: no resolver runs at build time, so two builds from one commit get the same bytes.
#
# hadolint global ignore=DL3008
# DL3008 (pin apt package versions): the base images are pinned by tag; the apt packages we add
# (python3, python3-venv) come from the Ubuntu archive, whose old point releases are removed when
# security updates land, so a pinned apt version breaks the build within weeks without making it
# more reproducible than the pinned base already does.

# ---------------------------------------------------------------------------------------------
# wheel: inductive's wheel (model_store + service; training/ is left out: it needs torch), built
# with the locked setuptools, so that the serving stages install it with no build step of theirs.
# ---------------------------------------------------------------------------------------------
FROM python:3.12.12-slim-bookworm AS wheel

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY .ci/requirements-build.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements-build.lock
COPY pyproject.toml README.md ./
COPY model_store ./model_store
COPY service ./service
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .


# ---------------------------------------------------------------------------------------------
# serve (GPU nodes): CUDA 13 + cuDNN 9 runtime, the libraries onnxruntime-gpu 1.31 (CUDA 13 build)
# links against (libcublasLt.so.13, libcudart.so.13, libcurand.so.10; cuDNN 9 is loaded at run
# time). Ubuntu 24.04's python3 is 3.12, the Python the lock is made for.
# ---------------------------------------------------------------------------------------------
FROM nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04 AS serve-build

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# The venv is built here and copied whole into the runtime stage, which has the same python3 at
# the same path, so the runtime stage carries no pip caches, wheels or lock files.
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY .ci/requirements-serve.lock /tmp/
RUN pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements-serve.lock
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir --no-deps --no-index /wheels/*.whl


FROM nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04 AS serve

LABEL org.opencontainers.image.title="inductive-serve" \
      org.opencontainers.image.description="Open Inference Protocol server for ONNX models (CUDA 13, onnxruntime-gpu)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04"

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 inductive \
    && useradd --system --uid 10001 --gid inductive --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin inductive \
    && mkdir -p /models /var/cache/inductive \
    && chown inductive:inductive /models /var/cache/inductive

COPY --from=serve-build /opt/venv /opt/venv

# Every INDUCTIVE_* variable is a field of service.settings.Settings (tests/deploy checks this).
# The root filesystem is read-only in k8s/: CUDA's kernel JIT cache goes to /tmp, not to $HOME.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CUDA_CACHE_PATH=/tmp/cuda-cache \
    INDUCTIVE_HOST=0.0.0.0 \
    INDUCTIVE_PORT=8000 \
    INDUCTIVE_GRPC_PORT=8001 \
    INDUCTIVE_STORE=/models \
    INDUCTIVE_CACHE_DIR=/var/cache/inductive \
    INDUCTIVE_LOG_FORMAT=json

USER 10001:10001
EXPOSE 8000 8001

# No curl in the image: the venv's python asks the liveness route; urlopen raises (exit 1) on
# anything but a 2xx answer or on a timeout.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/v2/health/live' % os.environ.get('INDUCTIVE_PORT', '8000'), timeout=3)"]

# Exec form: the server is PID 1 and receives SIGTERM itself, then drains (graceful shutdown).
ENTRYPOINT ["inductive-serve"]


# ---------------------------------------------------------------------------------------------
# serve-cpu (CPU nodes): python:3.12-slim and onnxruntime, the CPU build of the same release, in
# place of onnxruntime-gpu (both provide the `onnxruntime` module; the lock swaps them, which is
# why inductive's wheel goes in without its dependencies). No CUDA layer, no NVML.
# ---------------------------------------------------------------------------------------------
FROM python:3.12.12-slim-bookworm AS serve-cpu-build

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY .ci/requirements-serve-cpu.lock /tmp/
RUN pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements-serve-cpu.lock
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir --no-deps --no-index /wheels/*.whl


FROM python:3.12.12-slim-bookworm AS serve-cpu

LABEL org.opencontainers.image.title="inductive-serve-cpu" \
      org.opencontainers.image.description="Open Inference Protocol server for ONNX models (CPU, onnxruntime)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.12.12-slim-bookworm"

RUN groupadd --system --gid 10001 inductive \
    && useradd --system --uid 10001 --gid inductive --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin inductive \
    && mkdir -p /models /var/cache/inductive \
    && chown inductive:inductive /models /var/cache/inductive

COPY --from=serve-cpu-build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    INDUCTIVE_HOST=0.0.0.0 \
    INDUCTIVE_PORT=8000 \
    INDUCTIVE_GRPC_PORT=8001 \
    INDUCTIVE_STORE=/models \
    INDUCTIVE_CACHE_DIR=/var/cache/inductive \
    INDUCTIVE_PROVIDERS=cpu \
    INDUCTIVE_LOG_FORMAT=json

USER 10001:10001
EXPOSE 8000 8001

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/v2/health/live' % os.environ.get('INDUCTIVE_PORT', '8000'), timeout=3)"]

ENTRYPOINT ["inductive-serve"]


# ---------------------------------------------------------------------------------------------
# train: CPU training (the demo families train in minutes on CPU), publishing to the shared store.
# torch comes from PyTorch's CPU index: the PyPI wheel of torch 2.13.0 for Linux is the CUDA build
# (several GB) and training here does not use a GPU.
# ---------------------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm AS train

LABEL org.opencontainers.image.title="inductive-train" \
      org.opencontainers.image.description="Trains, exports and publishes Inductive's demo models (CPU torch)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-bookworm"

RUN groupadd --system --gid 10001 inductive \
    && useradd --system --uid 10001 --gid inductive --create-home --home-dir /home/inductive \
       --shell /usr/sbin/nologin inductive

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib

RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY model_store ./model_store
COPY service ./service
COPY training ./training
# torch==2.13.0 is already satisfied by the CPU wheel (2.13.0+cpu), so pip keeps it. DL3013 (pin
# pip versions) flags ".[train,s3]": that is this project, whose ranges pyproject.toml holds.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[train,s3]"

USER 10001:10001
WORKDIR /home/inductive
ENTRYPOINT ["python", "-m", "training"]
CMD ["--help"]
