"""Benchmark: how far below last-observation-carried-forward (LOCF) can next-hour vital-sign forecasts go here?

The forecasting floor of the time-series issue asks for an MAE 10% below LOCF for heart rate and mean arterial
pressure. This measures, on the CLI's own patient-level split of PhysioNet 2012 set-a and its own samples (24-hour
windows ending every 2 hours, target = the next hour's observed value), what simpler and stronger peers reach,
each fitted on the training part only and scored once on the test part:

- ``random_walk_plus_noise_bound``: if the hourly series is a random walk observed with white noise (the simplest
  model that fits an hourly vital sign), the lag-1 autocorrelation rho of its first differences fixes the noise
  share, and the best possible predictor from the variable's own past (the steady-state Kalman filter) has an
  error of sqrt((P + r) / (q + 2 r)) times LOCF's (q: walk variance, r: noise variance, P the filter's prior
  variance, P^2 - q P - q r = 0); rho is estimated on training hours with three consecutive observations;
- ``exponential_smoothing``: the variable's own observed values in the window, smoothing factor chosen on the
  training samples;
- ``linear_own_lags``: least squares of the change from LOCF on the variable's last 6 forward-filled hours;
- ``gradient_boosting_all_variables``: scikit-learn's HistGradientBoostingRegressor (absolute-error loss) on the
  last 6 hours of every variable (standardised values and masks) and the static features.

Each figure is the MAE change against LOCF on the test samples where the target, LOCF and that method's
forecast all exist (negative: better; exponential smoothing has no forecast for the few samples whose window holds
no observation of the variable). ``medai`` (the CLI default
forecaster's test figure) is read from a bundle's metrics.json with ``--bundle``.

    OMP_NUM_THREADS=1 python bench/forecast_bound.py [--bundle runs/forecast] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from medai import settings
from medai.tasks import series_common as common
from medai.tasks.forecast_samples import make_samples
from medai.tasks.forecasting import ForecastingSettings
from medai.transforms.timeseries import TimeSeriesPreprocessor

TARGETS = ("HR", "MAP")
LAGS = 6


def walk_noise_bound(values: np.ndarray) -> dict:
    """Lag-1 autocorrelation of first differences over three consecutive observed hours, and the error ratio
    of the best predictor from the series' own past under a random walk plus white noise."""
    a, b, c = values[:, :-2], values[:, 1:-1], values[:, 2:]
    ok = np.isfinite(a) & np.isfinite(b) & np.isfinite(c)
    first, second = (b - a)[ok], (c - b)[ok]
    rho = float(np.corrcoef(first, second)[0, 1])
    if not -0.5 < rho < 0:
        return {"rho": rho, "triples": int(ok.sum()), "error_ratio": None, "note": "not a random walk plus noise"}
    noise_over_walk = -rho / (1 + 2 * rho)  # r / q from rho = -r / (q + 2 r)
    prior = (1 + np.sqrt(1 + 4 * noise_over_walk)) / 2  # P / q
    ratio = float(np.sqrt((prior + noise_over_walk) / (1 + 2 * noise_over_walk)))
    return {"rho": round(rho, 4), "triples": int(ok.sum()), "noise_over_walk_variance": round(noise_over_walk, 4),
            "error_ratio": round(ratio, 4), "mae_change": round(ratio - 1, 4)}


def smoothed(values: np.ndarray, alpha: float) -> np.ndarray:
    """Exponentially smoothed last value of each row's observed entries (NaN where none)."""
    level = np.full(len(values), np.nan)
    for column in values.T:
        seen = np.isfinite(column)
        level = np.where(seen & np.isnan(level), column, level)
        level = np.where(seen & np.isfinite(level), alpha * column + (1 - alpha) * level, level)
    return level


def change(predictions, samples, j) -> tuple[float, int]:
    target, locf = samples.extras["observed"][:, j], samples.extras["locf"][:, j]
    valid = np.isfinite(target) & np.isfinite(locf) & np.isfinite(predictions)
    mae, base = np.abs(predictions[valid] - target[valid]).mean(), np.abs(locf[valid] - target[valid]).mean()
    return round(float(mae / base - 1), 4), int(valid.sum())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(settings.data_dir() / "physionet2012_mortality"))
    parser.add_argument("--bundle", type=Path, help="a forecasting bundle trained with the CLI defaults")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from sklearn.ensemble import HistGradientBoostingRegressor

    started = time.perf_counter()
    defaults = ForecastingSettings()
    raw = common.load_raw(args.data, defaults.format, defaults.hours, labelled=False)
    parts = common.split_records(raw.labels, raw.groups, defaults.validation_fraction, defaults.seed)
    train, test = raw.subset(np.concatenate([parts["train"], parts["val"]])), raw.subset(parts["test"])
    preprocessor = TimeSeriesPreprocessor().fit(raw.subset(parts["train"]))
    window = {"history": defaults.history, "horizon": defaults.horizon, "stride": defaults.stride}
    sets = {name: make_samples(preprocessor, part, list(TARGETS), **window) for name, part in
            (("train", train), ("test", test))}
    variables = list(preprocessor.variables_)
    result = {"benchmark": "forecast_bound", "data": Path(args.data).name, "split": "the CLI default's (seed 0); "
              "peers fitted on its training + validation stays, scored on its test stays", "window": window,
              "samples": {k: len(v) for k, v in sets.items()}, "targets": {}}

    def lag_features(samples):
        inputs, mask = samples.inputs[:, -LAGS:], samples.extras["mask"][:, -LAGS:]
        return np.concatenate([inputs.reshape(len(inputs), -1), mask.reshape(len(mask), -1),
                               samples.extras["static"]], axis=1)

    features = {name: lag_features(s) for name, s in sets.items()}
    for j, name in enumerate(TARGETS):
        column = variables.index(name)
        row = {"random_walk_plus_noise_bound": walk_noise_bound(train.values[:, :, column])}
        own = {k: preprocessor.inverse_values(s.inputs)[:, :, column] for k, s in sets.items()}  # forward-filled
        observed_window = {k: np.where(s.extras["mask"][:, :, column] > 0, own[k], np.nan) for k, s in sets.items()}
        alphas = np.linspace(0.3, 1.0, 15)
        fitted = [change(smoothed(observed_window["train"], a), sets["train"], j)[0] for a in alphas]
        alpha = float(alphas[int(np.argmin(fitted))])
        row["locf_mae_test"] = round(float(np.nanmean(np.abs(sets["test"].extras["locf"][:, j]
                                                              - sets["test"].extras["observed"][:, j]))), 4)
        row["exponential_smoothing"] = {"alpha": round(alpha, 3),
                                        "mae_change": change(smoothed(observed_window["test"], alpha), sets["test"], j)[0]}
        lags = {k: own[k][:, -LAGS:] - s.extras["base"][:, [j]] for k, s in sets.items()}
        target = sets["train"].extras["observed"][:, j] - sets["train"].extras["base"][:, j]
        keep = np.isfinite(target)
        design = np.c_[lags["train"][keep], np.ones(keep.sum())]
        coef = np.linalg.lstsq(design, target[keep], rcond=None)[0]
        linear = np.c_[lags["test"], np.ones(len(lags["test"]))] @ coef + sets["test"].extras["base"][:, j]
        row["linear_own_lags"] = {"lags": LAGS, "mae_change": change(linear, sets["test"], j)[0]}
        gbm = HistGradientBoostingRegressor(loss="absolute_error", max_iter=300, learning_rate=0.05,
                                            early_stopping=True, validation_fraction=0.15, random_state=0)
        gbm.fit(features["train"][keep], target[keep])
        boosted = gbm.predict(features["test"]) + sets["test"].extras["base"][:, j]
        score, n = change(boosted, sets["test"], j)
        row["gradient_boosting_all_variables"] = {"features": int(features["train"].shape[1]), "mae_change": score,
                                                  "iterations": int(gbm.n_iter_)}
        row["test_samples"] = n
        result["targets"][name] = row
    if args.bundle is not None:
        metrics = json.loads((args.bundle / "metrics.json").read_text())["test"]["per_variable"]
        for name in TARGETS:
            result["targets"][name]["medai_default"] = {"mae_change": round(metrics[name]["mae_change"], 4)}
    result["floor_mae_change"] = -0.10
    result["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
