"""What each hospital computes on its own records for federated learning, and what the server makes of it.

A site never sends records. It sends, for preprocessing, per numeric column the count, sum and sum of squares of
its observed training values and then a histogram on bin edges the server chose from the pooled moments; per
categorical column the count of each category. The server turns these into the same preprocessing state that
``TabularPreprocessor.fit`` would learn on the pooled training rows: means and standard deviations are exact, medians
(used for imputation) and percentiles are read off the pooled histogram (within one bin, 1/40 of a standard deviation).

Examples:
    >>> import numpy as np
    >>> from medai.data.sources.tabular import Table
    >>> def site(values, sex):
    ...     return Table({"crp": np.array(values), "sex": np.array(sex, dtype=object)}, ["crp"], ["sex"], "y",
    ...                  np.array([0, 1] * (len(values) // 2)), ("0", "1"), np.arange(len(values)).astype(str))
    >>> a, b = site([1.0, 2.0], ["F", "M"]), site([3.0, np.nan, 5.0, 6.0], ["F", None, "F", "M"])
    >>> moments = combine_moments([site_moments(a), site_moments(b)])
    >>> edges = histogram_edges(moments)
    >>> state = preprocessing_state(moments, combine_histograms([site_histograms(t, edges) for t in (a, b)]), edges)
    >>> round(state["means"][0], 6), state["categories"]["sex"], state["category_counts"]["sex"]
    (3.4, ['F', 'M'], {'F': 3, 'M': 2})
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medai.data.sources.tabular import Table, as_categories
from medai.data.splits import split_indices
from medai.errors import InvalidInputError
from medai.transforms.tabular import MIN_STD, PERCENTILES, _as_numbers

HISTOGRAM_BINS = 480  # bins over the pooled mean +- 6 standard deviations
HISTOGRAM_SPAN = 6.0


@dataclass
class SiteData:
    """One hospital's records, split by patient into train / val / test (seeded, stratified).

    Attributes:
        name: the site's name (the site column's value, or the file name).
        train, val, test: Tables of that site only.
    """

    name: str
    train: Table
    val: Table
    test: Table


def split_site(name: str, table: Table, seed: int, fractions=(0.7, 0.1, 0.2)) -> SiteData:
    """Patient-level stratified split of one site's table (record ids are the patient groups)."""
    parts = split_indices(table.labels, table.ids, fractions, seed, table.label_names)
    return SiteData(name, *(table.subset(parts[key]) for key in ("train", "val", "test")))


def partition_by_site(table: Table, seed: int = 0) -> list[SiteData]:
    """One SiteData per distinct value of ``table.sites`` (sorted by name), each split on its own."""
    if table.sites is None:
        raise InvalidInputError("Federated training needs a site column naming each row's hospital; give "
                                "--site-column (a known multi-site table such as 'heart' has one).")
    names = sorted({str(site) for site in table.sites})
    if len(names) < 2:
        raise InvalidInputError(f"Federated training needs at least 2 sites; the site column holds {len(names)}.")
    return [split_site(name, table.subset(np.flatnonzero(table.sites == name)), seed) for name in names]


# -- what a site sends ------------------------------------------------------------------------------------------


def site_moments(table: Table) -> dict:
    """Counts, sums and sums of squares of each numeric column; category counts; the column roles and classes."""
    numeric = {}
    for name in table.numeric:
        values = _as_numbers(name, table.columns[name])
        observed = values[~np.isnan(values)]
        numeric[name] = {"n": len(observed), "sum": float(observed.sum()), "sum_squares": float((observed**2).sum())}
    categorical = {}
    for name in table.categorical:
        values, counts = np.unique([v for v in as_categories(table.columns[name]) if v is not None], return_counts=True)
        categorical[name] = {str(v): int(c) for v, c in zip(values, counts)}
    return {"rows": len(table), "numeric": numeric, "categorical": categorical, "target": table.target,
            "label_names": list(table.label_names), "classes": list(table.classes or table.label_names)}


def site_histograms(table: Table, edges: dict[str, list[float]]) -> dict[str, list[int]]:
    """Per numeric column, counts of observed training values in the server's bins (outside values: end bins)."""
    histograms = {}
    for name, column_edges in edges.items():
        values = _as_numbers(name, table.columns[name])
        observed = np.clip(values[~np.isnan(values)], column_edges[0], column_edges[-1])
        histograms[name] = np.histogram(observed, bins=np.asarray(column_edges))[0].tolist()
    return histograms


# -- what the server makes of it ----------------------------------------------------------------------------------


def combine_moments(summaries: list[dict]) -> dict:
    """Pool the sites' moments; every site must type the columns and the target alike."""
    first = summaries[0]
    for summary in summaries[1:]:
        for key in ("numeric", "categorical"):
            if sorted(summary[key]) != sorted(first[key]):
                differ = sorted(set(summary[key]) ^ set(first[key]))
                raise InvalidInputError(f"Sites type columns differently ({key} columns differ in {differ}); give "
                                        f"every site the same columns.")
        if summary["classes"] != first["classes"] or summary["target"] != first["target"]:
            raise InvalidInputError("Sites have different targets or classes; every site must label alike.")
    numeric = {name: {key: sum(s["numeric"][name][key] for s in summaries) for key in ("n", "sum", "sum_squares")}
               for name in first["numeric"]}
    categorical = {}
    for name in first["categorical"]:
        counts: dict[str, int] = {}
        for summary in summaries:
            for category, count in summary["categorical"][name].items():
                counts[category] = counts.get(category, 0) + count
        categorical[name] = counts
    return {**first, "rows": sum(s["rows"] for s in summaries), "numeric": numeric, "categorical": categorical}


def _mean_std(entry: dict) -> tuple[float, float]:
    if not entry["n"]:
        return 0.0, 1.0
    mean = entry["sum"] / entry["n"]
    variance = max(entry["sum_squares"] / entry["n"] - mean**2, 0.0)
    return mean, max(float(np.sqrt(variance)), MIN_STD)


def histogram_edges(moments: dict) -> dict[str, list[float]]:
    """Bin edges per numeric column: the pooled mean +- 6 pooled standard deviations."""
    edges = {}
    for name, entry in moments["numeric"].items():
        mean, std = _mean_std(entry)
        edges[name] = np.linspace(mean - HISTOGRAM_SPAN * std, mean + HISTOGRAM_SPAN * std, HISTOGRAM_BINS + 1).tolist()
    return edges


def combine_histograms(histograms: list[dict[str, list[int]]]) -> dict[str, np.ndarray]:
    """Sum the sites' histograms column by column."""
    return {name: np.sum([h[name] for h in histograms], axis=0) for name in histograms[0]}


def _quantile(counts: np.ndarray, edges: np.ndarray, q: float) -> float:
    """The q-th percentile of binned values, linear within the bin (``np.percentile``'s 'linear' on bin level)."""
    cumulative = np.concatenate([[0], np.cumsum(counts)]).astype(float)
    target = q / 100 * cumulative[-1]
    return float(np.interp(target, cumulative, edges))


def preprocessing_state(moments: dict, histograms: dict[str, np.ndarray], edges: dict[str, list[float]]) -> dict:
    """The ``TabularPreprocessor.to_dict()`` state that pooled training rows would give (see module docstring)."""
    numeric, categorical = list(moments["numeric"]), list(moments["categorical"])
    medians, means, stds, percentiles, observed = [], [], [], {}, {}
    for name in numeric:
        entry = moments["numeric"][name]
        mean, std = _mean_std(entry)
        counts, column_edges = histograms[name], np.asarray(edges[name])
        median = _quantile(counts, column_edges, 50) if entry["n"] else 0.0
        medians.append(median)
        means.append(mean)
        stds.append(std)
        percentiles[name] = {str(q): _quantile(counts, column_edges, q) for q in PERCENTILES} if entry["n"] else None
        observed[name] = int(entry["n"])
    categories = {name: sorted(moments["categorical"][name]) for name in categorical}
    return {"cls": "TabularPreprocessor", "numeric": numeric, "categorical": categorical, "medians": medians,
            "means": means, "stds": stds, "percentiles": percentiles, "n_observed": observed,
            "categories": categories,
            "category_counts": {name: {c: moments["categorical"][name][c] for c in categories[name]} for name in categorical}}


def baseline_row(state: dict) -> list[float]:
    """A typical training patient for explanations: median numbers, nothing missing, the most frequent category."""
    numbers = [(m - mu) / s for m, mu, s in zip(state["medians"], state["means"], state["stds"])]
    codes = []
    for name in state["categorical"]:
        counts = state["category_counts"][name]
        codes.append(float(state["categories"][name].index(max(counts, key=counts.get)) + 1) if counts else 0.0)
    return [*numbers, *([0.0] * len(numbers)), *codes]
