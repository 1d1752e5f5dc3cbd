"""Molecule tables: SMILES plus one or more labels per molecule, standardised, deduplicated and reported.

:func:`read_molecule_table` reads a CSV/TSV/Parquet file (``.csv.gz`` too); :func:`molecule_table` does the same
for in-memory lists. Every SMILES goes through :class:`medai.chem.standardise.Standardiser`. What happens to bad
input (all of it listed by row number in ``table.report["issues"]``, never silent):

- empty SMILES -> ``"empty"``, unparseable ones -> ``"invalid"`` with RDKit's reason; both skipped;
- SMILES that standardisation changed (salt stripped, charge neutralised, valence or kekulisation fixed, ...)
  -> ``"standardised"`` with the list of changes; kept;
- molecules without carbon (inorganic salts, metal complexes) -> ``"no_organic_fragment"``; kept as parsed;
- more heavy atoms than ``max_heavy_atoms`` (default 200) -> ``"too_large"``; skipped;
- rows whose standardised molecules coincide -> ``"duplicate"``, merged into the first row. Per task, equal
  classification labels are kept and disagreeing ones become missing (``"label_conflict"``); regression labels
  are averaged (``"label_averaged"`` when they differ);
- text in a label column -> :class:`InvalidInputError` naming the column, rows and a few values.

Row numbers count data rows from 1 (the header is not counted). Standardisation results are cached in the medai
cache folder, keyed by the SMILES list and options, so reading a large table a second time is fast.

Examples:
    >>> table = molecule_table(["CCO", "OCC", "[Na+].[O-]C(=O)C", "C1CC"], labels=[1, 1, 0, 1], task_names=["active"])
    >>> table.smiles, table.labels[:, 0].tolist(), table.task_types
    (['CCO', 'CC(=O)O'], [1.0, 0.0], ('classification',))
    >>> table.report["counts"]
    {'standardised': 1, 'invalid': 1, 'duplicate': 1}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from medai.chem import cache
from medai.chem.labels import merge_duplicates, parse_label_columns, task_summary
from medai.chem.report import add_issue, new_report, quote
from medai.chem.standardise import (
    STANDARDISER_VERSION,
    StandardisedMolecule,
    StandardiseOptions,
    Standardiser,
)
from medai.errors import DataNotFoundError, InvalidInputError, did_you_mean, require

SMILES_COLUMN_NAMES = ("smiles", "canonical_smiles", "isomeric_smiles", "mol", "molecule", "smi", "drug",
                       "compound", "structure")
"""Column names tried, case-insensitively and in this order, when ``smiles_column`` is not given."""


@dataclass
class MoleculeTable:
    """Standardised molecules and their labels, one row per distinct molecule.

    Attributes:
        smiles: canonical SMILES, length n_molecules.
        labels: float32 array of shape (n_molecules, n_tasks); NaN marks a missing label.
        task_names: one name per label column.
        task_types: ``"classification"`` (every label 0 or 1) or ``"regression"``, one per task.
        row_numbers: int64 array of shape (n_molecules,): the source row of each molecule (the first, for merged
            duplicates), counting data rows from 1.
        report: JSON-ready account of the load (see :mod:`medai.chem.report`) with ``tasks`` statistics.
        input_smiles: the SMILES as written at ``row_numbers``.
        source: file name or ``"<memory>"``.
    """

    smiles: list[str]
    labels: np.ndarray
    task_names: tuple[str, ...]
    task_types: tuple[str, ...]
    row_numbers: np.ndarray
    report: dict = field(default_factory=dict)
    input_smiles: list[str] = field(default_factory=list)
    source: str = ""
    _mols: list | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        n = len(self.smiles)
        self.labels = np.asarray(self.labels, dtype=np.float32)
        self.labels = self.labels.reshape(-1, 1) if self.labels.ndim == 1 else self.labels
        self.row_numbers = np.asarray(self.row_numbers, dtype=np.int64)
        n_tasks = self.labels.shape[1]
        if (len(self.row_numbers) != n or len(self.labels) != n or len(self.task_names) != n_tasks
                or len(self.task_types) != n_tasks):
            raise InvalidInputError(f"A MoleculeTable needs one label row and row number per molecule ({n}) and one "
                                    f"name and type per task ({n_tasks}); got {len(self.labels)} label rows, "
                                    f"{len(self.row_numbers)} row numbers, {len(self.task_names)} names and "
                                    f"{len(self.task_types)} types.")

    def __len__(self) -> int:
        return len(self.smiles)

    @property
    def n_tasks(self) -> int:
        return self.labels.shape[1]

    @property
    def mols(self) -> list:
        """RDKit molecules of :attr:`smiles` (kept from loading, or parsed on first use)."""
        if self._mols is None:
            Chem = require("rdkit.Chem", extra="chem")
            mols = [Chem.MolFromSmiles(smiles) for smiles in self.smiles]
            bad = [i for i, mol in enumerate(mols) if mol is None]
            if bad:
                raise InvalidInputError(f"{len(bad)} canonical SMILES of '{self.source}' no longer parse (e.g. "
                                        f"{self.smiles[bad[0]]!r}, row {self.row_numbers[bad[0]]}); was the table "
                                        f"built with another RDKit version?")
            self._mols = mols
        return self._mols

    def subset(self, indices) -> MoleculeTable:
        """A new table with the molecules at ``indices`` (same tasks and report)."""
        indices = np.asarray(indices, dtype=np.int64)
        return replace(self, smiles=[self.smiles[i] for i in indices], labels=self.labels[indices],
                       row_numbers=self.row_numbers[indices], input_smiles=[self.input_smiles[i] for i in indices],
                       _mols=None if self._mols is None else [self._mols[i] for i in indices])


def read_molecule_table(path: str | os.PathLike, smiles_column: str | None = None,
                        targets: Sequence[str] | None = None, options: StandardiseOptions | None = None,
                        use_cache: bool = True) -> MoleculeTable:
    """Read molecules and labels from a CSV, TSV or Parquet file (``.csv.gz`` is read as CSV).

    Args:
        path: the file; its first row names the columns.
        smiles_column: the SMILES column; default the first of :data:`SMILES_COLUMN_NAMES` present.
        targets: the label columns; default every other column holding numbers (text-only columns such as names
            are left out and noted in the report).
        options: standardisation steps and ``max_heavy_atoms``; default all steps, 200 heavy atoms.
        use_cache: reuse (and store) standardisation results in the medai cache folder.

    Returns:
        A :class:`MoleculeTable`; ``labels`` has shape (n_molecules, len(targets)).

    Raises:
        DataNotFoundError: no file at ``path``.
        InvalidInputError: no SMILES column, an unknown target, or text in a label column.
    """
    from medai.data.sources.tabular import read_frame

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"No molecule table at {str(path)!r}.")
    fmt = "csv" if path.name.lower().endswith(".csv.gz") else None
    columns = read_frame(path, fmt=fmt)
    if not columns:
        raise InvalidInputError(f"'{path.name}' holds no rows; expected a header with a SMILES column and data rows.")
    smiles_column = find_column(columns, smiles_column, SMILES_COLUMN_NAMES, "smiles_column", path.name)
    label_columns = {name: values for name, values in columns.items() if name != smiles_column}
    if targets is not None:
        targets = [targets] if isinstance(targets, str) else list(targets)
        for name in targets:
            if name not in label_columns:
                raise InvalidInputError(f"The target {name!r} is not a label column of '{path.name}'; columns are "
                                        f"{list(label_columns)}.{did_you_mean(name, label_columns)}")
        label_columns = {name: label_columns[name] for name in targets}
    return _build(list(columns[smiles_column]), label_columns, targets is None, options, use_cache, path.name)


def molecule_table(smiles: Sequence[str | None], labels=None, task_names: Sequence[str] | None = None,
                   options: StandardiseOptions | None = None, use_cache: bool = False) -> MoleculeTable:
    """Build a :class:`MoleculeTable` from in-memory SMILES and labels.

    Args:
        smiles: n SMILES strings (None or empty for a missing one).
        labels: None, an array of shape (n,) or (n, n_tasks) (NaN or None for missing), or a dict task name ->
            values of length n.
        task_names: names of the label columns; default ``task_1``, ``task_2``, ... (or the dict's keys).
        options: standardisation steps and ``max_heavy_atoms``.
        use_cache: reuse standardisation results from the medai cache folder.
    """
    smiles = list(smiles)
    if isinstance(labels, dict):
        columns = {str(name): np.asarray(values, dtype=object) for name, values in labels.items()}
    elif labels is None:
        columns = {}
    else:
        matrix = np.asarray(labels, dtype=object)
        matrix = matrix.reshape(len(matrix), -1) if matrix.ndim < 2 else matrix
        names = list(task_names) if task_names is not None else [f"task_{i + 1}" for i in range(matrix.shape[1])]
        if len(names) != matrix.shape[1]:
            raise InvalidInputError(f"'task_names' gives {len(names)} names for {matrix.shape[1]} label columns.")
        columns = {name: matrix[:, i] for i, name in enumerate(names)}
    for name, values in columns.items():
        if len(values) != len(smiles):
            raise InvalidInputError(f"Label column {name!r} has {len(values)} values for {len(smiles)} SMILES; "
                                    f"expected one per SMILES.")
    return _build(smiles, columns, False, options, use_cache, "<memory>")


def find_column(columns: dict, given: str | None, candidates: Sequence[str], parameter: str, source: str) -> str:
    """``given`` when it is a column, else the first of ``candidates`` present (case-insensitive)."""
    if given is not None:
        if given not in columns:
            raise InvalidInputError(f"The '{parameter}' parameter names {given!r}, which is not a column of "
                                    f"'{source}'; columns are {list(columns)}.{did_you_mean(given, columns)}")
        return given
    lowered = {name.lower().strip(): name for name in columns}
    for candidate in candidates:
        if candidate in lowered:
            return lowered[candidate]
    raise InvalidInputError(f"Found no {parameter.replace('_column', '')} column in '{source}' (tried "
                            f"{', '.join(candidates)}); columns are {list(columns)}. Pass {parameter}=.")


def standardise_all(smiles: list[str | None], options: StandardiseOptions,
                    use_cache: bool) -> list[StandardisedMolecule]:
    """Standardise every SMILES, reading and writing the cache when ``use_cache`` (molecules then reparsed lazily)."""
    key = cache.cache_key([s if isinstance(s, str) else "" for s in smiles], options.to_dict(), cache.rdkit_version(),
                          STANDARDISER_VERSION)
    stored = cache.load_json("standardised", key) if use_cache else None
    if isinstance(stored, list) and len(stored) == len(smiles):
        return [StandardisedMolecule(row[0], None, row[1], tuple(row[2]), row[3], row[4], row[5]) for row in stored]
    results = Standardiser(options).many(smiles)
    if use_cache:
        cache.save_json("standardised", key, [[r.canonical, r.status, list(r.changes), r.reason, r.heavy_atoms,
                                               r.organic] for r in results])
    return results


def _build(smiles: list, label_columns: dict, infer_targets: bool, options: StandardiseOptions | None,
           use_cache: bool, source: str) -> MoleculeTable:
    options = options or StandardiseOptions()
    report = new_report(len(smiles))
    labels, names = parse_label_columns(label_columns, infer_targets, source, report, len(smiles))  # (n, n_tasks)
    results = standardise_all(smiles, options, use_cache)
    kept = _record_molecules(smiles, results, report)
    task_types = tuple("classification" if _is_binary(labels[kept, j]) else "regression" for j in range(len(names)))
    canonical = [results[i].canonical for i in kept]
    first, merged = merge_duplicates(canonical, labels[kept], task_types, [i + 1 for i in kept], names, report)
    rows = [kept[i] for i in first]
    mols = [results[i].mol for i in rows]
    report["rows_kept"] = len(rows)
    report["tasks"] = task_summary(merged, names, task_types)
    report["standardise_options"] = options.to_dict()
    return MoleculeTable(smiles=[canonical[i] for i in first], labels=merged, task_names=tuple(names),
                         task_types=task_types, row_numbers=np.array(rows, dtype=np.int64) + 1, report=report,
                         input_smiles=[str(smiles[i]) for i in rows], source=source,
                         _mols=None if any(mol is None for mol in mols) else mols)


def _record_molecules(smiles: list, results: list[StandardisedMolecule], report: dict) -> list[int]:
    """Report skipped and changed molecules; return the indices of the kept ones."""
    kept = []
    for i, (text, result) in enumerate(zip(smiles, results)):
        row = i + 1
        if result.status != "ok":
            add_issue(report, result.status, row=row, smiles=quote(text), reason=result.reason)
            continue
        kept.append(i)
        if result.changes:
            add_issue(report, "standardised", row=row, smiles=quote(text), canonical=quote(result.canonical),
                      changes=list(result.changes))
        if not result.organic:
            add_issue(report, "no_organic_fragment", row=row, smiles=quote(text),
                      reason="no carbon atom; kept as written, not standardised")
    return kept


def _is_binary(values: np.ndarray) -> bool:
    present = values[~np.isnan(values)]
    return bool(len(present)) and bool(np.isin(present, (0.0, 1.0)).all())
