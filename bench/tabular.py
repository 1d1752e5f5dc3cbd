"""Benchmark: lab-data diagnosis with 10-fold stratified cross-validation (CLI defaults).

For each table, our default model (an ensemble of tabular MLPs) beside logistic-regression and gradient-boosting
baselines run on the same folds in the same process, and the published figures the datasets' documentation quotes
(accuracies: our 10-fold accuracy is printed beside them); prints one JSON document with the floors of issue 4.

    python bench/tabular.py                    # pima, heart-cleveland, ckd, breast_cancer (about 25 minutes)
    python bench/tabular.py --tables pima --folds 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from medai.tasks.tabular_classification import TabularSettings, cross_validate

FLOORS = {"pima": 0.84, "heart-cleveland": 0.91, "ckd": 0.99, "breast_cancer": 0.99}  # issue 4, mean 10-fold AUROC
MODELS = ("tabular_mlp", "logistic_regression", "gradient_boosting")
# Published figures, as the datasets' own documentation quotes them (all are accuracies, none AUROC: the bench prints
# our 10-fold accuracy beside them, with the caveat that protocols differ as noted).
PUBLISHED = {
    "pima": [{
        "model": "ADAP (adaptive learning routine)", "metric": "accuracy", "value": 0.76,
        "protocol": "576 training / 192 held-out rows; sensitivity and specificity both 76% at cutoff 0.448",
        "source": "Smith et al. 1988, Proc. Symp. Computer Applications and Medical Care 261-265, as quoted in "
                  "pima-indians-diabetes.names",
    }],
    "heart-cleveland": [
        {"model": "NTgrowth (instance-based)", "metric": "accuracy", "value": 0.770, "protocol": "not stated",
         "source": "Aha & Kibler, as quoted in heart-disease.names"},
        {"model": "C4 (decision tree)", "metric": "accuracy", "value": 0.748, "protocol": "not stated",
         "source": "Aha & Kibler, as quoted in heart-disease.names"},
        {"model": "CLASSIT (conceptual clustering)", "metric": "accuracy", "value": 0.789, "protocol": "not stated",
         "source": "Gennari, Langley & Fisher 1989, Artificial Intelligence 40:11-61, as quoted in heart-disease.names"},
    ],
    "ckd": [],  # the UCI documentation (chronic_kidney_disease.info.txt) quotes no result
    "breast_cancer": [{
        "model": "MSM-T, one separating plane on 3 features", "metric": "accuracy", "value": 0.975,
        "protocol": "repeated 10-fold cross-validation",
        "source": "Street, Wolberg & Mangasarian 1993 (SPIE 1905:861-870), as quoted in the UCI wdbc.names file",
    }],
}


def run_table(name: str, folds: int, seed: int) -> dict:
    results = {}
    for model in MODELS:
        start = time.perf_counter()
        result = cross_validate(name, TabularSettings(model=model, progress=False), folds=folds, seed=seed)
        result["seconds"] = round(time.perf_counter() - start, 1)
        results[model] = result
        progress = {"progress": name, "model": model, "auroc_mean": result["auroc_mean"], "accuracy_mean": result["accuracy_mean"]}
        print(json.dumps(progress), file=sys.stderr, flush=True)
    ours = results["tabular_mlp"]["auroc_mean"]
    best_baseline = max(results[m]["auroc_mean"] for m in MODELS[1:])
    floor = FLOORS.get(name)
    return {
        "models": results,
        "ours": ours,
        "best_baseline": best_baseline,
        "floor": floor,
        "published": PUBLISHED.get(name, []),
        "ours_accuracy": results["tabular_mlp"]["accuracy_mean"],
        "checks": {"floor": floor is None or ours >= floor, "within_0.01_of_best_baseline": ours >= best_baseline - 0.01},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", default=",".join(FLOORS))
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report = {"benchmark": "tabular-classification", "cv": f"{args.folds}-fold stratified, seed {args.seed}",
              "defaults": TabularSettings().__dict__, "threads": torch.get_num_threads(), "tables": {}}  # fmt: skip
    for name in args.tables.split(","):
        report["tables"][name] = run_table(name, args.folds, args.seed)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
