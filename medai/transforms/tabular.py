"""Preprocessing of tables fitted on the training split: standardised numbers, missing indicators, category codes.

The output layout, shape (n_rows, 2 * n_numeric + n_categorical), is what ``medai.models.tabular`` expects::

    [standardised numeric columns | missing indicators of those columns | categorical codes]

Missing numbers are imputed with the training median before standardising and flagged 1.0 in their indicator
column. Categories are coded 1..k in sorted order of the training categories; 0 means missing or a category never
seen in training. Unseen categories are counted per column in ``last_report_`` after every ``transform``.

Examples:
    >>> import numpy as np
    >>> from medai.data.sources.tabular import Table
    >>> table = Table(columns={"crp": np.array([1.0, np.nan, 3.0]), "sex": np.array(["F", "M", None], dtype=object)},
    ...               numeric=["crp"], categorical=["sex"], target=None, labels=None, label_names=(),
    ...               ids=np.array(["a", "b", "c"]))
    >>> preprocessor = TabularPreprocessor(["crp"], ["sex"]).fit(table)
    >>> preprocessor.transform(table).tolist()
    [[-1.0, 0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 0.0, 0.0]]
    >>> preprocessor.feature_names_out_, preprocessor.cardinalities_
    (['crp', 'crp_missing', 'sex'], [3])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from medai.data.sources.tabular import Table, as_categories
from medai.errors import InvalidInputError, did_you_mean

PERCENTILES = (5, 25, 50, 75, 95)
MIN_STD = 1e-6


class TabularPreprocessor:
    """Median imputation, standardisation, missing indicators and category codes, learned on training rows.

    Args:
        numeric: numeric columns, in output order.
        categorical: categorical columns, in output order.

    Attributes (after ``fit``):
        medians_, means_, stds_: per numeric column, from observed training values (std floored at 1e-6; a column
            with no training value gets median 0, mean 0, std 1).
        percentiles_: per numeric column, training percentiles {"5", "25", "50", "75", "95"} (None when empty).
        categories_: per categorical column, the sorted categories seen in training (code i + 1).
        category_counts_: per categorical column, training rows per category.
        cardinalities_: per categorical column, number of codes (categories + 1 for missing/unseen).
        n_numeric_: number of numeric columns.
        feature_names_out_: names of the output columns.
        last_report_: counts from the latest ``transform``: rows, missing cells and unseen categories per column.
    """

    def __init__(self, numeric: Sequence[str], categorical: Sequence[str]):
        self.numeric = numeric
        self.categorical = categorical

    def fit(self, table: Table | Mapping[str, np.ndarray]) -> TabularPreprocessor:
        """Learn statistics and categories from the training split only.

        Args:
            table: a Table, or a mapping of column name -> array of shape (n_rows,).
        """
        self._check_parameters()
        columns = self._columns(table, fitting=True)
        statistics = {name: _numeric_statistics(columns[name]) for name in self.numeric}
        self.medians_ = [statistics[name]["median"] for name in self.numeric]
        self.means_ = [statistics[name]["mean"] for name in self.numeric]
        self.stds_ = [statistics[name]["std"] for name in self.numeric]
        self.percentiles_ = {name: statistics[name]["percentiles"] for name in self.numeric}
        self.n_observed_ = {name: statistics[name]["n_observed"] for name in self.numeric}
        self.categories_, self.category_counts_ = {}, {}
        for name in self.categorical:
            counts = Counter(value for value in columns[name] if value is not None)
            self.categories_[name] = sorted(counts)
            self.category_counts_[name] = {category: counts[category] for category in self.categories_[name]}
        self._finish()
        return self

    def transform(self, table: Table | Mapping[str, np.ndarray]) -> np.ndarray:
        """Rows -> float32 array of shape (n_rows, 2 * n_numeric + n_categorical); extra columns are ignored.

        Raises:
            InvalidInputError: not fitted, columns missing (named, with the expected ones), text or infinity in a
                numeric column.
        """
        if not hasattr(self, "categories_"):
            raise InvalidInputError("This TabularPreprocessor is not fitted; call fit(training_table) first.")
        columns = self._columns(table, fitting=False)
        n_rows = len(next(iter(columns.values()))) if columns else 0
        numbers = np.stack([columns[name] for name in self.numeric], axis=1) if self.numeric else np.zeros((n_rows, 0))
        missing = np.isnan(numbers)  # (n_rows, n_numeric)
        filled = np.where(missing, np.asarray(self.medians_), numbers)
        standardised = (filled - np.asarray(self.means_)) / np.asarray(self.stds_)  # (n_rows, n_numeric)
        codes, unseen = np.zeros((n_rows, len(self.categorical))), {}
        for j, name in enumerate(self.categorical):
            index = {category: i + 1 for i, category in enumerate(self.categories_[name])}
            values = columns[name]
            codes[:, j] = [index.get(value, 0) if value is not None else 0 for value in values]
            unseen[name] = int(sum(value is not None and value not in index for value in values))
        self.last_report_ = {
            "rows": int(n_rows), "unseen_categories": unseen,
            "missing": {**{name: int(missing[:, j].sum()) for j, name in enumerate(self.numeric)},
                        **{name: int(sum(v is None for v in columns[name])) for name in self.categorical}}}
        return np.concatenate([standardised, missing, codes], axis=1).astype(np.float32)

    def fit_transform(self, table: Table | Mapping[str, np.ndarray]) -> np.ndarray:
        """``fit(table).transform(table)``."""
        return self.fit(table).transform(table)

    def inverse_numeric(self, standardised) -> np.ndarray:
        """Standardised values of shape (..., n_numeric) -> original units, same shape."""
        values = np.asarray(standardised, dtype=np.float64)
        if values.shape[-1:] != (len(self.numeric),):
            raise InvalidInputError(f"inverse_numeric expects values of shape (..., {len(self.numeric)}); got "
                                    f"{values.shape}.")
        return values * np.asarray(self.stds_) + np.asarray(self.means_)

    def training_summary(self, column: str) -> dict:
        """What training looked like for one column, for explanations (JSON-ready).

        Returns:
            numeric: ``{"column", "kind", "mean", "std", "median", "percentiles", "n_observed"}``;
            categorical: ``{"column", "kind", "categories", "counts"}``.
        """
        if column in self.numeric:
            j = list(self.numeric).index(column)
            return {"column": column, "kind": "numeric", "mean": self.means_[j], "std": self.stds_[j],
                    "median": self.medians_[j], "percentiles": self.percentiles_[column],
                    "n_observed": self.n_observed_[column]}
        if column in self.categorical:
            return {"column": column, "kind": "categorical", "categories": list(self.categories_[column]),
                    "counts": dict(self.category_counts_[column])}
        known = [*self.numeric, *self.categorical]
        raise InvalidInputError(f"No column '{column}' in this preprocessor.{did_you_mean(column, known)} "
                                f"Columns: {', '.join(known)}.")

    def to_dict(self) -> dict:
        """JSON-ready state; ``TabularPreprocessor.from_dict(p.to_dict())`` transforms identically."""
        return {"cls": "TabularPreprocessor", "numeric": list(self.numeric), "categorical": list(self.categorical),
                "medians": self.medians_, "means": self.means_, "stds": self.stds_,
                "percentiles": self.percentiles_, "n_observed": self.n_observed_,
                "categories": self.categories_, "category_counts": self.category_counts_}

    @classmethod
    def from_dict(cls, data: dict) -> TabularPreprocessor:
        """Rebuild a fitted preprocessor from :meth:`to_dict` output."""
        try:
            preprocessor = cls(list(data["numeric"]), list(data["categorical"]))
            preprocessor.medians_ = [float(v) for v in data["medians"]]
            preprocessor.means_ = [float(v) for v in data["means"]]
            preprocessor.stds_ = [float(v) for v in data["stds"]]
            preprocessor.percentiles_ = dict(data["percentiles"])
            preprocessor.n_observed_ = dict(data["n_observed"])
            preprocessor.categories_ = {name: list(values) for name, values in data["categories"].items()}
            preprocessor.category_counts_ = dict(data["category_counts"])
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidInputError(f"Not a saved TabularPreprocessor ({type(error).__name__}: {error}).") from None
        preprocessor._check_parameters()
        preprocessor._finish()
        return preprocessor

    def _finish(self) -> None:
        self.n_numeric_ = len(self.numeric)
        self.cardinalities_ = [len(self.categories_[name]) + 1 for name in self.categorical]
        self.feature_names_out_ = [*self.numeric, *(f"{name}_missing" for name in self.numeric), *self.categorical]

    def _check_parameters(self) -> None:
        for parameter in ("numeric", "categorical"):
            value = getattr(self, parameter)
            if isinstance(value, str) or not all(isinstance(name, str) for name in value):
                raise InvalidInputError(f"The '{parameter}' parameter of TabularPreprocessor must be a list of column "
                                        f"names; got {value!r}.")
        both = sorted(set(self.numeric) & set(self.categorical))
        if both or not (len(self.numeric) + len(self.categorical)):
            raise InvalidInputError(f"TabularPreprocessor needs at least one column, each either numeric or "
                                    f"categorical; got numeric={list(self.numeric)}, categorical="
                                    f"{list(self.categorical)}.")

    def _columns(self, table, fitting: bool) -> dict[str, np.ndarray]:
        """The needed columns, numeric as float64 (NaN = missing), categorical as str objects (None = missing)."""
        source = table.columns if isinstance(table, Table) else table
        expected = [*self.numeric, *self.categorical]
        absent = [name for name in expected if name not in source]
        if absent:
            hints = "".join(did_you_mean(name, list(source)) for name in absent)
            raise InvalidInputError(f"The table lacks column(s) {absent} that the preprocessor "
                                    f"{'is asked to use' if fitting else 'was fitted on'}.{hints} Expected columns: "
                                    f"{', '.join(expected)}.")
        lengths = {len(source[name]) for name in expected}
        if len(lengths) > 1:
            raise InvalidInputError(f"Columns differ in length ({sorted(lengths)}); expected one value per row.")
        if fitting and not lengths.pop():
            raise InvalidInputError("Cannot fit a TabularPreprocessor on a table with no rows.")
        columns = {name: _as_numbers(name, source[name]) for name in self.numeric}
        return {**columns, **{name: as_categories(source[name]) for name in self.categorical}}


def _numeric_statistics(values: np.ndarray) -> dict:
    """Median, mean, std (floored) and percentiles of the observed values; 0, 0, 1 and None when there are none."""
    observed = values[~np.isnan(values)]
    if not len(observed):
        return {"median": 0.0, "mean": 0.0, "std": 1.0, "percentiles": None, "n_observed": 0}
    percentiles = np.percentile(observed, PERCENTILES)
    return {"median": float(np.median(observed)), "mean": float(observed.mean()),
            "std": float(max(observed.std(), MIN_STD)), "n_observed": len(observed),
            "percentiles": {str(q): float(v) for q, v in zip(PERCENTILES, percentiles)}}


def _as_numbers(name: str, values) -> np.ndarray:
    """A column -> float64 (NaN = missing); text or infinity raise an error naming the column, not the value."""
    values = np.asarray(values)
    if values.dtype.kind not in "fiub":
        converted = np.full(len(values), np.nan)
        for i, value in enumerate(values):
            if value is None:
                continue
            try:
                converted[i] = float(value)
            except (TypeError, ValueError):
                raise InvalidInputError(f"Column '{name}' holds text in row {i + 1} where the preprocessor expects "
                                        f"a number (it was fitted as numeric).") from None
        values = converted
    values = values.astype(np.float64)
    infinite = int(np.isinf(values).sum())
    if infinite:
        raise InvalidInputError(f"Column '{name}' holds {infinite} infinite value(s); expected finite numbers or "
                                f"missing values.")
    return values
