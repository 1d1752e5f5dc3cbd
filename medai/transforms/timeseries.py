"""Preprocessing of hourly clinical time series fitted on the training split: the inputs of RNN/GRU-D models.

:class:`TimeSeriesPreprocessor` turns a :class:`~medai.data.sources.timeseries.RawSeries` into a
:class:`~medai.data.Dataset` with modality ``"series"``:

- ``inputs`` (n, T, V) float32: values after the plausible-range filter, forward-filled, the training mean where
  a variable was not observed yet, then standardised with the training mean and std (so "never seen" is 0);
- ``extras["mask"]`` (n, T, V) float32: 1 where the bin had an in-range observation;
- ``extras["delta"]`` (n, T, V) float32: time since the variable was last observed before this bin (GRU-D,
  Che et al. 2018: 0 in the first bin, +1 bin width per bin, reset after an observed bin), divided by
  ``delta_scale`` (default the window length, so it lies in [0, 1));
- ``extras["static"]`` (n, 2 S) float32: static features imputed with the training median and standardised, then
  one missing indicator per static feature;
- ``extras["raw"]`` (n, T, V) float32, only with ``transform(..., keep_raw=True)``: the range-filtered values in
  original units, NaN where unobserved (forecasting targets); :meth:`TimeSeriesPreprocessor.inverse_values` maps
  ``inputs`` back to original units (the last-observation-carried-forward baseline).

Values outside the declared ranges are set missing and counted per variable in ``last_report_``.

Examples:
    >>> import numpy as np
    >>> from medai.data.sources.timeseries import RawSeries
    >>> values = np.array([[[80.0], [np.nan], [100.0]], [[np.nan], [90.0], [np.nan]]], dtype=np.float32)
    >>> raw = RawSeries(ids=["a", "b"], values=values, variables=["HR"], static=np.zeros((2, 0)), static_names=[],
    ...                 labels=np.array([0, 1]), groups=["a", "b"], hours=np.arange(3))
    >>> data = TimeSeriesPreprocessor().fit(raw).transform(raw)
    >>> data.inputs[:, :, 0].astype(float).round(2).tolist(), data.extras["mask"][1, :, 0].tolist()
    ([[-1.22, -1.22, 1.22], [0.0, 0.0, 0.0]], [0.0, 1.0, 0.0])
    >>> (data.extras["delta"][0, :, 0] * 3).astype(float).round(3).tolist()
    [0.0, 1.0, 2.0]
"""

from __future__ import annotations

import numpy as np

from medai.data.dataset import Dataset, Schema
from medai.data.sources.timeseries import PHYSIOLOGICAL_RANGES, RawSeries, filter_ranges
from medai.errors import InvalidInputError

LABEL_NAMES = ("survived", "died")
MIN_STD = 1e-6


class TimeSeriesPreprocessor:
    """Range filter, mask, time since last observation, forward fill and standardisation, learned on training data.

    Args:
        ranges: variable -> (low, high) plausible range, inclusive; default
            :data:`~medai.data.sources.timeseries.PHYSIOLOGICAL_RANGES`. Variables without a range are not filtered.
        delta_scale: divide times since the last observation (hours) by this; default the window length T.

    Attributes (after ``fit``):
        variables_, static_names_, hours_: the training layout (V names, S names, T bin start hours).
        mean_, std_: per variable, of the observed in-range training values (a variable never observed gets mean 0,
            std 1, and so does a constant one).
        n_observed_: per variable, the number of observed training bins.
        static_median_, static_mean_, static_std_: per static feature, of the observed training values.
        static_feature_names_: names of ``extras["static"]``'s 2 S columns.
        last_report_: counts from the latest ``transform``: records, out-of-range values per variable and static
            feature, observed-bin fraction.
    """

    def __init__(self, ranges: dict | None = None, delta_scale: float | None = None):
        self.ranges = ranges
        self.delta_scale = delta_scale

    def fit(self, raw: RawSeries) -> TimeSeriesPreprocessor:
        """Learn means, stds and static medians from the training split only.

        Args:
            raw: the training RawSeries, values (n, T, V), static (n, S).
        """
        self._check_parameters(raw)
        values, _ = filter_ranges(raw.values, raw.variables, self._ranges())
        static, _ = filter_ranges(raw.static, raw.static_names, self._ranges())
        self.variables_ = [str(v) for v in raw.variables]
        self.static_names_ = [str(v) for v in raw.static_names]
        self.hours_ = [int(h) for h in raw.hours]
        observed = values.reshape(-1, len(self.variables_))  # (n * T, V)
        self.n_observed_ = [int(n) for n in (~np.isnan(observed)).sum(axis=0)]
        self.mean_, self.std_ = _mean_std(observed)
        self.static_mean_, self.static_std_ = _mean_std(static)
        self.static_median_ = [_finite(np.nanmedian(c)) if (~np.isnan(c)).any() else 0.0 for c in static.T]
        self.static_feature_names_ = [*self.static_names_, *(f"{name}_missing" for name in self.static_names_)]
        return self

    def transform(self, raw: RawSeries, keep_raw: bool = False) -> Dataset:
        """RawSeries -> Dataset(modality "series", task "binary", inputs (n, T, V), extras mask/delta/static).

        Args:
            raw: series with the training variables (any order; extra variables are ignored) and hours.
            keep_raw: also return ``extras["raw"]``, the range-filtered values in original units (NaN = unobserved).

        Raises:
            InvalidInputError: not fitted, a training variable or static feature missing, different hours.
        """
        if not hasattr(self, "mean_"):
            raise InvalidInputError("This TimeSeriesPreprocessor is not fitted; call fit(training_series) first.")
        values, static = self._aligned(raw)  # (n, T, V), (n, S)
        values, out_of_range = filter_ranges(values, self.variables_, self._ranges())
        static, static_out_of_range = filter_ranges(static, self.static_names_, self._ranges())
        mask = ~np.isnan(values)  # (n, T, V)
        filled = _forward_fill(values, mask, np.asarray(self.mean_, dtype=np.float32))
        inputs = (filled - np.asarray(self.mean_, dtype=np.float32)) / np.asarray(self.std_, dtype=np.float32)
        extras = {"mask": mask.astype(np.float32), "delta": self._delta(mask), "static": self._static(static)}
        if keep_raw:
            extras["raw"] = values.astype(np.float32)
        self.last_report_ = {"records": len(raw), "out_of_range": out_of_range,
                             "static_out_of_range": static_out_of_range,
                             "observed_fraction": float(mask.mean()) if mask.size else 0.0}
        schema = Schema(modality="series", task_type="binary", label_names=LABEL_NAMES,
                        input_shape=(len(self.hours_), len(self.variables_)), source=str(raw.report.get("source", "")))
        return Dataset(inputs=inputs.astype(np.float32), labels=raw.labels, ids=raw.ids, schema=schema,
                       groups=raw.groups, extras=extras)

    def fit_transform(self, raw: RawSeries, keep_raw: bool = False) -> Dataset:
        """``fit(raw).transform(raw, keep_raw)``."""
        return self.fit(raw).transform(raw, keep_raw=keep_raw)

    def inverse_values(self, standardised) -> np.ndarray:
        """Standardised values of shape (..., V) -> original units (float32, same shape)."""
        values = np.asarray(standardised, dtype=np.float32)
        if values.shape[-1:] != (len(self.variables_),):
            raise InvalidInputError(f"inverse_values expects values of shape (..., {len(self.variables_)}); got "
                                    f"{values.shape}.")
        return values * np.asarray(self.std_, dtype=np.float32) + np.asarray(self.mean_, dtype=np.float32)

    def to_dict(self) -> dict:
        """JSON-ready parameters and fitted state (for a bundle's config.json)."""
        state = {"ranges": None if self.ranges is None else {k: list(v) for k, v in self.ranges.items()},
                 "delta_scale": self.delta_scale}
        if hasattr(self, "mean_"):
            state["fitted"] = {name: getattr(self, name) for name in _STATE}
        return state

    @classmethod
    def from_dict(cls, state: dict) -> TimeSeriesPreprocessor:
        """Rebuild a preprocessor saved with :meth:`to_dict`."""
        ranges = state.get("ranges")
        preprocessor = cls({k: tuple(v) for k, v in ranges.items()} if ranges else None, state.get("delta_scale"))
        fitted = state.get("fitted")
        if fitted is not None:
            missing = [name for name in _STATE if name not in fitted]
            if missing:
                raise InvalidInputError(f"TimeSeriesPreprocessor state lacks {missing}; expected the output of to_dict().")
            for name in _STATE:
                setattr(preprocessor, name, list(fitted[name]))
        return preprocessor

    # ------------------------------------------------------------------------------------------------ internals

    def _ranges(self) -> dict:
        return PHYSIOLOGICAL_RANGES if self.ranges is None else self.ranges

    def _check_parameters(self, raw) -> None:
        if not isinstance(raw, RawSeries):
            raise InvalidInputError(f"fit expects a RawSeries (from physionet2012.load_records or mimic3.load_stays); "
                                    f"got {type(raw).__name__}.")
        if len(raw) == 0:
            raise InvalidInputError("fit needs at least one record; the training series is empty.")
        if self.ranges is not None:
            for name, bounds in self.ranges.items():
                if len(bounds) != 2 or not float(bounds[0]) <= float(bounds[1]):
                    raise InvalidInputError(f"The 'ranges' entry for {name!r} must be (low, high) with low <= high; "
                                            f"got {bounds!r}.")
        if self.delta_scale is not None and not float(self.delta_scale) > 0:
            raise InvalidInputError(f"The 'delta_scale' parameter must be a number > 0; got {self.delta_scale!r}.")

    def _aligned(self, raw: RawSeries) -> tuple[np.ndarray, np.ndarray]:
        if [int(h) for h in raw.hours] != self.hours_:
            raise InvalidInputError(f"The series has {len(raw.hours)} hourly bins; this preprocessor was fitted on "
                                    f"{len(self.hours_)}. Load the data with hours={len(self.hours_)}.")
        columns = []
        for names, wanted in ((raw.variables, self.variables_), (raw.static_names, self.static_names_)):
            index = {str(name): j for j, name in enumerate(names)}
            missing = [name for name in wanted if name not in index]
            if missing:
                raise InvalidInputError(f"The series lacks {missing} seen in training; align it with "
                                        f"raw.select_variables(preprocessor.variables_) (absent ones become missing).")
            columns.append([index[name] for name in wanted])
        return raw.values[:, :, columns[0]], raw.static[:, columns[1]]

    def _delta(self, mask: np.ndarray) -> np.ndarray:
        """GRU-D time since the previous observation, (n, T, V) float32, divided by delta_scale."""
        hours = np.asarray(self.hours_, dtype=np.float32)
        steps = np.arange(len(hours))[None, :, None]
        last = np.maximum.accumulate(np.where(mask, steps, 0), axis=1)  # last observed bin <= t (0 if none)
        before = np.concatenate([np.zeros_like(last[:, :1]), last[:, :-1]], axis=1)  # last observed bin < t
        delta = hours[None, :, None] - hours[before]  # (n, T, V)
        scale = self.delta_scale or float(len(hours) * (hours[1] - hours[0] if len(hours) > 1 else 1.0))
        return (delta / scale).astype(np.float32)

    def _static(self, static: np.ndarray) -> np.ndarray:
        """(n, S) with NaN -> (n, 2 S): standardised median-imputed values, then missing indicators."""
        missing = np.isnan(static)
        imputed = np.where(missing, np.asarray(self.static_median_, dtype=np.float32), static)
        scaled = (imputed - np.asarray(self.static_mean_, dtype=np.float32)) / np.asarray(self.static_std_,
                                                                                          dtype=np.float32)
        return np.concatenate([scaled, missing], axis=1).astype(np.float32)


_STATE = ("variables_", "static_names_", "hours_", "mean_", "std_", "n_observed_", "static_mean_", "static_std_",
          "static_median_", "static_feature_names_")


def _mean_std(columns: np.ndarray) -> tuple[list[float], list[float]]:
    """Per column of (m, k) with NaN: mean and std of the observed values (0 and 1 for an empty column)."""
    means, stds = [], []
    for column in np.asarray(columns, dtype=np.float64).T:
        observed = column[~np.isnan(column)]
        means.append(_finite(observed.mean()) if len(observed) else 0.0)
        std = float(observed.std()) if len(observed) else 1.0
        stds.append(std if std >= MIN_STD else 1.0)
    return means, stds


def _finite(value) -> float:
    value = float(value)
    return value if np.isfinite(value) else 0.0


def _forward_fill(values: np.ndarray, mask: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Carry the last observation forward along T; before the first one, use ``fill`` (V,)."""
    steps = values.shape[1]
    last = np.maximum.accumulate(np.where(mask, np.arange(steps)[None, :, None], 0), axis=1)  # (n, T, V)
    seen = np.logical_or.accumulate(mask, axis=1)
    carried = np.take_along_axis(values, last, axis=1)
    return np.where(seen, carried, fill[None, None, :]).astype(np.float32)
