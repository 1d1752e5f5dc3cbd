"""Benchmark: DeepDTA (``medai train --task drug-target-affinity``) on DAVIS, DeepDTA setting 1.

Trains with the task's defaults on the DeepDTA training folds (fold 0 held out to choose the epoch) for each seed
and scores the official test fold: CI and MSE per seed and their mean beside DeepDTA's published result (CI 0.878,
MSE 0.261 on DAVIS) and beside a peer run in the same process on the same split: a random forest on Morgan
fingerprints (radius 2, 1,024 bits) concatenated with protein amino-acid and dipeptide composition (420 values).
Everything runs on one CPU thread; wall times measured while others share the machine are upper bounds, and the
process's CPU time (``cpu_seconds``) is about what the same run takes on an idle core.

    OMP_NUM_THREADS=1 python bench/drug_target_affinity.py    # 3 seeds: about 13 CPU minutes each, + 4 for the forest
    OMP_NUM_THREADS=1 python bench/drug_target_affinity.py --seeds 0 --skip-peer
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medai import api
from medai.chem.datasets import load_affinity_dataset
from medai.chem.metrics import affinity_metrics

PUBLISHED = {"davis": {"ci": 0.878, "mse": 0.261}, "kiba": {"ci": 0.863, "mse": 0.194}}  # Öztürk et al. 2018
FLOORS = {"davis": {"ci": 0.878, "mse": 0.261, "train_minutes": 30}}  # issue 5: mean over seeds 0, 1, 2
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


def protein_composition(sequence: str) -> np.ndarray:
    """Amino-acid (20) and dipeptide (400) frequencies of a sequence, shape (420,)."""
    index = {a: i for i, a in enumerate(AMINO_ACIDS)}
    single, double = np.zeros(20), np.zeros(400)
    codes = [index[a] for a in sequence if a in index]
    for a in codes:
        single[a] += 1
    for a, b in itertools.pairwise(codes):
        double[20 * a + b] += 1
    return np.concatenate([single / max(len(codes), 1), double / max(len(codes) - 1, 1)])


def run_peer(data, parts: dict, seed: int) -> dict:
    """Random forest on Morgan bits of the drug and composition of the protein, trained on the same pairs."""
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator
    from sklearn.ensemble import RandomForestRegressor

    start = time.perf_counter()
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    drugs = np.stack([generator.GetFingerprintAsNumPy(Chem.MolFromSmiles(s)) for s in data.canonical_smiles])
    proteins = np.stack([protein_composition(s) for s in data.sequences])

    def features(index):
        return np.hstack([drugs[data.drug_index[index]], proteins[data.protein_index[index]]]).astype(np.float32)

    forest = RandomForestRegressor(n_estimators=100, max_features=0.3, min_samples_leaf=1, n_jobs=1, random_state=seed)
    forest.fit(features(parts["train"]), data.affinity[parts["train"]])
    metrics = affinity_metrics(forest.predict(features(parts["test"])), data.affinity[parts["test"]])
    return {"model": "random forest (100 trees, max_features 0.3) on Morgan r2 1024 bits + amino-acid/dipeptide "
                     "composition", "ci": metrics["ci"], "mse": metrics["mse"], "rm2": metrics["rm2"],
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="davis", choices=sorted(PUBLISHED))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="default: the task's default")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--work", type=Path, default=None, help="keep the bundles here (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_affinity_dataset(args.dataset)
    parts = data.split(0)
    report = {"benchmark": "drug-target-affinity", "dataset": args.dataset, "published_deepdta": PUBLISHED[args.dataset],
              "split": {k: len(v) for k, v in parts.items()}, "threads": 1, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for seed in args.seeds:
            start, cpu_start = time.perf_counter(), time.process_time()
            options = {"epochs": args.epochs} if args.epochs else {}
            bundle = api.train("drug-target-affinity", args.dataset, work / f"{args.dataset}-{seed}", seed=seed,
                               num_threads=1, progress=False, **options)
            test, fit = bundle.metrics["test"], bundle.metrics["fit"]
            run = {"seed": seed, "ci": test["ci"], "mse": test["mse"], "rm2": test["rm2"], "val_ci": bundle.metrics["val"]["ci"],
                   "val_mse": bundle.metrics["val"]["mse"], "best_epoch": fit["best_epoch"] + 1, "epochs": fit["max_epochs"],
                   "train_seconds": round(fit["train_seconds"], 1), "wall_seconds": round(time.perf_counter() - start, 1),
                   "cpu_seconds": round(time.process_time() - cpu_start, 1)}  # fmt: skip
            report["runs"].append(run)
            print(json.dumps({"progress": run}), file=sys.stderr, flush=True)
    runs = report["runs"]
    report["mean"] = {k: float(np.mean([r[k] for r in runs])) for k in ("ci", "mse", "rm2", "wall_seconds", "cpu_seconds")}
    if not args.skip_peer:
        report["peer"] = run_peer(data, parts, seed=0)
    floor = FLOORS.get(args.dataset)
    if floor:
        report["floors"] = floor
        report["checks"] = {"mean_ci_at_least_floor": report["mean"]["ci"] >= floor["ci"],
                            "mean_mse_at_most_floor": report["mean"]["mse"] <= floor["mse"],
                            "every_run_under_time_limit_wall": all(r["wall_seconds"] <= 60 * floor["train_minutes"] for r in runs),
                            "every_run_under_time_limit_cpu": all(r["cpu_seconds"] <= 60 * floor["train_minutes"] for r in runs)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
