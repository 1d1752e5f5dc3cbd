"""Forecasting samples cut from hourly ICU series, and their metrics beside last-observation-carried-forward.

A sample is a window of ``history`` hourly bins ending (exclusive) at hour ``e``; its targets are the observed
values of the target variables in bin ``e + horizon - 1`` (NaN when that bin has no observation). LOCF is the last
value of the variable observed before hour ``e`` (from admission, not only inside the window: the model's
forward-filled input carries that value too), NaN when it was never observed.

Examples:
    >>> import numpy as np
    >>> from medai.data.sources.timeseries import RawSeries
    >>> from medai.transforms.timeseries import TimeSeriesPreprocessor
    >>> values = np.array([[[80.0], [np.nan], [90.0], [95.0]]], dtype=np.float32)
    >>> raw = RawSeries(ids=["a"], values=values, variables=["HR"], static=np.zeros((1, 0)), static_names=[],
    ...                 labels=None, groups=["a"], hours=np.arange(4))
    >>> samples = make_samples(TimeSeriesPreprocessor().fit(raw), raw, ["HR"], history=2, horizon=1, stride=1)
    >>> samples.ids.tolist(), samples.labels[:, 0].tolist(), samples.extras["locf"][:, 0].tolist()
    (['a@2', 'a@3'], [90.0, 95.0], [80.0, 90.0])
    >>> make_samples(TimeSeriesPreprocessor().fit(raw), raw, ["HR"], 2, 1, 1, residual=True).labels[:, 0].tolist()
    [10.0, 5.0]
"""

from __future__ import annotations

import numpy as np

from medai.data.dataset import Dataset, Schema
from medai.data.sources.timeseries import RawSeries
from medai.engine.metrics import _json_float
from medai.errors import InvalidInputError


def resolve_targets(requested, preprocessor) -> tuple[list[str], list[str]]:
    """The requested targets the training data has observed values of, and a note for each one left out."""
    targets, notes = [], []
    for name in requested:
        if name in preprocessor.variables_ and preprocessor.n_observed_[preprocessor.variables_.index(name)] > 0:
            if name not in targets:
                targets.append(name)
        elif name in preprocessor.variables_:
            notes.append(f"{name} was never observed in the training split; it is not forecast.")
        else:
            notes.append(f"{name} is not a variable of this source; it is not forecast.")
    if not targets:
        raise InvalidInputError(f"None of the targets {list(requested)} is observed in this data; its variables are "
                                f"{preprocessor.variables_}.")
    return targets, notes


def make_samples(preprocessor, raw: RawSeries, targets: list[str], history: int, horizon: int, stride: int,
                 residual: bool = False, keep_unobserved: bool = False) -> Dataset:
    """Forecasting samples of every stay in ``raw`` (aligned to the preprocessor's variables).

    Args:
        residual: the labels are the change from ``base`` (the last observed value, or the training mean when
            there is none) instead of the value itself.

    Returns:
        Dataset (task "regression"): inputs (m, history, V), labels (m, k) float32 NaN where unobserved, extras
        ``mask``, ``delta`` (m, history, V), ``static`` (m, 2 S), and (m, k) ``observed`` (the target values),
        ``locf`` (NaN when never observed) and ``base``; ids ``<record>@<end hour>``. Samples without any
        observed target are dropped unless ``keep_unobserved``.
    """
    full = preprocessor.transform(raw, keep_raw=True)
    n, steps, _ = full.inputs.shape
    ends = list(range(history, steps - horizon + 1, stride))
    if not ends:
        raise InvalidInputError(f"A {history}-hour window with a {horizon}-hour horizon does not fit in {steps} hours.")
    columns = [preprocessor.variables_.index(t) for t in targets]
    observed = full.extras["raw"][:, :, columns]  # (n, T, k) original units, NaN where unobserved
    filled = preprocessor.inverse_values(full.inputs)[:, :, columns]  # (n, T, k) forward-filled
    seen = np.logical_or.accumulate(full.extras["mask"][:, :, columns] > 0, axis=1)  # (n, T, k)
    pieces = {"inputs": [], "mask": [], "delta": [], "labels": [], "locf": [], "base": [], "rows": [], "ends": []}
    for end in ends:
        window = slice(end - history, end)
        pieces["inputs"].append(full.inputs[:, window])
        pieces["mask"].append(full.extras["mask"][:, window])
        pieces["delta"].append(full.extras["delta"][:, window])
        pieces["labels"].append(observed[:, end + horizon - 1])
        pieces["locf"].append(np.where(seen[:, end - 1], filled[:, end - 1], np.nan))
        pieces["base"].append(filled[:, end - 1])
        pieces["rows"].append(np.arange(n))
        pieces["ends"].append(np.full(n, int(raw.hours[0]) + end))
    joined = {k: np.concatenate(v) for k, v in pieces.items()}
    keep = np.ones(len(joined["rows"]), bool) if keep_unobserved else np.isfinite(joined["labels"]).any(axis=1)
    rows = joined["rows"][keep]
    schema = Schema("series", "regression", tuple(targets), (history, full.inputs.shape[2]), full.schema.source)
    observed, base = joined["labels"][keep].astype(np.float32), joined["base"][keep].astype(np.float32)
    extras = {"mask": joined["mask"][keep], "delta": joined["delta"][keep], "static": full.extras["static"][rows],
              "observed": observed, "locf": joined["locf"][keep].astype(np.float32), "base": base}
    ids = np.array([f"{full.ids[r]}@{e}" for r, e in zip(rows, joined["ends"][keep])])
    return Dataset(joined["inputs"][keep], observed - base if residual else observed, ids, schema,
                   full.groups[rows] if full.groups is not None else None, extras)


def forecast_metrics(predictions: np.ndarray, locf: np.ndarray, targets: np.ndarray, names: list[str]) -> dict:
    """MAE and RMSE of the model and of LOCF per target, on the samples where the target and LOCF both exist.

    Args:
        predictions, locf, targets: arrays of shape (m, k); NaN in ``locf`` / ``targets`` where undefined.
        names: the k target names.

    Returns:
        ``{"per_variable": {name: {n, mae, rmse, locf_mae, locf_rmse, mae_change, rmse_change}}, "n_samples",
        "mae_change_mean"}``; ``mae_change`` = MAE / LOCF MAE - 1 (negative: better than LOCF).
    """
    per_variable = {}
    for j, name in enumerate(names):
        valid = np.isfinite(targets[:, j]) & np.isfinite(locf[:, j])
        error, baseline = predictions[valid, j] - targets[valid, j], locf[valid, j] - targets[valid, j]
        row = {"n": int(valid.sum())}
        if valid.any():
            row |= {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error**2).mean())),
                    "locf_mae": float(np.abs(baseline).mean()), "locf_rmse": float(np.sqrt((baseline**2).mean()))}
            row["mae_change"] = _json_float(row["mae"] / row["locf_mae"] - 1) if row["locf_mae"] else None
            row["rmse_change"] = _json_float(row["rmse"] / row["locf_rmse"] - 1) if row["locf_rmse"] else None
        else:
            row |= dict.fromkeys(("mae", "rmse", "locf_mae", "locf_rmse", "mae_change", "rmse_change"))
        per_variable[name] = row
    changes = [r["mae_change"] for r in per_variable.values() if r["mae_change"] is not None]
    return {"per_variable": per_variable, "n_samples": len(targets),
            "mae_change_mean": float(np.mean(changes)) if changes else None,
            "baseline": "last observation carried forward (LOCF)"}
