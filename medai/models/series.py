"""Time series models: the parts every series network shares and the ``SeriesModel`` wrapper.

A series network maps ``(series, mask=None, delta=None, static=None)`` to outputs of shape (batch, n_outputs):

- ``series``: standardised, forward-filled values, shape (batch, time, n_features);
- ``mask``: 1 where a value was observed, 0 where it was filled in, shape (batch, time, n_features);
- ``delta``: (scaled) time since each variable was last observed, shape (batch, time, n_features);
- ``static``: per-record features such as age or sex, shape (batch, n_static).

Inputs a network was not built to use are ignored, like any other batch key it does not read. ``SeriesModel`` turns a
network into a medai model (batch dict in, ``{"logits", "loss"?}`` out) for classification or regression.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from medai.errors import InvalidInputError, check_choice

TASK_TYPES = ("binary", "multiclass", "regression")
REGRESSION_LOSSES = ("mse", "huber", "l1")
_MINIMUM = {"n_features": 1, "n_outputs": 1, "n_static": 0, "hidden": 1, "num_layers": 1, "width": 1, "kernel_size": 1}


def check_network_args(network: str, **values) -> None:
    """Validate sizes (ints at or above their minimum) and ``dropout`` (a float in [0, 1)) of a series network."""
    for name, value in values.items():
        if name == "dropout":
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise InvalidInputError(f"The 'dropout' parameter of {network} must be a float in [0, 1); got {value!r}.")
        elif not isinstance(value, int) or isinstance(value, bool) or value < _MINIMUM[name]:
            raise InvalidInputError(
                f"The '{name}' parameter of {network} must be an int >= {_MINIMUM[name]}; got {value!r}."
            )


def series_inputs(
    network: str,
    n_features: int,
    series: torch.Tensor,
    mask: torch.Tensor | None = None,
    delta: torch.Tensor | None = None,
    *,
    use_mask: bool = False,
    use_delta: bool = False,
) -> torch.Tensor:
    """Check shapes and concatenate the series with its mask and/or delta along the variable axis.

    Returns:
        Tensor of shape (batch, time, n_features * (1 + use_mask + use_delta)).

    Raises:
        InvalidInputError: if a tensor has the wrong shape, or the network needs a mask or delta the batch lacks.
    """
    if series.dim() != 3 or series.shape[-1] != n_features:
        raise InvalidInputError(
            f"{network} expects a series of shape (batch, time, {n_features}); got {tuple(series.shape)}."
        )
    parts = [series]
    for key, tensor, needed in (("mask", mask, use_mask), ("delta", delta, use_delta)):
        if not needed:
            continue
        if tensor is None:
            raise InvalidInputError(f"{network} was built with use_{key}=True but the batch has no {key!r}.")
        if tensor.shape != series.shape:
            raise InvalidInputError(
                f"The {key!r} of {network} must have the series' shape {tuple(series.shape)}; got {tuple(tensor.shape)}."
            )
        parts.append(tensor.to(series.dtype))
    return torch.cat(parts, dim=-1) if len(parts) > 1 else series  # (batch, time, width)


class OutputHead(nn.Module):
    """Dropout, then a dense layer over a summary vector and (optionally) the static features.

    Args:
        width: width of the summary vector (a final hidden state, pooled features).
        n_static: number of static features concatenated before the dense layer (0: none).
        n_outputs: number of outputs.
        dropout: dropout on the summary vector.
    """

    def __init__(self, width: int, n_static: int, n_outputs: int, dropout: float):
        super().__init__()
        self.n_static = n_static
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(width + n_static, n_outputs)

    def forward(self, summary: torch.Tensor, static: torch.Tensor | None = None) -> torch.Tensor:
        summary = self.dropout(summary)  # (batch, width)
        if self.n_static:
            if static is None or static.shape != (len(summary), self.n_static):
                got = "none" if static is None else tuple(static.shape)
                raise InvalidInputError(f"Expected 'static' features of shape ({len(summary)}, {self.n_static}); got {got}.")
            summary = torch.cat([summary, static.to(summary.dtype)], dim=1)  # (batch, width + n_static)
        return self.linear(summary)  # (batch, n_outputs)


class SeriesModel(nn.Module):
    """Batch dict in, ``{"logits", "loss"?}`` out, for any series network.

    Classification: ``logits`` are class scores and the loss is (weighted) cross-entropy on int64 class ids.
    Regression: the network predicts standardised targets, the loss (MSE or Huber) is computed on standardised
    targets over the observed ones only (NaN marks a missing target; a batch without any gives a zero loss), and
    ``logits`` are predictions in the targets' original units, so ``Trainer.predict`` returns real values.

    Args:
        network: a series network with an ``n_outputs`` attribute (every registered one has it).
        task_type: ``"binary"``, ``"multiclass"`` or ``"regression"``.
        class_weight: loss weight per class, shape (n_outputs,); classification only.
        target_mean: mean of each regression target on the training split, shape (n_outputs,); default 0.
        target_std: standard deviation of each regression target on the training split, shape (n_outputs,); default 1.
        regression_loss: ``"mse"``, ``"huber"`` (on standardised targets, threshold 1) or ``"l1"`` (absolute error:
            predicts the conditional median, what a mean absolute error rewards).
        input_key: the batch key holding the series.

    Examples:
        >>> import torch
        >>> from medai.models import NETWORKS
        >>> network = NETWORKS.create("gru", n_features=3, n_outputs=1, hidden=8)
        >>> model = SeriesModel(network, "regression", target_mean=[70.0], target_std=[10.0])
        >>> batch = {"series": torch.randn(4, 5, 3), "label": torch.tensor([[60.0], [float("nan")], [75.0], [80.0]])}
        >>> output = model(batch)
        >>> output["logits"].shape, output["loss"].dim()
        (torch.Size([4, 1]), 0)
    """

    def __init__(
        self,
        network: nn.Module,
        task_type: str = "binary",
        class_weight: list[float] | None = None,
        target_mean: list[float] | None = None,
        target_std: list[float] | None = None,
        regression_loss: str = "mse",
        input_key: str = "series",
    ):
        super().__init__()
        check_choice("task_type", task_type, TASK_TYPES)
        check_choice("regression_loss", regression_loss, REGRESSION_LOSSES)
        n_outputs = getattr(network, "n_outputs", None)
        if not isinstance(n_outputs, int):
            raise InvalidInputError("SeriesModel needs a network with an int 'n_outputs' attribute (any registered one).")
        self.network, self.task_type, self.input_key = network, task_type, input_key
        self.regression_loss = regression_loss
        if task_type == "regression":
            if class_weight is not None:
                raise InvalidInputError("The 'class_weight' parameter applies to classification; got it for regression.")
            self.register_buffer("target_mean", _vector("target_mean", target_mean, n_outputs, 0.0))
            self.register_buffer("target_std", _vector("target_std", target_std, n_outputs, 1.0).clamp_min(1e-6))
            self.register_buffer("class_weight", None)
        else:
            if n_outputs < 2 or (task_type == "binary" and n_outputs != 2):
                allowed = "2" if task_type == "binary" else ">= 2"
                raise InvalidInputError(f"A {task_type} SeriesModel needs a network with n_outputs {allowed}; got {n_outputs}.")
            weight = None if class_weight is None else _vector("class_weight", class_weight, n_outputs, 1.0)
            self.register_buffer("class_weight", weight)

    def network_outputs(
        self,
        series: torch.Tensor,
        mask: torch.Tensor | None = None,
        delta: torch.Tensor | None = None,
        static: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Class logits, or regression predictions in original units, shape (batch, n_outputs); what explainers
        (Captum's integrated gradients) differentiate."""
        return self._finish(self._network(series, mask, delta, static))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raw = self._network(batch[self.input_key], batch.get("mask"), batch.get("delta"), batch.get("static"))
        output = {"logits": self._finish(raw)}  # (batch, n_outputs)
        if "label" in batch:
            if self.task_type == "regression":
                output["loss"] = self._regression_loss(raw, batch["label"])
            else:
                output["loss"] = F.cross_entropy(raw, batch["label"].long(), weight=self.class_weight)
        return output

    def _network(self, series, mask, delta, static) -> torch.Tensor:
        # cuDNN cannot backpropagate through an RNN in eval mode (explainers do that); fall back to native kernels.
        fallback = series.is_cuda and not self.training and torch.is_grad_enabled()
        with torch.backends.cudnn.flags(enabled=False) if fallback else contextlib.nullcontext():
            return self.network(series.float(), mask, delta, static)  # (batch, n_outputs)

    def _finish(self, raw: torch.Tensor) -> torch.Tensor:
        if self.task_type != "regression":
            return raw
        return raw * self.target_std + self.target_mean  # (batch, n_outputs) in original units

    def _regression_loss(self, raw: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if targets.numel() != raw.numel():
            raise InvalidInputError(
                f"Regression targets must have shape ({len(raw)}, {raw.shape[1]}); got {tuple(targets.shape)}."
            )
        targets = targets.reshape(raw.shape).to(raw.dtype)  # (batch, n_outputs), NaN where missing
        observed = torch.isfinite(targets)
        scaled = torch.where(observed, (targets - self.target_mean) / self.target_std, 0.0)
        error = torch.where(observed, raw - scaled, 0.0)  # (batch, n_outputs), 0 where missing
        if self.regression_loss == "huber":
            per_value = F.huber_loss(error, torch.zeros_like(error), reduction="none", delta=1.0)
        elif self.regression_loss == "l1":
            per_value = error.abs()
        else:
            per_value = error.square()
        return per_value.sum() / observed.sum().clamp_min(1)


def _vector(name: str, values, size: int, default: float) -> torch.Tensor:
    if values is None:
        return torch.full((size,), default, dtype=torch.float32)
    vector = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
    if len(vector) != size or not torch.isfinite(vector).all():
        finite = "" if torch.isfinite(vector).all() else ", not all finite"
        raise InvalidInputError(
            f"The '{name}' parameter must hold {size} finite values (one per output); got {len(vector)}{finite}."
        )
    return vector
