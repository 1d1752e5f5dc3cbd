"""Metrics of drug-target affinity regression: concordance index, MSE and r_m^2 (as reported by DeepDTA).

MAE, RMSE and R^2 come from :func:`medai.engine.metrics.regression_metrics`; :func:`affinity_metrics` adds these.

- :func:`concordance_index`: over all pairs with different true affinities, the share whose predictions are in
  the same order, ties in prediction counting one half (Harrell's C; GraphDTA's ``ci``). Computed exactly in
  O(n log^2 n) by counting inversions: the KIBA test fold (about 20,000 pairs) takes well under a second.
  DeepDTA's ``get_cindex`` loops over ``j < i`` and keeps only pairs with ``y[i] > y[j]``, i.e. only the pairs
  whose later item has the larger target: a data-order-dependent half of the comparable pairs (0 pairs, and a
  result of 0, for targets sorted in decreasing order). Its values agree with this one only on average.
- :func:`rm2`: ``r2 * (1 - sqrt(|r2 - r0^2|))`` (Roy et al. 2013), with ``r2`` the squared Pearson correlation and
  ``r0^2 = 1 - sum((y - k p)^2) / sum((y - mean(y))^2)``, ``k = sum(y p) / sum(p^2)`` (regression through the
  origin). DeepDTA's released ``get_rm2`` squares both terms inside the root, ``sqrt(|r2*r2 - r02*r02|)``,
  unlike its paper; pass ``deepdta_code=True`` to reproduce numbers computed with that code.

Examples:
    >>> import numpy as np
    >>> concordance_index(np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.3, 0.2]))
    0.6666666666666666
    >>> round(rm2(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.1, 1.9, 3.2, 3.8])), 4)
    0.9437
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import mean_squared_error

from medai.engine.metrics import regression_metrics
from medai.errors import InvalidInputError


def concordance_index(targets: np.ndarray, predictions: np.ndarray) -> float:
    """Concordance index of predictions against targets, both of shape (n,); NaN when no pair is comparable."""
    targets, predictions = _check(targets, predictions)
    n = len(targets)
    order = np.lexsort((predictions, targets))  # by target, then prediction: ties in target hold no inversion
    ranks = np.unique(predictions, return_inverse=True)[1].reshape(-1)[order]
    discordant = _count_inversions(ranks)
    comparable = n * (n - 1) // 2 - _tied_pairs(targets)
    tied_predictions = _tied_pairs(predictions) - _tied_pairs(targets, predictions)  # tied in p, not in y
    if comparable == 0:
        return math.nan
    concordant = comparable - discordant - tied_predictions
    return (concordant + 0.5 * tied_predictions) / comparable


def mse(targets: np.ndarray, predictions: np.ndarray) -> float:
    """Mean squared error (scikit-learn's)."""
    targets, predictions = _check(targets, predictions)
    return float(mean_squared_error(targets, predictions))


def rm2(targets: np.ndarray, predictions: np.ndarray, deepdta_code: bool = False) -> float:
    """The r_m^2 index of external predictivity (see the module docstring); NaN when a variance is zero."""
    targets, predictions = _check(targets, predictions)
    y, p = targets - targets.mean(), predictions - predictions.mean()
    denominator = float((y * y).sum() * (p * p).sum())
    if denominator == 0.0 or not (predictions * predictions).sum():
        return math.nan
    r2 = float((y * p).sum() ** 2 / denominator)  # squared Pearson correlation
    k = float((targets * predictions).sum() / (predictions * predictions).sum())  # slope through the origin
    r02 = 1.0 - float(((targets - k * predictions) ** 2).sum() / (y * y).sum())
    gap = abs(r2 * r2 - r02 * r02) if deepdta_code else abs(r2 - r02)
    return r2 * (1.0 - math.sqrt(gap))


def affinity_metrics(predictions: np.ndarray, targets: np.ndarray) -> dict:
    """MSE, RMSE, MAE, R^2, concordance index (``ci``) and ``rm2`` of affinity predictions, JSON-ready.

    Args:
        predictions: array of shape (n_pairs,).
        targets: array of shape (n_pairs,), finite.

    Returns:
        ``{"mse", "rmse", "mae", "r2", "ci", "rm2", "n_samples"}``; undefined values are None.
    """
    targets, predictions = _check(targets, predictions)
    result = regression_metrics(predictions, targets)
    values = {"mse": mse(targets, predictions), "ci": concordance_index(targets, predictions),
              "rm2": rm2(targets, predictions)}
    return {**{k: (None if v is None or not math.isfinite(v) else float(v)) for k, v in values.items()}, **result}


def _check(targets, predictions) -> tuple[np.ndarray, np.ndarray]:
    targets, predictions = (np.asarray(a, dtype=np.float64) for a in (targets, predictions))
    targets, predictions = (a.reshape(-1) if a.ndim == 2 and a.shape[1] == 1 else a for a in (targets, predictions))
    if targets.ndim != 1 or predictions.shape != targets.shape or len(targets) < 1:
        raise InvalidInputError(f"'targets' and 'predictions' must have the same shape (n,) with n >= 1; got "
                                f"{np.shape(targets)} and {np.shape(predictions)}.")
    for name, values in (("targets", targets), ("predictions", predictions)):
        if not np.isfinite(values).all():
            raise InvalidInputError(f"'{name}' must be finite; got {int((~np.isfinite(values)).sum())} NaN or inf.")
    return targets, predictions


def _tied_pairs(*columns: np.ndarray) -> int:
    """Number of pairs equal in every given column."""
    counts = np.unique(np.stack(columns, axis=1), axis=0, return_counts=True)[1].astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def _count_inversions(ranks: np.ndarray) -> int:
    """Pairs i < j with ranks[i] > ranks[j], by bottom-up merging of blocks (each level counted with searchsorted)."""
    n, total, width = len(ranks), 0, 1
    base = np.int64(n + 1)  # ranks < n, so pair * base + rank orders by pair, then rank
    positions = np.arange(n, dtype=np.int64)
    ranks = ranks.astype(np.int64)
    while width < n:
        pair = positions // (2 * width)
        is_left = (positions // width) % 2 == 0
        left_keys = np.sort(pair[is_left] * base + ranks[is_left])
        right_pair, right_rank = pair[~is_left], ranks[~is_left]
        left_end = np.searchsorted(left_keys, (right_pair + 1) * base)  # left items of the same pair end here
        not_greater = np.searchsorted(left_keys, right_pair * base + right_rank, side="right")
        total += int((left_end - not_greater).sum())  # left items of the same pair with a larger rank
        width *= 2
    return total
