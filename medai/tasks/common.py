"""Pieces every classification task shares: ensemble training, validation metrics, calibrated probabilities."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from torch import nn

from medai.data.dataset import Dataset
from medai.engine.calibration import softmax
from medai.engine.metrics import auroc_score, check_probabilities
from medai.engine.trainer import FitResult, Trainer, TrainerConfig
from medai.models.classifier import Classifier


def epochs_for_steps(n_rows: int, batch_size: int, steps: int, low: int, high: int) -> int:
    """Epochs that make about ``steps`` optimiser steps over ``n_rows`` rows in batches of ``batch_size``, within
    [low, high]: small training sets get more epochs, large ones at least ``low``."""
    return int(np.clip(np.ceil(steps / np.ceil(max(n_rows, 1) / batch_size)), low, high))


def members(model: Classifier) -> list[nn.Module]:
    """The member networks of an ensemble, or the single network (an ensemble of one)."""
    network = model.network
    return list(network.members) if hasattr(network, "members") else [network]


def fit_members(
    model: Classifier,
    train: Dataset,
    val: Dataset,
    config: TrainerConfig,
    *,
    train_transform=None,
    checkpoints: Path | None = None,
    member_data: list[tuple[Dataset, Dataset]] | None = None,
) -> tuple[list[FitResult], Trainer]:
    """Train each member of ``model`` on its own (seed + 1000 * index), keeping each one's best validation epoch.

    Each member is wrapped in a Classifier sharing ``model``'s preprocessing buffers, so training updates the
    ensemble in place. ``member_data`` gives each member its own (train, val) pair (cross-fitted members) instead
    of the shared ``train`` and ``val``. Returns the members' FitResults and the last Trainer (for its device and rank).
    """
    fits, trainer = [], None
    for index, member in enumerate(members(model)):
        member_train, member_val = member_data[index] if member_data is not None else (train, val)
        member_model = member_classifier(model, member)
        trainer = Trainer(
            replace(config, seed=config.seed + 1000 * index),
            train_transform=train_transform,
            metric_fn=validation_metrics,
            checkpoint_dir=None if checkpoints is None else checkpoints / f"member-{index}",
        )
        fits.append(trainer.fit(member_model, member_train, member_val))
    return fits, trainer


def member_classifier(model: Classifier, member: nn.Module) -> Classifier:
    """One member of ``model`` wrapped as a Classifier of its own, sharing the ensemble's preprocessing and options."""
    return Classifier(
        member, model.input_key, model.mean.tolist(), model.std.tolist(),
        None if model.class_weight is None else model.class_weight.tolist(),
        channels_last=model.channels_last, test_time_flip=model.test_time_flip,
    )  # fmt: skip


def cross_fit_folds(labels: np.ndarray, size: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """(fit rows, stop rows) of each of ``size`` cross-fitted members: stratified folds of ``labels`` (member k
    trains on every fold but k and keeps its best epoch on fold k). None for fewer than 2 members or a class with
    fewer rows than members: the caller then trains every member on one shared split."""
    from sklearn.model_selection import StratifiedKFold

    if size < 2 or np.bincount(labels).min() < size:
        return None
    return list(StratifiedKFold(size, shuffle=True, random_state=seed).split(labels, labels))


def fit_cross_fitted(model: Classifier, pool: Dataset, folds, config: TrainerConfig, **kwargs) -> tuple[list[FitResult], Trainer]:
    """``fit_members`` with member k on ``pool``'s rows ``folds[k]`` (see ``cross_fit_folds``)."""
    member_data = [(pool.subset(fit_rows), pool.subset(stop_rows)) for fit_rows, stop_rows in folds]
    return fit_members(model, pool, pool, config, member_data=member_data, **kwargs)


def out_of_fold_logits(model: Classifier, pool: Dataset, folds) -> np.ndarray:
    """Logits of every row of ``pool`` from the member that did not train on it, shape (len(pool), n_outputs)."""
    trainer, oof = Trainer(TrainerConfig(progress=False)), None
    for member, (_, stop_rows) in zip(members(model), folds):
        logits = trainer.predict(member_classifier(model, member), pool.subset(stop_rows))
        oof = np.zeros((len(pool), logits.shape[1]), np.float32) if oof is None else oof
        oof[stop_rows] = logits
    return oof


def combine_fits(fits: list[FitResult]) -> dict:
    """One summary of the members' training runs."""
    seconds = sum(f.train_seconds for f in fits)
    samples = sum(f.train_samples for f in fits)
    return {
        "members": [f.to_dict() for f in fits],
        "best_epochs": [f.best_epoch for f in fits],
        "best_scores": [f.best_score for f in fits],
        "max_epochs": fits[0].max_epochs,
        "train_seconds": seconds,
        "train_samples": samples,
        "samples_per_second": samples / seconds if seconds else 0.0,
    }


def validation_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """AUROC and accuracy for best-epoch selection; it runs every epoch, so it computes only these two (the same
    values :func:`classification_metrics` reports)."""
    probabilities, labels = check_probabilities(softmax(logits), labels)
    return {"auroc": auroc_score(probabilities, labels), "accuracy": float(np.mean(probabilities.argmax(axis=1) == labels))}


def probabilities(model: nn.Module, dataset: Dataset, config: dict, trainer: Trainer | None = None,
                  chunk: int | None = None, pad_sizes: tuple[int, ...] = ()) -> np.ndarray:
    """Temperature-calibrated class probabilities, shape (n_samples, n_classes).

    ``chunk`` is the inference chunk (default ``TrainerConfig.eval_batch_size``): records are run in chunks of
    this size, the last one padded, so a record's output never depends on its batch-mates. A service answering
    one image at a time uses a small chunk to avoid computing a mostly padded batch, and ``pad_sizes``
    (``TrainerConfig.eval_pad_sizes``) checked with ``batch_invariant_sizes``.
    """
    trainer = trainer or Trainer(TrainerConfig(progress=False, eval_pad_sizes=tuple(pad_sizes),
                                               **({"eval_batch_size": chunk} if chunk else {})))
    logits = trainer.predict(model, dataset)
    return softmax(logits, config.get("calibration", {}).get("temperature", 1.0))


def save_ood(autoencoder, detector, folder: Path) -> tuple[dict, dict[str, Path]]:
    """Save a fitted OOD autoencoder to ``folder``; return its config entry and the files to copy into the bundle."""
    autoencoder.save(folder)
    files = {f"ood/{path.name}": path for path in folder.iterdir()}
    return {"method": "autoencoder reconstruction error", "folder": "ood", **detector.to_dict()}, files


RANGE_MARGIN = 0.1  # a training range is widened by this share of its width on each side before it flags
INTENSITY_NAMES = {"mean": "brightness (mean pixel value)", "std": "contrast (pixel standard deviation)"}
FLAT = 1e-6  # pixel standard deviation at or below which an image is one flat value


def fit_ranges(columns: dict[str, np.ndarray], margin: float = RANGE_MARGIN,
               floors: dict[str, float] | None = None) -> dict[str, list[float]]:
    """Per column, the range of its finite training values widened by ``margin`` of its width on each side, or by
    ``floors[column]`` where that is more (a statistic every training record shares, such as the amplitude of
    normalised series, would otherwise leave no room); a column without any finite value is left out."""
    ranges = {}
    for name, values in columns.items():
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            low, high = float(values.min()), float(values.max())
            pad = max(margin * (high - low), (floors or {}).get(name, 0.0))
            ranges[name] = [low - pad, high + pad]
    return ranges


def range_reasons(columns: dict[str, np.ndarray], ranges: dict[str, list[float]], n: int, *, source: str,
                  labels: dict[str, str] | None = None) -> list[list[str]]:
    """Per record (``n``), the values of ``columns`` that lie outside ``ranges``, in words (missing values are not
    checked); ``source`` names what the ranges were fitted on, ``labels`` gives columns their readable names."""
    reasons: list[list[str]] = [[] for _ in range(n)]
    for name, (low, high) in ranges.items():
        if name not in columns:
            continue
        for i, value in enumerate(np.asarray(columns[name], dtype=np.float64)):
            if np.isfinite(value) and not low <= value <= high:
                reasons[i].append(f"{(labels or {}).get(name, name)} {value:.6g} outside the range of {source} "
                                  f"(with a margin) from {low:.4g} to {high:.4g}")
    return reasons


def intensity_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image mean and standard deviation of the pixel values (every channel), each of shape (n,)."""
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    return {"mean": flat.mean(1), "std": flat.std(1)}


def fit_intensity_range(train_images: np.ndarray, val_images: np.ndarray, margin: float = RANGE_MARGIN) -> dict:
    """The range of per-image brightness and contrast over the training images, widened by ``margin`` of its
    width on each side, and the share of validation images outside it (the check's false-alarm rate there).

    The reconstruction error misses inputs that are simpler than the training images: an autoencoder
    reconstructs a blank, saturated or washed-out image well. This check flags them.
    """
    bounds = fit_ranges(intensity_statistics(train_images), margin)
    flagged = [bool(reasons) for reasons in intensity_reasons(val_images, bounds)]
    return {"method": "training range of per-image brightness and contrast", "margin": margin, **bounds,
            "validation_flagged": float(np.mean(flagged)) if flagged else 0.0}


def intensity_reasons(images: np.ndarray, bounds: dict) -> list[list[str]]:
    """Per image, why its brightness or contrast lies outside ``bounds`` (empty: within). An image whose pixels all
    have one value is always flagged, even where some training images had almost no contrast."""
    return statistic_reasons(intensity_statistics(images), bounds, INTENSITY_NAMES, location="mean", spread="std",
                             flat="no contrast: every pixel has the same value", source="the training images")


def statistic_reasons(statistics: dict[str, np.ndarray], ranges: dict, labels: dict[str, str], *, location: str,
                      spread: str, flat: str, source: str) -> list[list[str]]:
    """Per record, the per-record ``statistics`` (those named in ``labels``) outside ``ranges``, in words. A record
    whose ``spread`` is nil gets ``flat`` instead of a reason for each statistic that depends on the spread; its
    ``location`` is still checked."""
    is_flat = statistics[spread] <= FLAT
    checked = {k: v if k == location else np.where(is_flat, np.nan, v) for k, v in statistics.items()}
    found = range_reasons(checked, {k: ranges[k] for k in labels if k in ranges}, len(is_flat), source=source,
                          labels=labels)
    return [([flat] if f else []) + more for f, more in zip(is_flat, found)]


def ood_flags(bundle, matrix: np.ndarray, chunk: int | None = None,
              values: dict[str, np.ndarray] | None = None) -> list[dict] | None:
    """Per-record out-of-distribution score and flag from the bundle's autoencoder (None when it has none).

    ``matrix`` is what the bundle's autoencoder reads (images, or the task's table encoding), one row per record;
    ``chunk`` is the autoencoder's inference chunk (default 256). A record is flagged when its reconstruction
    error exceeds the threshold or, for image bundles with an ``intensity`` range, when its brightness or
    contrast lies outside the training images' range, or, for bundles with column ``ranges`` and the records'
    raw ``values`` by column, when a value lies outside its column's range; ``reasons`` says which, in words.
    """
    config = bundle.config.get("ood")
    if not config or bundle.path is None:
        return None
    detector = bundle.parts.get("ood")
    if detector is None:  # loaded once per bundle: a service predicts many times with one bundle
        from medai.reduce import Autoencoder, OODDetector

        detector = bundle.parts["ood"] = OODDetector.from_dict(config, Autoencoder.load(bundle.path / config["folder"]))
    scores, flags = detector.flag(matrix, chunk=chunk)
    threshold = float(detector.threshold_)
    extra = intensity_reasons(matrix, config["intensity"]) if config.get("intensity") else [[] for _ in scores]
    if config.get("ranges") and values is not None:
        extra = [a + b for a, b in zip(extra, range_reasons(values, config["ranges"], len(scores),
                                                             source="the training data"))]
    results = []
    for score, flag, more in zip(scores, flags, extra):
        reasons = [f"unlike the training inputs: reconstruction error {score:.4f} above the threshold {threshold:.4f}"
                   if np.isfinite(score) else "no observed value to check"] if flag else []
        results.append({"score": float(score), "threshold": threshold, "out_of_distribution": bool(flag) or bool(more),
                        "reasons": reasons + more})
    return results
