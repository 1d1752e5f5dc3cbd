"""An ensemble of different series networks (e.g. three GRU-D and a summary-statistics model) in one module.

Each member is built from the registry with its own arguments and trained on its own (the tasks do that, with
each member's own training settings); the ensemble then averages their class probabilities, or their outputs for
regression. Averaging probabilities rather than logits keeps one over-confident member from dominating.
"""

from __future__ import annotations

import torch
from torch import nn

from medai.errors import InvalidInputError, check_choice
from medai.models.registry import NETWORKS

COMBINE = ("probability", "mean")


@NETWORKS.register(
    "series_ensemble",
    modality="series",
    description="Members of any series networks (e.g. 3 GRU-D + 1 summary model), each fitted on its own; class "
    "probabilities (or regression outputs) averaged.",
)
class SeriesEnsemble(nn.Module):
    """Heterogeneous series ensemble.

    Args:
        members: one dict per member: ``{"network": registry name, **that network's arguments}``.
        n_features, n_outputs, n_static: passed to every member.
        combine: ``"probability"``: the output is ``log(mean softmax)`` of the members (valid logits whose softmax
            is the averaged probability); ``"mean"``: the mean of the members' outputs (regression).

    Examples:
        >>> import torch
        >>> ensemble = SeriesEnsemble([{"network": "grud", "hidden": 4}, {"network": "series_summary"}],
        ...                           n_features=3, n_outputs=2)
        >>> mask = torch.ones(2, 5, 3)
        >>> probabilities = ensemble(torch.randn(2, 5, 3), mask, torch.zeros(2, 5, 3)).exp()
        >>> probabilities.shape, bool(torch.allclose(probabilities.sum(dim=1), torch.ones(2)))
        (torch.Size([2, 2]), True)
    """

    name = "series_ensemble"

    def __init__(self, members: list[dict], n_features: int = 37, n_outputs: int = 2, n_static: int = 0,
                 combine: str = "probability"):
        super().__init__()
        check_choice("combine", combine, COMBINE)
        if not isinstance(members, (list, tuple)) or not members:
            raise InvalidInputError(f"The 'members' parameter of {self.name} must be a non-empty list of "
                                    f"{{'network': name, ...}} dicts; got {members!r}.")
        built = []
        for index, spec in enumerate(members):
            if not isinstance(spec, dict) or "network" not in spec:
                raise InvalidInputError(f"Member {index} of {self.name} must be a dict with a 'network' name; got {spec!r}.")
            if spec["network"] == self.name:
                raise InvalidInputError("A series ensemble's member cannot itself be a series ensemble.")
            kwargs = {k: v for k, v in spec.items() if k != "network"}
            built.append(NETWORKS.create(spec["network"], n_features=n_features, n_outputs=n_outputs,
                                         n_static=n_static, **kwargs))
        if combine == "probability" and n_outputs < 2:
            raise InvalidInputError(f"combine='probability' needs n_outputs >= 2 (class scores); got {n_outputs}. "
                                    f"Use combine='mean' for regression.")
        self.members = nn.ModuleList(built)
        self.n_features, self.n_outputs, self.n_static, self.combine = n_features, n_outputs, n_static, combine

    def member_outputs(self, series, mask=None, delta=None, static=None) -> torch.Tensor:
        """Every member's outputs, shape (members, batch, n_outputs)."""
        return torch.stack([member(series, mask, delta, static) for member in self.members])

    def forward(self, series, mask=None, delta=None, static=None) -> torch.Tensor:
        outputs = self.member_outputs(series, mask, delta, static)  # (members, batch, outputs)
        if self.combine == "mean":
            return outputs.mean(dim=0)  # (batch, outputs)
        log_probabilities = torch.log_softmax(outputs, dim=-1)
        return torch.logsumexp(log_probabilities, dim=0) - torch.log(torch.tensor(float(len(self.members))))
