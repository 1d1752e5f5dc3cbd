"""Medication-recommendation metrics as GAMENet and SafeDrug compute them, with bootstrap intervals over patients.

Per visit (SafeDrug's ``multi_label_metric``): Jaccard of the recommended and the prescribed sets, F1 from that
visit's precision and recall, PRAUC (average precision of the probabilities). Each is averaged over a patient's visits,
then over patients. The number of drugs is averaged over visits, and the DDI rate pools the pairs of every visit
(``ddi_rate_score``). Confidence intervals resample patients with replacement and recompute each figure.

Examples:
    >>> import numpy as np
    >>> truth = np.array([[1, 1, 0, 0], [0, 1, 1, 0]])
    >>> chosen = np.array([[1, 0, 1, 0], [0, 1, 1, 0]])
    >>> probs = np.array([[0.9, 0.2, 0.6, 0.1], [0.1, 0.8, 0.7, 0.2]])
    >>> m = recommendation_metrics(truth, chosen, probs, ["p1", "p2"], bootstrap=0)
    >>> round(m["jaccard"], 4), round(m["f1"], 4), m["avg_drugs"]
    (0.6667, 0.75, 2.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

HEADLINE = ("jaccard", "f1", "prauc", "avg_drugs", "ddi_rate", "ddi_rate_ground_truth")


def visit_scores(truth: np.ndarray, chosen: np.ndarray, probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """Per-visit Jaccard, F1, PRAUC and number of recommended drugs.

    Args:
        truth: 0/1 array of shape (n_visits, n_classes), the prescribed classes.
        chosen: 0/1 array of shape (n_visits, n_classes), the recommended classes.
        probabilities: array of shape (n_visits, n_classes).

    Returns:
        ``{"jaccard", "f1", "prauc", "n_drugs"}``, each of shape (n_visits,). An empty union scores 0, as in SafeDrug.
    """
    truth, chosen = np.asarray(truth) > 0, np.asarray(chosen) > 0
    overlap = (truth & chosen).sum(1)
    union = (truth | chosen).sum(1)
    n_true, n_chosen = truth.sum(1), chosen.sum(1)
    jaccard = np.divide(overlap, union, out=np.zeros(len(truth)), where=union > 0)
    precision = np.divide(overlap, n_chosen, out=np.zeros(len(truth)), where=n_chosen > 0)
    recall = np.divide(overlap, n_true, out=np.zeros(len(truth)), where=n_true > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(len(truth)), where=total > 0)
    return {"jaccard": jaccard, "f1": f1, "prauc": average_precision(truth, probabilities), "n_drugs": n_chosen.astype(float)}


def average_precision(truth: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Average precision of each row (sklearn's ``average_precision_score`` per visit; 0 without positives), (n,)."""
    order = np.argsort(-np.asarray(probabilities, dtype=float), axis=1, kind="stable")
    hits = np.take_along_axis(np.asarray(truth) > 0, order, axis=1)  # (n, classes) in rank order
    ranks = np.arange(1, hits.shape[1] + 1)
    precision_at_hit = np.cumsum(hits, axis=1) / ranks * hits
    positives = hits.sum(1)
    return np.divide(precision_at_hit.sum(1), positives, out=np.zeros(len(hits)), where=positives > 0)


def recommendation_metrics(
    truth: np.ndarray,
    chosen: np.ndarray,
    probabilities: np.ndarray,
    patients: Sequence[str],
    *,
    ddi_matrix: np.ndarray | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """Headline metrics and 95% bootstrap intervals (resampling patients).

    Args:
        truth, chosen, probabilities: arrays of shape (n_visits, n_classes), as in :func:`visit_scores`.
        patients: the patient of each visit, length n_visits.
        ddi_matrix: symmetric 0/1 array of shape (n_classes, n_classes) aligned with the columns; without it the
            DDI rates are left out.
        bootstrap: resamples for the intervals (0: none).

    Returns:
        ``jaccard``, ``f1``, ``prauc``, ``avg_drugs`` (and ``ddi_rate``, ``ddi_rate_ground_truth``), each with a
        ``<name>_ci`` ``[low, high]`` when ``bootstrap`` > 0, plus ``n_patients`` and ``n_visits``.
    """
    scores = visit_scores(truth, chosen, probabilities)
    _, patient_index = np.unique(np.asarray(patients), return_inverse=True)
    n_patients = int(patient_index.max()) + 1 if len(patient_index) else 0
    per_patient = {k: _sums(v, patient_index, n_patients) for k, v in scores.items()}
    visits = _sums(np.ones(len(patient_index)), patient_index, n_patients)
    pairs = {}
    if ddi_matrix is not None:
        for name, sets in (("ddi_rate", chosen), ("ddi_rate_ground_truth", truth)):
            interacting, total = pair_counts_matrix(sets, ddi_matrix)
            pairs[name] = (_sums(interacting, patient_index, n_patients), _sums(total, patient_index, n_patients))

    def summarise(weights: np.ndarray) -> dict:
        kept = weights > 0
        out = {k: float(np.average(v[kept] / visits[kept], weights=weights[kept])) for k, v in per_patient.items()
               if k != "n_drugs"}  # fmt: skip
        out["avg_drugs"] = float((per_patient["n_drugs"] * weights).sum() / (visits * weights).sum())
        for name, (interacting, total) in pairs.items():
            denominator = (total * weights).sum()
            out[name] = float((interacting * weights).sum() / denominator) if denominator else 0.0
        return out

    result = summarise(np.ones(n_patients)) if n_patients else {}
    if bootstrap and n_patients > 1:
        rng = np.random.default_rng(seed)
        draws = [summarise(np.bincount(rng.integers(0, n_patients, n_patients), minlength=n_patients).astype(float))
                 for _ in range(bootstrap)]  # fmt: skip
        for key in list(result):
            values = np.array([d[key] for d in draws])
            result[f"{key}_ci"] = [float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))]
    return {**result, "n_patients": n_patients, "n_visits": len(patient_index)}


def pair_counts_matrix(sets: np.ndarray, ddi_matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(interacting pairs, all pairs) of each row of a 0/1 array of shape (n_visits, n_classes), each (n_visits,)."""
    sets = (np.asarray(sets) > 0).astype(np.float64)
    matrix = (np.asarray(ddi_matrix) > 0).astype(np.float64)
    np.fill_diagonal(matrix, 0.0)
    interacting = np.einsum("ni,ij,nj->n", sets, matrix, sets) / 2
    size = sets.sum(1)
    return np.rint(interacting), size * (size - 1) / 2


def _sums(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    return np.bincount(groups, weights=np.asarray(values, dtype=float), minlength=n_groups)
