"""Convolutional networks for 2-D medical images. Each maps (batch, channels, height, width) to class logits."""

from __future__ import annotations

import torch
from torch import nn

from medai.errors import InvalidInputError, require
from medai.models.registry import NETWORKS


def _check_image_args(in_channels: int, num_classes: int, image_size) -> tuple[int, int]:
    if in_channels < 1:
        raise InvalidInputError(f"in_channels must be >= 1; got {in_channels}.")
    if num_classes < 2:
        raise InvalidInputError(f"num_classes must be >= 2; got {num_classes}.")
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    return int(height), int(width)


@NETWORKS.register(
    "classic_cnn",
    modality="image",
    description="Conv 32-64-128 (3x3, ReLU, 2x2 max-pool), dense 512, softmax; 150x150x3 by default.",
    in_channels=3,
    image_size=150,
)
class ClassicCNN(nn.Module):
    """The classic three-block CNN: Conv(32)-Pool-Conv(64)-Pool-Conv(128)-Pool-Dense(512)-Dense(classes).

    Args:
        in_channels: image channels (1 for grayscale, 3 for RGB).
        num_classes: number of output classes.
        image_size: input height and width (int or pair); the dense layer adapts to it.
        dropout: dropout before the output layer.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, image_size=150, dropout: float = 0.5):
        super().__init__()
        height, width = _check_image_args(in_channels, num_classes, image_size)
        if min(height, width) < 8:
            raise InvalidInputError(f"classic_cnn needs images of at least 8x8 pixels; got {height}x{width}.")
        layers, channels = [], in_channels
        for out in (32, 64, 128):
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = out
        self.features = nn.Sequential(*layers)
        flat = 128 * (height // 8) * (width // 8)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, 512), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(512, num_classes)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))  # (batch, num_classes)


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


@NETWORKS.register(
    "compact_cnn",
    modality="image",
    description="Six 3x3 conv-BN-ReLU layers in three stages, global average pooling; made for 28 px images.",
    in_channels=1,
    image_size=28,
)
class CompactCNN(nn.Module):
    """A small VGG-style CNN for 28 px images (MedMNIST); any size works thanks to global pooling.

    Args:
        in_channels: image channels.
        num_classes: number of output classes.
        image_size: accepted for a uniform signature; the network adapts to any size >= 8.
        width: channels of the first stage (doubled at each of the next two stages).
        dropout: dropout before the output layer.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, image_size=28, width: int = 32, dropout: float = 0.3):
        super().__init__()
        _check_image_args(in_channels, num_classes, image_size)
        w = width
        self.features = nn.Sequential(
            *_conv_bn_relu(in_channels, w), *_conv_bn_relu(w, w), nn.MaxPool2d(2),
            *_conv_bn_relu(w, 2 * w), *_conv_bn_relu(2 * w, 2 * w), nn.MaxPool2d(2),
            *_conv_bn_relu(2 * w, 4 * w), *_conv_bn_relu(4 * w, 4 * w), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * w, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))  # (batch, num_classes)


@NETWORKS.register(
    "resnet18",
    modality="image",
    description="MONAI ResNet-18 (2-D); for images under 64 px the stem is a 3x3 stride-1 conv without max-pool.",
    in_channels=1,
    image_size=28,
)
def resnet18(in_channels: int = 1, num_classes: int = 2, image_size=28) -> nn.Module:
    """MONAI's ResNet-18, with the small-image stem MedMNIST uses for 28 px inputs.

    Args:
        in_channels: image channels.
        num_classes: number of output classes.
        image_size: input size; below 64 px the stem keeps full resolution (3x3 conv, stride 1, no max-pool).
    """
    height, width = _check_image_args(in_channels, num_classes, image_size)
    nets = require("monai.networks.nets", "imaging")
    small = min(height, width) < 64
    return nets.resnet18(
        spatial_dims=2,
        n_input_channels=in_channels,
        num_classes=num_classes,
        conv1_t_size=3 if small else 7,
        conv1_t_stride=1 if small else 2,
        no_max_pool=small,
    )
