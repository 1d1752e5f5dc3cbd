"""A summary-statistics network for clinical time series: per-variable statistics, then a linear layer or small MLP.

The network computes, inside ``forward``, what a logistic regression on hand-made summary features would read:
for every variable the mean, minimum, maximum and last of its observed (standardised) values, and how often it was
observed; then a linear layer (``hidden=0``, a logistic regression) or a one-hidden-layer MLP over those features
and the static ones. Being a torch module, it sits in the same ensemble and bundle as the recurrent networks and
Captum differentiates it the same way.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from medai.errors import InvalidInputError
from medai.models.registry import NETWORKS
from medai.models.series import check_network_args, series_inputs

STATISTICS = ("mean", "min", "max", "last", "first", "std", "count", "recent_mean")
DEFAULT_STATISTICS = ("mean", "min", "max", "last", "count")
RECENT_FRACTION = 0.25  # "recent_mean": the mean over the last quarter of the window


@NETWORKS.register(
    "series_summary",
    modality="series",
    description="Per-variable statistics of the observed values (mean, min, max, last, count) and the static "
    "features into a linear layer (logistic regression) or a small MLP. Needs 'mask'.",
)
class SeriesSummary(nn.Module):
    """Summary statistics of each variable's observed values, normalised, into a linear layer or an MLP.

    Unobserved variables get 0 for every value statistic (the training mean after standardisation) and 0 for
    ``count``, which is ``log(1 + observations) / log(1 + time)``. The features are normalised by a BatchNorm
    without learned scale (its running statistics come from the training batches), which is what lets a plain
    linear layer train like a logistic regression on standardised features.

    Args:
        n_features: variables per time step.
        n_outputs: classes for classification, targets for regression.
        n_static: static features appended to the statistics (0: none).
        hidden: units of the hidden layer; 0 makes the model linear in the statistics.
        dropout: dropout on the statistics (and on the hidden layer).
        statistics: which statistics to compute, from :data:`STATISTICS`.

    Examples:
        >>> import torch
        >>> network = SeriesSummary(n_features=3, n_outputs=2, n_static=1)
        >>> mask = (torch.rand(4, 6, 3) > 0.5).float()
        >>> network(torch.randn(4, 6, 3), mask, static=torch.randn(4, 1)).shape
        torch.Size([4, 2])
    """

    name = "series_summary"

    def __init__(self, n_features: int = 37, n_outputs: int = 2, n_static: int = 0, hidden: int = 0,
                 dropout: float = 0.0, statistics: list[str] | tuple[str, ...] = DEFAULT_STATISTICS):
        super().__init__()
        check_network_args(self.name, n_features=n_features, n_outputs=n_outputs, n_static=n_static, dropout=dropout)
        if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 0:
            raise InvalidInputError(f"The 'hidden' parameter of {self.name} must be an int >= 0; got {hidden!r}.")
        unknown = [s for s in statistics if s not in STATISTICS]
        if unknown or not statistics:
            raise InvalidInputError(f"The 'statistics' parameter of {self.name} must list some of {list(STATISTICS)}; "
                                    f"got {list(statistics)!r}.")
        self.n_features, self.n_outputs, self.n_static = n_features, n_outputs, n_static
        self.statistics = tuple(statistics)
        width = n_features * len(self.statistics) + n_static
        self.normalise = nn.BatchNorm1d(width, affine=False)
        self.dropout = nn.Dropout(dropout)
        if hidden:
            self.head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_outputs))
        else:
            self.head = nn.Linear(width, n_outputs)

    def summarise(self, series: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-variable statistics, shape (batch, n_features * len(statistics)), statistic-major.

        Args:
            series: forward-filled standardised values, shape (batch, time, n_features).
            mask: 1 where observed, shape (batch, time, n_features).
        """
        count = mask.sum(dim=1)  # (batch, features)
        seen = count > 0
        denominator = count.clamp_min(1.0)
        mean = (series * mask).sum(dim=1) / denominator  # (batch, features)
        observed = mask > 0
        parts = []
        for statistic in self.statistics:
            if statistic == "mean":
                value = mean
            elif statistic == "min":
                value = torch.where(observed, series, torch.full_like(series, math.inf)).amin(dim=1)
            elif statistic == "max":
                value = torch.where(observed, series, torch.full_like(series, -math.inf)).amax(dim=1)
            elif statistic == "last":
                value = series[:, -1]  # forward-filled: the last observed value
            elif statistic == "first":
                first = torch.argmax(mask, dim=1, keepdim=True)  # (batch, 1, features) first observed step
                value = series.gather(1, first)[:, 0]
            elif statistic == "std":
                value = (((series - mean[:, None]) ** 2 * mask).sum(dim=1) / denominator).clamp_min(1e-8).sqrt()
            elif statistic == "recent_mean":
                steps = max(1, round(series.shape[1] * RECENT_FRACTION))
                recent = mask[:, -steps:]
                value = (series[:, -steps:] * recent).sum(dim=1) / recent.sum(dim=1).clamp_min(1.0)
                value = torch.where(recent.sum(dim=1) > 0, value, series[:, -1])
            else:  # count
                parts.append(torch.log1p(count) / math.log1p(series.shape[1]))
                continue
            parts.append(torch.where(seen, value, torch.zeros_like(value)))
        return torch.cat(parts, dim=1)  # (batch, features * statistics)

    def forward(self, series, mask=None, delta=None, static=None) -> torch.Tensor:
        inputs = series_inputs(self.name, self.n_features, series, mask, use_mask=True)
        series, mask = inputs.split(self.n_features, dim=-1)  # (batch, time, features) each, checked
        features = self.summarise(series, mask)
        if self.n_static:
            if static is None or static.shape != (len(series), self.n_static):
                got = "none" if static is None else tuple(static.shape)
                raise InvalidInputError(f"Expected 'static' features of shape ({len(series)}, {self.n_static}); got {got}.")
            features = torch.cat([features, static.to(features.dtype)], dim=1)  # (batch, width)
        return self.head(self.dropout(self.normalise(features)))  # (batch, n_outputs)
