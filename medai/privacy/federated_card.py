"""The model card (card.md) of a federated tabular classifier."""

from __future__ import annotations


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render(config: dict, metrics: dict) -> str:
    """Markdown: how the federation ran, what each site shared, per-site and pooled test metrics."""
    federated, settings = config["federated"], config["federated"]["settings"]
    rows = ["| site | train rows | test n | AUROC | accuracy | Brier |", "|---|---|---|---|---|---|"]
    for name, site in sorted(metrics["sites"].items()):
        m = site["test"]
        rows.append(f"| {name} | {site['train_rows']} | {m['n_samples']} | {_number(m.get('auroc'))} | "
                    f"{_number(m.get('accuracy'))} | {_number(m.get('brier'))} |")
    pooled = metrics["test"]
    rows.append(f"| **pooled** | | {pooled['n_samples']} | {_number(pooled['auroc'])} | {_number(pooled['accuracy'])} | "
                f"{_number(pooled['brier'])} |")
    privacy = [f"- Secure aggregation (SecAgg+): {'on' if settings['secure_aggregation'] else 'off'}."]
    if settings["dp_noise_multiplier"] > 0:
        privacy.append(f"- Client-side DP: updates clipped to L2 norm {settings['dp_clipping_norm']}, Gaussian noise "
                       f"multiplier {settings['dp_noise_multiplier']} on the aggregate (site-level; no epsilon is "
                       f"computed: with few sites the guarantee is weak).")
    else:
        privacy.append("- Differential privacy: off.")
    return "\n".join([
        f"# Model card: federated `tabular_mlp` for `{config['target']}`",
        "",
        "## Intended use",
        "Decision support for research, trained across hospitals without pooling their records. Not a medical device.",
        "",
        "## Federation",
        f"- {federated['framework']}, {federated['mode']}; sites: {', '.join(federated['sites'])}.",
        f"- Strategy {settings['strategy']}" + (f" (mu = {settings['proximal_mu']})" if settings["strategy"] == "fedprox" else "")
        + f", {settings['rounds']} rounds of {settings['local_epochs']} local epochs; round {federated['best_round']} "
        f"kept (best pooled validation {settings.get('monitor', 'loss')}).",
        f"- Shared by each site: {federated['shared_by_sites']}. No record leaves a site.",
        *privacy,
        f"- Data {config['source']['data']}, split {config['source']['split']} (seed {config['source']['split_seed']}).",
        "- Preprocessing computed federatedly: exact pooled means and standard deviations; medians (imputation) and "
        "percentiles from pooled histograms.",
        "",
        "## Test metrics",
        *rows,
        "",
        f"Pooled AUROC from {pooled['auroc_method']}. Temperature {config['calibration']['temperature']:.3f}, chosen on "
        "the sites' validation rows.",
        "",
        "## Limitations",
        "- Few sites and small test sets per site: per-site AUROCs have wide confidence intervals.",
        "- No out-of-distribution detector (it would need pooled records).",
        "",
    ])  # fmt: skip
