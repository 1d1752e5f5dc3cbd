"""Molecular property models: a fingerprint MLP, the task wrapper with a masked multi-task loss, deep ensembles.

Any molecule network (``dmpnn``, ``fingerprint_mlp``) maps a batch dict to raw outputs of shape (batch, n_tasks).
:class:`MoleculeModel` turns it into a medai model for a mix of binary classification and regression tasks:

- classification tasks: ``logits`` are log-odds; the loss is binary cross-entropy;
- regression tasks: the network predicts standardised targets (mean and std of the training split, buffers saved
  with the weights); the loss is the squared error on that scale and ``logits`` are in original units;
- NaN marks a missing label; the loss is the mean over the observed (molecule, task) entries only, and a batch
  without any gives a zero (still differentiable) loss.

:class:`MoleculeEnsemble` averages independently trained members (probabilities for classification tasks, values
for regression ones) and reports their spread as the uncertainty of each prediction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medai.errors import InvalidInputError
from medai.models.mpnn import feed_forward
from medai.models.registry import NETWORKS

TASK_TYPES = ("classification", "regression")


@NETWORKS.register(
    "fingerprint_mlp",
    modality="molecule",
    description="MLP on Morgan fingerprint counts (log1p-scaled), optional extra molecule features.",
)
class FingerprintMLP(nn.Module):
    """Feed-forward network on ``log1p(fingerprint)`` (batch, n_bits) and optional ``molecule_features``.

    Args:
        n_outputs: number of tasks.
        n_bits: fingerprint length.
        hidden: width of the hidden layers.
        n_layers: number of hidden layers.
        dropout: dropout before every linear layer.
        n_extra: width of the extra molecule features (0: none).
    """

    def __init__(self, n_outputs: int = 1, n_bits: int = 2048, hidden: int = 512, n_layers: int = 2,
                 dropout: float = 0.2, n_extra: int = 0):
        super().__init__()
        for name, value, low in (("n_outputs", n_outputs, 1), ("n_bits", n_bits, 1), ("hidden", hidden, 1),
                                 ("n_layers", n_layers, 0), ("n_extra", n_extra, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidInputError(f"The '{name}' parameter of fingerprint_mlp must be an int >= {low}; got {value!r}.")
        self.n_outputs, self.n_bits, self.n_extra = n_outputs, n_bits, n_extra
        self.body = feed_forward(n_bits + n_extra, hidden, n_layers, n_outputs, dropout)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = torch.log1p(batch["fingerprint"].float())  # (batch, n_bits)
        if self.n_extra:
            inputs = torch.cat([inputs, batch["molecule_features"].float()], dim=1)  # (batch, n_bits + n_extra)
        return self.body(inputs)  # (batch, n_outputs)


class MoleculeModel(nn.Module):
    """Batch dict in, ``{"logits", "loss"?}`` out, for any molecule network and any mix of task types.

    Args:
        network: maps a batch dict to raw outputs (batch, n_tasks); has an int ``n_outputs``.
        task_types: ``"classification"`` or ``"regression"`` per task.
        target_mean: training mean per task (used for regression tasks), shape (n_tasks,); default 0.
        target_std: training standard deviation per task, shape (n_tasks,); default 1.

    Examples:
        >>> import torch
        >>> network = NETWORKS.create("fingerprint_mlp", n_outputs=2, n_bits=8, hidden=4)
        >>> model = MoleculeModel(network, ["classification", "regression"], [0.0, 5.0], [1.0, 2.0])
        >>> batch = {"fingerprint": torch.ones(3, 8), "label": torch.tensor([[1.0, 4.0], [float("nan"), 6.0], [0.0, float("nan")]])}
        >>> output = model(batch)
        >>> output["logits"].shape, output["loss"].dim()
        (torch.Size([3, 2]), 0)
    """

    def __init__(self, network: nn.Module, task_types, target_mean=None, target_std=None):
        super().__init__()
        task_types = list(task_types)
        bad = [t for t in task_types if t not in TASK_TYPES]
        if bad or getattr(network, "n_outputs", None) != len(task_types):
            raise InvalidInputError(f"MoleculeModel needs one task type ({', '.join(TASK_TYPES)}) per network output "
                                    f"({getattr(network, 'n_outputs', None)}); got {task_types}.")
        self.network, self.task_types = network, task_types
        n = len(task_types)
        mean = torch.zeros(n) if target_mean is None else torch.as_tensor(target_mean, dtype=torch.float32)
        std = torch.ones(n) if target_std is None else torch.as_tensor(target_std, dtype=torch.float32)
        regression = torch.tensor([t == "regression" for t in task_types])
        self.register_buffer("regression", regression)
        self.register_buffer("target_mean", torch.where(regression, mean, torch.zeros(n)))
        self.register_buffer("target_std", torch.where(regression, std.clamp_min(1e-6), torch.ones(n)))

    def outputs(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw network outputs -> log-odds (classification) and original units (regression), (batch, n_tasks)."""
        return raw * self.target_std + self.target_mean  # identity on classification columns

    def predictions(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Probabilities (classification) and values in original units (regression), shape (batch, n_tasks)."""
        outputs = self.outputs(self.network(batch))
        return torch.where(self.regression, outputs, torch.sigmoid(outputs))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raw = self.network(batch)  # (batch, n_tasks)
        output = {"logits": self.outputs(raw)}
        if "label" in batch:
            output["loss"] = self.loss(raw, batch["label"])
        return output

    def loss(self, raw: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean loss over the observed entries of ``labels`` (batch, n_tasks), NaN = missing."""
        labels = labels.to(raw.dtype).reshape(raw.shape)
        observed = torch.isfinite(labels)
        filled = torch.where(observed, labels, torch.zeros_like(labels))
        scaled = (filled - self.target_mean) / self.target_std  # (batch, n_tasks)
        squared = (raw - scaled).square()
        binary = F.binary_cross_entropy_with_logits(raw, filled.clamp(0, 1), reduction="none")
        per_entry = torch.where(self.regression, squared, binary) * observed
        return per_entry.sum() / observed.sum().clamp_min(1)


class MoleculeEnsemble(nn.Module):
    """Members trained on their own; ``logits`` of the mean prediction, ``spread`` = std across members.

    Classification columns average probabilities (``logits`` = their log-odds), regression columns average values.
    """

    def __init__(self, members: list[MoleculeModel]):
        super().__init__()
        if not members:
            raise InvalidInputError("An ensemble needs at least one member.")
        self.members = nn.ModuleList(members)
        self.register_buffer("regression", members[0].regression.clone())

    def member_predictions(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Every member's predictions, shape (members, batch, n_tasks)."""
        return torch.stack([member.predictions(batch) for member in self.members])

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        each = self.member_predictions(batch)  # (members, batch, n_tasks)
        mean = each.mean(dim=0)
        clipped = mean.clamp(1e-7, 1 - 1e-7)
        logits = torch.where(self.regression, mean, torch.log(clipped) - torch.log1p(-clipped))
        spread = each.std(dim=0, unbiased=False) if len(self.members) > 1 else torch.zeros_like(mean)
        output = {"logits": logits, "spread": spread}
        if "label" in batch:
            output["loss"] = torch.stack([m(batch)["loss"] for m in self.members]).mean()
        return output
