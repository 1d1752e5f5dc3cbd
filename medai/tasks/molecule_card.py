"""The model card (card.md) and plots of a molecular-property model."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def render(config: dict, metrics: dict, split_sizes: dict[str, int]) -> str:
    """Markdown model card: data, model, metrics per task, applicability domain, limitations."""
    names, kinds = config["task_names"], config["task_types"]
    rows = ["| task | type | val | test |", "|---|---|---|---|"]
    for name, kind in zip(names, kinds):
        keys = ("auroc",) if kind == "classification" else ("rmse", "mae", "r2")
        for key in keys:
            rows.append(f"| {name} | {key} | {_number(metrics['val'].get(f'{key}_{name}'))} | "
                        f"{_number(metrics['test'].get(f'{key}_{name}'))} |")
    model = config["network"]
    if config.get("ensemble"):
        model = f"deep ensemble of {config['ensemble']} `{model}`"
    features = "RDKit 2-D descriptors (CDF-normalised on the training split)" if config.get("descriptor_scaler") else "none"
    domain = config["domain"]
    source = config["source"]
    return "\n".join([
        f"# Model card: {model} for {', '.join(f'`{n}`' for n in names)}",
        "",
        "## Intended use",
        "Research use in drug discovery: ranks and screens molecules by predicted properties. Not a substitute for "
        "measurement, and not for decisions about patients. Read every prediction with its uncertainty (ensemble "
        "spread) and applicability-domain flag; explain one with `medai explain BUNDLE --smiles S --out atoms.png`.",
        "",
        "## Data",
        f"- Source {source['data']}: {source['load_report']['rows_read']} rows read, "
        f"{source['load_report']['rows_kept']} distinct valid molecules (issues: "
        f"{source['load_report']['counts'] or 'none'}).",
        f"- Split {source['split']} (seed {source['split_seed']}); sizes "
        f"{', '.join(f'{k} {v}' for k, v in split_sizes.items())}.",
        f"- Tasks: {', '.join(f'{n} ({k})' for n, k in zip(names, kinds))}. Missing labels are left out of the loss.",
        f"- Extra molecule features: {features}.",
        *_selection_lines(config.get("selection")),
        "",
        "## Metrics",
        *rows,
        "",
        "## Applicability domain",
        f"Max Tanimoto similarity (Morgan bits, radius 2) to the {domain['n_train']} training molecules; molecules "
        f"below {domain['threshold']:.3f} (the {domain['percentile']:g}th percentile of validation molecules) are "
        "flagged as outside the domain.",
        "",
        "## Limitations",
        "- Random splits overestimate performance on new chemical series; scaffold splits are closer to prospective use.",
        "- Validate on external data before use (`medai evaluate BUNDLE --data OTHER.csv --split all`).",
        "- Classification probabilities are ensemble averages and are not recalibrated.",
        "",
        "![test](plots/test.png) ![training](plots/training_curves.png)",
        "",
    ])


def save_plots(config: dict, predictions: np.ndarray, labels: np.ndarray, summary: dict | None, folder: Path) -> list[Path]:
    """``test.png`` (ROC curves of classification tasks, parity plot of regression ones) and training curves."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    folder.mkdir(parents=True, exist_ok=True)
    kinds = config["task_types"]
    panels = [k for k in ("classification", "regression") if k in kinds]
    figure = Figure(figsize=(5.5 * len(panels), 5))
    FigureCanvasAgg(figure)
    for position, kind in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), position)
        for j, (name, task_kind) in enumerate(zip(config["task_names"], kinds)):
            present = np.isfinite(labels[:, j])
            y, p = labels[present, j], predictions[present, j]
            if task_kind != kind or len(y) == 0:
                continue
            if kind == "classification" and len(np.unique(y)) == 2:
                fpr, tpr, _ = roc_curve(y, p)
                axes.plot(fpr, tpr, lw=1, label=name if len(kinds) <= 12 else None)
            elif kind == "regression":
                axes.scatter(y, p, s=8, alpha=0.6, label=name)
        if kind == "classification":
            axes.plot([0, 1], [0, 1], "k--", lw=0.8)
            axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
        else:
            low, high = axes.get_xlim()
            axes.plot([low, high], [low, high], "k--", lw=0.8)
            axes.set(xlabel="measured", ylabel="predicted", title="parity (test)")
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=7)
    paths = [folder / "test.png"]
    figure.savefig(paths[0], dpi=110, bbox_inches="tight")
    history = (summary or {}).get("members", [{}])[0].get("history")
    if history:
        from medai.engine.plots import plot_training_curves

        paths.append(plot_training_curves(history, folder / "training_curves.png"))
    return paths


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _selection_lines(selection: dict | None) -> list[str]:
    """The card's line on how ``model="auto"`` chose the model, when it did."""
    if not selection:
        return []
    scores = ", ".join(f"`{name}` {_number(score)}" for name, score in selection["validation_scores"].items())
    return [f"- Model chosen on the validation split: `{selection['chosen']}` (validation scores {scores}; "
            f"{selection['score']})."]
