"""Plots of regression predictions, written as PNG files like :mod:`medai.engine.plots` (Agg canvas, no pyplot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medai.engine.plots import _new_figure, _save
from medai.errors import InvalidInputError


def plot_predicted_vs_measured(predictions: np.ndarray, targets: np.ndarray, path: str | Path, name: str = "value",
                               title: str = "") -> Path:
    """Scatter (hexbin density above 2,000 points) of predictions against measured values, with the identity line.

    Args:
        predictions: array of shape (n_samples,).
        targets: array of shape (n_samples,), finite.
        path: where to write the PNG.
        name: what was measured, for the axis labels (e.g. ``"pKd"``).
        title: figure title (metrics, say).

    Returns:
        The path of the PNG written.

    Examples:
        >>> import tempfile
        >>> path = plot_predicted_vs_measured(np.array([5.0, 6.1, 7.2]), np.array([5.0, 6.0, 7.5]),
        ...                                   Path(tempfile.mkdtemp()) / "scatter.png", "pKd")
        >>> path.name
        'scatter.png'
    """
    predictions, targets = np.asarray(predictions, float).reshape(-1), np.asarray(targets, float).reshape(-1)
    if predictions.shape != targets.shape or not len(targets) or not np.isfinite([*predictions, *targets]).all():
        raise InvalidInputError(f"'predictions' and 'targets' must be finite and of the same shape (n,); got "
                                f"{predictions.shape} and {targets.shape}.")
    figure = _new_figure(5.5, 5.0)
    axes = figure.add_subplot()
    low, high = float(min(predictions.min(), targets.min())), float(max(predictions.max(), targets.max()))
    margin = 0.03 * (high - low or 1.0)
    if len(targets) > 2000:
        image = axes.hexbin(targets, predictions, gridsize=60, bins="log", mincnt=1, cmap="viridis")
        figure.colorbar(image, ax=axes, label="pairs (log scale)")
    else:
        axes.scatter(targets, predictions, s=8, alpha=0.5)
    axes.plot([low - margin, high + margin], [low - margin, high + margin], ls="--", color="grey", lw=1,
              label="predicted = measured")
    axes.set_xlim(low - margin, high + margin)
    axes.set_ylim(low - margin, high + margin)
    axes.set_xlabel(f"Measured {name}")
    axes.set_ylabel(f"Predicted {name}")
    axes.set_title(title or f"Predicted vs measured {name} (n = {len(targets)})", fontsize="medium")
    axes.legend(loc="upper left", fontsize="small")
    axes.grid(alpha=0.3)
    return _save(figure, path)
