"""Benchmark: medication recommendation on the MIMIC-III demo, patient-level 5-fold cross-validation.

Every model runs with the CLI defaults of ``medai train --task drug-recommendation`` (only ``model`` changes for the
baselines). In each fold the training part is split again by patient (15% inner validation, as the CLI does) for
best-epoch selection and the decision threshold; the held-out fold is scored once. Metrics are pooled over the
out-of-fold predictions (each patient is scored exactly once) with 95% bootstrap intervals over patients, and listed
per fold. ``--select`` instead scores candidate recipes on the inner validation parts only (the way the defaults
were chosen); it never reads the held-out folds.

    python bench/drug_recommendation.py                       # writes bench/results/2026-11-29-drug_recommendation.json
    python bench/drug_recommendation.py --select --out sel.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from medai.ehr.ddi import load_ddi
from medai.ehr.metrics import HEADLINE, recommendation_metrics, visit_scores
from medai.settings import data_dir
from medai.tasks import drug_recommendation as task
from medai.tasks.drugrec_data import split_patients, subset

MODELS = ("drug_recommender", "most_frequent", "logistic_regression", "nearest_neighbour")
PUBLISHED = {"source": "full MIMIC-III, GAMENet protocol (papers' tables)", "SafeDrug": {"jaccard": 0.521, "ddi_rate": 0.059},
             "GAMENet": {"jaccard": 0.45, "ddi_rate": 0.085, "note": "approximate, as reported in the SafeDrug paper"}}  # fmt: skip
CANDIDATES = {  # deep recipes compared on inner validation only (--select)
    "default": {},
    "code_dropout_0.2": {"code_dropout": 0.2},
    "no_wide": {"wide": False},
    "weight_decay_1e-2": {"weight_decay": 1e-2},
    "weight_decay_1e-1": {"weight_decay": 1e-1},
    "lr_1e-2": {"learning_rate": 1e-2},
    "no_ddi_cap": {"ddi_cap": False},
    "no_previous_medications": {"use_medications": False},
    "small": {"embedding": 32, "hidden": 32},
    "dropout_0.5": {"dropout": 0.5},
    "monitor_prauc": {"monitor": "prauc"},
    "ensemble_3": {"ensemble": 3},
    "epochs_20": {"epochs": 20},
    "monitor_loss": {"monitor": "loss"},
    "lr_1e-2_wd_1e-1": {"learning_rate": 1e-2, "weight_decay": 1e-1},
    "epochs_80_lr_1e-2": {"epochs": 80, "learning_rate": 1e-2},
    "lr_1e-2_epochs_100": {"learning_rate": 1e-2, "epochs": 100},
    "lr_5e-3_batch_8_epochs_60": {"learning_rate": 5e-3, "batch_size": 8, "epochs": 60},
    "lr_1e-2_epochs_100_ensemble_5": {"learning_rate": 1e-2, "epochs": 100, "ensemble": 5},
    "lr_1e-2_epochs_100_monitor_loss": {"learning_rate": 1e-2, "epochs": 100, "monitor": "loss"},
    "monitor_last": {"monitor": "last"},
    "residual": {"residual": True},
    "residual_monitor_last": {"residual": True, "monitor": "last"},
    "residual_monitor_last_epochs_30": {"residual": True, "monitor": "last", "epochs": 30},
    "residual_code_dropout_0.2": {"residual": True, "code_dropout": 0.2},
    "residual_ensemble_10": {"residual": True, "ensemble": 10},
    "residual_code_dropout_0.2_ensemble_10": {"residual": True, "code_dropout": 0.2, "ensemble": 10},
    "baseline_logistic_regression": {"model": "logistic_regression"},
    "baseline_most_frequent": {"model": "most_frequent"},
    "baseline_nearest_neighbour": {"model": "nearest_neighbour"},
}


def folds(n_patients: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded patient-level k-fold: (training positions, held-out positions) per fold."""
    order = np.random.default_rng(seed).permutation(n_patients)
    parts = np.array_split(order, k)
    return [(np.sort(np.concatenate(parts[:i] + parts[i + 1 :])), np.sort(parts[i])) for i in range(k)]


def fit_fold(cohort, rest: np.ndarray, settings, fold: int):
    """Fit on ``rest`` with the CLI's inner split (validation_fraction of the patients, no test part)."""
    inner = split_patients(len(rest), 0.0, settings.validation_fraction, settings.seed + fold)
    train = subset(cohort, rest[inner["train"]])
    val = subset(cohort, rest[inner["val"]])
    return (*task.fit(train, val, settings), val)


def aligned(found: dict, columns: list[str]) -> dict:
    """Re-index a fold's truth/chosen/scores onto the cohort-wide ``columns``."""
    index = [columns.index(c) for c in found["columns"]]
    out = {}
    for key in ("truth", "chosen", "scores"):
        block = np.zeros((len(found[key]), len(columns)))
        block[:, index] = found[key]
        out[key] = block
    return out


def cross_validate(cohort, settings, k: int, seed: int, bootstrap: int) -> dict:
    columns = cohort.vocabulary("medications")
    ddi = load_ddi(settings.ddi_source).aligned(columns)
    pooled = {"truth": [], "chosen": [], "scores": [], "patients": []}
    per_fold, started = [], time.perf_counter()
    for fold, (rest, held) in enumerate(folds(len(cohort.patients), k, seed)):
        model, config, summary, _ = fit_fold(cohort, rest, settings, fold)
        found = task.outputs(model, config, subset(cohort, held))
        arrays = aligned(found, columns)
        for key in ("truth", "chosen", "scores"):
            pooled[key].append(arrays[key])
        pooled["patients"].append(found["patients"])
        metrics = recommendation_metrics(arrays["truth"], arrays["chosen"], arrays["scores"], found["patients"],
                                         ddi_matrix=ddi, bootstrap=0)  # fmt: skip
        per_fold.append({**{k2: metrics[k2] for k2 in HEADLINE}, "n_patients": metrics["n_patients"],
                         "threshold": config["threshold"], "best_epochs": summary.get("best_epochs")})  # fmt: skip
    stacked = {key: np.concatenate(value) for key, value in pooled.items()}
    metrics = recommendation_metrics(stacked["truth"], stacked["chosen"], stacked["scores"], stacked["patients"],
                                     ddi_matrix=ddi, bootstrap=bootstrap, seed=seed)  # fmt: skip
    jaccard = visit_scores(stacked["truth"], stacked["chosen"], stacked["scores"])["jaccard"]
    _, groups = np.unique(stacked["patients"], return_inverse=True)
    per_patient = (np.bincount(groups, jaccard) / np.bincount(groups)).tolist()  # patients in sorted-id order
    fold_means = {key: [float(np.mean([f[key] for f in per_fold])), float(np.std([f[key] for f in per_fold]))] for key in HEADLINE}
    return {"pooled": metrics, "fold_mean_std": fold_means, "folds": per_fold, "per_patient_jaccard": per_patient, "seconds": round(time.perf_counter() - started, 1)}


def paired_difference(deep: list[float], other: list[float], name: str, seed: int, draws: int = 2000) -> dict:
    """Deep minus ``name`` patient-averaged Jaccard on the same patients, with a paired 95% bootstrap interval."""
    difference = np.asarray(deep) - np.asarray(other)
    rng = np.random.default_rng(seed)
    means = [difference[rng.integers(0, len(difference), len(difference))].mean() for _ in range(draws)]
    return {"against": name, "difference": float(difference.mean()),
            "ci": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]}


def threshold_from_other_folds(found: list[dict]) -> list[float]:
    """Each fold's inner-validation Jaccard at the threshold that is best on the *other* folds' inner validation
    parts: unlike the threshold tuned on the part being scored, this one has not seen the patients it is scored on."""
    grid = np.round(np.arange(0.05, 0.951, 0.025), 3)

    def jaccard(f, threshold):
        return recommendation_metrics(f["truth"], f["scores"] >= threshold, f["scores"], f["patients"], bootstrap=0)["jaccard"]

    table = np.array([[jaccard(f, t) for t in grid] for f in found])  # (folds, thresholds)
    out = []
    for i in range(len(found)):
        others = np.delete(table, i, axis=0).mean(0)
        out.append(float(table[i, int(np.flatnonzero(others == others.max())[-1])]))  # ties: the higher threshold
    return out


def select(cohort, k: int, seed: int, names: list[str]) -> dict:
    """Inner-validation scores of each candidate recipe (held-out folds untouched).

    ``jaccard`` etc. use the threshold tuned on the same inner validation part (optimistic, more so for recipes
    that also pick their epoch there); ``jaccard_threshold_other_folds`` takes the threshold from the other folds'
    inner validation parts instead, the fairer comparison between recipes.
    """
    results = {}
    for name in names:
        settings = task.Settings(progress=False, **CANDIDATES[name])
        rows, found = [], []
        for fold, (rest, _) in enumerate(folds(len(cohort.patients), k, seed)):
            model, config, _, val = fit_fold(cohort, rest, settings, fold)
            m = task.score(model, config, val, bootstrap=0)
            rows.append({key: m[key] for key in HEADLINE})
            found.append(task.outputs(model, config, val))
        honest = threshold_from_other_folds(found)
        results[name] = {key: float(np.mean([r[key] for r in rows])) for key in HEADLINE} | {
            "jaccard_per_fold": [r["jaccard"] for r in rows], "jaccard_threshold_other_folds": float(np.mean(honest)),
            "jaccard_threshold_other_folds_per_fold": honest, "overrides": CANDIDATES[name]}  # fmt: skip
        print(name, {key: round(v, 4) for key, v in results[name].items() if key in HEADLINE or key == "jaccard_threshold_other_folds"},
              flush=True)  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str((data_dir() or Path("..") / "shared" / "data") / "mimic3_demo"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--select", action="store_true", help="score candidate recipes on inner validation only")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--out", default="bench/results/2026-11-29-drug_recommendation.json")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cohort = task.load_cohort(args.data)
    report = {"benchmark": "drug_recommendation", "data": Path(args.data).name, "folds": args.folds, "seed": args.seed,
              "patients": len(cohort.patients), "visits": cohort.n_visits,
              "visits_with_medications": sum(bool(v.medications) for p in cohort.patients for v in p.visits),
              "settings": "CLI defaults (medai train --task drug-recommendation), model varied", "published_reference": PUBLISHED}  # fmt: skip
    if args.select:
        report["selection_on_inner_validation"] = select(cohort, args.folds, args.seed, args.candidates.split(","))
    else:
        report["models"] = {}
        for name in args.models.split(","):
            report["models"][name] = cross_validate(cohort, task.Settings(model=name, progress=False), args.folds, args.seed, args.bootstrap)
            pooled = report["models"][name]["pooled"]
            print(name, {k: round(pooled[k], 3) for k in HEADLINE}, f"{report['models'][name]['seconds']} s", flush=True)
        deep = report["models"].get("drug_recommender", {}).get("pooled")
        baselines = [m["pooled"]["jaccard"] for n, m in report["models"].items() if n != "drug_recommender"]
        if deep and baselines:
            best = max((n for n in report["models"] if n != "drug_recommender"), key=lambda n: report["models"][n]["pooled"]["jaccard"])
            report["paired_jaccard_difference"] = paired_difference(report["models"]["drug_recommender"]["per_patient_jaccard"],
                                                                    report["models"][best]["per_patient_jaccard"], best, args.seed)
            report["floors"] = {"jaccard_at_or_above_best_baseline": deep["jaccard"] >= max(baselines),
                                "ddi_rate_at_or_below_ground_truth": deep["ddi_rate"] <= deep["ddi_rate_ground_truth"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report.get("floors", {}), indent=2))


if __name__ == "__main__":
    main()
