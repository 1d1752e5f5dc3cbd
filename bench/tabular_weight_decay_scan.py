"""Development scan: should the tabular MLP choose its weight decay per training set from out-of-fold scores?

On development tables only (not the floored pima, heart-cleveland, ckd, breast_cancer), the same 10 folds as
``bench/tabular.py``: for each fold and each candidate weight decay, the default recipe (cross-fitted members) is
fitted once; the fold's held-out AUROC of every fixed candidate is printed beside the held-out AUROC of a per-fold
choice by the members' out-of-fold log loss, AUROC or Brier score (what a nested selection would pick without
seeing the held-out fold). Also counted: how often early stopping with a patience would have kept another epoch than
the full run did (members' validation-loss histories), i.e. whether patience could shorten training for free.

    OMP_NUM_THREADS=1 python bench/tabular_weight_decay_scan.py --tables heart-hungarian,heart-va
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from medai.data.splits import split_indices
from medai.tasks.tabular_classification import TabularSettings, fit, load, predict_proba

CRITERIA = {"log_loss": 1.0, "auroc": -1.0, "brier": 1.0}  # sign: the out-of-fold score minimised


def scan_table(name: str, grid: list[float], folds: int = 10, seed: int = 0) -> list[dict]:
    """One record per (fold, weight decay): held-out probabilities, out-of-fold scores, validation-loss histories."""
    table = load(name, TabularSettings(progress=False))
    records = []
    for fold, (rest, held) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(table.ids, table.labels)):
        inner = split_indices(table.labels[rest], None, (0.80, 0.15, 0.05), seed + fold)  # as cross_validate
        train_rows = rest[np.concatenate([inner["train"], inner["test"]])]
        for weight_decay in grid:
            start = time.perf_counter()
            settings = TabularSettings(progress=False, weight_decay=weight_decay)
            model, config, summary = fit(table.subset(train_rows), table.subset(rest[inner["val"]]), settings)
            records.append({
                "fold": fold, "weight_decay": weight_decay,
                "held_auroc": float(roc_auc_score(table.labels[held], predict_proba(model, config, table.subset(held))[:, 1])),
                "out_of_fold": {key: summary["out_of_fold"][key] for key in CRITERIA},
                "val_loss": [[epoch["val_loss"] for epoch in member["history"]] for member in summary["members"]],
                "seconds": round(time.perf_counter() - start, 1),
            })  # fmt: skip
            print(json.dumps({"progress": name, "fold": fold, "weight_decay": weight_decay}), file=sys.stderr, flush=True)
    return records


def patience_best(losses: list[float], patience: int) -> int:
    """The epoch a run stopped after ``patience`` epochs without a lower validation loss would have kept."""
    best, bad = 0, 0
    for epoch, loss in enumerate(losses[1:], start=1):
        if loss < losses[best]:
            best, bad = epoch, 0
        else:
            bad += 1
            if bad >= patience:
                break
    return best


def summarise(records: list[dict], grid: list[float]) -> dict:
    by_fold = {}
    for record in records:
        by_fold.setdefault(record["fold"], {})[record["weight_decay"]] = record
    summary = {f"fixed {wd}": float(np.mean([by_fold[f][wd]["held_auroc"] for f in by_fold])) for wd in grid}
    for criterion, sign in CRITERIA.items():
        picks = [min(grid, key=lambda wd, f=f: sign * by_fold[f][wd]["out_of_fold"][criterion]) for f in by_fold]
        summary[f"chosen by out-of-fold {criterion}"] = float(np.mean([by_fold[f][wd]["held_auroc"] for f, wd in zip(by_fold, picks)]))
        summary[f"picks by out-of-fold {criterion}"] = dict(Counter(str(wd) for wd in picks))
    histories = [losses for record in records for losses in record["val_loss"]]
    summary["patience_changes_best_epoch"] = {
        str(p): f"{sum(patience_best(h, p) != int(np.argmin(h)) for h in histories)}/{len(histories)} members" for p in (10, 20, 30)
    }  # fmt: skip
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", default="heart-hungarian,heart-va,ilpd")
    parser.add_argument("--grid", default="0.01,0.1,1.0", help="Candidate weight decays (the default is 0.01).")
    args = parser.parse_args()
    grid = [float(value) for value in args.grid.split(",")]
    report = {"benchmark": "tabular weight-decay selection (development tables)", "grid": grid, "tables": {}}
    for name in args.tables.split(","):
        report["tables"][name] = summarise(scan_table(name, grid), grid)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
