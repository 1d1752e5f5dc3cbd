"""Per-patient explanations for tabular models: Shapley contributions (Captum) beside the training distribution.

Each original column is one player: a numeric column together with its missing-value indicator, a categorical
column as its code. The reference patient is the training median (numbers) and mode (categories); a feature's
contribution is its Shapley value for the explained class's probability, so contributions add up to the
difference between this patient's probability and the reference patient's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medai.errors import require


def feature_groups(n_numeric: int, n_categorical: int) -> np.ndarray:
    """Group id per preprocessed column, shape (2 * n_numeric + n_categorical,)."""
    return np.concatenate([np.arange(n_numeric), np.arange(n_numeric), n_numeric + np.arange(n_categorical)])


def shapley_contributions(predict, row: np.ndarray, baseline: np.ndarray, groups: np.ndarray, samples: int = 200, seed: int = 0) -> np.ndarray:
    """Shapley values of each feature group for ``predict``.

    Args:
        predict: maps an array of shape (n, width) to the explained probability, shape (n,).
        row: the patient's preprocessed features, shape (width,).
        baseline: the reference patient's features, shape (width,).
        groups: group id per column, shape (width,).
        samples: random feature orderings sampled.

    Returns:
        Array of shape (n_groups,).
    """
    attr = require("captum.attr", "explain")

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(predict(inputs.detach().numpy()), dtype=torch.float64)

    torch.manual_seed(seed)
    values = attr.ShapleyValueSampling(forward).attribute(
        torch.as_tensor(row[None], dtype=torch.float64),
        baselines=torch.as_tensor(baseline[None], dtype=torch.float64),
        feature_mask=torch.as_tensor(groups[None], dtype=torch.long),
        n_samples=samples,
        perturbations_per_eval=64,
    )[0].numpy()
    return np.array([values[groups == g][0] for g in range(int(groups.max()) + 1)])


def explain_row(bundle, table, target: int, probabilities: np.ndarray, out) -> dict:
    """Explain the single row of ``table`` for class ``target``; write a bar chart to ``out``; return JSON."""
    from medai.tasks.tabular_classification import features_of, predict_proba
    from medai.transforms.tabular import TabularPreprocessor

    config = bundle.config
    layout = config["layout"]
    preprocessor = TabularPreprocessor.from_dict(config["preprocessing"])
    n_numeric, n_categorical = layout["n_numeric"], len(layout["cardinalities"])
    row = features_of(config, table)[0]
    baseline = np.asarray(config["explain_baseline"], dtype=np.float32)

    def predict(features: np.ndarray) -> np.ndarray:
        return predict_proba(bundle.model, config, None, features=features.astype(np.float32))[:, target]

    values = shapley_contributions(predict, row, baseline, feature_groups(n_numeric, n_categorical))
    features = []
    for index, name in enumerate(list(preprocessor.numeric) + list(preprocessor.categorical)):
        value = table.columns[name][0]
        entry = {"feature": name, "value": None if value is None or (isinstance(value, float) and np.isnan(value)) else _plain(value),
                 "contribution": float(values[index]), "direction": "raises" if values[index] > 0 else "lowers"}  # fmt: skip
        if index < n_numeric:
            entry["training_distribution"] = preprocessor.training_summary(name)
        features.append(entry)
    features.sort(key=lambda f: -abs(f["contribution"]))
    names = bundle.label_names
    result = {
        "input": str(table.ids[0]),
        "label": names[int(np.argmax(probabilities))],
        "probabilities": {n: float(p) for n, p in zip(names, probabilities)},
        "explained_class": names[target],
        "reference_probability": float(predict(baseline[None])[0]),
        "method": "shapley-value-sampling",
        "features": features,
        "chart": str(out),
    }
    plot_contributions(result, out)
    return result


def _plain(value):
    return float(value) if isinstance(value, (int, float, np.floating, np.integer)) else str(value)


def plot_contributions(result: dict, out, top: int = 12) -> Path:
    """Horizontal bar chart of the largest contributions, each labelled with the patient's value."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = result["features"][:top][::-1]
    labels = [f"{f['feature']} = {_format(f['value'])}" for f in shown]
    values = [f["contribution"] for f in shown]
    figure = Figure(figsize=(7, 0.45 * len(shown) + 1.6), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.barh(labels, values, color=["#c0392b" if v > 0 else "#2471a3" for v in values])
    axes.axvline(0, color="black", lw=0.8)
    target = result["explained_class"]
    axes.set_xlabel(f"contribution to P({target}) (red raises, blue lowers)")
    axes.set_title(f"P({target}) = {result['probabilities'][target]:.2f} vs {result['reference_probability']:.2f} for a typical patient", fontsize=10)
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    return out


def _format(value) -> str:
    if value is None:
        return "missing"
    return f"{value:.3g}" if isinstance(value, float) else str(value)
