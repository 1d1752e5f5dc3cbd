"""Fitting the drug-recommendation models, their probabilities, and the validation-tuned decision threshold.

Models: ``drug_recommender`` (the default; ``medai.models.drugrec.DrugRecommender`` through the Trainer),
``most_frequent``, ``nearest_neighbour`` (torch modules holding fitted buffers) and ``logistic_regression`` (one
scikit-learn logistic regression per class on the current visit's codes, saved with skops).
"""

from __future__ import annotations

import numpy as np
import torch

from medai.ehr.metrics import pair_counts_matrix, visit_scores
from medai.engine.trainer import Trainer, TrainerConfig
from medai.models import NETWORKS
from medai.models.drugrec import BASELINES
from medai.tasks.common import epochs_for_steps
from medai.tasks.drugrec_data import CodeEncoder, EncodedVisit, VisitSamples, collate_histories

DEEP = "drug_recommender"
MODELS = (DEEP, "most_frequent", "logistic_regression", "nearest_neighbour")
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.025), 3)
STEPS = 700  # optimiser steps the default number of epochs aims at
CHUNK = 64  # inference batch: fixed, so one history's output never depends on its batch-mates' count


def build_model(config: dict):
    """Rebuild the (unfitted) torch model a config.json describes (logistic regression loads from skops instead)."""
    kwargs = config["network_kwargs"]
    if config["network"] in BASELINES:
        return BASELINES[config["network"]](**kwargs)
    if config["network"] == "ensemble":
        return DrugEnsemble([NETWORKS.create(DEEP, **kwargs) for _ in range(config["ensemble"])])
    return NETWORKS.create(config["network"], **kwargs)


class DrugEnsemble(torch.nn.Module):
    """Mean of members' probabilities, returned as logits: {"logits": (batch, classes)}."""

    def __init__(self, members: list[torch.nn.Module]):
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, batch: dict) -> dict:
        mean = torch.stack([torch.sigmoid(m(batch)["logits"]) for m in self.members]).mean(0)
        return {"logits": torch.logit(mean.clamp(1e-6, 1 - 1e-6))}


def fit_model(train: VisitSamples, val: VisitSamples, encoder: CodeEncoder, ddi: np.ndarray, settings, ddi_target: float):
    """Fit ``settings.model`` on ``train`` (epochs selected on ``val``); returns (model, config fragment, summary)."""
    frequency = train.labels.mean(0)
    name = settings.model
    if name == "most_frequent":
        model = BASELINES[name](n_medications=train.n_classes)
        model.frequency.copy_(torch.from_numpy(frequency))
        return model, {"network": name, "network_kwargs": {"n_medications": train.n_classes}}, {"model": name}
    if name == "nearest_neighbour":
        kwargs = {"n_diagnoses": encoder.size("diagnoses"), "n_medications": train.n_classes, "n_visits": len(train),
                  "k": settings.neighbours}  # fmt: skip
        model = BASELINES[name](**kwargs)
        model.diagnoses.copy_(torch.from_numpy(design_matrix(train.histories, encoder, kinds=("diagnoses",))).to(torch.uint8))
        model.medications.copy_(torch.from_numpy(train.labels).to(torch.uint8))
        return model, {"network": name, "network_kwargs": kwargs}, {"model": name}
    if name == "logistic_regression":
        return _fit_logistic(train, encoder, settings), {"network": name, "network_kwargs": {}}, {"model": name}
    return _fit_deep(train, val, encoder, ddi, settings, ddi_target, frequency)


def _fit_deep(train, val, encoder, ddi, settings, ddi_target, frequency):
    kwargs = {
        "n_diagnoses": encoder.size("diagnoses"), "n_procedures": encoder.size("procedures"),
        "n_medications": train.n_classes, "embedding": settings.embedding, "hidden": settings.hidden,
        "dropout": settings.dropout, "use_medications": settings.use_medications, "wide": settings.wide, "code_dropout": settings.code_dropout,
        "margin_weight": settings.margin_weight,
        "ddi_target": float(ddi_target), "ddi_weight": settings.ddi_weight, "ddi_kp": settings.ddi_kp,
    }  # fmt: skip
    members, fits = [], []
    residual = getattr(settings, "residual", False) and settings.wide
    linear = _logistic_weights(train, encoder, settings) if residual else None
    epochs = settings.epochs or epochs_for_steps(len(train), settings.batch_size, STEPS, 10, 100)
    for index in range(settings.ensemble):
        torch.manual_seed(settings.seed + 1000 * index)
        member = NETWORKS.create(DEEP, **kwargs)
        with torch.no_grad():  # start from the training frequencies: an untrained network recommends the usual set
            member.output[-1].bias.copy_(torch.logit(torch.from_numpy(frequency).clamp(1e-3, 1 - 1e-3)))
            member.ddi.copy_(torch.from_numpy(ddi))
            if linear is not None:
                start_from_logistic(member, *linear, encoder)
        config = TrainerConfig(
            max_epochs=epochs, batch_size=settings.batch_size, learning_rate=settings.learning_rate,
            weight_decay=settings.weight_decay, patience=settings.patience, monitor=settings.monitor,
            seed=settings.seed + 1000 * index, device=settings.device, num_threads=settings.num_threads,
            eval_batch_size=CHUNK, progress=settings.progress,
        )  # fmt: skip
        epoch_counter = iter(range(1, 10**9))  # monitor "last": every epoch beats the one before, so the last is kept

        def metric_fn(logits, labels, _counter=epoch_counter):
            return {**validation_metrics(logits, labels), "last": float(next(_counter))}

        fits.append(Trainer(config, metric_fn=metric_fn).fit(member, train, val).to_dict())
        members.append(member.cpu().eval())
    summary = {"model": DEEP, "members": fits, "best_epochs": [f["best_epoch"] for f in fits],
               "train_seconds": sum(f["train_seconds"] for f in fits)}  # fmt: skip
    if len(members) == 1:
        return members[0], {"network": DEEP, "network_kwargs": kwargs}, summary
    return DrugEnsemble(members).eval(), {"network": "ensemble", "ensemble": len(members), "network_kwargs": kwargs}, summary


def validation_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Per-epoch selection metrics: PRAUC and the best Jaccard over the threshold grid (visit averages)."""
    probabilities = 1 / (1 + np.exp(-logits))
    scores = visit_scores(labels, probabilities >= 0.5, probabilities)
    best = max(float(visit_scores(labels, probabilities >= t, probabilities)["jaccard"].mean()) for t in THRESHOLDS[::4])
    return {"prauc": float(scores["prauc"].mean()), "jaccard": best}


def design_matrix(histories: list[list[EncodedVisit]], encoder: CodeEncoder, kinds=("diagnoses", "procedures")) -> np.ndarray:
    """Multi-hot codes of each history's current visit, (n, sum of the kinds' vocabulary sizes) float32."""
    widths = [encoder.size(k) for k in kinds]
    offsets = np.concatenate([[0], np.cumsum(widths)[:-1]])
    out = np.zeros((len(histories), sum(widths)), np.float32)
    for row, history in enumerate(histories):
        for kind, offset in zip(kinds, offsets):
            out[row, getattr(history[-1], kind) - 1 + offset] = 1.0
    return out


def start_from_logistic(member, coef: np.ndarray, intercept: np.ndarray, encoder: CodeEncoder) -> None:
    """Make ``member`` the fitted logistic regression plus a residual: its wide path gets the regression's
    coefficients and is frozen, its output layer gets the intercepts and zero weights (so the untrained network
    predicts exactly what the regression does, and training only learns what the GRU adds)."""
    start = 0
    with torch.no_grad():
        for kind in ("diagnoses", "procedures"):
            width = encoder.size(kind)
            member.wide[kind].weight[1:].copy_(torch.from_numpy(coef[:, start : start + width].T))
            start += width
        for bag in member.wide.values():
            bag.weight.requires_grad_(False)
        member.output[-1].weight.zero_()
        member.output[-1].bias.copy_(torch.from_numpy(intercept))


def _logistic_weights(train: VisitSamples, encoder: CodeEncoder, settings) -> tuple[np.ndarray, np.ndarray]:
    """The logistic-regression baseline's coefficients (classes, design columns) and intercepts (classes,), float32.

    A class given at every training visit (a constant predictor in scikit-learn) gets no coefficients and a large
    intercept."""
    estimator = _fit_logistic(train, encoder, settings)
    width = sum(encoder.size(k) for k in ("diagnoses", "procedures"))
    coef = np.zeros((train.n_classes, width), np.float32)
    intercept = np.full(train.n_classes, 6.0, np.float32)
    for index, fitted in enumerate(estimator.estimators_):
        if hasattr(fitted, "coef_"):
            coef[index], intercept[index] = fitted.coef_[0], fitted.intercept_[0]
    return coef, intercept


def _fit_logistic(train: VisitSamples, encoder: CodeEncoder, settings):
    import warnings

    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    design = csr_matrix(design_matrix(train.histories, encoder))
    estimator = OneVsRestClassifier(LogisticRegression(C=settings.logistic_c, max_iter=2000))
    with warnings.catch_warnings():  # a class given at every training visit gets a constant predictor, as intended
        warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
        return estimator.fit(design, train.labels.astype(int))


def probabilities(model, config: dict, histories: list[list[EncodedVisit]], encoder: CodeEncoder) -> np.ndarray:
    """Probability of each output class for each history, (n, classes) float64."""
    if not histories:
        return np.zeros((0, len(config["label_names"])))
    if not isinstance(model, torch.nn.Module):
        from scipy.sparse import csr_matrix

        return np.asarray(model.predict_proba(csr_matrix(design_matrix(histories, encoder))), dtype=float)
    model.eval()
    outputs = []
    with torch.no_grad():
        for begin in range(0, len(histories), CHUNK):
            chunk = histories[begin : begin + CHUNK]
            padded = chunk + [chunk[0]] * (CHUNK - len(chunk))
            outputs.append(torch.sigmoid(model(collate_histories(padded))["logits"][: len(chunk)]).double().numpy())
    return np.concatenate(outputs)


def tune_threshold(labels: np.ndarray, probabilities: np.ndarray, patients: np.ndarray, ddi: np.ndarray,
                   ddi_cap: float | None) -> dict:  # fmt: skip
    """The threshold with the best validation Jaccard (patient-averaged) whose DDI rate stays within ``ddi_cap``.

    Without a threshold that meets the cap (or with ``ddi_cap`` None) the best Jaccard wins.
    """
    _, groups = np.unique(patients, return_inverse=True)
    rows = []
    for threshold in THRESHOLDS:
        chosen = probabilities >= threshold
        jaccard = visit_scores(labels, chosen, probabilities)["jaccard"]
        per_patient = np.bincount(groups, jaccard) / np.bincount(groups)
        interacting, pairs = pair_counts_matrix(chosen, ddi)
        rate = float(interacting.sum() / pairs.sum()) if pairs.sum() else 0.0
        rows.append((float(per_patient.mean()), float(threshold), rate))  # ties: the higher threshold
    allowed = [r for r in rows if ddi_cap is None or r[2] <= ddi_cap] or rows
    jaccard, threshold, rate = max(allowed)
    return {"threshold": threshold, "val_jaccard": jaccard, "val_ddi_rate": rate, "ddi_cap": ddi_cap}
