"""Label columns of molecule tables: text to numbers, duplicate molecules merged, per-task statistics.

Examples:
    >>> import numpy as np
    >>> from medai.chem.report import new_report
    >>> report = new_report(3)
    >>> labels, names = parse_label_columns({"active": np.array(["1", None, "0"], dtype=object)}, False, "x", report)
    >>> labels[:, 0].tolist()[::2], names
    ([1.0, 0.0], ['active'])
"""

from __future__ import annotations

import math

import numpy as np

from medai.chem.report import add_issue
from medai.errors import InvalidInputError

MISSING_TEXT = frozenset(["", "na", "nan", "none", "null", "?"])


def parse_label_columns(columns: dict, infer_targets: bool, source: str, report: dict,
                        n_rows: int | None = None) -> tuple[np.ndarray, list]:
    """Label columns (text or numbers, None for missing) -> float64 matrix (n_rows, n_tasks) with NaN, and names.

    With ``infer_targets`` (no targets given), columns holding only text (names, ids) and empty columns are left
    out and noted in ``report["notes"]``. Text among numbers is always an error.

    Raises:
        InvalidInputError: a label column holds text (names the column, up to 5 rows and 3 values) or infinity.
    """
    names, parsed = [], []
    for name, values in columns.items():
        numbers, text_rows = _to_numbers(values)
        present = int((~np.isnan(numbers)).sum())
        if infer_targets and (present == 0 or len(text_rows) == len(values) - _n_missing(values)):
            why = "is empty" if present == 0 and not text_rows else "holds text only"
            report["notes"].append(f"column {name!r} {why}; not used as a label")
            continue
        if text_rows:
            examples = list(dict.fromkeys(str(values[i]).strip() for i in text_rows))[:3]
            raise InvalidInputError(
                f"The label column {name!r} of '{source}' holds text in {len(text_rows)} row(s) (rows "
                f"{', '.join(str(i + 1) for i in text_rows[:5])}{', ...' if len(text_rows) > 5 else ''}; values "
                f"such as {examples}); expected numbers (0/1 for classification), with empty cells for missing "
                f"labels. Pass targets= to choose the label columns.")
        infinite = np.flatnonzero(np.isinf(numbers))
        if len(infinite):
            raise InvalidInputError(f"The label column {name!r} of '{source}' holds infinity in row(s) "
                                    f"{', '.join(str(i + 1) for i in infinite[:5])}; expected finite numbers.")
        if present == 0:
            report["notes"].append(f"label column {name!r} has no labels")
        elif infer_targets and _looks_like_row_index(numbers):
            report["notes"].append(f"column {name!r} holds a distinct integer in every row; if it numbers the rows, "
                                   f"pass targets= without it")
        names.append(name)
        parsed.append(numbers)
    if n_rows is None:
        n_rows = len(next(iter(columns.values()))) if columns else 0
    matrix = np.stack(parsed, axis=1) if parsed else np.zeros((n_rows, 0))  # (n_rows, n_tasks)
    return matrix, names


def merge_duplicates(canonical: list[str], labels: np.ndarray, task_types, row_numbers: list[int], names,
                     report: dict) -> tuple[list[int], np.ndarray]:
    """Merge rows with the same canonical SMILES; return (index of each group's first row, merged labels).

    Args:
        canonical: canonical SMILES of each kept row, length m.
        labels: float array of shape (m, n_tasks) with NaN for missing.
        task_types: ``"classification"`` or ``"regression"`` per task.
        row_numbers: source row number of each kept row (for the report).
        names: task names (for the report).
        report: receives ``"duplicate"``, ``"label_conflict"`` and ``"label_averaged"`` issues.

    Returns:
        ``(first, merged)``: first-row indices into the m rows, length k, and float32 labels of shape (k, n_tasks).
    """
    groups: dict[str, list[int]] = {}
    for i, smiles in enumerate(canonical):
        groups.setdefault(smiles, []).append(i)
    first = [members[0] for members in groups.values()]
    merged = labels[first].astype(np.float32)  # (k, n_tasks)
    for k, (smiles, members) in enumerate(groups.items()):
        if len(members) == 1:
            continue
        rows = [row_numbers[i] for i in members]
        add_issue(report, "duplicate", rows=rows, canonical=smiles)
        for j, name in enumerate(names):
            merged[k, j] = _merge_task(labels[members, j], task_types[j], rows, name, report)
    return first, merged


def _merge_task(values: np.ndarray, task_type: str, rows: list[int], name: str, report: dict) -> float:
    present = values[~np.isnan(values)]
    if len(present) == 0:
        return math.nan
    if (present == present[0]).all():
        return float(present[0])
    if task_type == "classification":
        add_issue(report, "label_conflict", rows=rows, task=name, values=_json_values(values),
                  resolution="label set to missing")
        return math.nan
    mean = float(present.mean())
    add_issue(report, "label_averaged", rows=rows, task=name, values=_json_values(values), mean=mean)
    return mean


def task_summary(labels: np.ndarray, names, task_types) -> dict:
    """Per task: type, labelled and missing counts, positives (classification) or mean/std/min/max."""
    summary = {}
    for j, (name, kind) in enumerate(zip(names, task_types)):
        values = labels[:, j][~np.isnan(labels[:, j])]
        entry = {"type": kind, "labelled": len(values), "missing": int(len(labels) - len(values))}
        if kind == "classification":
            entry["positives"] = int(values.sum())
        elif len(values):
            entry |= {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
                      "max": float(values.max())}
        summary[name] = entry
    return summary


def _to_numbers(values) -> tuple[np.ndarray, list[int]]:
    """Values (str, numbers, None) -> (float64 with NaN for missing, indices of cells holding text)."""
    numbers, text_rows = np.full(len(values), np.nan), []
    for i, value in enumerate(values):
        if value is None or (isinstance(value, str) and value.strip().lower() in MISSING_TEXT):
            continue
        try:
            numbers[i] = float(value)
        except (TypeError, ValueError):
            text_rows.append(i)
    return numbers, text_rows


def _n_missing(values) -> int:
    return sum(1 for v in values if v is None or (isinstance(v, str) and v.strip().lower() in MISSING_TEXT)
               or (isinstance(v, float) and math.isnan(v)))


def _looks_like_row_index(numbers: np.ndarray) -> bool:
    present = numbers[~np.isnan(numbers)]
    return (len(present) == len(numbers) > 20 and bool((present == np.round(present)).all())
            and len(np.unique(present)) == len(present))


def _json_values(values: np.ndarray) -> list:
    return [None if np.isnan(v) else float(v) for v in values]
