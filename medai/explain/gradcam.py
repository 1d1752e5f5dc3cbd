"""Grad-CAM heat maps (Captum's LayerGradCam on the last convolution) overlaid on the input image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from medai.errors import InvalidInputError, require


def last_convolution(network: nn.Module) -> nn.Conv2d:
    """The last ``nn.Conv2d`` of a network: the layer Grad-CAM reads."""
    convolutions = [m for m in network.modules() if isinstance(m, nn.Conv2d)]
    if not convolutions:
        raise InvalidInputError(f"Grad-CAM needs a convolutional network; {type(network).__name__} has no Conv2d layer.")
    return convolutions[-1]


def gradcam(model: nn.Module, image: np.ndarray, target: int) -> np.ndarray:
    """Grad-CAM map for ``target`` on one image.

    For an ensemble the map is ReLU of the summed member maps: the ensemble's logit is the mean of the members',
    so each member's last convolution receives its share of the gradient.

    Args:
        model: a medai Classifier (batch dict in, ``{"logits"}`` out) whose network is a CNN or an ensemble of CNNs.
        image: array of shape (channels, height, width) in [0, 1].
        target: the class index to explain.

    Returns:
        Array of shape (height, width) in [0, 1] (all zeros when no region supports the class).
    """
    attr = require("captum.attr", "explain")
    model = model.eval()
    network = getattr(model, "network", model)
    members = list(network.members) if hasattr(network, "members") else [network]
    if hasattr(model, "network_logits"):
        forward = model.network_logits
    else:
        key = getattr(model, "input_key", "image")

        def forward(images: torch.Tensor) -> torch.Tensor:
            return model({key: images})["logits"]

    inputs = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None].requires_grad_(True)
    cam = sum(
        attr.LayerGradCam(forward, last_convolution(member)).attribute(inputs, target=int(target), relu_attributions=False)
        for member in members
    )
    cam = attr.LayerAttribution.interpolate(cam.clamp_min(0), tuple(image.shape[1:]), interpolate_mode="bilinear")
    heat = cam.detach()[0, 0].clamp_min(0).numpy()  # (height, width)
    peak = heat.max()
    return heat / peak if peak > 0 else heat


def explain_image(model: nn.Module, image: np.ndarray, target: int, out: str | Path, title: str = "") -> Path:
    """Write a PNG with the image and the Grad-CAM overlay side by side; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heat = gradcam(model, image, target)
    picture = image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))
    cmap = "gray" if image.shape[0] == 1 else None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(1, 2, figsize=(6.4, 3.4), dpi=120)
    axes[0].imshow(picture, cmap=cmap, vmin=0, vmax=1)
    axes[0].set_title("input")
    axes[1].imshow(picture, cmap=cmap, vmin=0, vmax=1)
    shown = axes[1].imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear")
    axes[1].set_title("Grad-CAM")
    for axis in axes:
        axis.axis("off")
    figure.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04, label="relevance")
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    tmp = out.with_name(f".{out.name}.partial.png")
    figure.savefig(tmp)
    plt.close(figure)
    tmp.replace(out)
    return out
