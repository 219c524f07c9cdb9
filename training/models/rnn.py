"""Recurrent classifiers over (B, T, C) with lengths: vanilla tanh RNN, GRU or LSTM.

The classifier reads the hidden state at each sequence's last valid step. Recurrence is causal, so
whatever padding follows that step cannot change it: a padded batch equals one-by-one inference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from torch import Tensor, nn

from training.models.common import Standardize, last_valid_step
from training.models.registry import register_model

Cell = Literal["rnn", "gru", "lstm"]
_CELLS: dict[str, Callable[..., nn.Module]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class RNNClassifier(nn.Module):
    input_kind = "sequence"

    def __init__(
        self,
        cell: Cell = "gru",
        num_classes: int = 10,
        in_channels: int = 1,
        hidden: int = 128,
        layers: int = 1,
        dropout: float = 0.1,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of {sorted(_CELLS)}")
        self.norm = Standardize(
            mean or [0.0] * in_channels, std or [1.0] * in_channels, channel_dim=-1
        )
        # nn.RNN is h_t = tanh(W_ih·x_t + b_ih + W_hh·h_{t-1} + b_hh).
        self.rnn = _CELLS[cell](
            in_channels,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        # torch.export cannot trace nn.RNN over a dynamic sequence axis (it unrolls the loop), so
        # the vanilla cell goes through the TorchScript exporter, which emits ONNX's own RNN op.
        self.onnx_exporter = "torchscript" if cell == "rnn" else "dynamo"
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        outputs, _ = self.rnn(self.norm(x))  # (B, T, hidden)
        return self.head(self.dropout(last_valid_step(outputs, lengths)))  # (B, classes)


@register_model("sequence", tiny={"hidden": 8})
def rnn(**config: object) -> nn.Module:
    return RNNClassifier(**{"cell": "rnn", **config})  # type: ignore[arg-type]


@register_model("sequence", tiny={"hidden": 8})
def gru(**config: object) -> nn.Module:
    return RNNClassifier(**{"cell": "gru", **config})  # type: ignore[arg-type]


@register_model("sequence", tiny={"hidden": 8})
def lstm(**config: object) -> nn.Module:
    return RNNClassifier(**{"cell": "lstm", **config})  # type: ignore[arg-type]
