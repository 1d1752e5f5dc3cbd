"""The model card (card.md) of a tabular classifier."""

from __future__ import annotations


def render(config: dict, metrics: dict, split_sizes: dict[str, int]) -> str:
    """Markdown model card: data, intended use, metrics with confidence intervals, limitations."""
    labels = config["label_names"]
    layout = config["layout"]
    rows = ["| split | n | AUROC (95% CI) | AUPRC | accuracy | sensitivity | specificity | Brier | ECE |", "|---|---|---|---|---|---|---|---|---|"]
    for split in ("val", "out_of_fold", "test"):
        m = metrics.get(split)
        if m and m.get("auroc") is not None:
            ci = f" ({m['auroc_ci_low']:.3f}-{m['auroc_ci_high']:.3f})" if m.get("auroc_ci_low") is not None else ""
            rows.append(f"| {split} | {m['n_samples']} | {m['auroc']:.3f}{ci} | {m['auprc']:.3f} | {m['accuracy']:.3f} | "
                        f"{_number(m['sensitivity'])} | {_number(m['specificity'])} | {m['brier']:.3f} | {m['ece']:.3f} |")  # fmt: skip
    model = config["network"]
    if model == "ensemble":
        model = f"ensemble of {config['network_kwargs']['size']} `{config['network_kwargs']['member']}`"
    if config.get("network_kwargs", {}).get("wide"):
        model += " (wide and deep)"
    return "\n".join([
        f"# Model card: {model} for `{config['target']}`",
        "",
        "## Intended use",
        f"Decision support for research: predicts {', '.join(f'`{n}`' for n in labels)} from "
        f"{layout['n_numeric']} numeric and {len(layout['cardinalities'])} categorical columns. Not a medical device. "
        "Read every prediction with its per-patient explanation (`medai explain BUNDLE --data FILE --row N`).",
        "",
        "## Data",
        f"- Source {config['source']['data']}, split {config['source']['split']} (seed {config['source']['split_seed']}); "
        f"sizes {', '.join(f'{k} {v}' for k, v in split_sizes.items())}.",
        "- Preprocessing fitted on the training split only: median imputation with missing-value indicators, "
        "standardisation, category codes (unseen categories count as missing).",
        f"- Features: {', '.join(layout['features'])}.",
        "",
        "## Metrics",
        *rows,
        "",
        f"Probabilities are temperature-calibrated on {_calibration_data(config)} (T = {config['calibration']['temperature']:.3f}).",
        "",
        "## Limitations",
        "- One source only: validate on other hospitals before use (`medai evaluate BUNDLE --data OTHER.csv --split all`).",
        "- Small tables give wide confidence intervals.",
        *_ood_line(config),
        "",
        "![ROC](plots/roc.png) ![Calibration](plots/calibration.png)",
        "",
    ])  # fmt: skip


def _ood_line(config: dict) -> list[str]:
    ood = config.get("ood")
    if not ood:
        return []
    ranges = (", or when a number lies outside its column's training range widened by 10% (the column is named)"
              if ood.get("ranges") else "")
    return [f"- Out-of-distribution check: a record is flagged when an autoencoder trained on the training rows "
            f"reconstructs it worse than {ood['quantile']:.0%} of the validation rows{ranges}. A flagged prediction "
            f"should not be relied on."]


def _calibration_data(config: dict) -> str:
    if config["calibration"].get("fitted_on", "val") == "val":
        return "the validation split"
    if config["network"] in ("logistic_regression", "gradient_boosting"):
        return ("the out-of-fold predictions of the same model on 5 folds of the training and validation rows (it was "
                "then fitted on all of them; the `out_of_fold` row above)")
    return ("the out-of-fold predictions of the cross-fitted members (each training and validation row scored by the "
            "member that did not train on it; the `out_of_fold` row above)")


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
