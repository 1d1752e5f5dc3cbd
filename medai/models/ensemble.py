"""Deep ensembles: several independently trained members whose logits are averaged.

Ensembles of a few small CNNs are cheap on CPU and reliably improve ranking and calibration on small medical
datasets; their spread is also an uncertainty estimate (``member_logits``).
"""

from __future__ import annotations

import torch
from torch import nn

from medai.errors import InvalidInputError
from medai.models.registry import NETWORKS


@NETWORKS.register(
    "ensemble",
    modality="image",
    description="Average of the logits of N independently trained member networks (deep ensemble).",
)
class Ensemble(nn.Module):
    """``size`` members built from the registry entry ``member``; forward returns their mean logits.

    Args:
        member: registry name of the member network.
        size: number of members.
        **member_kwargs: arguments of every member (``in_channels``, ``num_classes``, ``image_size``, ...).
    """

    def __init__(self, member: str = "compact_cnn", size: int = 5, **member_kwargs):
        super().__init__()
        if member == "ensemble":
            raise InvalidInputError("An ensemble's member cannot itself be an ensemble.")
        if size < 1:
            raise InvalidInputError(f"The 'size' parameter of an ensemble must be >= 1; got {size}.")
        self.members = nn.ModuleList(NETWORKS.create(member, **member_kwargs) for _ in range(size))

    def member_logits(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(images) for member in self.members])  # (members, batch, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.member_logits(images).mean(dim=0)  # (batch, classes)
