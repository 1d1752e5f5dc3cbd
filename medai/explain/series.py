"""Integrated gradients (Captum) for series models: which variables at which hours drove a prediction.

The explained quantity is the log-odds of the explained class for binary classification (its logit for more
classes, the predicted value for regression), computed by ``SeriesModel.network_outputs``; for an ensemble that is
the ensemble's own output, so the attributions add up to its prediction. The baseline is a record with nothing
observed: every value at the training mean (0 after standardisation), an all-zero mask, and the static features
at the training mean and present. Each (hour, variable) cell's contribution is the sum of the attributions to its
value and to its mask (what was measured, and that it was measured); static features get their own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medai.data.dataset import Dataset
from medai.errors import require

IG_STEPS = 50


def integrated_gradients(model, record: Dataset, target: int, mode: str = "log_odds", steps: int = IG_STEPS) -> dict:
    """Attributions of one record's prediction.

    Args:
        model: a SeriesModel (its ``network_outputs`` is differentiated), in eval mode.
        record: a Dataset of one record with extras ``mask`` (and ``delta``, ``static`` when present).
        target: the output index explained.
        mode: ``"log_odds"`` (binary: output[target] - output[other]), ``"output"`` (that output as it is).
        steps: integration steps.

    Returns:
        ``{"cells": (T, V) array, "static": (S,) array or None, "output": float, "baseline_output": float,
        "convergence_delta": float}``.
    """
    attr = require("captum.attr", "explain")
    model = model.eval()
    device = next(model.parameters()).device
    tensors = {k: v.float().to(device) for k, v in record.tensors().items() if k != "label"}
    series, mask = tensors[record.input_key], tensors.get("mask")
    delta, static = tensors.get("delta"), tensors.get("static")
    inputs = tuple(t for t in (series, mask, static) if t is not None)
    has_mask, has_static = mask is not None, static is not None

    def forward(*parts):
        values = list(parts)
        s = values.pop(0)
        m = values.pop(0) if has_mask else None
        st = values.pop(0) if has_static else None
        d = None if delta is None else delta.expand(len(s), *delta.shape[1:])
        out = model.network_outputs(s, m, d, st)  # (batch, n_outputs)
        if mode == "log_odds" and out.shape[1] == 2:
            return out[:, target] - out[:, 1 - target]
        return out[:, target]

    baselines = tuple(torch.zeros_like(t) for t in inputs)
    method = attr.IntegratedGradients(forward)
    attributions, convergence = method.attribute(inputs, baselines=baselines, n_steps=steps, internal_batch_size=steps,
                                                 return_convergence_delta=True)
    attributions = [a.detach()[0].cpu().numpy().astype(np.float64) for a in attributions]
    cells = attributions[0] + (attributions[1] if has_mask else 0.0)  # (T, V)
    with torch.no_grad():
        output, baseline_output = float(forward(*inputs)[0]), float(forward(*baselines)[0])
    return {"cells": cells, "static": attributions[-1] if has_static else None, "output": output,
            "baseline_output": baseline_output, "convergence_delta": float(convergence.abs().max())}


def top_variables(cells: np.ndarray, variables, observed: np.ndarray | None = None, k: int = 10) -> list[dict]:
    """The ``k`` variables with the largest total |contribution|, with sign and observation count."""
    totals = cells.sum(axis=0)  # (V,)
    order = [j for j in np.argsort(-np.abs(totals))[:k] if totals[j] != 0.0]
    return [{"variable": str(variables[j]), "contribution": float(totals[j]), "direction": _direction(totals[j]),
             **({"observations": int(observed[:, j].sum())} if observed is not None else {})} for j in order]


def top_windows(cells: np.ndarray, variables, hours, width: int = 6, k: int = 10) -> list[dict]:
    """The ``k`` (variable, ``width``-hour window) pairs with the largest |contribution|, with sign."""
    hours = np.asarray(hours)
    windows = []
    for begin in range(0, cells.shape[0], width):
        block = cells[begin : begin + width].sum(axis=0)  # (V,)
        end = int(hours[min(begin + width, len(hours)) - 1]) + 1
        windows += [(float(block[j]), str(variables[j]), int(hours[begin]), end) for j in range(cells.shape[1])]
    windows.sort(key=lambda w: -abs(w[0]))
    return [{"variable": v, "hours": [start, end], "contribution": c, "direction": _direction(c)}
            for c, v, start, end in windows[:k] if c != 0.0]


def window_totals(cells: np.ndarray, hours, width: int = 6) -> list[dict]:
    """Contribution of every ``width``-hour window, all variables together."""
    hours = np.asarray(hours)
    return [{"hours": [int(hours[b]), int(hours[min(b + width, len(hours)) - 1]) + 1],
             "contribution": float(cells[b : b + width].sum())} for b in range(0, cells.shape[0], width)]


def _direction(value: float) -> str:
    return "raises" if value > 0 else "lowers"


def plot_heatmap(cells: np.ndarray, variables, hours, path, *, observed: np.ndarray | None = None, title: str = "",
                 colour_label: str = "contribution", max_rows: int = 24) -> Path:
    """Variables x hours heat map of contributions (diverging colours, 0 white); dots mark observed cells.

    Rows are the ``max_rows`` variables with the largest total |contribution|, largest first (variables that
    contribute nothing, e.g. never measured, are left out).
    """
    from medai.engine.plots import _new_figure, _save

    weight = np.abs(cells).sum(axis=0)  # (V,)
    order = [j for j in np.argsort(-weight)[:max_rows] if weight[j] > 0] or [int(np.argmax(weight))]
    shown = cells[:, order].T  # (rows, T)
    limit = float(np.abs(shown).max()) or 1.0
    figure = _new_figure(max(7.0, 0.16 * shown.shape[1] + 3), 0.3 * len(order) + 1.8)
    axes = figure.add_subplot()
    image = axes.imshow(shown, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest",
                        extent=(float(hours[0]), float(hours[-1]) + 1, len(order) - 0.5, -0.5))
    if observed is not None:
        rows, steps = np.nonzero(observed[:, order].T)
        axes.scatter(np.asarray(hours)[steps] + 0.5, rows, s=9, c="black", marker=".", linewidths=0)
    axes.set_yticks(range(len(order)), [str(variables[j]) for j in order], fontsize="small")
    axes.set_xlabel("Hours since ICU admission")
    axes.set_title(title, fontsize="medium")
    figure.colorbar(image, ax=axes, label=colour_label, fraction=0.03, pad=0.02)
    return _save(figure, path)


def plot_signal(signal: np.ndarray, cells: np.ndarray, path, *, leads=None, title: str = "",
                colour_label: str = "contribution") -> Path:
    """Each lead's trace (up to three) coloured by its per-sample contribution (diverging colours, 0 white).

    Args:
        signal: array of shape (T, leads) in the input's units.
        cells: contributions of shape (T, leads).
    """
    from medai.engine.plots import _new_figure, _save

    n_leads = min(3, signal.shape[1])
    limit = float(np.abs(cells[:, :n_leads]).max()) or 1.0
    figure = _new_figure(9.0, 2.2 * n_leads + 0.8)
    steps = np.arange(signal.shape[0])
    for lead in range(n_leads):
        axes = figure.add_subplot(n_leads, 1, lead + 1)
        low, high = float(signal[:, lead].min()), float(signal[:, lead].max())
        band = 0.12 * (high - low or 1.0)  # a colour strip under the trace, for contributions on flat stretches
        axes.imshow(cells[None, :, lead], aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                    extent=(-0.5, len(steps) - 0.5, low - 1.5 * band, low - 0.5 * band), interpolation="nearest")
        axes.set_ylim(low - 1.7 * band, high + 0.5 * band)
        axes.plot(steps, signal[:, lead], color="0.6", lw=0.8)
        image = axes.scatter(steps, signal[:, lead], c=cells[:, lead], cmap="RdBu_r", vmin=-limit, vmax=limit, s=10)
        axes.set_ylabel(str(leads[lead]) if leads is not None else f"lead {lead + 1}")
        figure.colorbar(image, ax=axes, label=colour_label if lead == n_leads - 1 else "", fraction=0.03, pad=0.02)
        if lead == 0:
            axes.set_title(title, fontsize="medium")
    axes.set_xlabel("Sample")
    return _save(figure, path)


def top_segments(cells: np.ndarray, width: int, k: int = 5) -> list[dict]:
    """The ``k`` signal segments of ``width`` samples (all leads together) with the largest |contribution|."""
    totals = cells.sum(axis=1)  # (T,)
    segments = [(float(totals[b : b + width].sum()), b, min(b + width, len(totals))) for b in range(0, len(totals), width)]
    segments.sort(key=lambda s: -abs(s[0]))
    return [{"samples": [b, e], "contribution": c, "direction": _direction(c)} for c, b, e in segments[:k]]
