"""Medication recommendation from EHR visits (MIMIC-III schema), checked against drug-drug interactions -> bundle.

Data: a MIMIC-III folder (loaded and de-identified by ``medai.ehr.mimic.load_cohort``) or a ``Cohort``. Each visit
with medications is one sample: its own and the earlier visits' diagnoses and procedures (and the earlier visits'
medications) predict its ATC level-3 classes (GAMENet's protocol). Splits are by patient (seeded; saved in
splits.json). Vocabularies are fitted on the training split only.

Models (``model``): ``drug_recommender`` (default; GRU over visits with a SafeDrug-style DDI-aware loss),
``most_frequent``, ``logistic_regression`` (per class, current visit's codes) and ``nearest_neighbour`` (Jaccard
similarity of diagnosis sets). The decision threshold is the one with the best validation Jaccard among those whose
validation DDI rate stays at or below the training split's ground-truth rate (``ddi_cap``).

Recipe (bench/drug_recommendation.py --select; bench/results/2026-11-29-drug_recommendation-selection.json), chosen
on the inner validation parts of the demo's 5-fold cross-validation only: a wide-and-deep GRU recommender whose wide
path is the logistic-regression baseline, fitted first and frozen, so the GRU learns only a residual on top of it
(``residual``), with 20% of codes dropped from training batches; 5 seeds averaged, learning rate 1e-2 for about 700
steps (100 epochs on the demo), best epoch on validation Jaccard. Mean inner-validation Jaccard with the threshold
taken from the other folds' inner validation parts (the fair comparison; tuned on the scored part in brackets): this
recipe 0.495 (0.511), the previous recipe without the residual 0.489 (0.504), logistic regression 0.495 (0.499).
On 100 patients these differences are within noise; see the benchmark's held-out figures.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from medai.bundle import ModelBundle, save_bundle
from medai.ehr.ddi import SOURCES, class_names, load_ddi
from medai.ehr.metrics import pair_counts_matrix, recommendation_metrics
from medai.ehr.records import Cohort
from medai.errors import InvalidInputError, check_choice
from medai.tasks import drugrec_fit
from medai.tasks.drugrec_data import CodeEncoder, VisitSamples, cohort_fingerprint, split_patients, subset
from medai.tasks.drugrec_fit import MODELS, fit_model, probabilities, tune_threshold

TASK = "drug-recommendation"
SPLITS = ("train", "val", "test", "all")
# What a bundle takes, saved in config.json for forms and services (medai.service.inference.input_spec): a visit
# history, one record per visit (earliest first, the last the current one), written as the patient JSON ``predict``
# reads; known codes and descriptions are read from the config paths ``codes_from`` / ``descriptions_from``.
INPUT_SPEC = {
    "kind": "history", "suffixes": [".json"], "record": "visit",
    "fields": [
        {"name": "diagnoses", "type": "codes", "label": "Diagnoses", "system": "ICD-9-CM", "required": True,
         "codes_from": "encoder.diagnoses", "descriptions_from": "descriptions.diagnoses"},
        {"name": "procedures", "type": "codes", "label": "Procedures", "system": "ICD-9-CM",
         "codes_from": "encoder.procedures", "descriptions_from": "descriptions.procedures"},
        {"name": "medications", "type": "codes", "label": "Medications given", "system": "ATC level 3",
         "earlier_visits_only": True, "codes_from": "encoder.medications", "descriptions_from": "class_names"},
    ],
}  # fmt: skip


@dataclass
class DrugRecommendationSettings:
    """Settings of ``medai train --task drug-recommendation``; the defaults are the benchmarked recipe."""

    model: str = drugrec_fit.DEEP  # drug_recommender, most_frequent, logistic_regression or nearest_neighbour
    embedding: int = 64  # code embedding width
    hidden: int = 64  # GRU width
    dropout: float = 0.3
    use_medications: bool = True  # read the previous visit's medication classes
    wide: bool = True  # add a linear path from the current visit's codes (wide and deep)
    residual: bool = True  # wide path = the fitted logistic-regression baseline, frozen; the GRU learns a residual
    code_dropout: float = 0.2  # share of codes dropped at random from training batches
    margin_weight: float = 0.05  # multi-label margin share of the accuracy loss (SafeDrug 0.05)
    ddi_source: str = "gamenet"  # DDI graph: gamenet (151 classes) or safedrug (112)
    ddi_target: float | None = None  # DDI rate the loss steers below; None: the training split's ground-truth rate
    ddi_weight: float = 0.05  # scale of the expected-interacting-pairs penalty
    ddi_kp: float = 0.05  # SafeDrug's kp
    ddi_cap: bool = True  # threshold must keep the validation DDI rate <= the training ground-truth rate
    epochs: int | None = None  # None: about 700 optimiser steps, within [10, 100] epochs (100 on the MIMIC-III demo)
    batch_size: int = 16
    learning_rate: float = 1e-2
    weight_decay: float = 1e-3
    patience: int | None = None
    monitor: str = "jaccard"  # validation metric selecting the best epoch: jaccard, prauc, loss or last (no selection)
    ensemble: int = 5  # deep recommenders averaged (different seeds)
    neighbours: int = 5  # nearest_neighbour: training visits voting
    logistic_c: float = 1.0  # logistic_regression: inverse regularisation strength
    min_count: int = 1  # codes seen in fewer training visits are unknown
    max_visits: int = 20  # the most recent visits read per sample
    test_fraction: float = 0.2  # of patients
    validation_fraction: float = 0.15  # of the non-test patients
    deidentify: bool = True  # pseudonymise ids and shift dates at ingestion
    seed: int = 0
    device: str = "cpu"
    num_threads: int = 1
    progress: bool = True

    def validate(self) -> DrugRecommendationSettings:
        check_choice("model", self.model, MODELS)
        check_choice("ddi_source", self.ddi_source, SOURCES)
        check_choice("monitor", self.monitor, ["jaccard", "prauc", "loss", "last"])
        for name, low, high in (("test_fraction", 0.0, 0.5), ("validation_fraction", 0.05, 0.5), ("dropout", 0.0, 0.9)):
            if not low <= getattr(self, name) <= high:
                raise InvalidInputError(f"The '{name}' parameter must lie in [{low}, {high}]; got {getattr(self, name)}.")
        if self.epochs is not None and (not isinstance(self.epochs, int) or self.epochs < 1):
            raise InvalidInputError(f"The 'epochs' parameter must be an int >= 1 or None; got {self.epochs!r}.")
        for name in ("embedding", "hidden", "batch_size", "ensemble", "neighbours", "min_count", "max_visits"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InvalidInputError(f"The '{name}' parameter must be an int >= 1; got {getattr(self, name)!r}.")
        return self


Settings = DrugRecommendationSettings
build_model = drugrec_fit.build_model


# -- data -------------------------------------------------------------------------------------------------------


def load_cohort(data, settings: DrugRecommendationSettings | None = None) -> Cohort:
    """A Cohort as given, or a MIMIC-III folder loaded (and de-identified) with ``medai.ehr.mimic.load_cohort``."""
    if isinstance(data, Cohort):
        return data
    from medai.ehr.mimic import load_cohort as load_mimic

    settings = settings or DrugRecommendationSettings()
    return load_mimic(data, deidentify=settings.deidentify, vocabulary=settings.ddi_source)


# -- fit --------------------------------------------------------------------------------------------------------


def fit(train: Cohort, val: Cohort, settings: DrugRecommendationSettings) -> tuple[object, dict, dict]:
    """Fit vocabularies and the model on ``train``, select epochs and the threshold on ``val``.

    Returns:
        (model, config, fit summary).
    """
    settings.validate()
    encoder = CodeEncoder(settings.min_count).fit(train)
    train_set = VisitSamples(train, encoder, max_visits=settings.max_visits)
    val_set = VisitSamples(val, encoder, max_visits=settings.max_visits)
    if len(train_set) < 2 or not len(val_set) or encoder.size("medications") < 1:
        raise InvalidInputError(f"Training needs >= 2 training and >= 1 validation visits with mapped medications; got "
                                f"{len(train_set)} and {len(val_set)}.")  # fmt: skip
    labels = encoder.medications_
    ddi = load_ddi(settings.ddi_source).aligned(labels)
    interacting, pairs = pair_counts_matrix(train_set.labels, ddi)
    truth_rate = float(interacting.sum() / pairs.sum()) if pairs.sum() else 0.0
    target = settings.ddi_target if settings.ddi_target is not None else truth_rate
    model, config, summary = fit_model(train_set, val_set, encoder, ddi, settings, target)
    descriptions = {kind: {c: text for c in getattr(encoder, f"{kind}_") if (text := train.descriptions.get(kind, {}).get(c))}
                    for kind in ("diagnoses", "procedures")}  # fmt: skip
    config.update({
        "task": TASK, "label_names": labels, "encoder": encoder.to_dict(), "descriptions": descriptions,
        "class_names": {c: class_names().get(c, "") for c in labels}, "settings": asdict(settings),
        "ddi": {"source": settings.ddi_source, "ground_truth_rate_train": truth_rate, "loss_target": target},
        "input_spec": INPUT_SPEC,
    })  # fmt: skip
    val_probabilities = probabilities(model, config, val_set.histories, encoder)
    config["threshold"] = tune_threshold(val_set.labels, val_probabilities, val_set.patients, ddi,
                                         truth_rate if settings.ddi_cap else None)  # fmt: skip
    summary["samples"] = {"train": len(train_set), "val": len(val_set)}
    return model, config, summary


def score(model, config: dict, cohort: Cohort, *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """Recommendation metrics of a fitted model on every visit with medications in ``cohort``.

    Prescribed classes outside the model's output classes count as missed (probability 0), so they lower Jaccard,
    F1 and PRAUC and enter the ground-truth DDI rate.
    """
    found = outputs(model, config, cohort)
    ddi = load_ddi(config["ddi"]["source"]).aligned(found["columns"])
    metrics = recommendation_metrics(found["truth"], found["chosen"], found["scores"], found["patients"], ddi_matrix=ddi,
                                     bootstrap=bootstrap, seed=seed)  # fmt: skip
    metrics["unknown_codes"] = found["unknown"]
    metrics["classes_outside_model"] = len(found["columns"]) - len(config["label_names"])
    return metrics


def outputs(model, config: dict, cohort: Cohort) -> dict:
    """Prescribed (``truth``), recommended (``chosen``) and probabilities (``scores``), each (visits, columns), for
    every visit with medications; ``columns`` are the output classes then the prescribed classes outside them."""
    encoder = CodeEncoder.from_dict(config["encoder"])
    samples = VisitSamples(cohort, encoder, max_visits=config["settings"]["max_visits"])
    if not len(samples):
        raise InvalidInputError("No visit with mapped medications to evaluate on in this data.")
    labels = list(config["label_names"])
    columns = labels + sorted({c for t in samples.targets for c in t} - set(labels))
    index = {c: i for i, c in enumerate(columns)}
    truth = np.zeros((len(samples), len(columns)), np.float32)
    for row, target in enumerate(samples.targets):
        truth[row, [index[c] for c in target]] = 1.0
    scores = np.zeros(truth.shape)
    scores[:, : len(labels)] = probabilities(model, config, samples.histories, encoder)
    return {"columns": columns, "truth": truth, "scores": scores, "chosen": scores >= config["threshold"]["threshold"],
            "patients": samples.patients, "unknown": samples.unknown}  # fmt: skip


# -- train / evaluate / predict / explain -------------------------------------------------------------------------


def train(data, out, settings: DrugRecommendationSettings | None = None, **overrides) -> ModelBundle:
    """Train on a MIMIC-III folder (patient-level split, seeded) and save the bundle in ``out``.

    Examples:
        >>> import medai
        >>> bundle = medai.train("drug-recommendation", "../shared/data/mimic3_demo", "runs/drugrec")  # doctest: +SKIP
    """
    from medai.tasks.drugrec_card import render

    settings = DrugRecommendationSettings(**{**asdict(settings or DrugRecommendationSettings()), **overrides}).validate()
    cohort = load_cohort(data, settings)
    parts = split_patients(len(cohort.patients), settings.test_fraction, settings.validation_fraction, settings.seed)
    cohorts = {name: subset(cohort, positions) for name, positions in parts.items()}
    started = time.perf_counter()
    model, config, summary = fit(cohorts["train"], cohorts["val"], settings)
    summary["wall_seconds"] = time.perf_counter() - started
    config["source"] = {"data": Path(str(data)).name if not isinstance(data, Cohort) else "cohort",
                        "split": f"patient-level: test {settings.test_fraction:.0%}, validation "
                                 f"{settings.validation_fraction:.0%} of the rest", "split_seed": settings.seed}  # fmt: skip
    metrics = {"fit": summary, "data": cohort.report}
    for name in ("val", "test"):
        if cohorts[name].patients:
            metrics[name] = score(model, config, cohorts[name], seed=settings.seed)
    sizes = {name: len(c.patients) for name, c in cohorts.items()}
    splits = {**parts, "by": "position in the loaded cohort", "fingerprint": cohort_fingerprint(cohort),
              "n_patients": len(cohort.patients)}  # fmt: skip
    return save_bundle(out, model, config, metrics=metrics, card=render(config, metrics, sizes),
                       json_files={"splits.json": splits})  # fmt: skip


def _cohort_for_bundle(bundle: ModelBundle, data, split: str) -> Cohort:
    import json

    check_choice("split", split, SPLITS)
    settings = DrugRecommendationSettings(**bundle.config["settings"])
    cohort = load_cohort(data, settings)
    if split == "all":
        return cohort
    saved = json.loads((bundle.path / "splits.json").read_text()) if bundle.path else {}
    if saved.get("fingerprint") != cohort_fingerprint(cohort):
        raise InvalidInputError(f"The {split!r} split belongs to the data this model was trained on, and this data "
                                "differs from it (codes or patients changed); for other data use --split all.")  # fmt: skip
    return subset(cohort, saved[split])


def evaluate(bundle: ModelBundle, data, split: str = "test", *, bootstrap: int = 1000, plots_dir=None, **_) -> dict:
    """Jaccard, F1, PRAUC, DDI rate (recommended and prescribed) and drugs per visit, with 95% CIs over patients."""
    return score(bundle.model, bundle.config, _cohort_for_bundle(bundle, data, split), bootstrap=bootstrap)


def recommend(bundle: ModelBundle, patient, *, interaction_free: bool = False, top: int = 20, evidence: int = 3) -> dict:
    """Ranked classes, evidence and interaction warnings for one patient (a Patient, a dict or a JSON file)."""
    from medai.ehr.mimic import load_patient_json
    from medai.ehr.records import Patient
    from medai.tasks.drugrec_explain import recommend_patient

    record = patient if isinstance(patient, Patient) else load_patient_json(patient)
    if not record.visits:
        raise InvalidInputError("The patient has no visits; give at least one visit with diagnosis or procedure codes.")
    result = recommend_patient(bundle.model, bundle.config, record, interaction_free=interaction_free, top=top,
                               evidence=evidence)  # fmt: skip
    return {"input": str(patient) if isinstance(patient, (str, Path)) else "patient", **result}


def recommend_from_bundle(path, patient, **options) -> dict:
    """``recommend`` for the bundle folder at ``path`` (which must be a drug-recommendation bundle)."""
    from medai.bundle import load_bundle

    bundle = load_bundle(path)
    if bundle.task != TASK:
        raise InvalidInputError(f"{path} is a {bundle.task!r} bundle; `medai recommend` needs a {TASK!r} bundle.")
    return recommend(bundle, patient, **options)


def predict(bundle: ModelBundle, inputs: list, interaction_free: bool = False, **_) -> list[dict]:
    """One recommendation per patient JSON file in ``inputs``."""
    return [recommend(bundle, item, interaction_free=interaction_free) for item in inputs]


def explain(bundle: ModelBundle, item, out, *, target: str | None = None, **_) -> dict:
    """Recommendation with evidence for one patient JSON file; a bar chart of one class's evidence at ``out``."""
    from medai.tasks.drugrec_card import evidence_chart

    result = recommend(bundle, item)
    chosen = result["recommended"]
    if target is not None:
        check_choice("target", target, [r["class"] for r in chosen])
    explained = next((r for r in chosen if r["class"] == target), chosen[0] if chosen else None)
    evidence_chart(explained, Path(out))
    label = ", ".join(r["class"] for r in chosen) or "no class above the threshold"
    return {**result, "label": label, "explained_class": explained["class"] if explained else None}
