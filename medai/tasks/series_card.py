"""Model cards (card.md) of the time-series tasks: mortality, forecasting and ECG classification."""

from __future__ import annotations

from datetime import datetime, timezone

DISCLAIMER = "Research and decision support only; not a medical device and never the sole basis of a clinical decision."


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _percent(change) -> str:
    return "n/a" if change is None else f"{change * 100:+.1f}%"


def _classification_rows(metrics: dict, splits=("val", "test")) -> list[str]:
    rows = ["| split | n | AUROC (95% CI) | AUPRC | accuracy | sensitivity | specificity | Brier | ECE |",
            "|---|---|---|---|---|---|---|---|---|"]
    for split in splits:
        m = metrics.get(split)
        if not m:
            continue
        ci = f" ({m['auroc_ci_low']:.3f}-{m['auroc_ci_high']:.3f})" if m.get("auroc_ci_low") is not None else ""
        rows.append(f"| {split} | {m['n_samples']} | {_number(m['auroc'])}{ci} | {_number(m['auprc'])} | "
                    f"{_number(m['accuracy'])} | {_number(m['sensitivity'])} | {_number(m['specificity'])} | "
                    f"{_number(m['brier'])} | {_number(m['ece'])} |")
    return rows


def _members(config: dict) -> str:
    members = config["network_kwargs"].get("members")
    if not members:
        return f"`{config['network']}`"
    counts: dict[str, int] = {}
    for spec in members:
        text = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "network")
        key = f"`{spec['network']}` ({text})" if text else f"`{spec['network']}`"
        counts[key] = counts.get(key, 0) + 1
    return " + ".join(f"{n} x {k}" for k, n in counts.items())


def _data_lines(metrics: dict) -> list[str]:
    counts = metrics.get("data_counts", {})
    return [f"- Load report: {counts.get('records_skipped', 0)} record(s) skipped, {counts.get('lines_skipped', 0)} "
            f"line(s) skipped, {counts.get('values_out_of_range', 0)} value(s) outside the plausible ranges set missing "
            "(by reason, variable, file and line in metrics.json under `data`)."]


def _fit_line(metrics: dict, monitor: str = "AUROC") -> str:
    fit = metrics["fit"]
    epochs = ", ".join(str(e + 1) for e in fit["best_epochs"])
    return f"- Best epochs by validation {monitor}: {epochs}; {fit['train_seconds']:.0f} s of training."


def _header(title: str, config: dict) -> list[str]:
    return [f"# Model card: {title}", "",
            f"Trained {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} with medai (task `{config['task']}`).", ""]


def mortality(config: dict, metrics: dict, split_sizes: dict[str, int]) -> str:
    """Markdown card of an in-hospital mortality model."""
    source, settings = config["source"], config["settings"]
    prep = config["preprocessing"]["fitted"]
    return "\n".join([
        *_header("in-hospital mortality from the first hours of an ICU stay", config),
        "## Intended use",
        f"Estimates the risk of death in hospital from the first {config['hours']} hours of an ICU stay "
        f"({len(prep['variables_'])} vital signs and laboratory values, hourly, and {len(prep['static_names_'])} static "
        f"features). {DISCLAIMER} Read each prediction with its explanation (`medai explain BUNDLE RECORD --out "
        "FILE.png`: which variables at which hours drove it).",
        "",
        "## Data",
        f"- Source {source['data']} ({source['format']}); split {source['split']}, seed {source['split_seed']}; "
        f"sizes {', '.join(f'{k} {v}' for k, v in split_sizes.items())}.",
        *_data_lines(metrics),
        "- Preprocessing fitted on the training split only: plausible-range filter, hourly means, observation masks, "
        "time since the last observation, forward fill then the training mean, standardisation; static features "
        "median-imputed with missing indicators.",
        "",
        "## Model",
        f"- {_members(config)}; each member trained on its own (AdamW one-cycle, batch {settings['batch_size']}), its "
        "best epoch kept; class probabilities averaged.",
        _fit_line(metrics),
        f"- Probabilities calibrated by temperature scaling on the validation split "
        f"(T = {config['calibration']['temperature']:.3f}).",
        "",
        "## Metrics",
        *_classification_rows(metrics),
        "",
        "The AUROC interval is a percentile bootstrap (1,000 resamples). Sensitivity and specificity use a 0.5 "
        "threshold on the calibrated risk; choose a threshold for the clinical use before relying on them.",
        "",
        "## Limitations",
        "- Trained on one source; validate on others first (`medai evaluate BUNDLE --data OTHER_DIR --split all`). "
        "Variables a source lacks are treated as never measured, which shifts the risk.",
        "- Measurement frequency carries information (sicker patients are measured more): the model reads it too, "
        "so changes in care practice change its predictions.",
        "- `predict` flags records whose per-variable means lie far from the training records (a simple distance, "
        "not a guarantee of validity).",
        "",
        "![ROC](plots/roc.png) ![PR](plots/pr.png) ![Calibration](plots/calibration.png)",
        "",
    ])  # fmt: skip


def forecasting(config: dict, metrics: dict, split_sizes: dict[str, int]) -> str:
    """Markdown card of a vital-sign forecaster: MAE and RMSE per variable beside last-observation-carried-forward."""
    source, window = config["source"], config["window"]
    rows = ["| variable | n | MAE | LOCF MAE | MAE change | RMSE | LOCF RMSE |", "|---|---|---|---|---|---|---|"]
    for name, m in metrics.get("test", {}).get("per_variable", {}).items():
        rows.append(f"| {name} | {m['n']} | {_number(m['mae'])} | {_number(m['locf_mae'])} | "
                    f"{_percent(m['mae_change'])} | "
                    f"{_number(m['rmse'])} | {_number(m['locf_rmse'])} |")
    return "\n".join([
        *_header(f"{window['horizon']}-hour-ahead vital-sign forecasts", config),
        "## Intended use",
        f"Forecasts {', '.join(config['targets'])} {window['horizon']} hour(s) ahead from the past {window['history']} "
        f"hours of an ICU stay. {DISCLAIMER}",
        *(f"- {note}" for note in config.get("target_notes", [])),
        "",
        "## Data",
        f"- Source {source['data']} ({source['format']}); split {source['split']}; samples: windows ending every "
        f"{window['stride']} hours of each stay; sizes (stays) {', '.join(f'{k} {v}' for k, v in split_sizes.items())}.",
        *_data_lines(metrics),
        "- Targets are the observed hourly means at the target hour; unobserved targets are left out of the loss "
        "and of every metric.",
        "",
        "## Model",
        f"- {_members(config)}, regression on standardised targets ({config.get('regression_loss', 'mse')} loss).",
        _fit_line(metrics, "loss"),
        "",
        "## Test metrics beside last-observation-carried-forward (LOCF), on the same samples",
        *rows,
        "",
        "LOCF predicts the last observed value of the variable (hours before the target). Negative MAE change: better "
        "than LOCF.",
        "",
        "## Limitations",
        "- Hourly means, not single readings; a value that was not measured is not forecast-checked.",
        "- One source; validate elsewhere before use.",
        "",
    ])  # fmt: skip


def ecg(config: dict, metrics: dict, split_sizes: dict[str, int]) -> str:
    """Markdown card of an ECG classifier."""
    source = config["source"]
    return "\n".join([
        *_header(f"ECG classifier ({', '.join(config['label_names'])})", config),
        "## Intended use",
        f"Classifies {config['input_shape'][0]}-sample ECG {'beats' if source['format'] == 'wfdb' else 'series'} "
        f"with {config['input_shape'][1]} lead(s) into {', '.join(f'`{n}`' for n in config['label_names'])}. "
        f"{DISCLAIMER} `medai explain` shows which samples of the trace drove a prediction.",
        "",
        "## Data",
        f"- Source {source['data']} ({source['format']}); {source['split']}; sizes "
        f"{', '.join(f'{k} {v}' for k, v in split_sizes.items())}.",
        *(f"- {note}" for note in source.get("notes", [])),
        "- Inputs standardised per lead with the training mean and standard deviation.",
        "",
        "## Model",
        f"- {_members(config)}; probabilities averaged; temperature "
        f"T = {config['calibration']['temperature']:.3f} fitted on {config['calibration']['fitted_on']}.",
        _fit_line(metrics, config["settings"].get("monitor", "auroc")),
        "",
        "## Metrics",
        *_classification_rows(metrics, ("val", "out_of_fold", "test")),
        "",
        "## Limitations",
        "- Small training sets (ECG200: 100 series) give wide intervals; evaluate on the official test file with "
        "`medai evaluate BUNDLE --data NAME_TEST.txt --split all`.",
        "- Beats of one WFDB record are not independent: a random split of one record's beats overstates accuracy "
        "on new patients.",
        *_signal_check_line(config),
        "",
        "![ROC](plots/roc.png) ![Confusion](plots/confusion_matrix.png)",
        "",
    ])  # fmt: skip


def _signal_check_line(config: dict) -> list[str]:
    check = config.get("ood")
    if not check:
        return []
    held = check.get("held_out_flagged")
    rate = f"; {held:.1%} of training series flagged when held out of the fit" if held is not None else ""
    return ["- `predict` flags a series whose level, amplitude or roughness lies outside the training series' range "
            f"(a flat line, a raw or rescaled trace, noise){rate}. It does not judge whether a normal-looking trace "
            "is an ECG."]

