"""An ONNX Runtime session wrapped for serving: build, run a batch, warm up, release.

`run` is called from the batcher's worker thread; ONNX Runtime releases the GIL while it computes,
so the event loop keeps accepting requests meanwhile.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from model_store import UnsafeModelError
from model_store.onnx_files import check_external_data
from model_store.schema import Manifest
from service.model_io.datatypes import NUMPY_DTYPES
from service.runtime.cpus import process_cpus
from service.runtime.engine_cache import file_sha256, version_providers
from service.runtime.providers import ProviderChoice
from service.settings import Settings

log = logging.getLogger(__name__)

_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}

# ONNX Runtime's type strings for the inputs whose numpy dtype may differ from the manifest's
# (an fp16 variant keeps fp32 I/O only when exported with keep_io_types).
_ORT_NUMPY = {
    "tensor(float16)": np.float16,
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
}


class OnnxModel:
    def __init__(
        self,
        session: ort.InferenceSession,
        choice: ProviderChoice,
        io_binding: bool,
        output_dtypes: dict[str, np.dtype] | None = None,
        precision: str = "fp32",
    ):
        self._session = session
        self.precision = precision  # of the file the session was built from
        self._on_gpu = choice.on_gpu and session.get_providers()[0] != "CPUExecutionProvider"
        self._io_binding = io_binding and self._on_gpu
        self._device_id = _device_id(choice)
        self.output_names = [o.name for o in session.get_outputs()]
        # A variant whose outputs differ from the manifest's datatypes (fp16 I/O) is cast back,
        # so that clients always get what the model metadata promises.
        self._output_casts = {
            o.name: output_dtypes[o.name]
            for o in session.get_outputs()
            if output_dtypes
            and o.name in output_dtypes
            and o.type in _ORT_NUMPY
            and np.dtype(_ORT_NUMPY[o.type]) != output_dtypes[o.name]
        }
        self._casts = {
            i.name: np.dtype(_ORT_NUMPY[i.type])
            for i in session.get_inputs()
            if i.type in _ORT_NUMPY
        }

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, want in self._casts.items():
            array = inputs.get(name)
            if array is not None and array.dtype != want:
                inputs[name] = array.astype(want)
        if self._io_binding:
            outputs = self._run_bound(inputs)
        else:
            values = self._session.run(self.output_names, inputs)
            outputs = dict(zip(self.output_names, values, strict=True))
        for name, want in self._output_casts.items():
            outputs[name] = outputs[name].astype(want)
        return outputs

    def _run_bound(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inputs copied to the GPU once, outputs left there and copied back once."""
        binding = self._session.io_binding()
        for name, array in inputs.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        for name in self.output_names:
            binding.bind_output(name, "cuda", self._device_id)
        self._session.run_with_iobinding(binding)
        values = binding.copy_outputs_to_cpu()
        return dict(zip(self.output_names, values, strict=True))

    def close(self) -> None:
        """Drops the session: ONNX Runtime frees its memory (host and device) with it."""
        del self._session


def _device_id(choice: ProviderChoice) -> int:
    for provider in choice.providers:
        if isinstance(provider, tuple) and "device_id" in provider[1]:
            return int(provider[1]["device_id"])
    return 0


def model_file_for(manifest: Manifest, precision: str, on_gpu: bool) -> str:
    """The file of the variant the settings ask for, or the main model when there is none."""
    want = ("fp16" if on_gpu else "fp32") if precision == "auto" else precision
    if want == "fp32":
        return manifest.model_file
    for variant in manifest.variants.values():
        if variant.precision == want:
            return variant.file
    log.info(
        "%s v%d has no %s variant; serving %s", manifest.name, manifest.version, want,
        manifest.model_file,
    )  # fmt: skip
    return manifest.model_file


def session_options(settings: Settings) -> ort.SessionOptions:
    options = ort.SessionOptions()
    # A container limited to one CPU still sees its node's cores in its affinity: ONNX Runtime
    # would start a thread per core for a quota of one.
    intra = settings.intra_op_threads or process_cpus().count
    options.intra_op_num_threads = intra
    options.inter_op_num_threads = settings.inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = _OPT_LEVELS[settings.graph_optimization]
    # The arena keeps the buffers of the largest batch a session ever ran for its whole life;
    # without it, a batch's buffers go back to the allocator when it ends (the settings'
    # descriptions point at the measurement behind each default).
    options.enable_cpu_mem_arena = settings.cpu_mem_arena
    options.enable_mem_pattern = settings.mem_pattern
    # ONNX Runtime's own logger writes coloured text lines to stderr, which would break JSON
    # logs; every load or run failure reaches our logs as an exception with its message.
    options.log_severity_level = 4
    # Spinning worker threads would steal the cores the event loop needs between batches.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def load_model(
    version_dir: Path, manifest: Manifest, settings: Settings, choice: ProviderChoice
) -> OnnxModel:
    """Opens the version's model (or the variant the settings ask for) after checking that neither
    it nor its external data leaves the version directory. Custom-op libraries are never
    registered: a model using an unknown op fails here, it never runs code from the store."""
    file = model_file_for(manifest, settings.precision, choice.on_gpu)
    path = version_dir / file
    if not path.resolve().is_relative_to(version_dir.resolve()):
        raise UnsafeModelError(f"model file {path.name!r} is outside the version directory")
    check_external_data(path, version_dir)
    providers = version_providers(choice, file_sha256(manifest, file))
    session = ort.InferenceSession(
        str(path), sess_options=session_options(settings), providers=providers
    )
    promised = {t.name: NUMPY_DTYPES[t.datatype] for t in manifest.outputs}
    return OnnxModel(session, choice, settings.io_binding, promised, _precision_of(manifest, file))


def _precision_of(manifest: Manifest, file: str) -> str:
    """The main model file is fp32 (what training exports); a variant says its own."""
    for variant in manifest.variants.values():
        if variant.file == file:
            return variant.precision
    return "fp32"
