"""The common return type of the clinical time-series loaders, hourly binning, plausible ranges and the cache.

:class:`RawSeries` is what :mod:`medai.data.sources.physionet2012` and :mod:`medai.data.sources.mimic3` return:
hourly bins of the declared clinical variables per ICU stay, NaN where a bin had no observation, before any
imputation or scaling (that is :class:`medai.transforms.timeseries.TimeSeriesPreprocessor`'s job, fitted on the
training split only).

Both loaders use the variable names of the PhysioNet/CinC 2012 challenge where they overlap (HR, MAP, Temp, ...),
and the same static features, so a model trained on one can be applied to the other.

Examples:
    >>> import numpy as np
    >>> values = bin_hourly(record=np.array([0, 0, 1]), hours=np.array([0.2, 0.7, 1.5]), variable=np.array([0, 0, 1]),
    ...                     values=np.array([80.0, 90.0, 37.0]), shape=(2, 2, 2), aggregate="mean")
    >>> values[0, 0].tolist(), values[1, 1].tolist()
    ([85.0, nan], [nan, 37.0])
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from medai import settings
from medai.errors import InvalidInputError, check_choice

AGGREGATES = ("mean", "last")
ICU_TYPES = ("CCU", "CSRU", "MICU", "SICU")  # PhysioNet 2012 ICUType 1..4; MIMIC-III first_careunit names
STATIC_NAMES = ("Age", "Gender", "Height", "Weight", *(f"ICUType_{unit}" for unit in ICU_TYPES))

# Plausible values in the units of the PhysioNet 2012 challenge; values outside are set missing and counted.
PHYSIOLOGICAL_RANGES: dict[str, tuple[float, float]] = {
    "ALP": (1, 5000), "ALT": (1, 20000), "AST": (1, 30000), "Albumin": (0.5, 7),  # IU/L, g/dL
    "BUN": (0.5, 300), "Bilirubin": (0.05, 80), "Cholesterol": (20, 1000), "Creatinine": (0.05, 30),  # mg/dL
    "DiasABP": (5, 250), "SysABP": (20, 300), "MAP": (10, 300),  # mmHg, invasive
    "NIDiasABP": (5, 250), "NISysABP": (20, 300), "NIMAP": (10, 300),  # mmHg, non-invasive
    "FiO2": (0.21, 1.0), "GCS": (3, 15), "Glucose": (10, 2000), "HCO3": (2, 60),  # fraction, points, mg/dL, mmol/L
    "HCT": (5, 75), "HR": (10, 300), "K": (1, 15), "Lactate": (0.1, 40),  # %, bpm, mmol/L
    "MechVent": (0, 1), "Mg": (0.3, 10), "Na": (90, 200), "PaCO2": (5, 200), "PaO2": (10, 800),  # mmol/L, mmHg
    "Platelets": (1, 2000), "RespRate": (0, 100), "SaO2": (20, 100), "SpO2": (20, 100),  # 10^9/L, /min, %
    "Temp": (25, 45), "TroponinI": (0, 500), "TroponinT": (0, 100), "Urine": (0, 10000),  # Celsius, ug/L, mL
    "WBC": (0.1, 500), "pH": (6.5, 8.0), "Weight": (20, 400),  # 10^9/L, -, kg
    "Age": (0, 120), "Height": (100, 250),  # static only: years, cm
}
"""Inclusive plausible range per variable (also used for the static Age, Height and Weight)."""


@dataclass
class RawSeries:
    """Hourly-binned clinical time series of n ICU stays, before imputation and scaling.

    Attributes:
        ids: str array of shape (n,): record ids (PhysioNet RecordID, MIMIC ICUSTAY_ID).
        values: float32 array of shape (n, T, V): per-bin aggregate of the observations, NaN where none.
        variables: str array of shape (V,): variable names, e.g. ``"HR"``.
        static: float32 array of shape (n, S): static features, NaN where missing.
        static_names: str array of shape (S,), by default :data:`STATIC_NAMES`.
        labels: int64 array of shape (n,) (1 = died in hospital), or None for unlabelled records.
        groups: str array of shape (n,): the patient each stay belongs to (a pseudonym; PhysioNet: the record id).
        hours: int64 array of shape (T,): start hour of each bin since ICU admission.
        report: JSON-ready account of the load: records and lines skipped by reason, out-of-range values per
            variable, notes. Holds file names, line numbers and reasons, never patient values.
    """

    ids: np.ndarray
    values: np.ndarray
    variables: np.ndarray
    static: np.ndarray
    static_names: np.ndarray
    labels: np.ndarray | None
    groups: np.ndarray
    hours: np.ndarray
    report: dict = field(default_factory=dict)

    def __post_init__(self):
        self.ids = np.asarray(self.ids).astype(str)
        self.groups = np.asarray(self.groups).astype(str)
        self.variables = np.asarray(self.variables).astype(str)
        self.static_names = np.asarray(self.static_names).astype(str)
        self.values = np.asarray(self.values, dtype=np.float32)
        self.static = np.asarray(self.static, dtype=np.float32)
        self.hours = np.asarray(self.hours, dtype=np.int64)
        n = len(self.ids)
        expected = {"values": (n, len(self.hours), len(self.variables)), "static": (n, len(self.static_names)),
                    "groups": (n,)}
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int64)
            expected["labels"] = (n,)
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise InvalidInputError(f"RawSeries.{name} has shape {getattr(self, name).shape}; expected {shape} "
                                        f"(n records, T hours, V variables, S static features).")

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, indices) -> RawSeries:
        """A new RawSeries with the records at ``indices`` (same variables, hours and report)."""
        indices = np.asarray(indices, dtype=np.int64)
        return replace(self, ids=self.ids[indices], values=self.values[indices], static=self.static[indices],
                       labels=None if self.labels is None else self.labels[indices], groups=self.groups[indices],
                       report={**self.report, "subset_records": len(indices)})

    def select_variables(self, names) -> RawSeries:
        """The same records with variables ``names`` in that order; a name this series lacks becomes all-NaN.

        Used to apply a model fitted on one source (e.g. PhysioNet 2012) to another (e.g. MIMIC-III). The added
        names are listed in ``report["variables_added_empty"]``.
        """
        names = [str(name) for name in names]
        index = {name: i for i, name in enumerate(self.variables)}
        values = np.full((len(self), len(self.hours), len(names)), np.nan, dtype=np.float32)  # (n, T, V')
        for j, name in enumerate(names):
            if name in index:
                values[:, :, j] = self.values[:, :, index[name]]
        added = [name for name in names if name not in index]
        return replace(self, values=values, variables=np.array(names), report={**self.report,
                                                                               "variables_added_empty": added})

    @staticmethod
    def concatenate(parts: list[RawSeries]) -> RawSeries:
        """Join series with the same variables, hours and static features (e.g. PhysioNet sets a and b)."""
        return concatenate(parts)


def concatenate(parts: list[RawSeries]) -> RawSeries:
    """Join RawSeries that share variables, hours and static names; labels are kept only when all have them."""
    if not parts:
        raise InvalidInputError("concatenate needs at least one RawSeries; got an empty list.")
    first = parts[0]
    for part in parts[1:]:
        for name in ("variables", "hours", "static_names"):
            if not np.array_equal(getattr(part, name), getattr(first, name)):
                raise InvalidInputError(f"Cannot concatenate series with different {name}; use select_variables() "
                                        f"to align the variables first.")
    labelled = all(part.labels is not None for part in parts)
    return RawSeries(
        ids=np.concatenate([p.ids for p in parts]), values=np.concatenate([p.values for p in parts]),
        variables=first.variables, static=np.concatenate([p.static for p in parts]), static_names=first.static_names,
        labels=np.concatenate([p.labels for p in parts]) if labelled else None,
        groups=np.concatenate([p.groups for p in parts]), hours=first.hours,
        report={"parts": [p.report for p in parts]})


# ------------------------------------------------------------------------------------------ ranges and binning


def filter_ranges(values: np.ndarray, variables, ranges: dict | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """Set values outside each variable's plausible range to NaN and count them.

    Args:
        values: float array whose last axis is the variable axis, shape (..., V).
        variables: V variable names; a name without a declared range is left as is.
        ranges: name -> (low, high), inclusive; default :data:`PHYSIOLOGICAL_RANGES`.

    Returns:
        (filtered copy of ``values``, {variable: number of values set missing} for every variable with a range).
    """
    ranges = PHYSIOLOGICAL_RANGES if ranges is None else ranges
    filtered, counts = np.array(values, copy=True), {}
    for j, name in enumerate(variables):
        if name not in ranges:
            continue
        low, high = ranges[name]
        column = filtered[..., j]
        with np.errstate(invalid="ignore"):
            outside = (column < low) | (column > high)
        counts[str(name)] = int(outside.sum())
        column[outside] = np.nan
    return filtered, counts


def filter_observations(values: np.ndarray, variable: np.ndarray, variables, ranges: dict | None = None
                        ) -> tuple[np.ndarray, dict[str, int]]:
    """:func:`filter_ranges` for observations in long form: ``values`` (m,), ``variable`` (m,) index into names."""
    ranges = PHYSIOLOGICAL_RANGES if ranges is None else ranges
    low = np.array([ranges.get(str(name), (-np.inf, np.inf))[0] for name in variables], dtype=np.float64)
    high = np.array([ranges.get(str(name), (-np.inf, np.inf))[1] for name in variables], dtype=np.float64)
    outside = (values < low[variable]) | (values > high[variable])  # (m,)
    counts = np.bincount(variable[outside], minlength=len(variables))
    filtered = np.where(outside, np.nan, values)
    return filtered, {str(name): int(counts[j]) for j, name in enumerate(variables) if str(name) in ranges}


def bin_hourly(record: np.ndarray, hours: np.ndarray, variable: np.ndarray, values: np.ndarray,
               shape: tuple[int, int, int], aggregate: str = "mean") -> np.ndarray:
    """Aggregate long-form observations into hourly bins.

    Bin t holds observations with t <= hours < t + 1; an observation at exactly T hours goes to the last bin.
    Observations outside [0, T] and NaN values must be removed by the caller.

    Args:
        record: int array of shape (m,): record index of each observation, in [0, n).
        hours: float array of shape (m,): time since admission in hours.
        variable: int array of shape (m,): variable index in [0, V).
        values: float array of shape (m,).
        shape: (n, T, V).
        aggregate: ``"mean"`` of the bin's observations, or the ``"last"`` one in time (ties: the later row).

    Returns:
        float32 array of shape (n, T, V), NaN where a bin has no observation.
    """
    check_choice("aggregate", aggregate, AGGREGATES)
    n, n_hours, n_variables = shape
    bins = np.minimum(np.floor(hours).astype(np.int64), n_hours - 1)
    flat = (record.astype(np.int64) * n_hours + bins) * n_variables + variable  # (m,)
    size = n * n_hours * n_variables
    if aggregate == "mean":
        sums = np.bincount(flat, weights=values, minlength=size)
        counts = np.bincount(flat, minlength=size)
        out = np.full(size, np.nan, dtype=np.float32)
        occupied = np.flatnonzero(counts)
        out[occupied] = sums[occupied] / counts[occupied]
    else:
        order = np.lexsort((np.arange(len(flat)), hours, flat))  # by cell, then time, then row
        last = order[np.r_[flat[order][1:] != flat[order][:-1], True]] if len(order) else order
        out = np.full(size, np.nan, dtype=np.float32)
        out[flat[last]] = values[last]
    return out.reshape(shape)


# ------------------------------------------------------------------------------------------------------- cache


def fingerprint(entries, parameters: dict) -> str:
    """SHA-256 (first 24 hex digits) of (name, size, mtime) entries and JSON parameters: a cache key."""
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True, default=str).encode())
    for entry in entries:
        digest.update(repr(entry).encode())
    return digest.hexdigest()[:24]


def file_entries(paths) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of each file: what :func:`fingerprint` keys a folder's content by."""
    entries = []
    for path in paths:
        stat = os.stat(path)
        entries.append((Path(path).name, stat.st_size, stat.st_mtime_ns))
    return entries


def cache_path(kind: str, key: str) -> Path:
    """``<cache_dir>/timeseries/<kind>-<key>`` (``.npz`` arrays and ``.json`` metadata beside it)."""
    return settings.cache_dir() / "timeseries" / f"{kind}-{key}"


def save_series(series: RawSeries, base: Path) -> None:
    """Write ``base.npz`` (arrays, no pickle) and ``base.json`` (report); atomic, so readers never see half a file."""
    base.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"ids": series.ids, "values": series.values, "variables": series.variables, "static": series.static,
              "static_names": series.static_names, "groups": series.groups, "hours": series.hours}
    if series.labels is not None:
        arrays["labels"] = series.labels
    token = secrets.token_hex(6)
    temporary_npz, temporary_json = base.with_name(f".{base.name}.{token}.npz"), base.with_name(f".{base.name}.{token}.json")
    np.savez(temporary_npz, **arrays)
    temporary_json.write_text(json.dumps({"report": series.report}))
    os.replace(temporary_json, base.with_suffix(".json"))
    os.replace(temporary_npz, base.with_suffix(".npz"))


def load_series(base: Path) -> RawSeries | None:
    """The series saved at ``base`` by :func:`save_series`, or None when absent or unreadable."""
    npz, meta = base.with_suffix(".npz"), base.with_suffix(".json")
    if not (npz.is_file() and meta.is_file()):
        return None
    try:
        with np.load(npz, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        report = json.loads(meta.read_text())["report"]
        return RawSeries(labels=arrays.pop("labels", None), report={**report, "from_cache": True}, **arrays)
    except (OSError, ValueError, KeyError, InvalidInputError):
        return None
