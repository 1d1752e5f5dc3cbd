"""A 1-D convolutional network for ECG signals (and other densely sampled series), input (batch, time, leads)."""

from __future__ import annotations

import torch
from torch import nn

from medai.models.registry import NETWORKS
from medai.models.series import OutputHead, check_network_args, series_inputs


def _block(in_channels: int, out_channels: int, kernel_size: int) -> list[nn.Module]:
    """Conv-BN-ReLU, then halve the time axis (ceil mode: any length >= 1 works)."""
    return [
        nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm1d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool1d(2, ceil_mode=True),
    ]


@NETWORKS.register(
    "ecg_cnn1d",
    modality="series",
    description="Four 1-D conv blocks (conv-BN-ReLU-max-pool, 32-64-128-128 channels), global average pooling, "
    "dense output; for ECG leads.",
)
class ECGConvNet(nn.Module):
    """Four conv blocks over the time axis, global average pooling, dropout and a dense layer.

    Args:
        n_features: leads (or variables) per time step; 12 for a standard ECG.
        n_outputs: classes for classification, targets for regression.
        n_static: static features (age, sex) concatenated to the pooled features before the dense layer (0: none).
        width: channels of the first block; the next blocks have 2x, 4x and 4x as many.
        kernel_size: temporal kernel size of every convolution (odd keeps the length before pooling).
        dropout: dropout before the dense layer.
        use_mask: also feed the observation mask as channels.
        use_delta: also feed the time since the last observation as channels.

    Examples:
        >>> import torch
        >>> network = ECGConvNet(n_features=12, n_outputs=5, width=8)
        >>> network(torch.randn(2, 1000, 12)).shape
        torch.Size([2, 5])
    """

    name = "ecg_cnn1d"

    def __init__(
        self, n_features: int = 12, n_outputs: int = 2, n_static: int = 0, width: int = 32, kernel_size: int = 7,
        dropout: float = 0.3, use_mask: bool = False, use_delta: bool = False,
    ):  # fmt: skip
        super().__init__()
        check_network_args(
            self.name, n_features=n_features, n_outputs=n_outputs, n_static=n_static, width=width,
            kernel_size=kernel_size, dropout=dropout,
        )  # fmt: skip
        self.n_features, self.n_outputs, self.n_static = n_features, n_outputs, n_static
        self.use_mask, self.use_delta = bool(use_mask), bool(use_delta)
        channels = [n_features * (1 + self.use_mask + self.use_delta), width, 2 * width, 4 * width, 4 * width]
        layers = [layer for i in range(4) for layer in _block(channels[i], channels[i + 1], kernel_size)]
        self.features = nn.Sequential(*layers)
        self.head = OutputHead(channels[-1], n_static, n_outputs, dropout)

    def forward(self, series, mask=None, delta=None, static=None) -> torch.Tensor:
        inputs = series_inputs(
            self.name, self.n_features, series, mask, delta, use_mask=self.use_mask, use_delta=self.use_delta
        )  # (batch, time, channels)
        features = self.features(inputs.transpose(1, 2))  # (batch, 4 * width, ceil(time / 16))
        return self.head(features.mean(dim=2), static)  # (batch, n_outputs)
