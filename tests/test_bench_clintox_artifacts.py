"""bench/clintox_artifacts.py's helpers: what it counts as writing style and graph artifacts, and its AUROC."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import bench_module


def bench():
    return bench_module("clintox_artifacts")


@pytest.mark.parametrize(("smiles", "expected"), [
    ("c1ccccc1O", [1, 0, 0, 0]),  # aromatic notation
    ("C1=CC=CC=C1O", [0, 0, 0, 1]),  # the same molecule in Kekule notation
    ("C[NH+](C)C.[Cl-]", [0, 1, 1, 0]),  # a charged salt; bracket atoms do not count as aromatic
    ("[nH]1cccc1", [1, 0, 0, 0]),
])
def test_text_style_reads_only_how_the_smiles_is_written(smiles, expected):
    assert bench().text_style(smiles) == expected


def test_graph_artifacts_see_charges_and_fragments_not_notation():
    from rdkit import Chem

    artifacts = bench().graph_artifacts
    assert artifacts(Chem.MolFromSmiles("c1ccccc1O")) == artifacts(Chem.MolFromSmiles("C1=CC=CC=C1O")) == [0, 0]
    assert artifacts(Chem.MolFromSmiles("C[NH+](C)C.[Cl-]")) == [1, 1]


def test_cv_auroc_finds_a_perfect_artifact_and_none_in_constant_features():
    rng = np.random.default_rng(0)
    labels = (rng.random(200) < 0.2).astype(float)
    labels[:3] = np.nan  # unlabelled rows are left out
    leak = np.c_[np.nan_to_num(labels), rng.integers(0, 2, 200)]
    assert bench().cv_auroc(leak, labels) == 1.0
    assert bench().cv_auroc(rng.integers(0, 2, (200, 2)), labels) < 0.7  # noise: no signal
    assert bench().cv_auroc(np.ones((200, 2)), labels) is None


def test_minority_counts_the_rarer_class_per_task():
    labels = np.array([[1, 0], [1, 1], [0, 0], [1, np.nan]], dtype=float)
    assert bench().minority(labels) == {"FDA_APPROVED": {"labelled": 4, "minority_class": 0, "minority_rows": 1},
                                        "CT_TOX": {"labelled": 3, "minority_class": 1, "minority_rows": 1}}


def test_any_labels_keep_a_drug_listed_twice_positive_where_either_entry_is():
    from medai.chem import molecule_table

    raw = np.array([[1, 0], [0, 1], [1, 0]], dtype=float)
    table = molecule_table(["CCO", "OCC", "c1ccccc1"], raw, task_names=["FDA_APPROVED", "CT_TOX"])
    assert len(table) == 2 and np.isnan(table.labels[0]).all()  # the conflicting pair: missing by default
    assert bench().any_labels(table, raw).tolist() == [[1.0, 1.0], [1.0, 0.0]]
