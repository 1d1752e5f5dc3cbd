"""Shared pieces of the time-series tasks: format detection, patient-level folds, OOD scores, ECG augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medai.data.dataset import Dataset, Schema
from medai.errors import DataNotFoundError, InvalidInputError
from medai.tasks import series_common as common
from tests.series_records import write_physionet


def test_format_is_detected_from_the_folder(tmp_path):
    root = write_physionet(tmp_path / "p12", n=3)
    assert common.detect_format(root) == "physionet2012"
    assert common.detect_format(root / "set-x") == "physionet2012"
    assert common.detect_format(root / "set-x" / "100000.txt") == "physionet2012"
    (tmp_path / "mimic").mkdir()
    (tmp_path / "mimic" / "ICUSTAYS.csv.gz").write_bytes(b"")
    assert common.detect_format(tmp_path / "mimic") == "mimic3"
    (tmp_path / "other").mkdir()
    with pytest.raises(InvalidInputError, match="--format"):
        common.detect_format(tmp_path / "other")
    with pytest.raises(DataNotFoundError):
        common.detect_format(tmp_path / "absent")
    with pytest.raises(InvalidInputError, match="Did you mean 'mimic3'"):
        common.load_raw(root, format="mimic")


def test_unlabelled_folders_load_for_prediction_but_not_for_training(tmp_path):
    root = write_physionet(tmp_path / "p12", n=4)
    (root / "Outcomes-x.txt").unlink()
    assert common.load_raw(root, labelled=False).labels is None
    with pytest.raises(InvalidInputError, match="no outcomes"):
        common.load_raw(root)


def test_folds_keep_each_patient_on_one_side():
    labels = np.tile([0, 0, 1], 20)
    groups = np.repeat(np.arange(30), 2).astype(str)  # two stays per patient
    for rest, held in common.cross_validation_folds(labels, groups, 5, seed=0):
        assert not set(groups[rest]) & set(groups[held])
    parts = common.split_records(labels, groups, 0.15, seed=0)
    assert sum(len(p) for p in parts.values()) == 60
    assert not set(groups[parts["train"]]) & (set(groups[parts["val"]]) | set(groups[parts["test"]]))


def _dataset(values: np.ndarray) -> Dataset:
    n, steps, variables = values.shape
    extras = {"mask": np.ones_like(values), "static": np.zeros((n, 2), np.float32)}
    return Dataset(values.astype(np.float32), None, np.arange(n).astype(str),
                   Schema("series", "binary", ("no", "yes"), (steps, variables)), extras=extras)


def test_out_of_distribution_flags_records_unlike_the_training_ones():
    rng = np.random.default_rng(0)
    train, val = _dataset(rng.normal(size=(200, 6, 3))), _dataset(rng.normal(size=(100, 6, 3)))
    state = common.fit_ood(train, val)
    flags = common.ood_flags(state, _dataset(np.concatenate([rng.normal(size=(1, 6, 3)), np.full((1, 6, 3), 8.0)])))
    assert [f["out_of_distribution"] for f in flags] == [False, True]
    assert flags[0]["reasons"] == [] and flags[1]["reasons"] == ["unlike the training records"]  # no names given
    odd = _dataset(np.concatenate([np.full((1, 6, 3), 8.0), np.zeros((1, 6, 3))]))
    odd.extras["mask"][1] = 0  # the second record has no measurement at all
    odd.extras["static"][1] = [0.0, 9.0]  # ... and its second static feature (a missing indicator) is unusual
    named = common.ood_flags(state, odd, ["HR", "MAP", "Temp"], ["Age", "Age_missing"])
    z = common.ood_z_scores(state, odd)[0, :3]
    assert named[0]["reasons"] == [f"{['HR', 'MAP', 'Temp'][j]} (mean of its measurements) higher than in the training "
                                   f"records (z = {z[j]:+.1f})" for j in np.argsort(-np.abs(z))]  # furthest first
    assert named[1]["reasons"][0].startswith("no time-series measurement at all")
    assert "Age not recorded, which is rare in the training records" in named[1]["reasons"]
    assert common.ood_flags(None, val) == [None] * 100


def test_ecg_augmentation_keeps_shapes_and_is_seeded():
    from medai.tasks.ecg_data import augment

    batch = {"series": torch.randn(4, 50, 2), "label": torch.tensor([0, 1, 0, 1])}
    first = augment(batch, torch.Generator().manual_seed(1))
    again = augment(batch, torch.Generator().manual_seed(1))
    assert first["series"].shape == (4, 50, 2) and torch.equal(first["series"], again["series"])
    assert torch.equal(first["label"], batch["label"]) and not torch.equal(first["series"], batch["series"])
