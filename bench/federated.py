"""Benchmark: federated (FedAvg, FedProx) vs centralised vs local-only training over the four UCI heart hospitals.

Each hospital (Cleveland, Hungary, Switzerland, VA) is one site, split by patient into train/val/test (stratified
70/10/20, seeded). Every model is the same single tabular MLP (medai defaults, no ensemble):

- federated: ``medai.privacy.federated.simulate`` (Flower ServerApp + ClientApps in process) with the
  ``FederatedSettings`` defaults: 60 rounds of 1 local epoch at learning rate 1e-2, BatchNorm fixed to the global
  model's statistics during local training; the round and the temperature are chosen on the sites' validation rows;
- centralised: ``tabular_classification.fit`` on the pooled training rows (100 epochs, best epoch and temperature on
  pooled val), its learning rate chosen from GRID_CENTRALISED on pooled validation AUROC (the grid the federated
  learning rate was chosen from, on the same validation rows);
- local-only: the same ``fit`` on one site's training rows (best epoch and temperature on that site's val).

AUROC on each site's test rows and on the pooled test set (the four test sets together), computed here on the
predictions (exact, not the federated histograms). Floors (issue 7): FedAvg pooled-test AUROC >= centralised - 0.02,
and > local_mean, the arithmetic mean over the four local-only models of each one's AUROC on the pooled test set.
No hyperparameter is tuned on test data.

The federated defaults were chosen on pooled validation AUROC (mean of seeds 0-2, best round), from: the former
recipe (30 rounds x 2 epochs, lr 3e-3, BatchNorm on each site's batch statistics) 0.907; fixed BatchNorm 0.912;
+ 60 rounds 0.914; fixed + lr 1e-2 0.918; fixed + 1 epoch x 60 rounds 0.914; fixed + lr 1e-2 + 1 epoch x 60 rounds
0.920 (the same with batch statistics: 0.909); lr 3e-2 0.919; FedAvgM server momentum 0.5: 0.923 (0.919 at 30x2),
0.9: 0.920 (kept at 0: within noise of plain FedAvg, which issue 7 names). Centralised pooled val AUROC for
reference: 0.936 (lr 3e-3). Without ``--tune`` the models keep those defaults;
with ``--tune``, FedAvg's (local epochs, learning rate) from GRID_FEDERATED (FedProx reuses FedAvg's choice) and the
centralised learning rate from GRID_CENTRALISED are chosen on pooled validation AUROC (local-only models keep the
defaults: their validation sets, 13 to 31 rows, are too small to tune on).

    OMP_NUM_THREADS=1 python bench/federated.py --seeds 0,1,2 > bench/results/2026-11-29-federated.json
    OMP_NUM_THREADS=1 python bench/federated.py --seeds 0,1,2 --tune > bench/results/2026-11-29-federated-tuned.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

import numpy as np
import torch

from medai.data.sources.tabular import Table
from medai.engine.metrics import classification_metrics
from medai.privacy.federated import FederatedSettings, simulate
from medai.privacy.federated_client import set_arrays
from medai.privacy.federated_sites import partition_by_site
from medai.tasks.tabular_classification import TabularSettings, build_model, fit, load, predict_proba


def concatenate(tables: list[Table]) -> Table:
    """Rows of several Tables with the same columns, one after another."""
    first = tables[0]
    columns = {name: np.concatenate([t.columns[name] for t in tables]) for name in first.columns}
    sites = np.concatenate([t.sites for t in tables]) if first.sites is not None else None
    return Table(columns, first.numeric, first.categorical, first.target, np.concatenate([t.labels for t in tables]),
                 first.label_names, np.concatenate([t.ids for t in tables]), sites, first.report, first.classes)


def auroc(model, config, table: Table) -> float:
    metrics = classification_metrics(predict_proba(model, config, table), table.labels, bootstrap=0)
    return metrics["auroc"]


def scores(model, config, sites, pooled_test) -> dict:
    return {"pooled_test": auroc(model, config, pooled_test), "per_site": {s.name: auroc(model, config, s.test) for s in sites}}


def federated(sites, pooled_test, settings: FederatedSettings) -> dict:
    start = time.perf_counter()
    results, traffic = simulate(sites, settings)
    config = {**results["config"], "calibration": {"temperature": results["temperature"]}}
    model = build_model(config)
    set_arrays(model, results["arrays"])
    return {**scores(model, config, sites, pooled_test), "best_round": results["best_round"],
            "pooled_test_auroc_from_histograms": results["pooled_test"]["auroc"], "traffic": traffic,
            "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip


GRID_FEDERATED = [(2, 3e-3), (1, 3e-3), (4, 3e-3), (1, 1e-2), (2, 1e-2)]  # (local epochs, learning rate)
GRID_CENTRALISED = [3e-3, 1e-2, 3e-2]  # learning rates: the ones the federated defaults were chosen from


def tuned_federated(sites, pooled_test, seed: int, rounds: int) -> tuple[dict, dict]:
    """FedAvg with (local epochs, learning rate) chosen on the federation's pooled validation AUROC; FedProx with the
    same choice. Returns (fedavg, fedprox) results, each with the candidates' validation scores."""
    candidates = {}
    for epochs, rate in GRID_FEDERATED:
        settings = FederatedSettings(rounds=rounds, seed=seed, local_epochs=epochs, learning_rate=rate)
        start = time.perf_counter()
        results, traffic = simulate(sites, settings)
        candidates[(epochs, rate)] = (results, traffic, time.perf_counter() - start)
    best = max(candidates, key=lambda key: candidates[key][0]["val_auroc_per_round"][candidates[key][0]["best_round"]])
    scores_by_candidate = {f"local_epochs={e} lr={r}": c[0]["val_auroc_per_round"][c[0]["best_round"]]
                           for (e, r), c in candidates.items()}  # fmt: skip
    fedavg = _evaluated(candidates[best], sites, pooled_test)
    fedavg |= {"chosen": {"local_epochs": best[0], "learning_rate": best[1]}, "val_auroc_by_candidate": scores_by_candidate}
    prox_settings = FederatedSettings(rounds=rounds, seed=seed, local_epochs=best[0], learning_rate=best[1], strategy="fedprox")
    start = time.perf_counter()
    results, traffic = simulate(sites, prox_settings)
    return fedavg, _evaluated((results, traffic, time.perf_counter() - start), sites, pooled_test)


def _evaluated(candidate, sites, pooled_test) -> dict:
    results, traffic, seconds = candidate
    config = {**results["config"], "calibration": {"temperature": results["temperature"]}}
    model = build_model(config)
    set_arrays(model, results["arrays"])
    return {**scores(model, config, sites, pooled_test), "best_round": results["best_round"],
            "pooled_test_auroc_from_histograms": results["pooled_test"]["auroc"], "traffic": traffic,
            "seconds": round(seconds, 1)}  # fmt: skip


def peer_settings(seed: int, **overrides) -> TabularSettings:
    """One centralised or local MLP, as the recorded runs were made: best epoch by validation AUROC (best_scores are
    read as AUROCs) and no wide path (the federated network has none)."""
    return TabularSettings(model="tabular_mlp", ensemble=1, seed=seed, progress=False, monitor="auroc", wide=False,
                           **overrides)


def tuned_centralised(pooled, sites, seed: int) -> dict:
    """Centralised MLP with the learning rate chosen on pooled validation AUROC (the federated defaults' learning rate
    was chosen on the same validation rows from the same grid, so neither comparator is handicapped). Every
    candidate's pooled-test AUROC is reported too, for transparency only: the choice uses validation alone."""
    fits = {}
    for rate in GRID_CENTRALISED:
        model, config, summary = fit(pooled["train"], pooled["val"], peer_settings(seed, learning_rate=rate))
        fits[rate] = (model, config, max(summary["best_scores"]))
    best = max(fits, key=lambda rate: fits[rate][2])
    model, config, _ = fits[best]
    return {**scores(model, config, sites, pooled["test"]), "chosen_learning_rate": best,
            "val_auroc_by_learning_rate": {str(r): f[2] for r, f in fits.items()},
            "pooled_test_by_learning_rate": {str(r): auroc(f[0], f[1], pooled["test"]) for r, f in fits.items()}}


def run_tuned_seed(seed: int, rounds: int) -> dict:
    """As run_seed, with hyperparameters of the federated and centralised models chosen on validation data."""
    torch.manual_seed(seed)
    sites = partition_by_site(load("heart", TabularSettings()), seed)
    pooled = {part: concatenate([getattr(s, part) for s in sites]) for part in ("train", "val", "test")}
    result = {"seed": seed}
    result["fedavg"], result["fedprox"] = tuned_federated(sites, pooled["test"], seed, rounds)
    result["centralised"] = tuned_centralised(pooled, sites, seed)
    tabular = peer_settings(seed)
    result["local"] = {}
    for site in sites:
        model, config, _ = fit(site.train, site.val, tabular)
        result["local"][site.name] = {**scores(model, config, sites, pooled["test"]), "own_test": auroc(model, config, site.test)}
    result["local_mean_pooled_test"] = float(np.mean([v["pooled_test"] for v in result["local"].values()]))
    print(json.dumps({"progress": seed, **{k: result[k]["pooled_test"] for k in ("fedavg", "fedprox", "centralised")},
                      "local_mean": result["local_mean_pooled_test"]}), file=sys.stderr, flush=True)  # fmt: skip
    return result


def run_seed(seed: int, rounds: int) -> dict:
    torch.manual_seed(seed)
    table = load("heart", TabularSettings())
    sites = partition_by_site(table, seed)
    pooled = {part: concatenate([getattr(s, part) for s in sites]) for part in ("train", "val", "test")}
    tabular = peer_settings(seed)
    result = {"seed": seed, "sizes": {s.name: {p: len(getattr(s, p)) for p in ("train", "val", "test")} for s in sites}}
    for strategy in ("fedavg", "fedprox"):
        result[strategy] = federated(sites, pooled["test"], FederatedSettings(rounds=rounds, strategy=strategy, seed=seed))
        print(json.dumps({"progress": seed, strategy: result[strategy]["pooled_test"]}), file=sys.stderr, flush=True)
    result["centralised"] = tuned_centralised(pooled, sites, seed)
    result["local"] = {}
    for site in sites:
        model, config, _ = fit(site.train, site.val, tabular)
        result["local"][site.name] = {**scores(model, config, sites, pooled["test"]), "own_test": auroc(model, config, site.test)}
    result["local_mean_pooled_test"] = float(np.mean([v["pooled_test"] for v in result["local"].values()]))
    print(json.dumps({"progress": seed, "centralised": result["centralised"]["pooled_test"],
                      "local_mean": result["local_mean_pooled_test"]}), file=sys.stderr, flush=True)  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rounds", type=int, default=FederatedSettings.rounds)
    parser.add_argument("--tune", action="store_true", help="choose FedAvg (local epochs, learning rate) and the "
                        "centralised learning rate on pooled validation AUROC (local-only models keep the defaults)")
    args = parser.parse_args()
    runner = run_tuned_seed if args.tune else run_seed
    runs = [runner(int(s), args.rounds) for s in args.seeds.split(",")]
    mean = {key: float(np.mean([r[key]["pooled_test"] for r in runs])) for key in ("fedavg", "fedprox", "centralised")}
    mean["local_mean"] = float(np.mean([r["local_mean_pooled_test"] for r in runs]))
    report = {
        "benchmark": "federated heart disease (4 hospitals)", "data": "UCI heart disease, processed 14-attribute files",
        "federated_defaults": asdict(FederatedSettings(rounds=args.rounds)), "threads": torch.get_num_threads(),
        "tuned_on_validation": args.tune,
        "local_mean_definition": "mean over the 4 local-only models of each one's AUROC on the pooled test set",
        "runs": runs, "mean_pooled_test_auroc": mean,
        "checks": {"fedavg_within_0.02_of_centralised": mean["fedavg"] >= mean["centralised"] - 0.02,
                   "fedavg_above_local_mean": mean["fedavg"] > mean["local_mean"],
                   "per_seed_fedavg_within_0.02": [r["fedavg"]["pooled_test"] >= r["centralised"]["pooled_test"] - 0.02 for r in runs],
                   "per_seed_fedavg_above_local_mean": [r["fedavg"]["pooled_test"] > r["local_mean_pooled_test"] for r in runs]},
    }  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
