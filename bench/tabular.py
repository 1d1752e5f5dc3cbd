"""Benchmark: lab-data diagnosis with 10-fold stratified cross-validation (CLI defaults).

For each table, our default model (an ensemble of tabular MLPs) beside logistic-regression and gradient-boosting
baselines run on the same folds in the same process; prints one JSON document with the floors of issue 4.

    python bench/tabular.py                    # pima, heart-cleveland, ckd, breast_cancer (about 30 minutes)
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


def run_table(name: str, folds: int, seed: int) -> dict:
    results = {}
    for model in MODELS:
        start = time.perf_counter()
        result = cross_validate(name, TabularSettings(model=model, progress=False), folds=folds, seed=seed)
        result["seconds"] = round(time.perf_counter() - start, 1)
        results[model] = result
        print(json.dumps({"progress": name, "model": model, "auroc_mean": result["auroc_mean"]}), file=sys.stderr, flush=True)
    ours = results["tabular_mlp"]["auroc_mean"]
    best_baseline = max(results[m]["auroc_mean"] for m in MODELS[1:])
    floor = FLOORS.get(name)
    return {
        "models": results,
        "ours": ours,
        "best_baseline": best_baseline,
        "floor": floor,
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
