"""In-hospital mortality from the first 48 hours of an ICU stay (PhysioNet 2012 or MIMIC-III) -> bundle.

Data: a PhysioNet/CinC 2012 folder (``set-x/`` and ``Outcomes-x.txt``, or the set folder itself) or a MIMIC-III
folder, detected from its contents or named with ``format``. Records are hourly-binned, range-filtered (rejected
values counted in the report), then :class:`~medai.transforms.timeseries.TimeSeriesPreprocessor` (fitted on the
training split only, saved in config.json) adds masks, times since the last observation and static features.

The default model is an ensemble of different members, each trained on its own with its own settings and its
best epoch by validation AUROC, their probabilities averaged (``series_ensemble``): GRU-D networks (Che et al.
2018) and summary-statistics MLPs (``series_summary``). Probabilities are temperature-calibrated on the validation
split. Splits are by patient. ``cross_validate`` runs the benchmark's 5-fold cross-validation with these defaults.

Recipe, chosen on the inner validation splits (15% of each cross-validation fold's training part, by patient),
never on the held-out folds: mean inner-validation AUROC / AUPRC of 3 GRU-D 0.846 / 0.504, 3 summary MLPs
0.865 / 0.525, a linear summary model 0.851 / 0.482, 3 GRU-D + 3 summary MLPs 0.864 / 0.540 (the most diverse,
best AUPRC). A summary MLP trains in about 15 s and a GRU-D in about 60 s per fold on one CPU thread.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from medai.bundle import ModelBundle, save_bundle
from medai.data.sources.timeseries import RawSeries
from medai.engine.calibration import fit_temperature, softmax
from medai.engine.metrics import classification_metrics
from medai.engine.plots import save_evaluation_plots
from medai.engine.trainer import TrainerConfig
from medai.errors import InvalidInputError, check_choice
from medai.models import NETWORKS
from medai.models.series_summary import DEFAULT_STATISTICS
from medai.tasks import series_card
from medai.tasks import series_common as common
from medai.tasks.common import combine_fits, validation_metrics
from medai.transforms.timeseries import LABEL_NAMES, TimeSeriesPreprocessor

TASK = "mortality"
SPLITS = ("train", "val", "test", "all")
DEFAULT_MODEL = "ensemble"


@dataclass
class MortalitySettings:
    """Settings of ``medai train --task mortality``; the defaults are the benchmarked recipe (bench/timeseries.py)."""

    format: str = "auto"  # physionet2012, mimic3, or auto (from the folder's contents)
    hours: int = 48  # hourly bins from ICU admission
    model: str = DEFAULT_MODEL  # "ensemble" (GRU-D + summary MLP members below) or one registered series network
    ensemble: int | None = None  # GRU-D members of the default ensemble, or copies of --model (default 1)
    grud_hidden: int = 64
    grud_dropout: float = 0.3
    grud_epochs: int = 20
    grud_learning_rate: float = 1e-3
    grud_weight_decay: float = 1e-4
    grud_members: int = 3
    summary_members: int = 3  # summary-statistics MLPs (series_summary)
    summary_hidden: int = 64  # 0: a logistic regression on the statistics
    summary_dropout: float = 0.3
    summary_epochs: int = 40
    summary_learning_rate: float = 3e-3
    summary_weight_decay: float = 1e-2
    summary_statistics: list[str] = field(default_factory=lambda: list(DEFAULT_STATISTICS))
    epochs: int | None = None  # overrides every member's epochs
    learning_rate: float | None = None  # overrides every member's learning rate
    batch_size: int = 64
    patience: int | None = None
    validation_fraction: float = 0.15  # of the non-test records, by patient
    class_weight: str = "none"  # "balanced" weights the loss by inverse class frequency
    seed: int = 0
    device: str = "auto"
    num_threads: int = 1  # small RNNs run far faster on one thread than on several busy ones
    progress: bool = True

    def validate(self) -> MortalitySettings:
        check_choice("format", self.format, common.FORMATS)
        check_choice("class_weight", self.class_weight, ["none", "balanced"])
        if self.model != DEFAULT_MODEL and self.model not in NETWORKS.names("series"):
            check_choice("model", self.model, [DEFAULT_MODEL, *NETWORKS.names("series")])
        for name in ("grud_members", "summary_members"):
            if not 0 <= getattr(self, name) <= 20:
                raise InvalidInputError(f"The '{name}' parameter must be an int in [0, 20]; got {getattr(self, name)}.")
        if self.ensemble is not None and not 1 <= self.ensemble <= 20:
            raise InvalidInputError(f"The 'ensemble' parameter must be an int in [1, 20]; got {self.ensemble}.")
        if self.model == DEFAULT_MODEL and not (self.ensemble or self.grud_members) + self.summary_members:
            raise InvalidInputError("The default ensemble needs at least one member; set grud_members or summary_members.")
        if not 0.05 <= self.validation_fraction <= 0.5:
            raise InvalidInputError(f"The 'validation_fraction' parameter must lie in [0.05, 0.5]; got {self.validation_fraction}.")
        return self

    def members(self) -> list[tuple[dict, TrainerConfig]]:
        """(network spec, training settings) of every member."""
        if self.model != DEFAULT_MODEL:  # recurrent networks read the mask and the time since the last observation
            recurrent = self.model in ("gru", "stacked_lstm", "ecg_cnn1d")
            spec = {"network": self.model, **({"use_mask": True, "use_delta": True} if recurrent else {})}
            return [(spec, self._trainer(self.epochs or 20, self.learning_rate or 1e-3, 1e-4, i))
                    for i in range(self.ensemble or 1)]
        grud = {"network": "grud", "hidden": self.grud_hidden, "dropout": self.grud_dropout}
        summary = {"network": "series_summary", "hidden": self.summary_hidden, "dropout": self.summary_dropout,
                   "statistics": list(self.summary_statistics)}
        plan = [(grud, self.grud_epochs, self.grud_learning_rate, self.grud_weight_decay)] * (self.ensemble or self.grud_members)
        plan += [(summary, self.summary_epochs, self.summary_learning_rate, self.summary_weight_decay)] * self.summary_members
        return [(spec, self._trainer(epochs, lr, wd, i)) for i, (spec, epochs, lr, wd) in enumerate(plan)]

    def _trainer(self, epochs: int, learning_rate: float, weight_decay: float, index: int) -> TrainerConfig:
        return TrainerConfig(
            max_epochs=self.epochs or epochs, batch_size=self.batch_size, learning_rate=self.learning_rate or learning_rate,
            weight_decay=weight_decay, patience=self.patience, monitor="auroc", seed=self.seed + 1000 * index,
            device=self.device, num_threads=self.num_threads, progress=self.progress,
        )  # fmt: skip


Settings = MortalitySettings
build_model = common.build_model


# -- fit and predict --------------------------------------------------------------------------------------------


def fit(train: RawSeries, val: RawSeries, settings: MortalitySettings, checkpoints: Path | None = None):
    """Fit preprocessing (on ``train`` only), every member, and the temperature (on ``val``).

    Returns:
        (model, config, fit summary).
    """
    import torch

    if len(np.unique(train.labels)) < 2 or len(np.unique(val.labels)) < 2:
        raise InvalidInputError("The training and validation splits each need survivors and deaths; this data has "
                                f"{int(train.labels.sum() + val.labels.sum())} deaths in {len(train) + len(val)} stays.")
    preprocessor = TimeSeriesPreprocessor().fit(train)
    train_set, val_set = preprocessor.transform(train), preprocessor.transform(val)
    counts = np.bincount(train.labels, minlength=2)
    plan = settings.members()
    config = {
        "task": TASK, "task_type": "binary", "label_names": list(LABEL_NAMES), "hours": settings.hours,
        "network": "series_ensemble",
        "network_kwargs": {"members": [spec for spec, _ in plan], "n_features": len(preprocessor.variables_),
                           "n_outputs": 2, "n_static": int(train_set.extras["static"].shape[1])},
        "class_weight": (counts.sum() / (2 * np.maximum(counts, 1))).tolist() if settings.class_weight == "balanced" else None,
        "preprocessing": preprocessor.to_dict(), "settings": asdict(settings),
    }  # fmt: skip
    torch.manual_seed(settings.seed)
    model = build_model(config)
    fits = common.fit_members(model, train_set, val_set, [c for _, c in plan], metric_fn=validation_metrics,
                              checkpoints=checkpoints)
    val_logits = common.outputs(model.eval(), val_set, settings.device, settings.num_threads)
    config["calibration"] = {"method": "temperature", "fitted_on": "val",
                             "temperature": fit_temperature(val_logits, val.labels)}
    config["ood"] = common.fit_ood(train_set, val_set)
    return model, config, combine_fits(fits)


transform = common.stay_dataset  # the Dataset a bundle's model reads: (config, raw) -> one record per stay


def predict_proba(model, config: dict, raw: RawSeries, dataset=None) -> np.ndarray:
    """Calibrated (survived, died) probabilities of every stay, shape (n, 2)."""
    dataset = transform(config, raw) if dataset is None else dataset
    settings = config.get("settings", {})
    logits = common.outputs(model, dataset, settings.get("device", "cpu"), settings.get("num_threads", 1))
    return softmax(logits, config.get("calibration", {}).get("temperature", 1.0))


# -- train / evaluate / predict / explain -------------------------------------------------------------------------


def train(data, out, settings: MortalitySettings | None = None, **overrides) -> ModelBundle:
    """Train a mortality model on a PhysioNet 2012 or MIMIC-III folder and save it as a bundle in ``out``.

    Examples:
        >>> import medai
        >>> bundle = medai.train("mortality", "../shared/data/physionet2012_mortality", "runs/mortality")  # doctest: +SKIP
    """
    settings = MortalitySettings(**{**asdict(settings or MortalitySettings()), **overrides}).validate()
    raw = common.load_raw(data, settings.format, settings.hours)
    parts = common.split_records(raw.labels, raw.groups, settings.validation_fraction, settings.seed)
    splits = {name: raw.subset(index) for name, index in parts.items()}
    out = Path(out)
    checkpoints = out.with_name(f"{out.name}.checkpoint")
    started = time.perf_counter()
    model, config, summary = fit(splits["train"], splits["val"], settings, checkpoints)
    config["source"] = {"data": Path(str(data)).name, "format": raw.report["format"],
                        "split": "patient-level: test 20% (stratified group 5-fold), validation "
                                 f"{settings.validation_fraction:.0%} of the rest", "split_seed": settings.seed}
    metrics = {"fit": {**summary, "wall_seconds": time.perf_counter() - started}, "data": common.data_report(raw.report),
               "data_counts": common.report_counts(raw.report)}
    probabilities = {}
    for name in ("val", "test"):
        probabilities[name] = predict_proba(model, config, splits[name])
        metrics[name] = classification_metrics(probabilities[name], splits[name].labels, config["label_names"])
    with tempfile.TemporaryDirectory() as tmp:
        written = save_evaluation_plots(probabilities["test"], splits["test"].labels, config["label_names"], Path(tmp),
                                        history=summary["members"][0]["history"])
        card = series_card.mortality(config, metrics, {k: len(v) for k, v in splits.items()})
        bundle = save_bundle(out, model, config, metrics=metrics, card=card,
                             files={f"plots/{p.name}": p for p in written.values()},
                             json_files={"splits.json": {k: v.ids.tolist() for k, v in splits.items()}})
    shutil.rmtree(checkpoints, ignore_errors=True)
    return bundle


def evaluate(bundle: ModelBundle, data, split: str = "test", *, format: str = "auto", bootstrap: int = 1000,
             plots_dir=None) -> dict:
    """Metrics on one split of the training folder, or on every stay of another folder (``split="all"``)."""
    raw = common.load_for_bundle(bundle, data, split, format)
    raw = common.align(raw, TimeSeriesPreprocessor.from_dict(bundle.config["preprocessing"]).variables_)
    probabilities = predict_proba(bundle.model, bundle.config, raw)
    metrics = classification_metrics(probabilities, raw.labels, bundle.label_names, bootstrap=bootstrap)
    metrics["data"] = common.data_report(raw.report)
    metrics["data_counts"] = common.report_counts(raw.report)
    if plots_dir is not None:
        save_evaluation_plots(probabilities, raw.labels, bundle.label_names, Path(plots_dir))
    return metrics


def predict(bundle: ModelBundle, inputs: list, split: str = "all", format: str = "auto") -> list[dict]:
    """Risk of in-hospital death for every stay of each input (a record file, or a folder)."""
    results = []
    for item in inputs:
        raw = common.load_for_bundle(bundle, item, split, format, labelled=False)
        dataset = transform(bundle.config, raw)
        probabilities = predict_proba(bundle.model, bundle.config, raw, dataset)
        flags = common.stay_ood_flags(bundle.config, dataset)
        counts = common.report_counts(raw.report)
        for record_id, row, flag in zip(raw.ids, probabilities, flags):
            result = {"input": str(record_id), "label": bundle.label_names[int(np.argmax(row))], "risk": float(row[1]),
                      "probabilities": {n: float(p) for n, p in zip(bundle.label_names, row)}, "data": counts}
            if flag is not None:
                result["ood"] = flag
            results.append(result)
    return results


def explain(bundle: ModelBundle, item, out, *, target: str | None = None, index: int = 0, split: str = "all",
            format: str = "auto", window: int = 6) -> dict:
    """Integrated gradients for one stay: a variables x hours heat map at ``out`` and the top contributions."""
    from medai.explain import series as explain_series

    raw = common.load_for_bundle(bundle, item, split, format, labelled=False)
    if not 0 <= index < len(raw):
        raise InvalidInputError(f"--index must lie in [0, {len(raw) - 1}] for this input; got {index}.")
    one = transform(bundle.config, raw.subset([index]))
    probabilities = predict_proba(bundle.model, bundle.config, raw, one)[0]
    names = bundle.label_names
    target_index = names.index(check_choice("target", target, names)) if target else 1
    found = explain_series.integrated_gradients(bundle.model, one, target_index)
    preprocessor = TimeSeriesPreprocessor.from_dict(bundle.config["preprocessing"])
    variables, hours, observed = preprocessor.variables_, raw.hours, one.extras["mask"][0]
    title = f"Integrated gradients: log-odds of '{names[target_index]}' (p = {probabilities[target_index]:.2f})"
    explain_series.plot_heatmap(found["cells"], variables, hours, out, observed=observed, title=title,
                                colour_label=f"contribution to log-odds of '{names[target_index]}'")
    static = [] if found["static"] is None else sorted(
        ({"feature": n, "contribution": float(v)} for n, v in zip(preprocessor.static_feature_names_, found["static"])
         if v != 0.0),
        key=lambda s: -abs(s["contribution"]))
    return {
        "input": str(raw.ids[index]), "label": names[int(np.argmax(probabilities))], "risk": float(probabilities[1]),
        "probabilities": {n: float(p) for n, p in zip(names, probabilities)}, "explained_class": names[target_index],
        "method": "integrated gradients", "explained_output": "log-odds (before temperature scaling)",
        "baseline": "nothing observed: every value at the training mean, static features at the training mean",
        "output": found["output"], "baseline_output": found["baseline_output"],
        "convergence_delta": found["convergence_delta"], "heatmap": str(out),
        "top_variables": explain_series.top_variables(found["cells"], variables, observed),
        "top_windows": explain_series.top_windows(found["cells"], variables, hours, window),
        "windows": explain_series.window_totals(found["cells"], hours, window), "static": static[:8],
    }  # fmt: skip


# -- benchmark ----------------------------------------------------------------------------------------------------


def cross_validate(data, settings: MortalitySettings | None = None, *, folds: int = 5, seed: int = 0, log=None) -> dict:
    """Patient-level k-fold cross-validation with these settings: AUROC, AUPRC and seconds per held-out fold.

    Each fold trains on the rest with an inner patient-level validation split (best epochs, temperature); the
    held-out fold is only predicted.
    """
    settings = (settings or MortalitySettings()).validate()
    raw = common.load_raw(data, settings.format, settings.hours)
    rows = []
    for fold, (rest, held) in enumerate(common.cross_validation_folds(raw.labels, raw.groups, folds, seed)):
        started = time.perf_counter()
        train_rel, val_rel = common.inner_validation(raw.labels[rest], raw.groups[rest], settings.validation_fraction,
                                                     seed + fold)
        model, config, _ = fit(raw.subset(rest[train_rel]), raw.subset(rest[val_rel]), settings)
        metrics = classification_metrics(predict_proba(model, config, raw.subset(held)), raw.labels[held], bootstrap=0)
        rows.append({"fold": fold, "auroc": metrics["auroc"], "auprc": metrics["auprc"], "brier": metrics["brier"],
                     "ece": metrics["ece"], "n_test": len(held), "seconds": time.perf_counter() - started})
        if log is not None:
            log(rows[-1])
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("auroc", "auprc", "brier", "ece", "seconds")}
    return {"folds": rows, "mean": mean, "std": {k: float(np.std([r[k] for r in rows])) for k in ("auroc", "auprc")}}
