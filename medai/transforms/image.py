"""Image augmentation on whole batches (cheap on CPU) and per-channel statistics fitted on the training split."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from medai.errors import InvalidInputError


@dataclass(frozen=True)
class RandomAffine:
    """Random rotation, scaling, translation and horizontal flip, drawn per image from a seeded generator.

    Args:
        rotation_degrees: maximum absolute rotation.
        scale: maximum relative zoom in or out (0.1 means 0.9x to 1.1x).
        translate: maximum shift as a fraction of the image size.
        horizontal_flip: flip half of the images left-right.
        key: batch key of the images, shape (batch, channels, height, width) in [0, 1].
    """

    rotation_degrees: float = 10.0
    scale: float = 0.1
    translate: float = 0.1
    horizontal_flip: bool = True
    key: str = "image"

    def __call__(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        images = batch[self.key]  # (batch, channels, height, width)
        n = images.shape[0]

        def uniform(*shape):  # in [-1, 1), drawn on the CPU generator so results do not depend on the device
            return (torch.rand(*shape, generator=generator) * 2 - 1).to(images.device)

        angle = uniform(n) * math.radians(self.rotation_degrees)
        zoom = 1 + uniform(n) * self.scale
        flip = torch.where(uniform(n) < 0, -1.0, 1.0) if self.horizontal_flip else torch.ones(n, device=images.device)
        theta = torch.zeros(n, 2, 3, device=images.device)
        theta[:, 0, 0] = torch.cos(angle) / zoom * flip
        theta[:, 0, 1] = -torch.sin(angle) / zoom
        theta[:, 1, 0] = torch.sin(angle) / zoom * flip
        theta[:, 1, 1] = torch.cos(angle) / zoom
        theta[:, :, 2] = uniform(n, 2) * 2 * self.translate
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        moved = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
        return {**batch, self.key: moved}

    def to_dict(self) -> dict:
        return asdict(self)


def channel_statistics(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of images of shape (n, channels, height, width)."""
    if images.ndim != 4 or len(images) == 0:
        raise InvalidInputError(f"Expected images of shape (n, channels, height, width); got {images.shape}.")
    if not np.isfinite(images).all():
        raise InvalidInputError("Images contain NaN or infinite values; expected finite pixel values.")
    mean = images.mean(axis=(0, 2, 3), dtype=np.float64)
    std = images.std(axis=(0, 2, 3), dtype=np.float64)
    return mean.tolist(), np.maximum(std, 1e-6).tolist()
