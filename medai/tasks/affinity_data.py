"""Data for the drug-target-affinity task: splits, training batches, pair datasets and files to predict.

Training batches hold whole proteins: the Trainer shuffles samples that each hold one protein and up to 128 of
its training pairs (:func:`protein_rows`), and :class:`DrugPanel` turns a batch of them into pairs over distinct
drugs and proteins. Each protein is then encoded about once per epoch instead of once per pair, which makes
DeepDTA trainable on a CPU (DAVIS: 442 proteins, 20,000 training pairs: one row per protein).

Codes are stored as uint8 (at most 96 symbols) and widened by the network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medai.chem.dta import AffinityData, load_deepdta_folder, read_affinity_table
from medai.chem.molecules import SMILES_COLUMN_NAMES, find_column, standardise_all
from medai.chem.sequences import check_protein_sequence, encode_proteins, encode_smiles_characters
from medai.chem.splits import random_split, scaffold_split
from medai.data.dataset import Dataset, Schema
from medai.errors import InvalidInputError, check_choice

SPLIT_METHODS = ("auto", "deepdta", "random", "cold-drug", "cold-protein")
TABLE_FRACTIONS = (0.8, 0.1, 0.1)


def load_affinity_data(data, smiles_column=None, sequence_column=None, affinity_column=None) -> AffinityData:
    """A DeepDTA folder, a (SMILES, sequence, affinity) table, or a dataset name under the data folder (davis, kiba)."""
    from medai.chem.datasets import AFFINITY_DATASETS, load_affinity_dataset

    path = Path(str(data)).expanduser()
    if path.is_dir():
        return load_deepdta_folder(path)
    if not path.exists() and str(data) in AFFINITY_DATASETS:
        return load_affinity_dataset(str(data))
    return read_affinity_table(path, smiles_column, sequence_column, affinity_column)


def split_pairs(data: AffinityData, method: str, seed: int, validation_fold: int) -> tuple[dict, str]:
    """Pair indices ``{"train", "val", "test"}`` and a description of the split.

    ``auto`` is DeepDTA setting 1 when the data has folds (train on the training folds but ``validation_fold``,
    select on it, test on the official test fold), else a seeded random 80/10/10 split of the pairs.
    ``cold-drug`` / ``cold-protein`` keep every pair of a drug (protein) on one side; drugs with the same
    standardised SMILES and proteins with the same sequence count as one (DAVIS mutants share a sequence).
    """
    check_choice("split", method, SPLIT_METHODS)
    if method == "auto":
        method = "deepdta" if data.folds is not None else "random"
    if method == "deepdta":
        parts = data.split(validation_fold)
        description = f"DeepDTA setting 1: training folds without fold {validation_fold} (validation), official test fold"
    elif method == "random":
        parts, description = random_split(len(data), TABLE_FRACTIONS, seed), f"random pairs 80/10/10 (seed {seed})"
    else:
        texts, index = (data.canonical_smiles, data.drug_index) if method == "cold-drug" else (data.sequences,
                                                                                               data.protein_index)
        parts = scaffold_split(None, TABLE_FRACTIONS, seed, scaffolds=[texts[i] for i in index])
        description = f"{method} 80/10/10 (seed {seed}): no {method[5:]} on two sides"
    empty = [name for name, index in parts.items() if len(index) == 0]
    if empty:
        raise InvalidInputError(f"The {method} split of {len(data)} pairs leaves {', '.join(empty)} empty; "
                                f"give more pairs (or other drugs and proteins) to train and test on.")
    return parts, description


def encode(data: AffinityData, max_smiles_length: int, max_sequence_length: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 codes of every drug (n_drugs, max_smiles_length) and protein (n_proteins, max_sequence_length)."""
    return (data.drug_codes(max_smiles_length).astype(np.uint8),
            data.protein_codes(max_sequence_length).astype(np.uint8))


def protein_rows(data: AffinityData, pairs: np.ndarray, protein_codes: np.ndarray, pairs_per_row: int = 128,
                 seed: int = 0) -> Dataset:
    """Training samples that each hold one protein and up to ``pairs_per_row`` of its pairs in ``pairs``.

    A protein with more pairs gets several rows (its drugs shuffled with ``seed`` and cut into chunks).

    Returns:
        Dataset with inputs uint8 (n_rows, max_sequence_length) under ``"protein"``, labels float32
        (n_rows, pairs_per_row) (NaN pads) and extra ``"row_drugs"`` int64 (n_rows, pairs_per_row): the drug of
        each label (-1 pads).
    """
    pairs = np.asarray(pairs)[np.random.default_rng(seed).permutation(len(pairs))]
    pairs = pairs[np.argsort(data.protein_index[pairs], kind="stable")]  # by protein, drugs in random order
    proteins, starts, counts = np.unique(data.protein_index[pairs], return_index=True, return_counts=True)
    row_protein, row_pairs = [], []
    for protein, start, count in zip(proteins, starts, counts):
        for begin in range(0, count, pairs_per_row):
            row_protein.append(protein)
            row_pairs.append(pairs[start + begin : start + min(count, begin + pairs_per_row)])
    width = max(len(r) for r in row_pairs)
    labels = np.full((len(row_pairs), width), np.nan, dtype=np.float32)
    drugs = np.full((len(row_pairs), width), -1, dtype=np.int64)
    for k, chunk in enumerate(row_pairs):
        labels[k, : len(chunk)], drugs[k, : len(chunk)] = data.affinity[chunk], data.drug_index[chunk]
    schema = Schema("protein", "regression", tuple(f"slot_{k}" for k in range(width)), protein_codes.shape[1:],
                    data.source)
    ids = [f"{data.protein_ids[p]}#{k}" for k, p in enumerate(row_protein)]
    return Dataset(protein_codes[row_protein], labels, np.asarray(ids), schema, extras={"row_drugs": drugs})


class DrugPanel:
    """Training batch transform: a batch of protein rows -> its measured (drug, protein) pairs, each drug and
    protein once.

    Args:
        drug_codes: codes of every drug, shape (n_drugs, max_smiles_length), indexed by ``"row_drugs"``.
    """

    def __init__(self, drug_codes: np.ndarray):
        self.drug_codes = torch.from_numpy(np.ascontiguousarray(drug_codes))

    def __call__(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict:
        labels = batch["label"]  # (n_rows, pairs_per_row), NaN pads
        rows, slots = torch.nonzero(torch.isfinite(labels), as_tuple=True)  # (n_pairs,) each
        drugs, pair_drug = torch.unique(batch["row_drugs"][rows, slots], return_inverse=True)
        proteins, row_protein = torch.unique(batch["protein"], dim=0, return_inverse=True)
        return {"protein": proteins, "drug": self.drug_codes.to(labels.device)[drugs], "pair_drug": pair_drug,
                "pair_protein": row_protein[rows], "label": labels[rows, slots]}


def pair_dataset(drug_codes: np.ndarray, protein_codes: np.ndarray, affinity: np.ndarray | None, ids,
                 name: str = "affinity") -> Dataset:
    """One sample per pair: protein codes as inputs, drug codes as the ``"drug"`` extra, affinities as labels.

    Args:
        drug_codes: (n_pairs, max_smiles_length); protein_codes: (n_pairs, max_sequence_length).
        affinity: float (n_pairs,) or None.
    """
    schema = Schema("protein", "regression", (name,), protein_codes.shape[1:], "pairs")
    return Dataset(protein_codes, affinity, np.asarray(ids), schema, extras={"drug": drug_codes})


def pairs_of(data: AffinityData, pairs: np.ndarray, drug_codes: np.ndarray, protein_codes: np.ndarray,
             labelled: bool = True) -> Dataset:
    """The pairs at ``pairs`` of ``data`` as a :func:`pair_dataset` (ids are the pairs' numbers)."""
    return pair_dataset(drug_codes[data.drug_index[pairs]], protein_codes[data.protein_index[pairs]],
                        data.affinity[pairs] if labelled else None, data.pair_numbers[pairs], data.affinity_name)


def grouped_order(dataset: Dataset) -> np.ndarray:
    """Order placing the pairs of one protein (then one drug) together, so each is encoded in few batches."""
    proteins = np.unique(dataset.inputs, axis=0, return_inverse=True)[1].reshape(-1)
    drugs = np.unique(dataset.extras["drug"], axis=0, return_inverse=True)[1].reshape(-1)
    return np.lexsort((drugs, proteins))


@dataclass
class PairRecords:
    """Rows of a file to predict: each usable (codes) or not (the reason).

    Attributes:
        inputs: one name per row, ``row-<k>`` counted from 1 (tables) or ``pair-<k>`` (DeepDTA folders).
        smiles / sequences: per row, as given (sequences upper-case; None when unusable).
        issues: per row, None when usable, else (what is wrong, why), e.g. ("invalid SMILES", RDKit's message).
        affinity: measured values per row (NaN when absent), or None when the file has no affinity column.
    """

    inputs: list[str]
    smiles: list[str | None]
    sequences: list[str | None]
    issues: list[tuple[str, str] | None]
    affinity: np.ndarray | None = None

    @property
    def usable(self) -> np.ndarray:
        return np.array([issue is None for issue in self.issues], dtype=bool)

    def dataset(self, max_smiles_length: int, max_sequence_length: int, name: str) -> Dataset:
        """The usable rows as a :func:`pair_dataset` (no labels)."""
        rows = np.flatnonzero(self.usable)
        drugs = encode_smiles_characters([self.smiles[i] for i in rows], max_smiles_length)[0].astype(np.uint8)
        proteins = encode_proteins([self.sequences[i] for i in rows], max_sequence_length)[0].astype(np.uint8)
        return pair_dataset(drugs, proteins, None, [self.inputs[i] for i in rows], name)


def read_pair_records(path: str | os.PathLike, smiles_column: str | None = None, sequence_column: str | None = None,
                      affinity_column: str | None = None) -> PairRecords:
    """Every row of a (SMILES, sequence[, affinity]) table, or every measured pair of a DeepDTA folder.

    SMILES RDKit cannot read and sequences with letters outside the amino-acid alphabet are kept as rows with
    their reason, so that a prediction file answers every input row.
    """
    from medai.chem.dta import AFFINITY_COLUMN_NAMES, DTA_OPTIONS, SEQUENCE_COLUMN_NAMES
    from medai.data.sources.tabular import read_frame

    path = Path(path).expanduser()
    if path.is_dir():
        data = load_deepdta_folder(path)
        return PairRecords([f"pair-{n}" for n in data.pair_numbers], [data.drug_smiles[i] for i in data.drug_index],
                           [data.sequences[i] for i in data.protein_index], [None] * len(data), data.affinity)
    columns = read_frame(path, fmt="csv" if path.name.lower().endswith(".csv.gz") else None)
    smiles_column = find_column(columns, smiles_column, SMILES_COLUMN_NAMES, "smiles_column", path.name)
    sequence_column = find_column(columns, sequence_column, SEQUENCE_COLUMN_NAMES, "sequence_column", path.name)
    smiles = [s or "" for s in columns[smiles_column]]
    drugs = dict(zip(dict.fromkeys(smiles), standardise_all(list(dict.fromkeys(smiles)), DTA_OPTIONS, True)))
    records = PairRecords([f"row-{k + 1}" for k in range(len(smiles))], smiles, [], [])
    for text, sequence in zip(smiles, columns[sequence_column]):
        protein, reason = check_protein_sequence(sequence)
        drug = drugs[text]
        records.sequences.append(protein)
        records.issues.append((f"{drug.status} SMILES", drug.reason or "no SMILES") if drug.status != "ok"
                              else None if protein is not None else ("invalid sequence", reason))
    affinity_column = _optional_column(columns, affinity_column, AFFINITY_COLUMN_NAMES, path.name)
    if affinity_column is not None:
        records.affinity = np.array([_number(v) for v in columns[affinity_column]], dtype=np.float64)
    return records


def _optional_column(columns, given, candidates, source) -> str | None:
    try:
        return find_column(columns, given, candidates, "affinity_column", source)
    except InvalidInputError:
        if given is not None:
            raise
        return None


def _number(value) -> float:
    try:
        return float(value) if value is not None else float("nan")
    except ValueError:
        return float("nan")
