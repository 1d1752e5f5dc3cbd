"""Compare D-MPNN settings on validation data only: the evidence behind the molecule task's defaults.

Each configuration trains a small D-MPNN ensemble on the training split of the CLI's seeded random (or scaffold)
split and scores it on the validation split; the test split is never featurised into a metric. Prints one JSON line
per (configuration, seed) to stderr and a JSON summary (mean validation score per configuration) to stdout.

Examples:
    OMP_NUM_THREADS=1 python bench/molecular_validation_scan.py --dataset esol \\
        --config base='{"epochs": 40}' --config epochs80='{"epochs": 80}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from medai.tasks import molecular_property as task
from medai.tasks import molecule_fit as fitting


def validation_score(name: str, overrides: dict, seed: int, members: int, split: str) -> dict:
    """Train ``members`` D-MPNNs with ``overrides`` on ``name``'s training split; score them on validation."""
    table = task.load(name)
    settings = task.MolecularSettings(model="dmpnn", seed=seed, split=split, progress=False, num_threads=1,
                                      ensemble=members, **overrides).validate()
    indices = task.split_table(table, split, seed)
    parts = fitting.featurise_all(table, "dmpnn", task.features_of(settings))
    start = time.perf_counter()
    model, config, summary = task.fit(table, parts, {"train": indices["train"], "val": indices["val"]}, settings)
    predicted, _ = task.predictions_for(model, config, parts, indices["val"])
    labels = table.labels[indices["val"]]
    result = {"seed": seed, "best_epochs": summary["best_epochs"], "max_epochs": summary["max_epochs"],
              "seconds": round(time.perf_counter() - start, 1),
              "selection_score": round(fitting.selection_score(predicted, labels, config["task_types"],
                                                               config["target_std"]), 4)}
    if all(kind == "regression" for kind in config["task_types"]):
        result["val_rmse"] = round(float(np.sqrt(np.nanmean((predicted - labels) ** 2))), 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, help="a MoleculeNet name medai knows (esol, freesolv, ...)")
    parser.add_argument("--config", action="append", required=True, metavar="LABEL=JSON",
                        help="a named set of MolecularSettings overrides; repeat to compare")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--members", type=int, default=2, help="D-MPNN members per ensemble")
    parser.add_argument("--split", default="random", choices=["random", "scaffold"])
    args = parser.parse_args()
    configs = dict(item.split("=", 1) for item in args.config)
    report = {"benchmark": "molecular-validation-scan", "dataset": args.dataset, "split": args.split,
              "members": args.members, "score": "validation only (the test split is not scored)", "configs": {}}
    for label, overrides in configs.items():
        runs = []
        for seed in (int(s) for s in args.seeds.split(",")):
            runs.append(validation_score(args.dataset, json.loads(overrides), seed, args.members, args.split))
            print(json.dumps({"config": label, **runs[-1]}), file=sys.stderr, flush=True)
        key = "val_rmse" if "val_rmse" in runs[0] else "selection_score"
        report["configs"][label] = {"overrides": json.loads(overrides), "runs": runs,
                                    f"mean_{key}": round(float(np.mean([r[key] for r in runs])), 4)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
