"""Splits of molecule and drug-target data into train/val/test index arrays.

- :func:`random_split`: seeded random split of n items.
- :func:`scaffold_split`: Bemis-Murcko scaffold split, balanced as in chemprop: scaffold sets larger than half the
  validation or test size are placed first (in random order), then the rest (in random order), each set going
  whole to train until train is full, then to val, then to test. A scaffold is never on two sides.
- :func:`read_deepdta_folds`: the DeepDTA "setting 1" folds of DAVIS and KIBA (5 cross-validation folds and one
  fixed test fold) as :class:`DeepDTAFolds`.

Every split is a dict ``{"train": idx, "val": idx, "test": idx}`` of sorted int64 index arrays, like
:func:`medai.data.splits.stratified_split`.

Examples:
    >>> smiles = ["c1ccccc1O", "c1ccccc1N", "C1CCCCC1", "CCO", "CCN"]  # scaffolds: benzene x2, cyclohexane, none x2
    >>> parts = scaffold_split(smiles, (0.6, 0.2, 0.2), seed=0)
    >>> {name: idx.tolist() for name, idx in parts.items()}
    {'train': [2, 3, 4], 'val': [], 'test': [0, 1]}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medai.errors import DataNotFoundError, InvalidInputError, require

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def random_split(n: int, fractions=DEFAULT_FRACTIONS, seed: int = 0) -> dict[str, np.ndarray]:
    """Split ``range(n)`` at random: ``round(fraction * n)`` items to val and to test, the rest to train."""
    fractions = check_fractions(fractions)
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = round(fractions[2] * n), round(fractions[1] * n)
    parts = {"train": order[n_val + n_test:], "val": order[n_test:n_test + n_val], "test": order[:n_test]}
    return {name: np.sort(idx).astype(np.int64) for name, idx in parts.items()}


def murcko_scaffolds(molecules, include_chirality: bool = False) -> list[str]:
    """Bemis-Murcko scaffold SMILES of each molecule (``""`` for acyclic ones).

    Args:
        molecules: a :class:`~medai.chem.molecules.MoleculeTable`, a list of RDKit molecules, or a list of SMILES.
        include_chirality: keep stereo centres in the scaffold.
    """
    Chem = require("rdkit.Chem", extra="chem")
    scaffold = require("rdkit.Chem.Scaffolds.MurckoScaffold", extra="chem")
    mols = molecules.mols if hasattr(molecules, "mols") else list(molecules)
    scaffolds = []
    for i, mol in enumerate(mols):
        if isinstance(mol, str):
            with require("rdkit.rdBase", extra="chem").BlockLogs():
                mol = Chem.MolFromSmiles(mol)
        if mol is None:
            raise InvalidInputError(f"Molecule {i} could not be parsed; scaffolds need valid molecules (read SMILES "
                                    f"with medai.chem.molecule_table to skip and report invalid ones).")
        scaffolds.append(scaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=include_chirality))
    return scaffolds


def scaffold_split(molecules, fractions=DEFAULT_FRACTIONS, seed: int = 0, balanced: bool = True,
                   scaffolds: list[str] | None = None) -> dict[str, np.ndarray]:
    """Split molecules so that all molecules sharing a Bemis-Murcko scaffold land on the same side.

    Args:
        molecules: a MoleculeTable, RDKit molecules or SMILES (ignored when ``scaffolds`` is given).
        fractions: train, val and test fractions, summing to 1.
        seed: shuffles the scaffold sets; the same seed gives the same split.
        balanced: chemprop's balanced order (big sets first, both groups shuffled); False places sets largest
            first, which ignores ``seed`` and tends to put rare scaffolds into test.
        scaffolds: precomputed scaffold keys, one per molecule (any strings; equal strings = same group).

    Returns:
        ``{"train": idx, "val": idx, "test": idx}``; sizes follow ``fractions`` as closely as whole scaffold sets
        allow (train never exceeds its share; test takes what is left).
    """
    fractions = check_fractions(fractions)
    keys = scaffolds if scaffolds is not None else murcko_scaffolds(molecules)
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    sets = list(groups.values())
    n = len(keys)
    targets = [fraction * n for fraction in fractions]  # train, val, test sizes
    if balanced:
        rng = np.random.default_rng(seed)
        limit = min(targets[1], targets[2]) / 2
        big = [s for s in sets if len(s) > limit]
        small = [s for s in sets if len(s) <= limit]
        sets = [big[i] for i in rng.permutation(len(big))] + [small[i] for i in rng.permutation(len(small))]
    else:
        sets = sorted(sets, key=len, reverse=True)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for members in sets:
        if len(parts["train"]) + len(members) <= targets[0]:
            parts["train"] += members
        elif len(parts["val"]) + len(members) <= targets[1]:
            parts["val"] += members
        else:
            parts["test"] += members
    return {name: np.sort(np.array(idx, dtype=np.int64)) for name, idx in parts.items()}


def check_fractions(fractions) -> tuple[float, float, float]:
    """Validate train/val/test fractions: three numbers >= 0, train > 0, summing to 1."""
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or min(values) < 0 or values[0] <= 0 or not np.isclose(sum(values), 1.0):
        raise InvalidInputError(f"fractions must be three numbers (train, val, test) >= 0 with train > 0, summing "
                                f"to 1; got {tuple(fractions)}.")
    return values


@dataclass
class DeepDTAFolds:
    """DeepDTA's folds: indices into the observed drug-target pairs (see :func:`observed_pairs`).

    Attributes:
        test: int64 (n_test,): the fixed test pairs.
        folds: the cross-validation folds, each int64 (n_fold,); fold k validates a model trained on the others.
        report: sizes and notes.
    """

    test: np.ndarray
    folds: list[np.ndarray]
    report: dict = field(default_factory=dict)

    def split(self, validation_fold: int = 0) -> dict[str, np.ndarray]:
        """Train on every fold but ``validation_fold``, validate on it, test on the test fold (DeepDTA setting 1)."""
        if not 0 <= validation_fold < len(self.folds):
            raise InvalidInputError(f"validation_fold must be in [0, {len(self.folds) - 1}]; got {validation_fold}.")
        train = np.concatenate([f for k, f in enumerate(self.folds) if k != validation_fold])
        return {"train": np.sort(train), "val": np.sort(self.folds[validation_fold]), "test": np.sort(self.test)}

    def remap(self, new_index: np.ndarray) -> DeepDTAFolds:
        """Folds after pairs were dropped: ``new_index[old]`` is a pair's new index, or -1 when it was dropped."""
        def keep(indices):
            mapped = new_index[indices]
            return mapped[mapped >= 0]

        dropped = int(sum((new_index[f] < 0).sum() for f in [self.test, *self.folds]))
        report = {**self.report, "pairs_dropped_from_folds": dropped}
        return DeepDTAFolds(keep(self.test), [keep(f) for f in self.folds], report)


def observed_pairs(affinity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(drug rows, protein columns) of the measured entries, in DeepDTA's order: ``np.where(~np.isnan(Y))``."""
    rows, cols = np.where(~np.isnan(affinity))  # row-major order: fold index i is the pair (rows[i], cols[i])
    return rows.astype(np.int64), cols.astype(np.int64)


def read_deepdta_folds(folder: str | os.PathLike, n_pairs: int, setting: int = 1) -> DeepDTAFolds:
    """Read ``folds/train_fold_setting<k>.txt`` (JSON list of folds) and ``folds/test_fold_setting<k>.txt``.

    Args:
        folder: the dataset folder (holding ``folds/``).
        n_pairs: number of observed pairs in the affinity matrix; every index must be below it.
        setting: DeepDTA's problem setting (1 = random pairs; the one shipped for DAVIS and KIBA).

    Raises:
        DataNotFoundError: a fold file is missing.
        InvalidInputError: not JSON lists of integers, an index out of range, or a pair in two folds.
    """
    folder = Path(folder)
    paths = [folder / "folds" / f"{part}_fold_setting{setting}.txt" for part in ("train", "test")]
    for path in paths:
        if not path.is_file():
            raise DataNotFoundError(f"No DeepDTA fold file at '{path}'; expected folds/train_fold_setting{setting}.txt "
                                    f"and folds/test_fold_setting{setting}.txt in '{folder}'.")
    train, test = (_read_json(path) for path in paths)
    if not isinstance(train, list) or not all(isinstance(fold, list) for fold in train):
        raise InvalidInputError(f"'{paths[0].name}' must hold a JSON list of folds, each a list of pair indices.")
    folds = [_indices(fold, n_pairs, f"{paths[0].name} fold {k}") for k, fold in enumerate(train)]
    test = _indices(test, n_pairs, paths[1].name)
    every = np.concatenate([test, *folds])
    if len(np.unique(every)) != len(every):
        raise InvalidInputError(f"The DeepDTA folds in '{folder / 'folds'}' overlap: {len(every) - len(np.unique(every))} "
                                f"pair indices appear twice (in two folds, in a fold and the test set, or twice in "
                                f"one); expected disjoint folds.")
    report = {"test": len(test), "folds": [len(f) for f in folds], "unused_pairs": int(n_pairs - len(every))}
    return DeepDTAFolds(test, folds, report)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise InvalidInputError(f"'{path.name}' is not valid JSON; expected a list of pair indices.") from None


def _indices(values, n_pairs: int, where: str) -> np.ndarray:
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise InvalidInputError(f"'{where}' must be a JSON list of integer pair indices.")
    indices = np.array(values, dtype=np.int64)
    if len(indices) and (indices.min() < 0 or indices.max() >= n_pairs):
        raise InvalidInputError(f"'{where}' holds pair indices from {indices.min()} to {indices.max()}; the affinity "
                                f"matrix has {n_pairs} observed pairs (valid indices 0 to {n_pairs - 1}).")
    return indices
