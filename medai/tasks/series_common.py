"""Pieces the clinical time-series tasks share (``mortality``, ``forecasting``, ``ecg-classification``).

Loading an ICU source by format (detected from a folder's contents, or named), aligning another source's variables
to a trained model's, patient-level splits and cross-validation folds, training each member of a series ensemble
on its own with its own training settings, rebuilding the model from config.json, a cheap out-of-distribution
score per record, and the part of a loader's report that goes into metrics.json and the model card.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from medai.data.dataset import Dataset
from medai.data.sources.timeseries import RawSeries
from medai.engine.trainer import FitResult, Trainer, TrainerConfig
from medai.errors import DataNotFoundError, InvalidInputError, check_choice
from medai.models import NETWORKS, SeriesModel

FORMATS = ("auto", "physionet2012", "mimic3")
OOD_QUANTILE = 0.99  # share of validation records scored below the out-of-distribution threshold


# -- sources ----------------------------------------------------------------------------------------------------


def detect_format(path: str | os.PathLike) -> str:
    """``"mimic3"`` for a folder with an ICUSTAYS table, ``"physionet2012"`` for record files (or set-* folders).

    Raises:
        DataNotFoundError: no such path.
        InvalidInputError: a folder holding neither.
    """
    from medai.data.sources.mimic3 import find_table

    path = Path(path).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"No data at {str(path)!r}; expected a PhysioNet 2012 folder (set-x/ and "
                                f"Outcomes-x.txt, or the set folder itself), a MIMIC-III folder or a record file.")
    if path.is_file():
        if path.suffix.lower() == ".txt":
            return "physionet2012"
        raise InvalidInputError(f"'{path.name}' is not a PhysioNet 2012 record file (.txt); pass a record file or a "
                                f"folder, or name the format with --format.")
    if find_table(path, "icustays") is not None:
        return "mimic3"
    if any(path.glob("*.txt")) or any(p.is_dir() and p.name.startswith("set-") for p in path.iterdir()):
        return "physionet2012"
    raise InvalidInputError(f"Cannot tell the format of '{path.name}': it holds no ICUSTAYS table (MIMIC-III) and no "
                            f"*.txt record files or set-* folders (PhysioNet 2012). Name it with --format "
                            f"physionet2012 or --format mimic3.")


def load_raw(path: str | os.PathLike, format: str = "auto", hours: int = 48, labelled: bool = True) -> RawSeries:
    """Hourly series of every stay at ``path`` (a folder, or one PhysioNet record file).

    Args:
        path: a PhysioNet 2012 folder or record file, or a MIMIC-III folder.
        format: ``"auto"``, ``"physionet2012"`` or ``"mimic3"``.
        hours: hourly bins from ICU admission.
        labelled: require outcome labels (training, evaluation); False loads records without them.

    Raises:
        InvalidInputError: labels required but absent, or nothing usable (the loaders name files and lines).
    """
    check_choice("format", format, FORMATS)
    found = detect_format(path) if format == "auto" else format
    path = Path(path).expanduser()
    if found == "mimic3":
        from medai.data.sources.mimic3 import load_stays

        raw = load_stays(path, hours=hours)
    else:
        from medai.data.sources import physionet2012

        if path.is_file():
            raw = physionet2012.load_record(path, hours=hours)
        else:
            raw = physionet2012.load_records(path, hours=hours, outcomes="auto" if labelled else None)
    if labelled and raw.labels is None:
        raise InvalidInputError(f"'{path.name}' has no outcomes: expected an Outcomes-x.txt file beside set-x/ (or "
                                f"inside the folder) with RecordID and In-hospital_death columns.")
    raw.report.setdefault("format", found)
    return raw


def load_for_bundle(bundle, data, split: str = "all", format: str = "auto", labelled: bool = True) -> RawSeries:
    """The records of ``data`` (one split of the training folder, or ``all`` of any folder or record file)."""
    check_choice("split", split, ("train", "val", "test", "all"))
    raw = load_raw(data, format, bundle.config["hours"], labelled=labelled)
    if split == "all":
        return raw
    saved = json.loads((bundle.path / "splits.json").read_text()) if bundle.path else {}
    wanted = saved.get(split, [])
    rows = np.flatnonzero(np.isin(raw.ids, wanted))
    if not wanted or len(rows) != len(wanted):
        raise InvalidInputError(f"The {split!r} split of the training data is not in '{Path(str(data)).name}'; for "
                                f"other data use --split all.")
    return raw.subset(rows)


def align(raw: RawSeries, variables: list[str]) -> RawSeries:
    """``raw`` with exactly the model's ``variables``: absent ones all missing (``variables_added_empty`` in the
    report), others left out (``variables_ignored``)."""
    if [str(v) for v in raw.variables] == list(variables):
        return raw
    aligned = raw.select_variables(variables)
    aligned.report["variables_ignored"] = [str(v) for v in raw.variables if str(v) not in set(variables)]
    return aligned


def data_report(report: dict) -> dict:
    """What of a loader's report reaches metrics.json and the card: counts of skipped records and lines, values
    outside the plausible ranges, variables absent from the source. File names and line numbers, never values."""
    parts = report.get("parts", [report])
    keys = ("source", "format", "folder", "records_loaded", "stays_loaded", "records_skipped", "stays_skipped",
            "lines_skipped", "out_of_range", "static_out_of_range", "variables_added_empty", "label_counts",
            "records_without_series", "outcomes_lines_skipped", "problems", "skipped_records", "notes")
    summary = [{k: part[k] for k in keys if k in part} for part in parts]
    for key in ("variables_added_empty", "variables_ignored"):
        if key in report:
            summary[0][key] = report[key]
    return {"parts": summary} if len(summary) > 1 else summary[0]


def report_counts(report: dict) -> dict:
    """Totals of :func:`data_report`: skipped records, skipped lines, out-of-range values."""
    parts = report.get("parts", [report])
    total = lambda key: sum(sum(p.get(key, {}).values()) for p in parts)  # noqa: E731
    return {"records_skipped": total("records_skipped") + total("stays_skipped"), "lines_skipped": total("lines_skipped"),
            "values_out_of_range": total("out_of_range")}


# -- splits -----------------------------------------------------------------------------------------------------


def cross_validation_folds(labels: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` (rest, held-out) index pairs, stratified by label, a patient's stays never on both sides."""
    if not isinstance(folds, int) or folds < 2:
        raise InvalidInputError(f"The 'folds' parameter must be an int >= 2; got {folds!r}.")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(rest, held) for rest, held in splitter.split(np.zeros(len(labels)), labels, groups=groups)]


def split_records(labels: np.ndarray | None, groups: np.ndarray, validation_fraction: float, seed: int
                  ) -> dict[str, np.ndarray]:
    """Patient-level split: test = one fold of a 5-fold stratified group split, validation a share of the rest.

    Unlabelled records (forecasting) are split by patient alone.
    """
    labels = np.zeros(len(groups), dtype=np.int64) if labels is None else labels
    rest, test = cross_validation_folds(labels, groups, 5, seed)[0]
    train, val = inner_validation(labels[rest], groups[rest], validation_fraction, seed)
    return {"train": rest[train], "val": rest[val], "test": np.sort(test)}


def inner_validation(labels: np.ndarray, groups: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Patient-level (train, validation) indices with about ``share`` of the records in validation."""
    rest, held = cross_validation_folds(labels, groups, max(2, round(1 / share)), seed)[0]
    return np.sort(rest), np.sort(held)


# -- models -----------------------------------------------------------------------------------------------------


def build_model(config: dict) -> SeriesModel:
    """Rebuild the (untrained) SeriesModel a config.json describes."""
    network = NETWORKS.create(config["network"], **config["network_kwargs"])
    regression = config["task_type"] == "regression"
    return SeriesModel(
        network, config["task_type"], class_weight=None if regression else config.get("class_weight"),
        target_mean=config.get("target_mean") if regression else None,
        target_std=config.get("target_std") if regression else None,
        regression_loss=config.get("regression_loss", "mse"),
    )  # fmt: skip


def members_of(model: SeriesModel) -> list:
    """The member networks of a series ensemble, or the single network."""
    network = model.network
    return list(network.members) if hasattr(network, "members") else [network]


def fit_members(model: SeriesModel, train: Dataset, val: Dataset, configs: list[TrainerConfig], *, metric_fn=None,
                train_transform=None, checkpoints: Path | None = None) -> list[FitResult]:
    """Train each member of ``model`` on its own with its own TrainerConfig, keeping its best validation epoch.

    Training updates the ensemble in place.
    """
    members = members_of(model)
    if len(configs) != len(members):
        raise InvalidInputError(f"{len(members)} member(s) but {len(configs)} training configuration(s).")
    return [fit_member(model, member, train, val, config, metric_fn=metric_fn, train_transform=train_transform,
                       checkpoint_dir=None if checkpoints is None else checkpoints / f"member-{index}")[0]
            for index, (member, config) in enumerate(zip(members, configs))]


def fit_member(model: SeriesModel, member, train: Dataset, val: Dataset, config: TrainerConfig, *, metric_fn=None,
               train_transform=None, checkpoint_dir: Path | None = None) -> tuple[FitResult, SeriesModel]:
    """Train one member network, wrapped in a SeriesModel like ``model`` (task, class weights, target scaling).

    Returns:
        (the FitResult, the wrapped member, trained in place and in eval mode).
    """
    regression = model.task_type == "regression"
    wrapped = SeriesModel(
        member, model.task_type,
        class_weight=None if regression or model.class_weight is None else model.class_weight.tolist(),
        target_mean=model.target_mean.tolist() if regression else None,
        target_std=model.target_std.tolist() if regression else None, regression_loss=model.regression_loss,
    )  # fmt: skip
    trainer = Trainer(config, metric_fn=metric_fn, train_transform=train_transform, checkpoint_dir=checkpoint_dir)
    return trainer.fit(wrapped, train, val), wrapped.eval()


def outputs(model: SeriesModel, dataset: Dataset, device: str = "cpu", threads: int | None = 1) -> np.ndarray:
    """The model's outputs (class logits or regression values), shape (n, n_outputs)."""
    config = TrainerConfig(progress=False, device=device, num_threads=threads)
    return Trainer(config).predict(model, dataset)


# -- out-of-distribution score ----------------------------------------------------------------------------------


def ood_features(dataset: Dataset) -> np.ndarray:
    """Per record: each variable's mean observed standardised value (0 when unobserved) and the static features."""
    mask = dataset.extras["mask"]
    counts = mask.sum(axis=1)  # (n, V)
    means = (dataset.inputs * mask).sum(axis=1) / np.maximum(counts, 1.0)
    parts = [means]
    if "static" in dataset.extras:
        parts.append(dataset.extras["static"])
    return np.concatenate(parts, axis=1).astype(np.float64)  # (n, V + static)


def fit_ood(train: Dataset, val: Dataset) -> dict:
    """Per-feature mean and std of :func:`ood_features` on ``train``; threshold = 99th percentile of ``val`` scores."""
    features = ood_features(train)
    mean, std = features.mean(axis=0), features.std(axis=0)
    state = {"method": "root-mean-square z-score of per-variable means and static features", "mean": mean.tolist(),
             "std": np.where(std > 1e-6, std, 1.0).tolist()}
    state["threshold"] = float(np.quantile(ood_scores(state, val), OOD_QUANTILE))
    state["quantile"] = OOD_QUANTILE
    return state


def ood_z_scores(state: dict, dataset: Dataset) -> np.ndarray:
    """Each record's :func:`ood_features` as z-scores against the training records, shape (n, features)."""
    return (ood_features(dataset) - np.asarray(state["mean"])) / np.asarray(state["std"])


def ood_scores(state: dict, dataset: Dataset) -> np.ndarray:
    """Out-of-distribution score of each record, shape (n,): RMS of its features' z-scores."""
    return np.sqrt((ood_z_scores(state, dataset) ** 2).mean(axis=1))


def ood_flags(state: dict | None, dataset: Dataset, variables: list[str] | None = None,
              static: list[str] | None = None) -> list[dict | None]:
    """``{"score", "threshold", "out_of_distribution", "reasons"}`` per record, or None per record when no state is
    saved. With the names of the ``variables`` and ``static`` features (the preprocessor's), the reasons of a
    flagged record name the features furthest from the training records (|z| >= 3, at most 3); a record without
    any measurement says so."""
    if not state:
        return [None] * len(dataset)
    threshold = float(state["threshold"])
    z = ood_z_scores(state, dataset)
    scores = np.sqrt((z**2).mean(axis=1))
    measured = dataset.extras["mask"].reshape(len(dataset), -1).sum(axis=1)
    names = [*(variables or []), *(static or [])]
    flags = []
    for row, score, count in zip(z, scores, measured):
        reasons = []
        if score > threshold:
            if count == 0:
                reasons.append("no time-series measurement at all: the prediction rests on the static features alone")
            if len(names) == len(row):
                reasons += [_feature_reason(names[j], row[j], j < len(variables or []))
                            for j in np.argsort(-np.abs(row))[:3] if abs(row[j]) >= 3]
            reasons = reasons or ["unlike the training records"]
        flags.append({"score": float(score), "threshold": threshold, "out_of_distribution": bool(score > threshold),
                      "reasons": reasons})
    return flags


def stay_dataset(config: dict, raw: RawSeries) -> Dataset:
    """``raw`` aligned to a bundle's training variables and preprocessed: one record per stay."""
    from medai.transforms.timeseries import TimeSeriesPreprocessor

    preprocessor = TimeSeriesPreprocessor.from_dict(config["preprocessing"])
    return preprocessor.transform(align(raw, preprocessor.variables_))


def stay_ood_flags(config: dict, dataset: Dataset) -> list[dict | None]:
    """:func:`ood_flags` of a bundle's stays, the reasons naming its preprocessor's variables and static features."""
    fitted = config["preprocessing"].get("fitted") or {}
    return ood_flags(config.get("ood"), dataset, fitted.get("variables_"), fitted.get("static_feature_names_"))


def _feature_reason(name: str, z: float, is_variable: bool) -> str:
    """One far-out feature in words: a variable's mean measurement, a static value, or a missing-value indicator."""
    if not is_variable and name.endswith("_missing"):
        return f"{name[: -len('_missing')]} {'not recorded' if z > 0 else 'recorded'}, which is rare in the training records"
    what = f"{name} (mean of its measurements)" if is_variable else name
    return f"{what} {'higher' if z > 0 else 'lower'} than in the training records (z = {z:+.1f})"
