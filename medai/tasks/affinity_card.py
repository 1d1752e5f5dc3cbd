"""The model card (card.md) of a drug-target affinity model."""

from __future__ import annotations

DEEPDTA_PUBLISHED = {"dta_davis": {"ci": 0.878, "mse": 0.261}, "dta_kiba": {"ci": 0.863, "mse": 0.194}}
"""DeepDTA's test-fold results (Öztürk et al. 2018, Table 3/4, CNN + CNN), for comparison in the card."""


def render(config: dict, metrics: dict, split_sizes: dict[str, int]) -> str:
    """Markdown model card: data, intended use, metrics per split, limitations."""
    name, source = config["affinity_name"], config["source"]
    rows = ["| split | pairs | CI | MSE | RMSE | MAE | R^2 | r_m^2 |", "|---|---|---|---|---|---|---|---|"]
    for split in ("train", "val", "test"):
        m = metrics.get(split)
        if m:
            rows.append(f"| {split} | {m['n_samples']} | " + " | ".join(_number(m.get(k)) for k in
                                                                         ("ci", "mse", "rmse", "mae", "r2", "rm2")) + " |")
    published = DEEPDTA_PUBLISHED.get(source["data"])
    comparison = ([f"DeepDTA's published test-fold result on this set: CI {published['ci']}, MSE {published['mse']} "
                   "(its CI code counts a data-order-dependent half of the comparable pairs, so the two agree only on average; "
                   "see medai.chem.metrics)."]
                  if published and source["split_method"] == "deepdta" else [])
    encoding = config["encoding"]
    fit = metrics.get("fit", {})
    return "\n".join([
        f"# Model card: {config['network']} drug-target affinity ({name})",
        "",
        "## Intended use",
        f"Research: ranks drug-protein pairs by predicted {name} from the drug's SMILES and the protein's amino-acid "
        "sequence. Not for clinical decisions. Predictions for drugs or proteins unlike the training ones (other "
        "target families, other chemistry) are extrapolations; check them with `medai explain`.",
        "",
        "## Data",
        f"- Source `{source['data']}`: {source['pairs']} pairs of {source['drugs']} drugs and {source['proteins']} "
        f"proteins; split: {source['split']}; sizes {', '.join(f'{k} {v}' for k, v in split_sizes.items())}.",
        f"- Encoding: SMILES characters as given (first {encoding['max_smiles_length']}), amino acids (first "
        f"{encoding['max_sequence_length']}); {encoding['truncated_drugs']} drugs and "
        f"{encoding['truncated_proteins']} proteins were truncated.",
        f"- Targets standardised on the training split (mean {config['target_normalisation']['mean']:.3f}, "
        f"sd {config['target_normalisation']['std']:.3f}); predictions are in {name}.",
        "",
        "## Metrics",
        *rows,
        "",
        f"Best epoch {fit.get('best_epoch', -1) + 1} of {fit.get('max_epochs', 'n/a')} (validation loss); "
        f"{fit.get('train_seconds', 0.0):.0f} s of training.",
        *comparison,
        "",
        "## Limitations",
        "- A random-pair split (DeepDTA setting 1) shares every drug and protein between training and test; it "
        "measures filling in a known interaction matrix, not affinity for new drugs or new proteins (train with "
        "`split=\"cold-drug\"` or `\"cold-protein\"` to measure those).",
        "- DAVIS Kd values at the 10,000 nM assay ceiling (pKd 5) are censored, not measured; most pairs are.",
        *_shared_sequences(source),
        "",
        "![Predicted vs measured](plots/predicted_vs_measured.png)",
        "",
    ])  # fmt: skip


def _shared_sequences(source: dict) -> list[str]:
    shared = source["proteins"] - source.get("distinct_sequences", source["proteins"])
    if shared <= 0:
        return []
    return [f"- {shared} proteins share their sequence with another (in DAVIS, mutants and phosphorylation states "
            "carry the wild-type sequence): the model cannot tell them apart and predicts one value for each drug."]


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
