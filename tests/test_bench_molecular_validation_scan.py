"""bench/molecular_validation_scan.py scores on validation rows only: test labels cannot move its figures."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from medai.tasks import molecular_property as task
from tests.conftest import bench_module
from tests.molecules import write_molecules


def test_scan_scores_validation_rows_and_never_reads_test_labels(tmp_path, monkeypatch):
    scan = bench_module("molecular_validation_scan")
    path = write_molecules(tmp_path / "m.csv", n=60)
    overrides = {"epochs": 2, "features": "none", "hidden": 32}
    first = scan.validation_score(str(path), overrides, seed=0, members=1, split="random")
    assert first["max_epochs"] == 2 and len(first["best_epochs"]) == 1
    assert np.isfinite(first["selection_score"]) and "val_rmse" not in first  # one task is a classification

    table = task.load(str(path))
    test = task.split_table(table, "random", 0)["test"]
    labels = table.labels.copy()
    labels[test, 0] = 1 - labels[test, 0]  # test rows' classes flipped (missing stay missing)
    labels[test, 1] = 1e6  # and their numbers absurd
    monkeypatch.setattr(task, "load", lambda name: replace(table, labels=labels))
    again = scan.validation_score(str(path), overrides, seed=0, members=1, split="random")
    assert again["selection_score"] == first["selection_score"]
