"""The model card (card.md) of an image classifier: data, intended use, metrics with CIs, limitations."""

from __future__ import annotations

from datetime import datetime, timezone


def _metric_rows(metrics: dict) -> list[str]:
    rows = ["| split | n | AUROC (95% CI) | AUPRC | accuracy | balanced acc. | sensitivity | specificity | Brier | ECE |",
            "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for split in ("val", "out_of_fold", "test"):
        m = metrics.get(split)
        if not m:
            continue
        ci = f" ({m['auroc_ci_low']:.3f}-{m['auroc_ci_high']:.3f})" if m.get("auroc_ci_low") is not None else ""
        auroc = "n/a" if m.get("auroc") is None else f"{m['auroc']:.3f}{ci}"
        auprc = "n/a" if m.get("auprc") is None else f"{m['auprc']:.3f}"
        rows.append(
            f"| {split} | {m['n_samples']} | {auroc} | {auprc} | {m['accuracy']:.3f} | {m['balanced_accuracy']:.3f} | "
            f"{m['sensitivity']:.3f} | {m['specificity']:.3f} | {m['brier']:.3f} | {m['ece']:.3f} |"
        )
    return rows


def _members(config: dict) -> str:
    if config["network"] == "ensemble":
        kwargs = config["network_kwargs"]
        return f"deep ensemble of {kwargs['size']} `{kwargs['member']}` members, each trained with its own seed"
    return "a single network"


def render(config: dict, metrics: dict, split_sizes: dict[str, int]) -> str:
    """Markdown model card for a trained image classifier."""
    labels = config["label_names"]
    source = config["source"]
    settings = config["settings"]
    fit = metrics["fit"]
    channels, height, width = config["input_shape"]
    lines = [
        f"# Model card: {config['network']} image classifier",
        "",
        f"Trained {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} with medai (task `{config['task']}`).",
        "",
        "## Intended use",
        f"Research and decision support: classifies {channels}-channel {height}x{width} images into "
        f"{', '.join(f'`{name}`' for name in labels)}. Not a medical device; it must not be the sole basis of a diagnosis. "
        "Every prediction should be reviewed with its Grad-CAM heat map (`medai explain`).",
        "Probabilities average each image and its mirror image." if config.get("test_time_flip") else "",
        "",
        "## Data",
        f"- Source: {source.get('file') or source['format']} ({source['format']}), split: {source['split']}.",
        f"- Sizes: {', '.join(f'{k} {v}' for k, v in split_sizes.items())}.",
        "- Data fingerprints (sha256 of pixels and labels per split) are in config.json.",
        "",
        "## Training",
        f"- Network `{config['network']}` with {config['network_kwargs']}; {fit['max_epochs']} epochs max, "
        f"batch {settings['batch_size']}, one-cycle AdamW (peak lr {settings['learning_rate']}), seed {settings['seed']}, "
        f"augmentation {'on' if settings['augment'] else 'off'}, class weights {settings['class_weight']}.",
        f"- {_members(config)}; best epoch{'s' if len(fit['best_epochs']) > 1 else ''} "
        f"{', '.join(str(e + 1) for e in fit['best_epochs'])} by validation AUROC{_cross_fitted(fit)}; training took "
        f"{fit['train_seconds']:.0f} s at {fit['samples_per_second']:.0f} images/s on {metrics['device']}.",
        f"- Probabilities calibrated by temperature scaling on {_calibration_data(config)} "
        f"(T = {config['calibration']['temperature']:.3f}).",
        *_decision_line(config),
        "",
        "## Metrics",
        *_metric_rows(metrics),
        "",
        f"Sensitivity and specificity treat `{labels[1]}` as the positive class." if len(labels) == 2 else
        "Multiclass: AUROC and AUPRC are one-vs-rest macro averages; sensitivity and specificity are macro averages.",
        "The 95% confidence interval of the AUROC is a percentile bootstrap (1,000 resamples).",
        "",
        "## Limitations",
        "- Evaluated on one source only; performance on other scanners, sites and populations is unknown until "
        "validated externally (`medai evaluate BUNDLE --data OTHER --split all`).",
        "- Small test sets give wide confidence intervals; read the interval, not only the point estimate.",
        "- Grad-CAM shows where the network looked, at the resolution of its last convolution; it is not a segmentation.",
        *_ood_lines(config),
        "",
        "## Plots",
        "![ROC](plots/roc.png) ![PR](plots/pr.png) ![Calibration](plots/calibration.png) "
        "![Confusion](plots/confusion_matrix.png) ![Training](plots/training_curves.png)",
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def _cross_fitted(fit: dict) -> str:
    if fit.get("member_validation") != "cross-fit":
        return ""
    return (" (cross-fitted: training and validation images pooled and cut into one fold per member; each member "
            "trained on the other folds and kept its best epoch on its own fold)")


def _calibration_data(config: dict) -> str:
    if config["calibration"].get("fitted_on", "val") == "val":
        return "the validation split"
    return "the out-of-fold predictions of the cross-fitted members (the `out_of_fold` row below)"


def _decision_line(config: dict) -> list[str]:
    decision = config.get("decision")
    if not decision:
        return []
    fitted_on = decision.get("fitted_on")
    how = ("chosen to maximise accuracy on the validation split" if fitted_on == "val"
           else "chosen to maximise the accuracy of the out-of-fold predictions" if fitted_on
           else "as given in the settings")  # fmt: skip
    return [f"- Predicted `{decision['positive_class']}` when its calibrated probability is at least "
            f"{decision['threshold']:.3f} ({how}); accuracy, sensitivity, specificity, F1 and the confusion matrix "
            f"use this threshold, AUROC and AUPRC do not depend on it."]


def _ood_lines(config: dict) -> list[str]:
    """What the out-of-distribution check flags, with the brightness/contrast check's false-alarm rate on
    validation images."""
    ood = config.get("ood")
    if not ood:
        return ["- No out-of-distribution check: predictions on images unlike the training images are not flagged."]
    line = (f"- Out-of-distribution check: an image is flagged when an autoencoder trained on the training images "
            f"reconstructs it worse than {ood['quantile']:.0%} of the validation images (error above "
            f"{ood['threshold']:.4f})")
    intensity = ood.get("intensity")
    if intensity:
        line += (f", or when its brightness (mean pixel value, {max(intensity['mean'][0], 0.0):.3f}-"
                 f"{intensity['mean'][1]:.3f}) or contrast (pixel standard deviation, "
                 f"{max(intensity['std'][0], 0.0):.3f}-{intensity['std'][1]:.3f}) lies outside the training images' "
                 f"range widened by {intensity['margin']:.0%}, or all its pixels are equal (blank, saturated or "
                 f"washed-out images; {intensity['validation_flagged']:.1%} of validation images flagged so)")
    return [line + ". A flagged prediction should not be relied on."]
