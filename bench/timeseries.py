"""Benchmark of the clinical time-series tasks with their CLI defaults, beside published figures and peers.

Prints one JSON document with the floors of the "Clinical time series with RNNs" issue:

- mortality: PhysioNet 2012 set-a, 5-fold patient-level cross-validation of ``medai.tasks.mortality`` with its
  defaults (the same as ``medai train --task mortality``); per fold AUROC, AUPRC and seconds; floors mean AUROC
  >= 0.85, mean AUPRC >= 0.50, every fold < 600 s. Beside it, in the same process and on the same folds, a logistic
  regression on per-variable summary features (the peer), and the published P12 figures (12,000 stays, other
  splits: not the same protocol);
- forecasting: the CLI default (patient-level split of set-a), test MAE and RMSE per variable beside LOCF on the
  same samples; floor: MAE at least 10% below LOCF for HR and MAP;
- ECG200: accuracy on the official test file of the CLI default trained on the TRAIN file, seeds 0, 1, 2; floor
  mean accuracy >= 0.90 (the recipe was chosen on out-of-fold predictions of TRAIN, never on TEST).

Run with one thread per process on a shared machine (timings under contention are upper bounds):

    OMP_NUM_THREADS=1 python bench/timeseries.py [--only mortality forecasting ecg] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medai import settings

PUBLISHED = {  # P12 (all 11,988 stays, other splits: not our protocol), as reported in Zhang et al., ICLR 2022 (Raindrop)
    "mTAND": {"auroc": 0.842, "auprc": 0.482},
    "GRU-D": {"auroc": 0.819, "auprc": 0.461},
}
FLOORS = {"mortality_auroc": 0.85, "mortality_auprc": 0.50, "fold_seconds": 600, "forecast_mae_change": -0.10,
          "ecg200_accuracy": 0.90}


def log(message) -> None:
    print(json.dumps(message) if not isinstance(message, str) else message, file=sys.stderr, flush=True)


def logistic_peer(raw, folds) -> dict:
    """Logistic regression on summary features (masked mean/min/max/last of standardised values, log count,
    static), preprocessing fitted on each fold's training part."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from medai.engine.metrics import classification_metrics
    from medai.models.series_summary import SeriesSummary
    from medai.transforms.timeseries import TimeSeriesPreprocessor

    def features(preprocessor, part):
        data = preprocessor.transform(part)
        summary = SeriesSummary(n_features=data.inputs.shape[2]).summarise(torch.from_numpy(data.inputs),
                                                                          torch.from_numpy(data.extras["mask"]))
        return np.concatenate([summary.numpy(), data.extras["static"]], axis=1)

    rows = []
    for rest, held in folds:
        started = time.perf_counter()
        preprocessor = TimeSeriesPreprocessor().fit(raw.subset(rest))
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
        model.fit(features(preprocessor, raw.subset(rest)), raw.labels[rest])
        probabilities = model.predict_proba(features(preprocessor, raw.subset(held)))
        metrics = classification_metrics(probabilities, raw.labels[held], bootstrap=0)
        rows.append({"auroc": metrics["auroc"], "auprc": metrics["auprc"], "seconds": time.perf_counter() - started})
    return {"folds": rows, "mean": {k: float(np.mean([r[k] for r in rows])) for k in ("auroc", "auprc")}}


def mortality(data: Path, folds: int) -> dict:
    from medai.tasks import mortality as task
    from medai.tasks import series_common as common

    settings_used = task.MortalitySettings(progress=False)
    result = task.cross_validate(data, settings_used, folds=folds, seed=0, log=log)
    raw = common.load_raw(data)
    peer = logistic_peer(raw, common.cross_validation_folds(raw.labels, raw.groups, folds, 0))
    floors = {"mean_auroc": result["mean"]["auroc"] >= FLOORS["mortality_auroc"],
              "mean_auprc": result["mean"]["auprc"] >= FLOORS["mortality_auprc"],
              "every_fold_under_600_s": all(r["seconds"] < FLOORS["fold_seconds"] for r in result["folds"])}
    return {"ours": result, "settings": "CLI defaults (medai train --task mortality)", "members":
            [spec["network"] for spec, _ in settings_used.members()], "logistic_regression_summary_features": peer,
            "published_p12": PUBLISHED, "floors": floors}


def forecasting(data: Path) -> dict:
    from medai import api

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        bundle = api.train("forecasting", data, Path(tmp) / "bundle", progress=False)
        seconds = time.perf_counter() - started
    test = bundle.metrics["test"]["per_variable"]
    floors = {name: test[name]["mae_change"] is not None and test[name]["mae_change"] <= FLOORS["forecast_mae_change"]
              for name in ("HR", "MAP") if name in test}
    return {"test": test, "targets_left_out": bundle.config["target_notes"], "train_seconds": seconds,
            "best_epochs": bundle.metrics["fit"]["best_epochs"], "floors_mae_10pct_below_locf": floors}


def ecg200(folder: Path, seeds: list[int]) -> dict:
    from medai import api

    rows = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            bundle = api.train("ecg-classification", folder / "ECG200_TRAIN.txt", Path(tmp) / "b", seed=seed, progress=False)
            seconds = time.perf_counter() - started
            test = api.evaluate(bundle, folder / "ECG200_TEST.txt", split="all", bootstrap=0)
        rows.append({"seed": seed, "test_accuracy": test["accuracy"], "test_auroc": test["auroc"],
                     "out_of_fold_accuracy": bundle.metrics["out_of_fold"]["accuracy"], "train_seconds": seconds})
        log(rows[-1])
    mean = float(np.mean([r["test_accuracy"] for r in rows]))
    return {"seeds": rows, "mean_test_accuracy": mean, "floor_mean_accuracy_0.90": mean >= FLOORS["ecg200_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", default=["mortality", "forecasting", "ecg"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    root = settings.data_dir()
    if root is None:
        raise SystemExit("set MEDAI_DATA_DIR to the folder holding physionet2012_mortality and ucr_ecg")
    torch.set_num_threads(1)
    result = {"machine": {"cpus": os.cpu_count(), "torch_threads": 1, "python": platform.python_version(),
                          "torch": torch.__version__, "note": "shared 2-core CPU: timings are upper bounds"}}
    if "mortality" in args.only:
        result["mortality"] = mortality(root / "physionet2012_mortality", args.folds)
        log(result["mortality"]["floors"])
    if "forecasting" in args.only:
        result["forecasting"] = forecasting(root / "physionet2012_mortality")
        log(result["forecasting"]["floors_mae_10pct_below_locf"])
    if "ecg" in args.only:
        result["ecg200"] = ecg200(root / "ucr_ecg", args.seeds)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
