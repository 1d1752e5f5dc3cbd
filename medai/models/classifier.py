"""Classifier: wraps any registered network with input standardisation and a (weighted) cross-entropy loss.

Composition, not inheritance: the network is built from the registry and passed in, so a saved config
(``{"network": name, "network_kwargs": {...}, ...}``) rebuilds exactly the same model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Classifier(nn.Module):
    """Batch dict in, ``{"logits", "loss"?}`` out.

    Args:
        network: maps inputs of shape (batch, channels, ...) to logits of shape (batch, num_classes).
        input_key: the batch key holding the inputs (e.g. ``"image"``).
        mean: per-channel mean fitted on the training split, shape (channels,).
        std: per-channel standard deviation fitted on the training split, shape (channels,).
        class_weight: optional loss weight per class, shape (num_classes,).
        channels_last: run 4-D inputs in channels-last memory format (faster for convolutions on CPU).
        test_time_flip: in eval mode, average the logits of each image and its left-right mirror image
            (use it when training augmentation flips images too).
    """

    def __init__(
        self,
        network: nn.Module,
        input_key: str,
        mean: list[float],
        std: list[float],
        class_weight: list[float] | None = None,
        channels_last: bool = False,
        test_time_flip: bool = False,
    ):
        super().__init__()
        self.network = network.to(memory_format=torch.channels_last) if channels_last else network
        self.input_key = input_key
        self.channels_last = channels_last
        self.test_time_flip = test_time_flip
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).clamp_min(1e-6))
        weight = None if class_weight is None else torch.tensor(class_weight, dtype=torch.float32)
        self.register_buffer("class_weight", weight)

    def standardise(self, inputs: torch.Tensor) -> torch.Tensor:
        """(inputs - mean) / std per channel (dimension 1)."""
        shape = (1, -1) + (1,) * (inputs.dim() - 2)
        return (inputs - self.mean.view(shape)) / self.std.view(shape)

    def network_logits(self, raw_inputs: torch.Tensor) -> torch.Tensor:
        """Logits of the network alone (no test-time flip) for raw inputs; what explainers differentiate."""
        inputs = self.standardise(raw_inputs.float())  # (batch, channels, ...)
        if self.channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return self.network(inputs)  # (batch, num_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raw = batch[self.input_key]
        logits = self.network_logits(raw)
        if self.test_time_flip and not self.training:
            logits = (logits + self.network_logits(raw.flip(-1))) / 2
        output = {"logits": logits}
        if "label" in batch:
            output["loss"] = F.cross_entropy(logits, batch["label"], weight=self.class_weight)
        return output
