#!/usr/bin/env bash
# Run HERE (a machine with registry access), from the repository root, before a device session:
# downloads what the device machine (Python 3.12, x86-64, no registry) lacks into .gpukit/
# (git-ignored):
#   .gpukit/whl/   cp312 manylinux wheels of the serving stack the device image does not have
#   .gpukit/deb/   wrk and its libraries (unpacked under /tmp there, never into /)
#   .gpukit/ort/   onnxruntime-gpu split into parts below 64 MiB (one device call carries at most
#                  64 MiB); run_on_device.sh joins them and checks the checksum this writes to
#                  benchmarks/gpu/onnxruntime-gpu.sha256 (committed, so it travels).
# See benchmarks/README.md ("GPU run") for the sequence of device calls.
set -euo pipefail
cd "$(dirname "$0")/../.."
KIT=.gpukit
ORT_GPU=onnxruntime-gpu==1.31.1
PART_MIB=56
# The serving stack at the versions .venv runs; the device image already has numpy, onnx, anyio,
# h11, click, httpx, prometheus-client, typing-extensions, annotated-doc, pytest and uvloop.
WHEELS=(fastapi==0.165.0 starlette==1.10.0 pydantic==2.14.3 pydantic-core==2.50.4
        pydantic-settings==2.16.3 python-dotenv==1.2.4 typing-inspection==0.4.5
        annotated-types==0.8.0 orjson==3.13.0 uvicorn==0.54.0 httptools==0.9.0
        typing-extensions==4.16.0 nvidia-ml-py==13.615.71)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done
download() {
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLATFORMS[@]}" -d "$1" "${@:2}"
}

rm -rf "$KIT/whl" "$KIT/ort" "$KIT/deb"
mkdir -p "$KIT/whl" "$KIT/ort" "$KIT/deb"
download "$KIT/whl" "${WHEELS[@]}"

download "$KIT/ort" "$ORT_GPU"
wheel=$(ls "$KIT"/ort/onnxruntime_gpu-*.whl)
name=$(basename "$wheel")
(cd "$KIT/ort" && sha256sum "$name") > benchmarks/gpu/onnxruntime-gpu.sha256
split -b "${PART_MIB}M" -d -a 2 "$wheel" "$KIT/ort/$name.part-"
rm "$wheel"

# wrk from this machine's Debian archive (x86-64); libssl3 only as a fallback library there.
(cd "$KIT/deb" && apt-get download wrk libluajit-5.1-2 libssl3 >/dev/null)

du -sh "$KIT"/*
ls -l "$KIT"/ort
