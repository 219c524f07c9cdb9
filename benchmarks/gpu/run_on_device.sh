#!/usr/bin/env bash
# The one script a session with a GPU machine runs there (repository root, Python 3.12, torch,
# no registry). Prepare here first with benchmarks/gpu/fetch_wheels.sh; the call sequence is in
# benchmarks/README.md ("GPU run"). Modes:
#   stash   move the onnxruntime-gpu parts carried by this call to /tmp/gpukit/ort (they stay
#           there while the machine is warm), and report whether the machine's own onnxruntime
#           already serves on CUDA (then the remaining parts need not travel)
#   run     stash, install the carried wheels into /tmp/site (joining and checking onnxruntime-gpu
#           unless the machine's own onnxruntime serves on CUDA), unpack wrk under /tmp, then
#           run `pytest -m gpu` and `python -m benchmarks.gpu`; everything lands in $OUT
#   test | bench   like run, with only the tests or only the benchmark
# Dry run on a CPU machine: DRY_RUN=1 PYTHON=.venv/bin/python OUT=/tmp/x bash ... run
set -uo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:-run}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpukit-out}
DRY_RUN=${DRY_RUN:-0}
# One device call may run 10 minutes: `run` fits both in it; `test` then `bench` in two calls
# can give the benchmark up to BENCH_TIMEOUT=540.
TEST_TIMEOUT=${TEST_TIMEOUT:-180}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-360}
KIT=.gpukit
WORK=/tmp/gpukit
SITE=/tmp/site
mkdir -p "$OUT" "$WORK/ort"
log() { echo "[run_on_device] $*" | tee -a "$OUT/env.txt"; }

stash_parts() {
  local part
  for part in "$KIT"/ort/*.part-*; do
    [ -e "$part" ] || continue
    # A dry run copies: the parts must stay in this checkout for the real run.
    if [ "$DRY_RUN" = 1 ]; then cp -f "$part" "$WORK/ort/"; else mv -f "$part" "$WORK/ort/"; fi
    log "stashed $(basename "$part")"
  done
  log "parts on this machine: $(cd "$WORK/ort" && ls ./*.part-* 2>/dev/null | wc -l)"
}

# The CUDA libraries of the image's pip packages (nvidia-*), for onnxruntime-gpu to find.
cuda_library_path() {
  local purelib
  purelib=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  find "$purelib/nvidia" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd: -
}

# Exit status 0 when the importable onnxruntime builds a session that really runs on CUDA.
probe_cuda() {
  "$PYTHON" - <<'PY'
import sys
import onnxruntime as ort
from onnx import TensorProto, helper
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
print("onnxruntime", ort.__version__, "from", ort.__file__)
print("available:", ort.get_available_providers())
try:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CUDAExecutionProvider"])
    print("session providers:", s.get_providers())
    sys.exit(0 if s.get_providers()[0] == "CUDAExecutionProvider" else 1)
except Exception as exc:
    print("CUDA session failed:", exc)
    sys.exit(1)
PY
}

join_onnxruntime_gpu() {
  local name wheel
  name=$(awk '{print $2}' benchmarks/gpu/onnxruntime-gpu.sha256)
  wheel="$WORK/$name"
  if [ ! -f "$wheel" ]; then
    cat "$WORK/ort/$name".part-* > "$wheel.tmp" || return 1
    mv "$wheel.tmp" "$wheel"
  fi
  if ! (cd "$WORK" && sha256sum --quiet -c "$OLDPWD/benchmarks/gpu/onnxruntime-gpu.sha256"); then
    log "onnxruntime-gpu parts incomplete or corrupt: carry every part (fetch_wheels.sh)"
    rm -f "$wheel"
    return 1
  fi
  echo "$wheel"
}

install_wheels() {
  local wheels=("$KIT"/whl/*.whl) ort_wheel target=$SITE
  if [ "$DRY_RUN" = 1 ]; then
    # Here the Python is not 3.12: install for cp312 into a scratch target to prove the set
    # installs, but import nothing from it.
    target=$WORK/site-dry
    rm -rf "$target"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$target" \
      --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 \
      "${wheels[@]}" || return 1
    log "dry run: ${#wheels[@]} wheels install for cp312 into $target"
    ort_wheel=$(join_onnxruntime_gpu) || return 1
    log "dry run: joined $(basename "$ort_wheel"), checksum ok"
    return 0
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$target" "${wheels[@]}" || return 1
  export PYTHONPATH="$target:$PWD"
  if probe_cuda >> "$OUT/env.txt" 2>&1; then
    log "the machine's own onnxruntime serves on CUDA: onnxruntime-gpu not needed"
    return 0
  fi
  ort_wheel=$(join_onnxruntime_gpu) || return 1
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$target" "$ort_wheel" || return 1
  log "installed $(basename "$ort_wheel")"
}

# wrk and its libraries from Debian packages, unpacked under /tmp (never into /).
install_wrk() {
  local root=$WORK/wrk deb
  rm -rf "$root" && mkdir -p "$root/bin"
  for deb in "$KIT"/deb/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$root/fs"
    else  # a .deb is an ar archive holding data.tar.*
      "$PYTHON" - "$deb" "$root/fs" <<'PY'
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
pos = 8
while pos < len(data):
    name, size = data[pos:pos + 16].decode().strip(), int(data[pos + 48:pos + 58])
    if name.startswith("data.tar"):
        tarfile.open(fileobj=io.BytesIO(data[pos + 60:pos + 60 + size])).extractall(sys.argv[2])
    pos += 60 + size + size % 2
PY
    fi
  done
  cat > "$root/bin/wrk" <<SH
#!/bin/sh
LD_LIBRARY_PATH="$root/fs/usr/lib/x86_64-linux-gnu:$root/fs/lib/x86_64-linux-gnu" exec "$root/fs/usr/bin/wrk" "\$@"
SH
  chmod +x "$root/bin/wrk"
  export PATH="$root/bin:$PATH"
  local version
  version=$(wrk --version 2>&1 | head -1)  # wrk --version exits 1 after printing its version
  log "wrk: $version"
  [[ $version == wrk* ]]
}

environment() {
  { date; uname -a; nproc; nvidia-smi 2>&1 | head -15; "$PYTHON" --version; } >> "$OUT/env.txt"
}

stash_parts
NV=$(cuda_library_path)
if [ -n "$NV" ]; then export LD_LIBRARY_PATH="$NV${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
if [ "$MODE" = stash ]; then
  if probe_cuda; then log "machine onnxruntime: CUDA works"; else log "machine onnxruntime: no CUDA"; fi
  exit 0
fi
environment
install_wheels || { log "wheel installation failed"; exit 2; }
install_wrk || log "wrk unavailable: the benchmark will stop at its check"
if [ "$DRY_RUN" = 1 ]; then
  PROVIDER=cpu; BENCH_FLAGS=(--dry-run)
else
  PROVIDER=cuda; BENCH_FLAGS=(--duration 6 --raw-seconds 1)
  probe_cuda >> "$OUT/env.txt" 2>&1 || log "WARNING: onnxruntime does not serve on CUDA"
fi
status=0
if [ "$MODE" = run ] || [ "$MODE" = test ]; then
  timeout "$TEST_TIMEOUT" "$PYTHON" -m pytest -m gpu tests/gpu -q -p no:cacheprovider -rs \
    > "$OUT/pytest-gpu.log" 2>&1
  rc=$?; status=$((status | rc)); log "pytest -m gpu exited $rc"; tail -5 "$OUT/pytest-gpu.log"
fi
if [ "$MODE" = run ] || [ "$MODE" = bench ]; then
  PYTHONUNBUFFERED=1 timeout "$BENCH_TIMEOUT" "$PYTHON" -m benchmarks.gpu --provider "$PROVIDER" \
    "${BENCH_FLAGS[@]}" --out "$OUT" > "$OUT/bench-gpu.log" 2>&1
  rc=$?; status=$((status | rc)); log "benchmarks.gpu exited $rc"
  [ -f "$OUT/gpu-report.md" ] && head -12 "$OUT/gpu-report.md"
fi
exit "$status"
