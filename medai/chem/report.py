"""The JSON-ready account every chem loader returns: what was read, kept, changed and skipped, by row.

A report is a plain dict, so it can be written next to a model or printed by the CLI::

    {"rows_read": 5, "rows_kept": 3,
     "issues": {"invalid": [{"row": 2, "smiles": "C1CC", "reason": "..."}], ...},
     "counts": {"invalid": 1, ...},
     "notes": ["..."]}

Row numbers count data rows from 1; the header line is not counted (row 1 is the second line of a CSV).
Molecule data are not patient data, so entries may quote SMILES strings and label values.
"""

from __future__ import annotations

SKIPPED_KINDS = ("empty", "invalid", "too_large", "invalid_sequence", "missing_affinity")
"""Issue kinds whose rows are left out of the result."""

MAX_QUOTED = 120  # longest SMILES or sequence quoted in an issue entry


def new_report(rows_read: int = 0) -> dict:
    """An empty report for a source of ``rows_read`` data rows."""
    return {"rows_read": int(rows_read), "rows_kept": 0, "issues": {}, "counts": {}, "notes": []}


def add_issue(report: dict, kind: str, **entry) -> None:
    """Append one issue of ``kind`` (e.g. ``"invalid"``) described by JSON-ready keyword values."""
    report["issues"].setdefault(kind, []).append(entry)
    report["counts"][kind] = report["counts"].get(kind, 0) + 1


def quote(text: str | None) -> str | None:
    """A SMILES or sequence shortened for an issue entry (long ones end with ``...``)."""
    if text is None or len(text) <= MAX_QUOTED:
        return text
    return text[: MAX_QUOTED - 3] + "..."


def issue_rows(report: dict, kind: str) -> list[int]:
    """Row numbers of the issues of one kind, in the order they were found (groups give all their rows)."""
    rows = []
    for entry in report["issues"].get(kind, []):
        rows.extend(entry["rows"] if "rows" in entry else [entry["row"]])
    return rows


def summary(report: dict) -> str:
    """One line: rows read and kept, then the count of each issue kind."""
    counts = ", ".join(f"{kind}: {n}" for kind, n in report["counts"].items()) or "no issues"
    return f"{report['rows_kept']} of {report['rows_read']} rows kept ({counts})"
