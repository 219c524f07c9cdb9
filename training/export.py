"""ONNX export and validation; every model goes through the same steps (timm's `utils/onnx.py`).

eval mode → export with a dynamic batch axis (and a dynamic sequence axis for sequence models) at a
pinned opset → `onnx.checker` full check → parity against PyTorch on held-out samples and, for
sequence models, a padded mixed-length batch against one-by-one inference. Any miss raises
`ParityError`, and callers publish nothing.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from training.data import SEQUENCE_PAD_VALUE, Split

log = logging.getLogger(__name__)

OPSET = 18
MODEL_FILE = "model.onnx"
OUTPUT_NAME = "logits"
PARITY_TOLERANCE = 1e-4


class ParityError(RuntimeError):
    """The exported graph does not compute what the PyTorch model computes."""


@dataclass(frozen=True)
class ParityReport:
    samples: int
    max_abs_diff: float
    argmax_agreement: float
    padded_vs_single_max_abs_diff: float | None = None  # sequence models only

    def as_dict(self) -> dict[str, float]:
        figures = {
            "samples": float(self.samples),
            "max_abs_diff": self.max_abs_diff,
            "argmax_agreement": self.argmax_agreement,
            "tolerance": PARITY_TOLERANCE,
        }
        if self.padded_vs_single_max_abs_diff is not None:
            figures["padded_vs_single_max_abs_diff"] = self.padded_vs_single_max_abs_diff
        return figures


def input_names(model: nn.Module) -> tuple[str, ...]:
    return ("x", "lengths") if model.input_kind == "sequence" else ("x",)


def export_onnx(model: nn.Module, example: Split, out_dir: Path, opset: int = OPSET) -> Path:
    """Export `model` to `out_dir/model.onnx` (plus any external-data file) and check it.

    `example` provides the tracing inputs; use at least 2 samples so that no axis is specialised.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MODEL_FILE
    model = model.cpu().eval()
    args = tuple(torch.from_numpy(a) for a in example.inputs())
    names = input_names(model)
    sequence = len(names) == 2
    if getattr(model, "onnx_exporter", "dynamo") == "torchscript":
        dynamic_axes = (
            {"x": {0: "batch", 1: "seq"}, "lengths": {0: "batch"}}
            if sequence
            else {"x": {0: "batch"}}
        )
        dynamic_axes[OUTPUT_NAME] = {0: "batch"}
        # The TorchScript exporter chats on stdout; keep library output on logging only. Its
        # warning that RNN_TANH may fail at other batch sizes concerns explicit initial states
        # (we pass none); the parity check below runs batch sizes other than the traced one.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(
                model, args, str(path), dynamo=False, opset_version=opset,
                input_names=list(names), output_names=[OUTPUT_NAME], dynamic_axes=dynamic_axes,
            )  # fmt: skip
    else:
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
        dynamic_shapes = (
            {"x": {0: batch, 1: seq}, "lengths": {0: batch}} if sequence else {"x": {0: batch}}
        )
        # torch.export warns about its own deprecated internals (FutureWarning), about the batch
        # axis being shared by x and lengths (intended) and about RNN weights it re-flattens.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message="# The axis name")
            warnings.filterwarnings(
                "ignore", message="The tensor attributes self.rnn._flat_weights"
            )
            torch.onnx.export(
                model, args, str(path), dynamo=True, opset_version=opset,
                dynamic_shapes=dynamic_shapes, output_names=[OUTPUT_NAME],
            )  # fmt: skip
    onnx.checker.check_model(str(path), full_check=True)
    log.info("exported %s (%s)", path, ", ".join(p.name for p in sorted(out_dir.iterdir())))
    return path


def cpu_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session: ort.InferenceSession, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    feed = {i.name: a for i, a in zip(session.get_inputs(), inputs, strict=True)}
    return np.asarray(session.run(None, feed)[0])


@torch.no_grad()
def _torch_logits(model: nn.Module, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    return model(*(torch.from_numpy(a) for a in inputs)).numpy()


def mixed_length_batch(split: Split, size: int = 4) -> Split:
    """`size` held-out sequences cut to clearly different lengths (…, ⌈L/3⌉, ⌈L/2⌉, 1), padded.

    MNIST-1D sequences all share one length, so the cuts are what makes the batch ragged.
    """
    assert split.lengths is not None
    size = min(size, len(split))
    x = np.full_like(split.x[:size], SEQUENCE_PAD_VALUE)
    lengths = np.empty(size, dtype=np.int64)
    for i in range(size):
        full = int(split.lengths[i])
        lengths[i] = 1 if i == size - 1 else max(1, math.ceil(full / (i + 1)))
        x[i, : lengths[i]] = split.x[i, : lengths[i]]
    return Split(x, split.y[:size], lengths)


def check_parity(
    model: nn.Module, onnx_path: Path, held_out: Split, samples: int = 64
) -> ParityReport:
    """Compare ONNX Runtime with PyTorch; raise `ParityError` on any miss."""
    model = model.cpu().eval()
    session = cpu_session(onnx_path)
    subset = held_out.subset(np.arange(min(samples, len(held_out))))
    expected = _torch_logits(model, subset.inputs())
    got = run_onnx(session, subset.inputs())
    max_diff = float(np.abs(got - expected).max())
    agreement = float((got.argmax(1) == expected.argmax(1)).mean())
    padded_diff = None
    if subset.lengths is not None:
        ragged = mixed_length_batch(held_out)
        batch_out = run_onnx(session, ragged.inputs())
        padded_diff = 0.0
        for i, length in enumerate(ragged.lengths):  # type: ignore[arg-type]
            single = (ragged.x[i : i + 1, :length], ragged.lengths[i : i + 1])  # type: ignore[index]
            alone = run_onnx(session, single)
            padded_diff = max(padded_diff, float(np.abs(batch_out[i] - alone[0]).max()))
        # The padded batch must also match PyTorch on the same padded inputs.
        max_diff = max(
            max_diff, float(np.abs(batch_out - _torch_logits(model, ragged.inputs())).max())
        )
    report = ParityReport(len(subset), max_diff, agreement, padded_diff)
    problems = []
    if not max_diff <= PARITY_TOLERANCE:  # `not ≤` also catches NaN
        problems.append(f"max |onnx - torch| = {max_diff:.3g} > {PARITY_TOLERANCE}")
    if agreement < 1.0:
        problems.append(f"argmax agrees on only {agreement:.1%} of {len(subset)} samples")
    if padded_diff is not None and not padded_diff <= PARITY_TOLERANCE:
        problems.append(f"padded batch vs one-by-one differs by {padded_diff:.3g}")
    if problems:
        raise ParityError(f"{onnx_path}: " + "; ".join(problems))
    log.info("parity ok: %s", report)
    return report
