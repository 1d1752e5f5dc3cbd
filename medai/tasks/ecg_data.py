"""Data handling of the ECG task: UCR / WFDB loading, splits, cross-fitting folds, standardisation, augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from medai.data.dataset import Dataset, concatenate
from medai.errors import DataNotFoundError, InvalidInputError

WFDB_SUFFIXES = (".hea", ".dat", ".atr")
SCALE_RANGE = 0.1  # amplitude scaled by a factor in [1 - this, 1 + this]
SHIFT_FRACTION = 0.05  # circular time shift of up to this share of the length
NOISE_STD = 0.05  # Gaussian noise, in standardised units


def load_ecg(path, settings, classes=None) -> tuple[Dataset, dict]:
    """A UCR file, a WFDB record (path without suffix, or its .hea/.dat/.atr) or a folder of WFDB records.

    Returns:
        (Dataset of shape (n, length, leads), description of the source for config.json).
    """
    from medai.data.sources.ecg import load_ucr, read_beats

    path = Path(path).expanduser()
    options = {"annotation": settings.annotation, "length": settings.beat_length, "grouping": settings.grouping}
    if path.is_dir():
        records = sorted(p.with_suffix("") for p in path.glob("*.hea") if p.with_suffix(f".{settings.annotation}").is_file())
        if not records:
            raise DataNotFoundError(f"No annotated WFDB record in '{path.name}': expected <name>.hea files with a "
                                    f"<name>.{settings.annotation} annotation file beside them.")
        beats = [read_beats(record, **options) for record in records]
        source = {"data": path.name, "format": "wfdb", "records": [b.record for b in beats],
                  "report": {b.record: b.report for b in beats}}
        return concatenate([b.to_dataset() for b in beats]), source
    if path.suffix.lower() in WFDB_SUFFIXES or (not path.exists() and path.with_suffix(".hea").is_file()):
        beats = read_beats(path, **options)
        return beats.to_dataset(), {"data": beats.record, "format": "wfdb", "records": [beats.record],
                                    "report": {beats.record: beats.report}}
    dataset = load_ucr(path, classes=classes)
    return dataset, {"data": path.name, "format": "ucr"}


def hold_out_test(dataset: Dataset, source: dict, settings) -> dict[str, np.ndarray]:
    """UCR: every series trains (the TEST file is the test set). WFDB: a held-out test share, by record if several."""
    every = np.arange(len(dataset))
    if source["format"] == "ucr":
        source["split"] = "the whole file trains (cross-fitted members); evaluate on the TEST file"
        return {"train": every}
    folds = max(2, round(1 / settings.test_fraction))
    groups = dataset.groups if dataset.groups is not None else every.astype(str)
    if len(np.unique(groups)) >= folds:
        splitter, note = StratifiedGroupKFold(folds, shuffle=True, random_state=settings.seed), "by record"
    else:
        splitter, note = StratifiedKFold(folds, shuffle=True, random_state=settings.seed), "by beat (one record)"
    rest, test = next(splitter.split(every, dataset.labels, groups if note == "by record" else None))
    source["split"] = f"test {1 / folds:.0%} {note}, stratified"
    if note != "by record":
        source["notes"] = ["Beats of the same record are on both sides of the split: the test accuracy overstates "
                           "the accuracy on new patients."]
    return {"train": np.sort(rest), "test": np.sort(test)}


def cross_fit_folds(data: Dataset, members: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, validation rows) of each member: stratified folds (1 member: one 20% validation fold)."""
    counts = data.class_counts()
    if (counts[counts > 0] < 2).any() or (counts > 0).sum() < 2:
        raise InvalidInputError(f"ECG training needs at least 2 classes with 2 or more examples each; class counts "
                                f"are {dict(zip(data.schema.label_names, counts.tolist()))}.")
    splitter = StratifiedKFold(max(2, members) if members > 1 else 5, shuffle=True, random_state=seed)
    folds = [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(len(data)), data.labels)]
    return folds[:members]


def standardise(config: dict, data: Dataset) -> Dataset:
    """``data`` with every lead standardised by the training mean and standard deviation."""
    mean = np.asarray(config["preprocessing"]["mean"], np.float32)
    std = np.asarray(config["preprocessing"]["std"], np.float32)
    return Dataset(((data.inputs - mean) / std).astype(np.float32), data.labels, data.ids, data.schema, data.groups,
                   dict(data.extras))


def augment(batch: dict, generator: torch.Generator) -> dict:
    """Random amplitude scaling, circular time shift and Gaussian noise of ``batch["series"]`` (batch, time, leads)."""
    series = batch["series"]
    size, steps = series.shape[:2]
    scale = 1 + SCALE_RANGE * (2 * torch.rand(size, 1, 1, generator=generator) - 1)
    limit = max(1, int(steps * SHIFT_FRACTION))
    shift = torch.randint(-limit, limit + 1, (size, 1), generator=generator)
    index = (torch.arange(steps)[None, :] - shift) % steps  # (batch, time)
    shifted = series.gather(1, index[:, :, None].expand_as(series).to(series.device))
    noise = NOISE_STD * torch.randn(series.shape, generator=generator)
    return {**batch, "series": shifted * scale.to(series.device) + noise.to(series.device)}
