"""``medai reduce``: codes of any dataset medai reads (images or tables), written as CSV/Parquet plus a scatter plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medai.errors import InvalidInputError

TABLE_SUFFIXES = {".csv", ".tsv", ".tab", ".data", ".txt", ".parquet", ".pq", ".arff"}


def _is_table(data: str) -> bool:
    from medai.data.sources.tabular import KNOWN_TABLES

    return Path(data).suffix.lower() in TABLE_SUFFIXES or str(data) in KNOWN_TABLES


def load_matrix(data, target: str | None = None) -> dict:
    """Features of every record as one array, with ids, labels and the rows the reducer may be fitted on.

    Images: all official splits (or the folder's splits), fitted on the training split. Tables: numeric columns
    (NaN where missing, the autoencoder is mask-aware) plus one-hot categorical columns, fitted on every row.
    """
    if _is_table(str(data)):
        from medai.data.sources.tabular import load_table

        table = load_table(data, target=target, require_target=False)
        blocks = [np.column_stack([table.columns[c] for c in table.numeric]).astype(np.float32)] if table.numeric else []
        for column in table.categorical:
            values = table.columns[column]
            levels = sorted({v for v in values if v is not None})
            blocks.append(np.array([[v == level for level in levels] for v in values], dtype=np.float32))
        features = np.concatenate(blocks, axis=1)
        fit_rows = np.arange(len(features))
        return {"X": features, "ids": table.ids, "labels": table.labels, "label_names": list(table.label_names),
                "fit_rows": fit_rows, "fitted_on": "all rows", "kind": "tabular"}  # fmt: skip
    from medai.data.dataset import concatenate
    from medai.tasks.image_classification import load_splits

    splits, _ = load_splits(data)
    parts = [splits[name] for name in ("train", "val", "test") if name in splits]
    joined = concatenate(parts)
    fit_rows = np.arange(len(splits["train"]))
    return {"X": joined.inputs, "ids": joined.ids, "labels": joined.labels, "label_names": list(joined.schema.label_names),
            "fit_rows": fit_rows, "fitted_on": "train split", "kind": "dense"}  # fmt: skip


def run_reduce(data, dim: int, out, *, method: str = "autoencoder", plot=None, target: str | None = None,
               epochs: int = 60, seed: int = 0, progress: bool = False) -> dict:  # fmt: skip
    """Fit a reducer, write the codes of every record to ``out`` (.csv or .parquet) and a scatter plot; returns a summary."""
    from medai.data.sources.tabular import write_frame
    from medai.reduce import plot_codes, reduce

    out = Path(out)
    if out.suffix.lower() not in {".csv", ".parquet", ".tsv"}:
        raise InvalidInputError(f"--out must end in .csv, .tsv or .parquet; got {out.name!r}.")
    matrix = load_matrix(data, target)
    X, fit_rows, labels = matrix["X"], matrix["fit_rows"], matrix["labels"]
    _, model = reduce(X[fit_rows], dim, None if labels is None else labels[fit_rows], method, seed,
                      kind=matrix["kind"], epochs=epochs, progress=progress)  # fmt: skip
    codes = model.transform(X) if method == "autoencoder" else model.transform(X.reshape(len(X), -1))
    columns = {"id": matrix["ids"].astype(str)}
    if labels is not None:
        columns["label"] = np.array([matrix["label_names"][i] for i in labels], dtype=object)
    columns |= {f"code_{i + 1}": codes[:, i].astype(np.float64) for i in range(codes.shape[1])}
    write_frame(columns, out)
    picture = Path(plot) if plot else out.with_suffix(".png")
    plot_codes(codes, labels, matrix["label_names"], picture, name=f"{'Autoencoder' if method == 'autoencoder' else 'PCA'} codes")
    return {"codes": str(out), "plot": str(picture), "records": len(X), "dim": int(dim), "method": method,
            "fitted_on": matrix["fitted_on"]}  # fmt: skip
