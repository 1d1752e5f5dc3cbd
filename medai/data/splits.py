"""Seeded splits. Records of one patient (``groups``) never land on two sides of a split."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit

from medai.data.dataset import Dataset
from medai.errors import InvalidInputError


def stratified_split(
    dataset: Dataset, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), seed: int = 0
) -> dict[str, np.ndarray]:
    """Split indices into train/val/test, stratified by label and grouped by patient when groups exist.

    Args:
        dataset: a labelled Dataset.
        fractions: train, val and test fractions, summing to 1.
        seed: the random seed; the same seed gives the same split.

    Returns:
        ``{"train": idx, "val": idx, "test": idx}``, each an int64 array of row indices.

    Examples:
        >>> import numpy as np
        >>> from medai.data import Dataset, Schema
        >>> schema = Schema("image", "binary", ("a", "b"), (1, 2, 2))
        >>> ds = Dataset(np.zeros((20, 1, 2, 2), "float32"), np.arange(20) % 2, np.arange(20), schema)
        >>> parts = stratified_split(ds, seed=0)
        >>> sorted(len(v) for v in parts.values())
        [3, 4, 13]
    """
    if dataset.labels is None:
        raise InvalidInputError("A stratified split needs labels; this dataset has none.")
    return split_indices(dataset.labels, dataset.groups, fractions, seed, dataset.schema.label_names)


def split_indices(
    labels: np.ndarray,
    groups: np.ndarray | None = None,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    label_names=None,
) -> dict[str, np.ndarray]:
    """``stratified_split`` on plain arrays: labels of shape (n,), optional patient groups of shape (n,)."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(fractions) != 3 or not np.isclose(sum(fractions), 1.0) or min(fractions) <= 0:
        raise InvalidInputError(f"fractions must be three positive numbers summing to 1; got {fractions}.")
    counts = np.bincount(labels)
    if (counts[counts > 0] < 3).any() or (counts > 0).sum() < 2:
        names = label_names or [str(i) for i in range(len(counts))]
        raise InvalidInputError(
            f"A train/val/test split needs at least 2 classes with 3 or more samples each; class counts are "
            f"{dict(zip(names, counts.tolist()))}."
        )
    indices = np.arange(len(labels))
    rest, test = _split_off(labels, groups, indices, fractions[2], seed)
    val_share = fractions[1] / (fractions[0] + fractions[1])
    sub_groups = None if groups is None else groups[rest]
    train_rel, val_rel = _split_off(labels[rest], sub_groups, np.arange(len(rest)), val_share, seed + 1)
    return {"train": np.sort(rest[train_rel]), "val": np.sort(rest[val_rel]), "test": np.sort(test)}


def _split_off(labels, groups, indices: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if groups is None:
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=share, random_state=seed)
        keep, held = next(splitter.split(indices, labels))
        return indices[keep], indices[held]
    folds = max(2, round(1 / share))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    keep, held = next(splitter.split(indices, labels, groups=groups))
    return indices[keep], indices[held]
