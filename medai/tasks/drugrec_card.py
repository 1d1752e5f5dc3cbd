"""The model card (card.md) of a drug recommender, and the evidence bar chart of ``medai explain``."""

from __future__ import annotations

from pathlib import Path

PUBLISHED = "Published on full MIMIC-III (GAMENet protocol): SafeDrug Jaccard 0.521, DDI rate 0.059; GAMENet about 0.45 / 0.085."
KEYS = ("jaccard", "f1", "prauc", "ddi_rate", "ddi_rate_ground_truth", "avg_drugs")


def render(config: dict, metrics: dict, split_sizes: dict[str, int]) -> str:
    """Markdown model card: intended use, data, model, metrics with 95% CIs, safety, limitations."""
    rows = ["| split | patients | visits | " + " | ".join(KEYS) + " |", "|---|---|---|" + "---|" * len(KEYS)]
    for split in ("val", "test"):
        m = metrics.get(split)
        if m:
            cells = [f"{m[k]:.3f} ({m[k + '_ci'][0]:.3f}-{m[k + '_ci'][1]:.3f})" if k + "_ci" in m else f"{m[k]:.3f}" for k in KEYS]
            rows.append(f"| {split} | {m['n_patients']} | {m['n_visits']} | " + " | ".join(cells) + " |")
    threshold, ddi = config["threshold"], config["ddi"]
    model = config["network"] if config["network"] != "ensemble" else f"ensemble of {config['ensemble']} drug_recommender"
    return "\n".join([
        f"# Model card: {model} for medication recommendation",
        "",
        "## Intended use",
        f"Research decision support: ranks {len(config['label_names'])} ATC level-3 classes for a patient's current "
        "visit from the ICD-9 diagnoses and procedures of that visit and earlier ones, with the codes behind each "
        "class and a warning on every interacting pair (`medai recommend BUNDLE --patient FILE.json`). Not a medical "
        "device; it suggests classes seen in past practice, not doses, and never replaces a prescriber's check.",
        "",
        "## Data",
        f"- Source {config['source']['data']}, split {config['source']['split']} (seed {config['source']['split_seed']}); "
        f"patients {', '.join(f'{k} {v}' for k, v in split_sizes.items())}.",
        "- Vocabularies fitted on the training split only; unseen codes are dropped and counted.",
        "",
        "## Model and decision rule",
        f"- `{model}`; DDI graph `{ddi['source']}` (TWOSIDES via GAMENet/SafeDrug); loss DDI target {ddi['loss_target']:.3f}.",
        *(["- Wide path: the logistic-regression baseline on the current visit's codes (fitted first, frozen); the GRU "
           "over visits learns a residual on top of it."] if config["network"] in ("drug_recommender", "ensemble")
          and config.get("settings", {}).get("residual") and config["settings"].get("wide") else []),
        f"- A class is recommended when its probability is >= {threshold['threshold']:.3f}: the best validation Jaccard "
        f"({threshold['val_jaccard']:.3f}) with validation DDI rate {threshold['val_ddi_rate']:.3f}"
        + (f" capped at the training ground truth {threshold['ddi_cap']:.3f}." if threshold.get("ddi_cap") is not None else "."),
        "",
        "## Metrics (95% bootstrap CIs over patients)",
        *rows,
        "",
        "Validation figures are optimistic: epochs and the threshold were chosen on that split. Prescribed classes the "
        "model never saw in training count as missed.",
        "",
        PUBLISHED,
        "",
        "## Limitations",
        "- Trained on one hospital's data; small cohorts (the MIMIC-III demo has 100 patients) give wide intervals.",
        "- Interaction checks cover only the classes of the DDI graph; a class outside it is never flagged.",
        "- The nearest-neighbour baseline stores the training visits' code sets (no identifiers, no dates).",
        "",
    ])  # fmt: skip


def evidence_chart(recommendation: dict | None, out: Path) -> Path:
    """A horizontal bar chart of one recommended class's evidence (contribution of each code) written to ``out``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    items = (recommendation or {}).get("evidence", [])
    if items:
        axes.barh([f"{e['kind']} {e['code']}" for e in items][::-1], [e["contribution"] for e in items][::-1])
        axes.set_xlabel("probability lost without the code")
        axes.set_title(f"{recommendation['class']} {recommendation.get('name', '')}"[:70])
    else:
        axes.text(0.5, 0.5, "no recommended class or no evidence", ha="center", va="center")
        axes.set_axis_off()
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    return out
