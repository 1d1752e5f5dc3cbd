"""Drug-target affinity (DTA) data: drugs, proteins and measured (drug, protein, affinity) pairs.

Two layouts are read into one :class:`AffinityData`:

- a DeepDTA folder (:func:`load_deepdta_folder`): ``ligands_can.txt`` (JSON id -> SMILES, in matrix-row order),
  ``proteins.txt`` (JSON id -> sequence, in matrix-column order), a whitespace affinity matrix (DAVIS: Kd in nM,
  converted to pKd = -log10(Kd / 1e9) = 9 - log10(Kd); KIBA: KIBA scores, ``nan`` = not measured) and
  ``folds/``. Pairs are the measured entries in DeepDTA's order, ``np.where(~np.isnan(Y))`` (row-major), so
  fold index i is pair i (when a pair is skipped, the folds are remapped onto the kept pairs);
- a CSV/TSV/Parquet table of (SMILES, sequence, affinity) rows (:func:`read_affinity_table`).

Bad input is reported by kind in ``report["issues"]`` and the pairs involved are skipped: drug SMILES that are
empty, invalid or too large (``"invalid"`` ...), protein sequences with letters outside the 20 amino acids and
X, B, Z, U, O (``"invalid_sequence"``), missing affinities (``"missing_affinity"``). Repeated (drug, protein)
rows of a table are averaged (``"duplicate"``, ``"label_averaged"``). Text in the affinity column is an
:class:`InvalidInputError`. Drugs are standardised like molecule tables (:mod:`medai.chem.standardise`);
``drug_smiles`` keeps the SMILES as given (what DeepDTA encodes), ``canonical_smiles`` the standardised ones.
The default size limit is :data:`DTA_OPTIONS` (1000 heavy atoms), so that no DAVIS or KIBA pair is dropped and
the DeepDTA folds stay complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medai.chem.labels import merge_duplicates, parse_label_columns
from medai.chem.molecules import SMILES_COLUMN_NAMES, find_column, standardise_all
from medai.chem.report import add_issue, new_report, quote
from medai.chem.sequences import (
    check_protein_sequence,
    encode_proteins,
    encode_smiles_characters,
)
from medai.chem.splits import DeepDTAFolds, observed_pairs, read_deepdta_folds
from medai.chem.standardise import StandardiseOptions
from medai.errors import DataNotFoundError, InvalidInputError

SEQUENCE_COLUMN_NAMES = ("sequence", "target_sequence", "protein_sequence", "protein", "target", "seq")
AFFINITY_COLUMN_NAMES = ("affinity", "label", "y", "pkd", "kd", "ki", "kiba", "score", "value")
DTA_OPTIONS = StandardiseOptions(max_heavy_atoms=1000)
"""Default standardisation for DTA drugs: a high size limit, so no benchmark pair is dropped for size."""
DEEPDTA_LAYOUTS = {  # affinity file -> (affinity name, Kd in nM?, DeepDTA max SMILES length, max sequence length)
    "drug-target_interaction_affinities_Kd__Davis_et_al.2011v1.txt": ("pKd", True, 85, 1200),
    "kiba_binding_affinity_v2.txt": ("KIBA score", False, 100, 1000),
}


@dataclass
class AffinityData:
    """Drugs, proteins and measured pairs.

    Attributes:
        drug_ids / drug_smiles / canonical_smiles: per drug (n_drugs,): id, SMILES as given, standardised SMILES.
        protein_ids / sequences: per protein (n_proteins,): id and upper-case amino-acid sequence.
        drug_index / protein_index: int64 (n_pairs,): the drug and protein of each pair.
        affinity: float32 (n_pairs,): pKd, KIBA score or the table's affinity column.
        pair_numbers: int64 (n_pairs,): the pair's position among the matrix's measured entries (DeepDTA
            folder) or its data row number counted from 1 (table).
        folds: DeepDTA folds as indices into the pairs, or None.
        affinity_name, max_smiles_length, max_sequence_length: label name and DeepDTA encoding lengths.
        report: what was read, skipped and merged (see :mod:`medai.chem.report`).
    """

    drug_ids: list[str]
    drug_smiles: list[str]
    canonical_smiles: list[str]
    protein_ids: list[str]
    sequences: list[str]
    drug_index: np.ndarray
    protein_index: np.ndarray
    affinity: np.ndarray
    pair_numbers: np.ndarray
    folds: DeepDTAFolds | None = None
    affinity_name: str = "affinity"
    max_smiles_length: int = 100
    max_sequence_length: int = 1000
    report: dict = field(default_factory=dict)
    source: str = ""

    def __len__(self) -> int:
        return len(self.affinity)

    def split(self, validation_fold: int = 0) -> dict[str, np.ndarray]:
        """DeepDTA setting-1 split into pair indices: train on 4 folds, validate on one, test on the test fold."""
        if self.folds is None:
            raise InvalidInputError(f"'{self.source}' has no DeepDTA folds; split pairs with "
                                    f"medai.chem.splits.random_split(len(data)) instead.")
        return self.folds.split(validation_fold)

    def drug_codes(self, max_length: int | None = None, canonical: bool = False) -> np.ndarray:
        """SMILES character codes per drug, int64 (n_drugs, max_length); DeepDTA encodes the SMILES as given."""
        smiles = self.canonical_smiles if canonical else self.drug_smiles
        return encode_smiles_characters(smiles, max_length or self.max_smiles_length)[0]

    def protein_codes(self, max_length: int | None = None) -> np.ndarray:
        """Amino-acid codes per protein, int64 (n_proteins, max_length)."""
        return encode_proteins(self.sequences, max_length or self.max_sequence_length)[0]

    def affinity_matrix(self) -> np.ndarray:
        """float32 (n_drugs, n_proteins) with NaN where no pair was measured (or it was skipped)."""
        matrix = np.full((len(self.drug_ids), len(self.protein_ids)), np.nan, dtype=np.float32)
        matrix[self.drug_index, self.protein_index] = self.affinity
        return matrix


def load_deepdta_folder(folder: str | os.PathLike, setting: int = 1, options: StandardiseOptions | None = None,
                        use_cache: bool = True) -> AffinityData:
    """Read a DeepDTA dataset folder (DAVIS or KIBA layout; see the module docstring).

    Raises:
        DataNotFoundError: the folder or one of its files is missing.
        InvalidInputError: malformed JSON, a matrix whose shape does not match the drugs and proteins, Kd <= 0,
            or folds that do not fit the matrix.
    """
    folder = Path(folder).expanduser()
    ligands, proteins = _json_dict(folder / "ligands_can.txt"), _json_dict(folder / "proteins.txt")
    matrix_file = next((name for name in DEEPDTA_LAYOUTS if (folder / name).is_file()), None)
    if matrix_file is None:
        raise DataNotFoundError(f"No affinity matrix in '{folder}'; expected one of {list(DEEPDTA_LAYOUTS)} "
                                f"(the pickled 'Y' is not read: medai never unpickles data).")
    name, is_kd, smiles_length, sequence_length = DEEPDTA_LAYOUTS[matrix_file]
    matrix = np.loadtxt(folder / matrix_file, dtype=np.float64, ndmin=2)  # (n_drugs, n_proteins)
    if matrix.shape != (len(ligands), len(proteins)):
        raise InvalidInputError(f"'{matrix_file}' has shape {matrix.shape}; expected (drugs, proteins) = "
                                f"({len(ligands)}, {len(proteins)}) from ligands_can.txt and proteins.txt.")
    rows, cols = observed_pairs(matrix)
    values = matrix[rows, cols]
    if is_kd:
        if (values <= 0).any():
            raise InvalidInputError(f"'{matrix_file}' holds {int((values <= 0).sum())} Kd values <= 0; expected "
                                    f"positive Kd in nM (converted to pKd = 9 - log10(Kd)).")
        values = 9.0 - np.log10(values)
    report = new_report(len(values))
    drugs_ok, canonical = _check_drugs(list(ligands), list(ligands.values()), options, use_cache, report)
    proteins_ok, sequences = _check_proteins(list(proteins), list(proteins.values()), report)
    keep = drugs_ok[rows] & proteins_ok[cols]
    new_index = np.where(keep, np.cumsum(keep) - 1, -1)  # old pair index -> new, -1 when skipped
    folds = None
    if (folder / "folds").is_dir():
        folds = read_deepdta_folds(folder, len(values), setting)
        folds = folds.remap(new_index) if not keep.all() else folds
    data = _assemble(list(ligands), list(ligands.values()), canonical, drugs_ok, list(proteins), sequences,
                     proteins_ok, rows[keep], cols[keep], values[keep], np.flatnonzero(keep), report)
    data.folds, data.affinity_name, data.source = folds, name, folder.name
    data.max_smiles_length, data.max_sequence_length = smiles_length, sequence_length
    return data


def read_affinity_table(path: str | os.PathLike, smiles_column: str | None = None, sequence_column: str | None = None,
                        affinity_column: str | None = None, options: StandardiseOptions | None = None,
                        use_cache: bool = True) -> AffinityData:
    """Read (SMILES, protein sequence, affinity) rows from a CSV, TSV or Parquet file.

    Columns are found by name when not given (:data:`SMILES_COLUMN_NAMES`, :data:`SEQUENCE_COLUMN_NAMES`,
    :data:`AFFINITY_COLUMN_NAMES`, case-insensitive). Drugs are identified by canonical SMILES and proteins by
    sequence; ids are ``drug-<k>`` / ``protein-<k>`` in order of first appearance.
    """
    from medai.data.sources.tabular import read_frame

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"No affinity table at {str(path)!r}.")
    columns = read_frame(path, fmt="csv" if path.name.lower().endswith(".csv.gz") else None)
    smiles_column = find_column(columns, smiles_column, SMILES_COLUMN_NAMES, "smiles_column", path.name)
    sequence_column = find_column(columns, sequence_column, SEQUENCE_COLUMN_NAMES, "sequence_column", path.name)
    affinity_column = find_column(columns, affinity_column, AFFINITY_COLUMN_NAMES, "affinity_column", path.name)
    report = new_report(len(columns[smiles_column]))
    values = parse_label_columns({affinity_column: columns[affinity_column]}, False, path.name, report)[0][:, 0]
    smiles = [s if s is not None else "" for s in columns[smiles_column]]
    sequences = [s if s is not None else "" for s in columns[sequence_column]]
    unique = list(dict.fromkeys(smiles))
    drugs = dict(zip(unique, standardise_all(unique, options or DTA_OPTIONS, use_cache)))
    proteins = {key: check_protein_sequence(key) for key in dict.fromkeys(sequences)}
    keep, reported = [], set()
    for i, (drug, protein) in enumerate(zip(smiles, sequences)):
        if _pair_ok(i + 1, drug, drugs[drug], proteins[protein], values[i], report, reported):
            keep.append(i)
    canonical = [drugs[smiles[i]].canonical for i in keep]
    return _from_rows([smiles[i] for i in keep], canonical, [proteins[sequences[i]][0] for i in keep],
                      [i + 1 for i in keep], values[keep], report, affinity_column, path.name)


def _from_rows(given, canonical, sequences, rows, values, report, name, source) -> AffinityData:
    """Distinct drugs (by canonical SMILES) and proteins (by sequence); repeated pairs averaged."""
    drugs, proteins = list(dict.fromkeys(canonical)), list(dict.fromkeys(sequences))
    drug_of, protein_of = {s: k for k, s in enumerate(drugs)}, {s: k for k, s in enumerate(proteins)}
    pair_keys = [f"{drug_of[c]}|{protein_of[s]}" for c, s in zip(canonical, sequences)]
    first, merged = merge_duplicates(pair_keys, values.reshape(-1, 1), ("regression",), rows, [name], report)
    as_given = {}
    for text, c in zip(given, canonical):
        as_given.setdefault(c, text)
    report["rows_kept"] = len(first)
    report["drugs"], report["proteins"] = len(drugs), len(proteins)
    return AffinityData(
        drug_ids=[f"drug-{k + 1}" for k in range(len(drugs))], drug_smiles=[as_given[c] for c in drugs],
        canonical_smiles=drugs, protein_ids=[f"protein-{k + 1}" for k in range(len(proteins))], sequences=proteins,
        drug_index=np.array([drug_of[canonical[i]] for i in first], dtype=np.int64),
        protein_index=np.array([protein_of[sequences[i]] for i in first], dtype=np.int64),
        affinity=merged[:, 0].astype(np.float32), pair_numbers=np.array([rows[i] for i in first], dtype=np.int64),
        affinity_name=name, report=report, source=source)


def _pair_ok(row: int, smiles: str, drug, protein: tuple, value: float, report: dict, reported: set) -> bool:
    """Whether a table row is usable; reports why not (and each standardised drug once, at its first row)."""
    if drug.status != "ok":
        add_issue(report, drug.status, row=row, smiles=quote(smiles), reason=drug.reason)
    elif protein[0] is None:
        add_issue(report, "invalid_sequence", row=row, reason=protein[1])
    elif np.isnan(value):
        add_issue(report, "missing_affinity", row=row, reason="no affinity in this row")
    else:
        if drug.changes and smiles not in reported:
            reported.add(smiles)
            add_issue(report, "standardised", row=row, smiles=quote(smiles), canonical=quote(drug.canonical),
                      changes=list(drug.changes))
        return True
    return False


def _assemble(drug_ids, drug_smiles, canonical, drugs_ok, protein_ids, sequences, proteins_ok, rows, cols, values,
              numbers, report) -> AffinityData:
    """Keep valid drugs and proteins, renumber pair indices onto them."""
    drug_new = np.where(drugs_ok, np.cumsum(drugs_ok) - 1, -1)
    protein_new = np.where(proteins_ok, np.cumsum(proteins_ok) - 1, -1)
    canonical = [c for c, ok in zip(canonical, drugs_ok) if ok]
    report["rows_kept"] = len(values)
    report["drugs"], report["proteins"] = int(drugs_ok.sum()), int(proteins_ok.sum())
    shared = len(canonical) - len(set(canonical))
    if shared:
        report["notes"].append(f"{shared} drug(s) share their standardised SMILES with another drug id")
    return AffinityData(
        drug_ids=[d for d, ok in zip(drug_ids, drugs_ok) if ok],
        drug_smiles=[s for s, ok in zip(drug_smiles, drugs_ok) if ok], canonical_smiles=canonical,
        protein_ids=[p for p, ok in zip(protein_ids, proteins_ok) if ok],
        sequences=[s for s, ok in zip(sequences, proteins_ok) if ok],
        drug_index=drug_new[rows], protein_index=protein_new[cols], affinity=values.astype(np.float32),
        pair_numbers=numbers.astype(np.int64), report=report)


def _check_drugs(ids, smiles, options, use_cache, report) -> tuple[np.ndarray, list]:
    """(bool mask of usable drugs, canonical SMILES or None); the report names skipped and changed drugs by id."""
    results = standardise_all(smiles, options or DTA_OPTIONS, use_cache)
    for k, result in enumerate(results):
        if result.status != "ok":
            add_issue(report, result.status, drug=ids[k], smiles=quote(smiles[k]), reason=result.reason)
        elif result.changes:
            add_issue(report, "standardised", drug=ids[k], smiles=quote(smiles[k]), canonical=quote(result.canonical),
                      changes=list(result.changes))
    return np.array([r.status == "ok" for r in results], dtype=bool), [r.canonical for r in results]


def _check_proteins(ids, sequences, report) -> tuple[np.ndarray, list[str]]:
    ok, cleaned = [], []
    for protein_id, sequence in zip(ids, sequences):
        text, reason = check_protein_sequence(sequence)
        if text is None:
            add_issue(report, "invalid_sequence", protein=protein_id, reason=reason)
        ok.append(text is not None)
        cleaned.append(text or "")
    return np.array(ok, dtype=bool), cleaned


def _json_dict(path: Path) -> dict:
    if not path.is_file():
        raise DataNotFoundError(f"No '{path.name}' in '{path.parent}'; a DeepDTA folder holds ligands_can.txt, "
                                f"proteins.txt, the affinity matrix and folds/.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))  # dicts keep the file's order (matrix order)
    except ValueError:
        raise InvalidInputError(f"'{path.name}' is not valid JSON; expected an object id -> string.") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InvalidInputError(f"'{path.name}' must be a JSON object mapping ids to strings.")
    return data
