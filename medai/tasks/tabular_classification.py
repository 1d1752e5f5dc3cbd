"""Tabular classification (lab panels, vitals, demographics): an MLP ensemble or scikit-learn baselines -> bundle.

Data: CSV, Parquet or ARFF with a target column, or a known table by name (``pima``, ``heart``, ``ckd``, ``ilpd``,
``breast_cancer``). Preprocessing (median imputation, standardisation, missing indicators, category codes) is fitted
on the training split only and saved in config.json. Probabilities are temperature-calibrated on validation data.
Every prediction can be explained per patient: each feature's Shapley contribution (Captum's Shapley value
sampling) with the patient's value beside the training distribution.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from medai.bundle import ModelBundle, save_bundle
from medai.data.dataset import Dataset, Schema
from medai.data.splits import split_indices
from medai.engine.calibration import fit_temperature, softmax
from medai.engine.metrics import classification_metrics
from medai.engine.plots import save_evaluation_plots
from medai.engine.trainer import TrainerConfig
from medai.errors import InvalidInputError, check_choice, did_you_mean
from medai.models import NETWORKS, Classifier
from medai.tasks.common import (
    combine_fits,
    cross_fit_folds,
    fit_cross_fitted,
    fit_members,
    fit_ranges,
    ood_flags,
    out_of_fold_logits,
    save_ood,
)
from medai.tasks.common import probabilities as torch_probabilities

TASK = "tabular-classification"
BASELINES = ("logistic_regression", "gradient_boosting")
BASELINE_FOLDS = 5  # cross-fitted baselines: folds of train + val whose out-of-fold predictions calibrate them
SPLITS = ("train", "val", "test", "all")


@dataclass
class TabularSettings:
    """User-facing settings of ``medai train --task tabular-classification``; defaults are the benchmarked ones."""

    target: str | None = None  # target column (known tables have a default)
    model: str = "tabular_mlp"  # tabular_mlp, logistic_regression or gradient_boosting
    epochs: int = 100  # maximum epochs per member (the best by the monitored validation metric kept)
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    dropout: float = 0.2  # dropout after each hidden layer of the MLP
    wide: bool = True  # a linear path from the inputs to the logits beside the MLP (wide and deep; chosen on
    # development tables: higher 10-fold AUROC on heart-hungarian, heart-va and ilpd; see bench/results)
    monitor: str = "loss"  # validation metric that picks each member's best epoch: loss or auroc (chosen on
    # development tables: loss gave higher 10-fold AUROC on heart-hungarian, heart-va and ilpd; see bench/results)
    ensemble: int = 5  # MLP members trained with different seeds, logits averaged
    member_validation: str = "cross-fit"  # "cross-fit": training and validation rows are pooled and cut into
    # `ensemble` stratified folds, member k early-stops on fold k and trains on the others (every row trains all
    # members but one; calibrated on out-of-fold predictions); "split": every member trains on the training split and
    # early-stops on the validation split. Chosen on development tables with the wide path (see bench/results).
    # The baselines follow it: "cross-fit" fits them on train + val and calibrates them on the out-of-fold
    # predictions of 5 folds of it; "split" fits them on the training split and calibrates them on validation.
    seed: int = 0
    device: str = "auto"
    class_weight: str = "none"  # "balanced" weights the loss by inverse class frequency
    id_column: str | None = None
    site_column: str | None = None
    progress: bool = True

    def validate(self) -> TabularSettings:
        if self.model not in BASELINES and self.model not in NETWORKS.names("table"):
            choices = [*NETWORKS.names("table"), *BASELINES]
            raise InvalidInputError(
                f"Unknown tabular model {self.model!r}; known: {', '.join(choices)}.{did_you_mean(self.model, choices)}"
            )
        check_choice("class_weight", self.class_weight, ["none", "balanced"])
        check_choice("member_validation", self.member_validation, ["split", "cross-fit"])
        check_choice("monitor", self.monitor, ["auroc", "loss"])
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise InvalidInputError(f"The 'dropout' parameter must be a number in [0, 1); got {self.dropout!r}.")
        if not isinstance(self.wide, bool):
            raise InvalidInputError(f"The 'wide' parameter must be true or false; got {self.wide!r}.")
        if not 1 <= self.ensemble <= 20:
            raise InvalidInputError(f"The 'ensemble' parameter must be an int in [1, 20]; got {self.ensemble}.")
        return self

    def trainer_config(self) -> TrainerConfig:
        return TrainerConfig(
            max_epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
            weight_decay=self.weight_decay, monitor=self.monitor, seed=self.seed, device=self.device, progress=self.progress,
        )  # fmt: skip


Settings = TabularSettings


# -- data -------------------------------------------------------------------------------------------------------


def load(data, settings: TabularSettings | None = None, *, require_target: bool = True, classes=None):
    """Read a table (path or known name) with the settings' target, id and site columns."""
    from medai.data.sources.tabular import load_table

    settings = settings or TabularSettings()
    data = data if Path(data).exists() else str(data)  # a known name such as "pima" may arrive as a Path
    return load_table(
        data, target=settings.target, id_column=settings.id_column, site_column=settings.site_column,
        require_target=require_target, **({"classes": classes} if classes is not None else {}),
    )  # fmt: skip


def _as_dataset(features: np.ndarray, labels, ids, label_names) -> Dataset:
    schema = Schema("table", "binary" if len(label_names) == 2 else "multiclass", label_names, (features.shape[1],), "table")
    return Dataset(features.astype(np.float32), labels, ids, schema)


def one_hot(features: np.ndarray, n_numeric: int, cardinalities: list[int]) -> np.ndarray:
    """Numeric block plus one-hot categorical codes: the design matrix of the logistic-regression baseline."""
    blocks = [features[:, : 2 * n_numeric]]
    for index, size in enumerate(cardinalities):
        codes = features[:, 2 * n_numeric + index].round().astype(int).clip(0, size - 1)
        blocks.append(np.eye(size, dtype=np.float32)[codes])
    return np.concatenate(blocks, axis=1)


# -- models -----------------------------------------------------------------------------------------------------


def build_model(config: dict) -> Classifier:
    """Rebuild the (untrained) torch model a config.json describes (baselines are loaded from skops instead)."""
    network = NETWORKS.create(config["network"], **config["network_kwargs"])
    width = config["input_width"]
    return Classifier(network, "table", [0.0] * width, [1.0] * width, config.get("class_weight"))


def _estimator(name: str, seed: int, n_numeric: int, n_categorical: int):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if name == "logistic_regression":
        return LogisticRegression(C=1.0, max_iter=5000)
    categorical = [False] * (2 * n_numeric) + [True] * n_categorical
    return HistGradientBoostingClassifier(
        learning_rate=0.05, max_iter=200, max_leaf_nodes=15, l2_regularization=1.0, early_stopping=False,
        categorical_features=categorical if n_categorical else None, random_state=seed,
    )  # fmt: skip


def fit(train, val, settings: TabularSettings) -> tuple[object, dict, dict]:
    """Fit preprocessing and model on ``train`` (selection and calibration on ``val``).

    Returns:
        (model, config, fit summary): a torch Classifier or a scikit-learn estimator, and the JSON config that
        ``predict_proba`` needs.
    """
    from sklearn.base import clone

    from medai.transforms.tabular import TabularPreprocessor

    settings.validate()
    if len(np.unique(train.labels)) < 2:
        raise InvalidInputError("The training split holds a single class; classification needs at least two.")
    preprocessor = TabularPreprocessor(train.numeric, train.categorical).fit(train)
    x_train, x_val = preprocessor.transform(train), preprocessor.transform(val)
    n_numeric, cardinalities = preprocessor.n_numeric_, list(preprocessor.cardinalities_)
    counts = np.bincount(train.labels, minlength=len(train.label_names))
    class_weight = (counts.sum() / (len(counts) * np.maximum(counts, 1))).tolist() if settings.class_weight == "balanced" else None
    config = {
        "task": TASK,
        "network": settings.model,
        "input_width": int(x_train.shape[1]),
        "class_weight": class_weight,
        "label_names": list(train.label_names),
        "classes": list(getattr(train, "classes", ()) or train.label_names),
        "target": train.target,
        "preprocessing": preprocessor.to_dict(),
        "layout": {"n_numeric": n_numeric, "cardinalities": cardinalities, "features": list(preprocessor.feature_names_out_)},
        "explain_baseline": _baseline_row(x_train, n_numeric).tolist(),
        "settings": asdict(settings),
    }
    labels = np.concatenate([train.labels, val.labels])  # train + val: what cross-fitting pools
    cross_fit = settings.member_validation == "cross-fit"
    if settings.model in BASELINES:
        model = _estimator(settings.model, settings.seed, n_numeric, len(cardinalities))
        design = one_hot if settings.model == "logistic_regression" else (lambda x, *_: x)
        folds = cross_fit_folds(labels, BASELINE_FOLDS, settings.seed) if cross_fit else None
        if folds is None:
            model.fit(design(x_train, n_numeric, cardinalities), train.labels)
            summary = {"model": settings.model, "train_rows": len(train), "member_validation": "split"}
        else:  # as the cross-fitted MLP: fit on train + val, calibrate on out-of-fold predictions of the same recipe
            pool = design(np.concatenate([x_train, x_val]), n_numeric, cardinalities)
            oof = np.zeros((len(pool), len(train.label_names)), np.float32)
            for fit_rows, held_rows in folds:
                fold_model = clone(model).fit(pool[fit_rows], labels[fit_rows])
                oof[held_rows] = np.log(np.clip(fold_model.predict_proba(pool[held_rows]), 1e-12, 1.0))
            model.fit(pool, labels)
            temperature = fit_temperature(oof, labels)
            config["calibration"] = {"method": "temperature", "fitted_on": f"out-of-fold {settings.model} (train + val)",
                                     "temperature": temperature}  # fmt: skip
            summary = {"model": settings.model, "train_rows": len(pool), "member_validation": "cross-fit",
                       "out_of_fold": classification_metrics(softmax(oof, temperature), labels, list(train.label_names))}  # fmt: skip
    else:
        kwargs = {"n_numeric": n_numeric, "cardinalities": cardinalities, "num_classes": len(train.label_names),
                  "dropout": settings.dropout, "wide": settings.wide}
        if settings.ensemble > 1:
            config["network"], kwargs = "ensemble", {"member": settings.model, "size": settings.ensemble, **kwargs}
        config["network_kwargs"] = kwargs
        torch.manual_seed(settings.seed)
        model = build_model(config)
        datasets = [_as_dataset(x, t.labels, t.ids, t.label_names) for x, t in ((x_train, train), (x_val, val))]
        folds = cross_fit_folds(labels, settings.ensemble, settings.seed) if cross_fit else None
        if folds is None:
            fits, _ = fit_members(model, datasets[0], datasets[1], settings.trainer_config())
        else:
            pool = _as_dataset(np.concatenate([x_train, x_val]), labels, np.concatenate([train.ids, val.ids]), train.label_names)
            fits, _ = fit_cross_fitted(model, pool, folds, settings.trainer_config())
            oof = out_of_fold_logits(model, pool, folds)
            temperature = fit_temperature(oof, pool.labels)
            config["calibration"] = {"method": "temperature", "fitted_on": "out-of-fold members (train + val)",
                                     "temperature": temperature}  # fmt: skip
        # what ran: cross-fit falls back to the shared split for one member or a class smaller than the ensemble
        summary = combine_fits(fits) | {"member_validation": "split" if folds is None else "cross-fit"}
        if folds is not None:  # the validation rows trained members: only out-of-fold predictions are held out
            summary["out_of_fold"] = classification_metrics(softmax(oof, temperature), pool.labels, list(train.label_names))
    if "calibration" not in config:
        config["calibration"] = {"method": "temperature", "fitted_on": "val", "temperature": 1.0}
        val_logits = np.log(np.clip(predict_proba(model, config, val), 1e-12, 1.0))
        config["calibration"]["temperature"] = fit_temperature(val_logits, val.labels)
    return model, config, summary


def _baseline_row(features: np.ndarray, n_numeric: int) -> np.ndarray:
    """A typical training patient: median numbers, nothing missing, the most frequent category."""
    row = np.median(features, axis=0)
    row[n_numeric : 2 * n_numeric] = 0.0
    for column in range(2 * n_numeric, features.shape[1]):
        values, counts = np.unique(features[:, column], return_counts=True)
        row[column] = values[np.argmax(counts)]
    return row.astype(np.float32)


def features_of(config: dict, table) -> np.ndarray:
    """Preprocessed features of ``table``, shape (n_rows, input_width), with the bundle's fitted preprocessing."""
    from medai.transforms.tabular import TabularPreprocessor

    return TabularPreprocessor.from_dict(config["preprocessing"]).transform(table)


def predict_proba(model, config: dict, table, features: np.ndarray | None = None) -> np.ndarray:
    """Calibrated class probabilities for every row, shape (n_rows, n_classes)."""
    x = features_of(config, table) if features is None else features
    temperature = config.get("calibration", {}).get("temperature", 1.0)
    if isinstance(model, torch.nn.Module):
        return torch_probabilities(model, _as_dataset(x, None, np.arange(len(x)).astype(str), config["label_names"]), config)
    layout = config["layout"]
    design = one_hot(x, layout["n_numeric"], layout["cardinalities"]) if config["network"] == "logistic_regression" else x
    return softmax(np.log(np.clip(model.predict_proba(design), 1e-12, 1.0)), temperature)


# -- train / evaluate / predict / explain -------------------------------------------------------------------------


def train(data, out, settings: TabularSettings | None = None, **overrides) -> ModelBundle:
    """Train on a table (stratified 70/10/20 split, seeded) and save the bundle in ``out``.

    Examples:
        >>> import medai
        >>> bundle = medai.train("tabular-classification", "pima", "runs/pima")  # doctest: +SKIP
    """
    settings = TabularSettings(**{**asdict(settings or TabularSettings()), **overrides}).validate()
    table = load(data, settings)
    parts = split_indices(table.labels, None, (0.7, 0.1, 0.2), settings.seed, table.label_names)
    splits = {name: table.subset(index) for name, index in parts.items()}
    model, config, summary = fit(splits["train"], splits["val"], settings)
    config["source"] = {"data": Path(str(data)).name, "split": "stratified 70/10/20", "split_seed": settings.seed,
                        "load_report": table.report}  # fmt: skip
    metrics = {"fit": summary}
    if "out_of_fold" in summary:  # cross-fitted members: each training/validation row scored by the member it did not train
        metrics["out_of_fold"] = summary.pop("out_of_fold")
    for name in ("test",) if "out_of_fold" in metrics else ("val", "test"):
        metrics[name] = classification_metrics(predict_proba(model, config, splits[name]), splits[name].labels, config["label_names"])
    with tempfile.TemporaryDirectory() as tmp:
        config["ood"], ood_files = _fit_ood(config, splits["train"], splits["val"], settings.seed, Path(tmp) / "ood")
        test = splits["test"]
        history = summary["members"][0]["history"] if "members" in summary else None
        written = save_evaluation_plots(predict_proba(model, config, test), test.labels, config["label_names"], Path(tmp), history=history)
        from medai.tasks.tabular_card import render

        bundle = save_bundle(
            out, model, config, metrics=metrics, card=render(config, metrics, {k: len(v) for k, v in splits.items()}),
            files={f"plots/{p.name}": p for p in written.values()} | ood_files,
            json_files={"splits.json": {name: part.ids.tolist() for name, part in splits.items()}},
        )  # fmt: skip
    return bundle


def ood_matrix(config: dict, table) -> np.ndarray:
    """What the OOD autoencoder reads: standardised numbers (NaN where missing) and one-hot categories."""
    x = features_of(config, table)
    n, cardinalities = config["layout"]["n_numeric"], config["layout"]["cardinalities"]
    numeric = x[:, :n].copy()
    numeric[x[:, n : 2 * n] > 0.5] = np.nan
    return np.concatenate([numeric, one_hot(x, n, cardinalities)[:, 2 * n :]], axis=1)


def _fit_ood(config: dict, train, val, seed: int, folder: Path) -> tuple[dict, dict[str, Path]]:
    """Mask-aware tabular autoencoder on the training rows; threshold = 99th percentile of validation errors."""
    from medai.reduce import Autoencoder, OODDetector

    x_train, x_val = ood_matrix(config, train), ood_matrix(config, val)
    code = int(min(8, max(2, x_train.shape[1] // 2)))
    autoencoder = Autoencoder("tabular", code_dim=code, epochs=100, batch_size=32, seed=seed, device="cpu").fit(x_train, x_val)
    ood, files = save_ood(autoencoder, OODDetector().fit(autoencoder, x_val, quantile=0.99), folder)
    ood["ranges"] = fit_ranges({name: train.columns[name] for name in train.numeric})  # a value outside: named
    return ood, files


def _table_for_bundle(bundle: ModelBundle, data, split: str, require_target: bool = True):
    import json

    check_choice("split", split, SPLITS)
    config = bundle.config
    settings = TabularSettings(**{**config["settings"], "target": config["target"]})
    table = load(data, settings, require_target=require_target, classes=config.get("classes"))
    if split == "all":
        return table
    saved = json.loads((bundle.path / "splits.json").read_text()) if bundle.path else {}
    wanted = set(saved.get(split, []))
    rows = np.flatnonzero(np.isin(table.ids, list(wanted)))
    if not wanted or len(rows) != len(wanted):
        raise InvalidInputError(
            f"The {split!r} split of the training data is not in this file; for another file use --split all."
        )
    return table.subset(rows)


def evaluate(bundle: ModelBundle, data, split: str = "test", *, bootstrap: int = 1000, plots_dir=None) -> dict:
    """Metrics on one split of the training file, or on every row of another file (``split="all"``)."""
    table = _table_for_bundle(bundle, data, split)
    probabilities = predict_proba(bundle.model, bundle.config, table)
    metrics = classification_metrics(probabilities, table.labels, bundle.label_names, bootstrap=bootstrap)
    if plots_dir is not None:
        save_evaluation_plots(probabilities, table.labels, bundle.label_names, Path(plots_dir))
    return metrics


def predict(bundle: ModelBundle, inputs: list, split: str = "all") -> list[dict]:
    """Label and calibrated probabilities for every row of each input table (the target column is optional); a row
    whose features are all missing is reported after the others as ``{"input", "error", "reason"}``."""
    results = []
    for item in inputs:
        table = _table_for_bundle(bundle, item, split, require_target=False)
        flags = ood_flags(bundle, ood_matrix(bundle.config, table), values=table.columns) or [None] * len(table)
        for record_id, row, flag in zip(table.ids, predict_proba(bundle.model, bundle.config, table), flags):
            best = int(np.argmax(row))
            result = {"input": str(record_id), "label": bundle.label_names[best],
                      "probabilities": {n: float(p) for n, p in zip(bundle.label_names, row)}}  # fmt: skip
            if flag is not None:
                result["ood"] = flag
            results.append(result)
        skipped = table.report.get("rows_without_features", []) if split == "all" else []  # a split: its rows only
        results += [{"input": f"row-{number}", "error": "skipped", "reason": "every feature is missing"}
                    for number in skipped]
    return results


def explain(bundle: ModelBundle, data, out, *, row: int = 0, target: str | None = None, split: str = "all", index=None) -> dict:
    """Per-patient explanation of row ``row``: each feature's Shapley contribution, written as a PNG bar chart."""
    from medai.explain.tabular import explain_row

    table = _table_for_bundle(bundle, data, split, require_target=False)
    row = row if index is None else index
    if not 0 <= row < len(table):
        raise InvalidInputError(f"--row must lie in [0, {len(table) - 1}] for this file; got {row}.")
    one = table.subset([row])
    names = bundle.label_names
    probabilities = predict_proba(bundle.model, bundle.config, one)[0]
    target_index = int(np.argmax(probabilities)) if target is None else names.index(check_choice("target", target, names))
    return explain_row(bundle, one, target_index, probabilities, out)


def cross_validate(data, settings: TabularSettings | None = None, *, folds: int = 10, seed: int = 0) -> dict:
    """Stratified k-fold cross-validation: AUROC and accuracy (the most probable class) per held-out fold (inner 15%
    validation split)."""
    from sklearn.model_selection import StratifiedKFold

    settings = (settings or TabularSettings()).validate()
    table = load(data, settings)
    aurocs, accuracies = [], []
    for fold, (rest, held) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(table.ids, table.labels)):
        inner = split_indices(table.labels[rest], None, (0.80, 0.15, 0.05), seed + fold)
        train_rows = rest[np.concatenate([inner["train"], inner["test"]])]
        model, config, _ = fit(table.subset(train_rows), table.subset(rest[inner["val"]]), settings)
        probabilities = predict_proba(model, config, table.subset(held))
        metrics = classification_metrics(probabilities, table.labels[held], bootstrap=0)
        aurocs.append(metrics["auroc"])
        accuracies.append(metrics["accuracy"])
    return {"model": settings.model, "folds": folds, "auroc_per_fold": aurocs, "auroc_mean": float(np.mean(aurocs)),
            "auroc_std": float(np.std(aurocs)), "accuracy_per_fold": accuracies, "accuracy_mean": float(np.mean(accuracies))}  # fmt: skip
