"""Splits: seeded random, Bemis-Murcko scaffold (a scaffold never on two sides), DeepDTA fold files."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rdkit")

from medai.chem.splits import (
    DeepDTAFolds,
    murcko_scaffolds,
    random_split,
    read_deepdta_folds,
    scaffold_split,
)
from medai.errors import DataNotFoundError, InvalidInputError

RINGS = ["c1ccccc1", "C1CCCCC1", "c1ccncc1", "c1ccc2ccccc2c1", "C1CCNCC1", "c1ccsc1", "C1CC1", "c1cn[nH]c1"]
SUBSTITUENTS = ["C", "O", "N", "Cl", "F", "CC", "OC", "C(=O)O", "C#N", "CCO", "S", "Br"]


def synthetic_smiles(n: int, seed: int) -> list[str]:
    """Molecules ring-substituent-ring or chains: scaffold groups of very different sizes."""
    rng = np.random.default_rng(seed)
    smiles = []
    for _ in range(n):
        kind = rng.integers(0, 4)
        ring = RINGS[min(int(rng.geometric(0.35)) - 1, len(RINGS) - 1)]  # skewed: some scaffolds are big
        substituent = SUBSTITUENTS[rng.integers(len(SUBSTITUENTS))]
        if kind == 0:
            smiles.append("C" * int(rng.integers(1, 6)) + substituent)  # acyclic: scaffold ""
        elif kind == 1:
            smiles.append(f"{ring}{substituent}")
        else:
            smiles.append(f"{ring}CC{RINGS[rng.integers(len(RINGS))]}{substituent}")
    return smiles


def assert_partition(parts: dict, n: int):
    together = np.concatenate(list(parts.values()))
    assert sorted(together.tolist()) == list(range(n))
    assert all(idx.dtype == np.int64 and (np.diff(idx) > 0).all() for idx in parts.values())


def test_random_split_sizes_and_seeds():
    parts = random_split(100, (0.8, 0.1, 0.1), seed=3)
    assert_partition(parts, 100)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [80, 10, 10]
    assert (random_split(100, seed=3)["test"] == parts["test"]).all()
    assert not (random_split(100, seed=4)["test"] == parts["test"]).all()
    for bad in [(0.8, 0.1), (0.8, 0.3, 0.1), (0.0, 0.5, 0.5), (1.1, -0.1, 0.0)]:
        with pytest.raises(InvalidInputError, match="fractions"):
            random_split(10, bad)


def test_murcko_scaffolds():
    assert murcko_scaffolds(["Oc1ccccc1", "CCO", "c1ccccc1CCC1CC1"]) == ["c1ccccc1", "", "c1ccc(CCC2CC2)cc1"]
    with pytest.raises(InvalidInputError, match="could not be parsed"):
        murcko_scaffolds(["C1CC"])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.7, 0.15, 0.15), (0.5, 0.0, 0.5)])
def test_scaffold_split_never_puts_a_scaffold_on_two_sides(seed, fractions):
    smiles = synthetic_smiles(150, seed)
    scaffolds = murcko_scaffolds(smiles)
    parts = scaffold_split(None, fractions, seed=seed, scaffolds=scaffolds)
    assert_partition(parts, len(smiles))
    sides = {name: {scaffolds[i] for i in idx} for name, idx in parts.items()}
    assert not (sides["train"] & sides["val"]) and not (sides["train"] & sides["test"])
    assert not (sides["val"] & sides["test"])
    assert len(parts["train"]) <= fractions[0] * len(smiles)
    assert len(parts["val"]) <= fractions[1] * len(smiles)


def test_balanced_scaffold_split_puts_big_scaffold_sets_in_train_and_is_seeded():
    keys = ["big"] * 30 + [f"s{i}" for i in range(70)]  # "big" > half of the test size (10)
    for seed in range(5):
        parts = scaffold_split(None, (0.8, 0.1, 0.1), seed=seed, scaffolds=keys)
        assert set(range(30)) <= set(parts["train"].tolist())
        assert [len(parts[k]) for k in ("train", "val", "test")] == [80, 10, 10]
    first, again = (scaffold_split(None, seed=1, scaffolds=keys) for _ in range(2))
    assert all((first[k] == again[k]).all() for k in first)
    assert not (scaffold_split(None, seed=2, scaffolds=keys)["test"] == first["test"]).all()
    largest_first = scaffold_split(None, (0.8, 0.1, 0.1), balanced=False, scaffolds=keys)
    assert set(range(30)) <= set(largest_first["train"].tolist())


def test_scaffold_split_of_smiles_keeps_benzene_derivatives_together():
    smiles = ["c1ccccc1O", "c1ccccc1N", "c1ccccc1C", "C1CCCCC1", "CCO", "CCN", "c1ccncc1", "c1ccncc1C"]
    parts = scaffold_split(smiles, (0.5, 0.25, 0.25), seed=0)
    benzene = {side for side, idx in parts.items() for i in idx if i < 3}
    assert len(benzene) == 1


def write_folds(folder, train, test):
    (folder / "folds").mkdir(parents=True)
    (folder / "folds" / "train_fold_setting1.txt").write_text(json.dumps(train))
    (folder / "folds" / "test_fold_setting1.txt").write_text(json.dumps(test))


def test_deepdta_folds_split_and_remap(tmp_path):
    write_folds(tmp_path, [[0, 1], [2, 3], [4, 5]], [6, 7])
    folds = read_deepdta_folds(tmp_path, n_pairs=9)
    assert folds.report == {"test": 2, "folds": [2, 2, 2], "unused_pairs": 1}
    parts = folds.split(1)
    assert parts["train"].tolist() == [0, 1, 4, 5] and parts["val"].tolist() == [2, 3] and parts["test"].tolist() == [6, 7]
    with pytest.raises(InvalidInputError, match="validation_fold"):
        folds.split(3)
    new_index = np.array([0, -1, 1, 2, 3, 4, -1, 5, 6])  # pairs 1 and 6 dropped
    remapped = folds.remap(new_index)
    assert isinstance(remapped, DeepDTAFolds) and remapped.folds[0].tolist() == [0]
    assert remapped.test.tolist() == [5] and remapped.report["pairs_dropped_from_folds"] == 2


@pytest.mark.parametrize("train, test, match", [
    ([[0, 1], [1, 2]], [3], "overlap"),
    ([[0, 1], [2]], [2], "overlap"),
    ([[0, 1], [2, 9]], [3], "indices from 2 to 9.*4 observed pairs"),
    ([[0, "a"]], [3], "integer pair indices"),
    ({"fold": [0]}, [3], "list of folds"),
])
def test_bad_deepdta_folds_are_rejected(tmp_path, train, test, match):
    write_folds(tmp_path, train, test)
    with pytest.raises(InvalidInputError, match=match):
        read_deepdta_folds(tmp_path, n_pairs=4)


def test_missing_fold_files(tmp_path):
    with pytest.raises(DataNotFoundError, match="train_fold_setting1"):
        read_deepdta_folds(tmp_path, n_pairs=4)
