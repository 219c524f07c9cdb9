# Two images from one file (see k8s/README.md):
#   docker build --target serve -t inductive-serve:0.1.0 .   # HTTP server, onnxruntime-gpu, no torch
#   docker build --target train -t inductive-train:0.1.0 .   # training CLI, CPU torch
#
# hadolint global ignore=DL3008
# DL3008 (pin apt package versions): the base images are pinned by tag; the apt packages we add
# (python3, python3-venv, ca-certificates) come from the Ubuntu/Debian archive, whose old point
# releases are removed when security updates land, so a pinned apt version breaks the build within
# weeks without making it more reproducible than the pinned base already does.

# ---------------------------------------------------------------------------------------------
# serve: CUDA 13 + cuDNN 9 runtime, the two libraries onnxruntime-gpu 1.31 (CUDA 13 build) links
# against (libcublasLt.so.13, libcudart.so.13, libcurand.so.10; cuDNN 9 is loaded at run time).
# Ubuntu 24.04's python3 is 3.12, which the project supports (requires-python >= 3.11).
# ---------------------------------------------------------------------------------------------
FROM nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04 AS serve-build

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# The venv is built here and copied whole into the runtime stage, which has the same python3 at
# the same path, so the runtime stage carries no pip caches, build backends or headers.
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY model_store ./model_store
COPY service ./service
# training/ is left out: it needs torch. (Its `inductive-train` script is installed but unusable.)
# The serving install: base dependencies plus boto3 (the `s3` extra, for s3:// stores); never the
# `train` extra, so no torch. onnxruntime-gpu is pinned to the build that matches the CUDA 13 base.
# DL3013 (pin pip versions) flags ".[s3]": that is this project, whose dependency ranges live in
# pyproject.toml, the one place they are maintained.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[s3]" "onnxruntime-gpu==1.31.1"


FROM nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04 AS serve

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
# train: CPU training (the demo families train in minutes on CPU), publishing to the shared store.
# torch comes from PyTorch's CPU index: the PyPI wheel of torch 2.13.0 for Linux is the CUDA build
# (several GB) and training here does not use a GPU.
# ---------------------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm AS train

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
# torch==2.13.0 is already satisfied by the CPU wheel (2.13.0+cpu), so pip keeps it. DL3013: as in
# the serve stage, ".[train,s3]" is this project, pinned by pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[train,s3]"

USER 10001:10001
WORKDIR /home/inductive
ENTRYPOINT ["python", "-m", "training"]
CMD ["--help"]
