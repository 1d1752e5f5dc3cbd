"""bench/chemprop_accuracy.py's pure helpers: the CSV and splits file chemprop reads, the command, and the metric.

No chemprop needed: the helpers are exercised on a tiny synthetic table and hand-made predictions.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import bench_module


def bench():
    return bench_module("chemprop_accuracy")


def tiny_table():
    return SimpleNamespace(smiles=["CCO", "c1ccccc1", "CC(=O)O", "CN"],
                           labels=np.array([[1.0, np.nan], [0.0, 1.0], [np.nan, 0.0], [1.0, 1.0]], dtype=np.float32),
                           task_names=("FDA_APPROVED", "CT_TOX"), task_types=("classification", "classification"))


def test_write_inputs_rows_follow_the_table_and_splits_index_data_rows(tmp_path):
    indices = {"train": np.array([3, 0]), "val": np.array([1]), "test": np.array([2])}
    data, splits = bench().write_inputs(tiny_table(), indices, tmp_path)
    with data.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [["smiles", "FDA_APPROVED", "CT_TOX"], ["CCO", "1", ""], ["c1ccccc1", "0", "1"],
                    ["CC(=O)O", "", "0"], ["CN", "1", "1"]]
    assert json.loads(splits.read_text()) == [{"train": [3, 0], "val": [1], "test": [2]}]


def test_write_inputs_can_give_the_files_own_smiles_for_the_same_rows(tmp_path):
    indices = {"train": np.array([3, 0]), "val": np.array([1]), "test": np.array([2])}
    own = ["[O-]CC.[Na+]", "c1ccccc1", "CC(=O)[O-]", "C[NH3+]"]
    data, _ = bench().write_inputs(tiny_table(), indices, tmp_path, smiles=own)
    with data.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert [row[0] for row in rows[1:]] == own and rows[1][1:] == ["1", ""]  # labels stay with their molecule


def test_regression_labels_round_trip_float32(tmp_path):
    table = SimpleNamespace(smiles=["C", "CC"], labels=np.array([[-0.77], [1.0e-3]], dtype=np.float32),
                            task_names=("log_solubility",), task_types=("regression",))
    data, _ = bench().write_inputs(table, {"train": [0], "val": [], "test": [1]}, tmp_path)
    with data.open(newline="") as handle:
        values = [float(row["log_solubility"]) for row in csv.DictReader(handle)]
    assert np.array_equal(np.array(values, dtype=np.float32), table.labels[:, 0])


def test_auroc_skips_missing_labels_and_single_class_tasks():
    labels = np.array([[1, 0, np.nan], [0, 0, 1], [np.nan, 0, 1], [1, 0, 0], [0, 0, np.nan]])
    predictions = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.4], [0.0, 0.3, 0.8], [0.4, 0.4, 0.6], [0.5, 0.5, 0.1]])
    # task 0: labels 1,0,1,0 vs 0.9,0.2,0.4,0.5 -> pairs (pos>neg): 0.9>0.2, 0.9>0.5, 0.4>0.2, 0.4<0.5 = 3/4
    # task 1: one class only -> skipped; task 2: labels 1,1,0 vs 0.4,0.8,0.6 -> 0.4<0.6, 0.8>0.6 = 1/2
    score = bench().score_predictions(predictions, labels, ["classification"] * 3)
    assert score == pytest.approx((0.75 + 0.5) / 2)


def test_rmse_over_labelled_entries_in_original_units():
    labels = np.array([[1.0], [np.nan], [3.0], [-2.0]])
    predictions = np.array([[2.0], [100.0], [3.0], [0.0]])
    assert bench().score_predictions(predictions, labels, ["regression"]) == pytest.approx(math.sqrt(5 / 3))
    assert bench().score_predictions(predictions, np.full((4, 1), np.nan), ["regression"]) is None


def test_predictions_are_read_in_test_order_and_checked(tmp_path):
    path = tmp_path / "test_predictions.csv"
    path.write_text("smiles,FDA_APPROVED,CT_TOX\nCC(=O)O,0.25,0.5\nCN,0.75,0.125\n")
    got = bench().read_predictions(path, ["CC(=O)O", "CN"], ("FDA_APPROVED", "CT_TOX"))
    assert got.tolist() == [[0.25, 0.5], [0.75, 0.125]]
    with pytest.raises(ValueError):
        bench().read_predictions(path, ["CN", "CC(=O)O"], ("FDA_APPROVED", "CT_TOX"))


def test_command_keeps_chemprop_defaults():
    command = bench().chemprop_command("cp", Path("d.csv"), Path("s.json"), Path("out"), "classification", 2,
                                       ("a", "b"))
    assert command[:2] == ["cp", "train"]
    flags = {command[i]: command[i + 1] for i in range(len(command) - 1) if command[i].startswith("--")}
    assert flags["--splits-file"] == "s.json" and flags["--pytorch-seed"] == "2" and flags["--metrics"] == "roc"
    assert flags["--task-type"] == "classification" and flags["--num-workers"] == "0"
    assert "--epochs" not in command
    assert not {"--hidden-dim", "--depth", "--batch-size", "--ffn-num-layers", "--dropout"} & set(command)
    regression = bench().chemprop_command("cp", Path("d"), Path("s"), Path("o"), "regression", 0, ("y",), epochs=3)
    assert regression[regression.index("--metrics") + 1] == "rmse"
    assert regression[regression.index("--epochs") + 1] == "3"
