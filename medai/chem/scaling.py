"""Normalisation of molecule-level descriptors by their empirical distribution on the training split.

chemprop's ``rdkit_2d_normalized`` maps every RDKit descriptor through a cumulative distribution fitted on a large
compound library, so heavy-tailed descriptors (``Ipc``, molecular weight, fragment counts) land in [0, 1] without
outliers. :class:`DescriptorScaler` does the same with the training molecules' own distribution: each column goes
through its empirical CDF (mid-ranks at ``n_quantiles`` points, linear in between, clamped outside the training
range); a missing value (NaN) becomes 0.5, the median. Fitted on the training split only and saved as JSON.

Examples:
    >>> import numpy as np
    >>> scaler = DescriptorScaler(n_quantiles=5).fit(np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [100.0, 1.0]]))
    >>> scaler.transform(np.array([[2.0, np.nan], [1000.0, 0.0]])).astype(float).round(3).tolist()
    [[0.333, 0.5], [0.875, 0.375]]
"""

from __future__ import annotations

import numpy as np

from medai.errors import InvalidInputError


class DescriptorScaler:
    """Per-column empirical CDF of the training data (see the module docstring).

    Args:
        n_quantiles: points at which each column's CDF is stored.
    """

    def __init__(self, n_quantiles: int = 101):
        self.n_quantiles = n_quantiles

    def fit(self, values: np.ndarray) -> DescriptorScaler:
        """Fit on training values of shape (n_molecules, n_columns), NaN allowed."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or len(values) < 1:
            raise InvalidInputError(f"DescriptorScaler.fit needs an array of shape (n_molecules, n_columns) with "
                                    f"n_molecules >= 1; got {values.shape}.")
        self.points_, self.levels_ = [], []
        for column in values.T:
            present = np.sort(column[np.isfinite(column)])
            if len(present) == 0:
                self.points_.append([0.0])
                self.levels_.append([0.5])
                continue
            points = np.unique(np.quantile(present, np.linspace(0, 1, self.n_quantiles)))
            below = np.searchsorted(present, points, side="left")
            at_most = np.searchsorted(present, points, side="right")
            self.points_.append(points.tolist())
            self.levels_.append(((below + at_most) / (2.0 * len(present))).tolist())
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Normalised values in [0, 1], float32 of the same shape (n_molecules, n_columns)."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.points_):
            raise InvalidInputError(f"DescriptorScaler was fitted on {len(self.points_)} columns; got values of "
                                    f"shape {values.shape}.")
        out = np.empty(values.shape, dtype=np.float32)
        for j, (points, levels) in enumerate(zip(self.points_, self.levels_)):
            column = values[:, j]
            out[:, j] = np.where(np.isfinite(column), np.interp(np.nan_to_num(column), points, levels), 0.5)
        return out

    def to_dict(self) -> dict:
        return {"method": "empirical CDF of the training split", "n_quantiles": self.n_quantiles,
                "points": self.points_, "levels": self.levels_}

    @classmethod
    def from_dict(cls, data: dict) -> DescriptorScaler:
        scaler = cls(data["n_quantiles"])
        scaler.points_, scaler.levels_ = data["points"], data["levels"]
        return scaler
