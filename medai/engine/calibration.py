"""Post-hoc calibration of classifier logits by temperature scaling (Guo et al., 2017).

Temperature scaling divides all logits by one scalar ``T > 0`` fitted on held-out data to minimise the negative
log-likelihood. It changes confidence but never the predicted class.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional

from medai.engine.metrics import check_scores_and_labels
from medai.errors import InvalidInputError


def _check_temperature(temperature: float) -> float:
    """Raise InvalidInputError unless ``temperature`` is a finite number > 0."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise InvalidInputError(f"The 'temperature' parameter must be a finite number > 0; got {temperature!r}.")
    return value


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Numerically stable softmax of ``logits / temperature`` over the last axis, computed in float64.

    Args:
        logits: Array of shape (..., n_classes), typically (n_samples, n_classes).
        temperature: Finite temperature > 0; values above 1 soften, below 1 sharpen the distribution.

    Returns:
        Float64 array of the same shape as ``logits`` whose last axis sums to 1.

    Raises:
        InvalidInputError: If ``logits`` is 0-dimensional or holds NaN/inf, or ``temperature`` is invalid.

    Examples:
        >>> softmax(np.array([[0.0, 0.0], [1000.0, 0.0]]))
        array([[0.5, 0.5],
               [1. , 0. ]])
    """
    temperature = _check_temperature(temperature)
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise InvalidInputError(f"'logits' must have shape (..., n_classes) with n_classes >= 1; got {logits.shape}.")
    if not np.isfinite(logits).all():
        raise InvalidInputError(f"'logits' must be finite; got {int((~np.isfinite(logits)).sum())} NaN or inf values.")
    scaled = logits / temperature  # (..., n_classes)
    exponentials = np.exp(scaled - scaled.max(axis=-1, keepdims=True))  # (..., n_classes), max term is exp(0)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def _lbfgs_log_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int) -> float:
    """Minimise NLL of softmax(logits / exp(log_t)) over log_t with L-BFGS; return the fitted log_t."""
    log_temperature = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_temperature], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = functional.cross_entropy(logits / log_temperature.exp(), labels)  # scalar mean NLL
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_temperature.detach())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """Fit the temperature ``T > 0`` minimising the NLL of ``softmax(logits / T)`` on held-out data.

    ``log T`` is optimised with torch L-BFGS (strong Wolfe line search) in float64, so ``T`` stays positive.
    Fit the temperature on a validation split, never on the test split.

    Args:
        logits: Array of shape (n_samples, n_classes) of finite, uncalibrated logits.
        labels: Integer class indices of shape (n_samples,).
        max_iter: Maximum number of L-BFGS iterations (>= 1).

    Returns:
        The fitted temperature as a python float; 1.0 (no change) if the fit fails or is not finite.

    Raises:
        InvalidInputError: If shapes disagree, logits are not finite, labels are out of range or ``max_iter`` < 1.

    Examples:
        >>> logits = np.array([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0]])  # confidence 0.88, but only 2 of 3 correct
        >>> round(fit_temperature(logits, np.array([0, 0, 1])), 3)  # optimum: sigmoid(2 / T) = 2/3, T = 2 / ln 2
        2.885
    """
    logits, labels = check_scores_and_labels(logits, labels, "logits")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise InvalidInputError(f"The 'max_iter' parameter must be an int >= 1; got {max_iter!r}.")
    try:
        log_temperature = _lbfgs_log_temperature(torch.from_numpy(logits), torch.from_numpy(labels), int(max_iter))
        temperature = math.exp(log_temperature)
    except (RuntimeError, ValueError, OverflowError):
        return 1.0
    return temperature if math.isfinite(temperature) and temperature > 0 else 1.0
