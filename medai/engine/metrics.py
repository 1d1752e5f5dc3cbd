"""Evaluation metrics for classification and regression, returned as flat JSON-ready dicts.

Every value is a python ``int``, ``float``, ``list`` or ``None``: a metric that is undefined on the given data
(for example AUROC when the labels hold a single class) is ``None`` (JSON ``null``) instead of ``nan``.
scikit-learn computes each metric where it has a function for it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from sklearn import metrics as sk

from medai.errors import InvalidInputError

SUM_TOLERANCE = 1e-3  # how far a row of probabilities may sum away from 1
CI_PERCENTILES = (2.5, 97.5)  # percentile bootstrap bounds of the 95% confidence interval


def check_scores_and_labels(
    scores: np.ndarray, labels: np.ndarray, name: str = "probabilities"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a score matrix and its integer labels; return them as float64 and int64 arrays.

    Args:
        scores: Array of shape (n_samples, n_classes) with n_classes >= 2 and only finite values.
        labels: Integer class indices of shape (n_samples,), each in [0, n_classes).
        name: Name of ``scores`` used in error messages (``"probabilities"`` or ``"logits"``).

    Returns:
        ``(scores, labels)`` as arrays of dtype float64, shape (n_samples, n_classes), and int64, shape (n_samples,).

    Raises:
        InvalidInputError: If a shape, a dtype, a non-finite value or a label is not as described.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape[1] < 2 or scores.shape[0] < 1:
        raise InvalidInputError(
            f"'{name}' must have shape (n_samples, n_classes) with n_samples >= 1 and n_classes >= 2; "
            f"got shape {scores.shape}."
        )
    if labels.shape != (scores.shape[0],):
        raise InvalidInputError(
            f"'labels' must have shape (n_samples,) = ({scores.shape[0]},) to match '{name}'; got shape {labels.shape}."
        )
    if not np.isfinite(scores).all():
        raise InvalidInputError(f"'{name}' must be finite; got {int((~np.isfinite(scores)).sum())} NaN or inf values.")
    return scores, _integer_labels(labels, scores.shape[1])


def _integer_labels(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Return labels as int64 after checking they are whole numbers in [0, n_classes)."""
    if labels.dtype.kind not in "iub":
        as_float = labels.astype(np.float64) if labels.dtype.kind == "f" else None
        if as_float is None or not np.isfinite(as_float).all() or (as_float != np.round(as_float)).any():
            raise InvalidInputError(f"'labels' must be integer class indices; got dtype {labels.dtype}.")
    labels = labels.astype(np.int64)
    out_of_range = int(((labels < 0) | (labels >= n_classes)).sum())
    if out_of_range:
        raise InvalidInputError(
            f"'labels' must be class indices in [0, {n_classes - 1}] for {n_classes} classes; "
            f"got {out_of_range} labels outside that range."
        )
    return labels


def check_probabilities(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate class probabilities and labels (see ``check_scores_and_labels``) and that rows sum to 1.

    Args:
        probabilities: Array of shape (n_samples, n_classes) with values in [0, 1] and rows summing to 1.
        labels: Integer class indices of shape (n_samples,).

    Returns:
        ``(probabilities, labels)`` as float64 and int64 arrays.

    Raises:
        InvalidInputError: If the inputs are not valid probabilities and labels.
    """
    probabilities, labels = check_scores_and_labels(probabilities, labels, "probabilities")
    outside = int(((probabilities < 0) | (probabilities > 1)).sum())
    if outside:
        raise InvalidInputError(f"'probabilities' must lie in [0, 1]; got {outside} values outside that range.")
    bad_rows = int((np.abs(probabilities.sum(axis=1) - 1.0) > SUM_TOLERANCE).sum())
    if bad_rows:
        raise InvalidInputError(
            f"Each row of 'probabilities' must sum to 1 (within {SUM_TOLERANCE}); got {bad_rows} rows that do not. "
            "Apply softmax to logits first (medai.engine.calibration.softmax)."
        )
    return probabilities, labels


def _check_int(name: str, value: int, minimum: int) -> int:
    """Raise InvalidInputError unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(f"The '{name}' parameter must be an int >= {minimum}; got {value!r}.")
    return int(value)


def check_label_names(label_names: Sequence[str] | None, n_classes: int) -> list[str]:
    """Return label names as strings, defaulting to the class indices, after checking their number."""
    if label_names is None:
        return [str(index) for index in range(n_classes)]
    label_names = [str(name) for name in label_names]
    if len(label_names) != n_classes:
        raise InvalidInputError(
            f"'label_names' must have one name per class ({n_classes}); got {len(label_names)} names."
        )
    return label_names


def check_positive_class(positive_class: int, n_classes: int) -> int:
    """Raise InvalidInputError unless ``positive_class`` is a valid class index."""
    if isinstance(positive_class, bool) or not isinstance(positive_class, (int, np.integer)):
        raise InvalidInputError(f"The 'positive_class' parameter must be an int; got {positive_class!r}.")
    if not 0 <= positive_class < n_classes:
        raise InvalidInputError(
            f"The 'positive_class' parameter must be in [0, {n_classes - 1}]; got {positive_class}."
        )
    return int(positive_class)


def check_threshold(value, name: str = "decision_threshold") -> float:
    """``value`` as a float strictly between 0 and 1 (a decision threshold on a probability), else InvalidInputError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not 0.0 < number < 1.0:
        raise InvalidInputError(f"The '{name}' parameter must be a probability strictly between 0 and 1; got {value!r}.")
    return number


def _json_float(value: float) -> float | None:
    """Return ``value`` as a python float, or None when it is NaN or infinite."""
    value = float(value)
    return value if math.isfinite(value) else None


def _one_vs_rest_mean(score: Callable, labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Average ``score(is_class_k, probability_of_k)`` over the classes present in ``labels``.

    Returns NaN when fewer than two classes are present (the score is then undefined).
    """
    present = np.unique(labels)
    if present.size < 2:
        return float("nan")
    return float(np.mean([score(labels == k, probabilities[:, k]) for k in present]))


def ranking_scores(probabilities: np.ndarray, labels: np.ndarray, positive_class: int = 1) -> tuple[float, float]:
    """AUROC and average precision (AUPRC); binary w.r.t. ``positive_class``, else macro one-vs-rest.

    The multiclass macro average runs over the classes present in ``labels`` (equal to scikit-learn's
    ``roc_auc_score(..., multi_class="ovr")`` when every class is present).

    Args:
        probabilities: Validated probabilities of shape (n_samples, n_classes).
        labels: Validated int labels of shape (n_samples,).
        positive_class: Class treated as positive when n_classes == 2.

    Returns:
        ``(auroc, auprc)``; each NaN when ``labels`` hold fewer than two classes.
    """
    if np.unique(labels).size < 2:
        return float("nan"), float("nan")
    if probabilities.shape[1] == 2:
        is_positive = labels == positive_class
        average_precision = float(sk.average_precision_score(is_positive, probabilities[:, positive_class]))
    else:
        average_precision = _one_vs_rest_mean(sk.average_precision_score, labels, probabilities)
    return auroc_score(probabilities, labels, positive_class), average_precision


def auroc_score(probabilities: np.ndarray, labels: np.ndarray, positive_class: int = 1) -> float:
    """AUROC alone, as :func:`ranking_scores` computes it (binary w.r.t. ``positive_class``, else macro one-vs-rest);
    NaN when ``labels`` hold fewer than two classes. Cheap enough to run every epoch."""
    if np.unique(labels).size < 2:
        return float("nan")
    if probabilities.shape[1] == 2:
        return float(sk.roc_auc_score(labels == positive_class, probabilities[:, positive_class]))
    return _one_vs_rest_mean(sk.roc_auc_score, labels, probabilities)


def weighted_auroc(is_positive: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC (Mann-Whitney, ties count one half) of many weightings of one sample at once.

    With integer ``weights`` (how often each sample occurs in a bootstrap resample) this equals
    ``roc_auc_score`` on the resample, at the cost of one sort instead of one call per resample.

    Args:
        is_positive: Boolean array of shape (n_samples,).
        scores: Array of shape (n_samples,) ranking samples by how positive they look.
        weights: Non-negative array of shape (n_weightings, n_samples).

    Returns:
        Array of shape (n_weightings,); NaN where a weighting has no positive or no negative weight.
    """
    order = np.argsort(scores, kind="stable")  # (n_samples,)
    sorted_scores = scores[order]
    group_starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])  # (n_groups,) tied runs
    weights = weights[:, order]  # (n_weightings, n_samples)
    positive = np.add.reduceat(weights * is_positive[order], group_starts, axis=1)  # (n_weightings, n_groups)
    negative = np.add.reduceat(weights * ~is_positive[order], group_starts, axis=1)  # (n_weightings, n_groups)
    negative_below = np.cumsum(negative, axis=1) - negative  # (n_weightings, n_groups) strictly lower scores
    wins = (positive * (negative_below + 0.5 * negative)).sum(axis=1)  # (n_weightings,)
    with np.errstate(invalid="ignore", divide="ignore"):
        return wins / (positive.sum(axis=1) * negative.sum(axis=1))


def _resample_auroc(probabilities: np.ndarray, labels: np.ndarray, positive_class: int, counts: np.ndarray):
    """AUROC of each resample given as per-sample counts of shape (n_resamples, n_samples)."""
    if probabilities.shape[1] == 2:
        return weighted_auroc(labels == positive_class, probabilities[:, positive_class], counts)
    present = np.unique(labels)
    return np.mean([weighted_auroc(labels == k, probabilities[:, k], counts) for k in present], axis=0)


def bootstrap_auroc_ci(
    probabilities: np.ndarray, labels: np.ndarray, positive_class: int = 1, bootstrap: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap 95% confidence interval of the AUROC, resampling samples with replacement.

    Resamples that lack a class present in ``labels`` (for binary data: resamples with a single class) are skipped.
    Each resample is drawn as multinomial counts of the samples and scored with ``weighted_auroc``.

    Args:
        probabilities: Validated probabilities of shape (n_samples, n_classes).
        labels: Validated int labels of shape (n_samples,).
        positive_class: Class treated as positive when n_classes == 2.
        bootstrap: Number of resamples drawn.
        seed: Seed of the resampling generator; the same seed gives the same interval.

    Returns:
        ``(low, high)``; both NaN when no resample was usable.
    """
    rng = np.random.default_rng(seed)
    n_samples = labels.size
    present = np.unique(labels)
    chunk = max(1, 2_000_000 // n_samples)  # resamples per block, bounding memory to about 16 MB per array
    estimates = []
    for start in range(0, bootstrap if present.size >= 2 else 0, chunk):
        size = min(chunk, bootstrap - start)
        counts = rng.multinomial(n_samples, np.full(n_samples, 1.0 / n_samples), size=size)  # (size, n_samples)
        class_counts = counts @ (labels[:, None] == present[None, :])  # (size, n_present)
        usable = (class_counts > 0).all(axis=1)  # (size,)
        estimates.append(_resample_auroc(probabilities, labels, positive_class, counts[usable]))
    estimates = np.concatenate(estimates) if estimates else np.empty(0)
    if estimates.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(estimates, CI_PERCENTILES)
    return float(low), float(high)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Top-label expected calibration error with equal-width confidence bins.

    ECE = sum over bins of (share of samples in the bin) * |accuracy in bin - mean confidence in bin|, where the
    confidence is the largest class probability and bin ``b`` holds confidences in (b / n_bins, (b + 1) / n_bins].

    Args:
        probabilities: Array of shape (n_samples, n_classes), rows summing to 1.
        labels: Integer class indices of shape (n_samples,).
        n_bins: Number of equal-width bins on [0, 1].

    Returns:
        The ECE, a python float in [0, 1].

    Raises:
        InvalidInputError: If the inputs or ``n_bins`` are invalid.

    Examples:
        >>> import numpy as np
        >>> ece = expected_calibration_error(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1]), n_bins=10)
        >>> round(ece, 6)  # bins (0.8, 0.9] and (0.7, 0.8]: (|1 - 0.9| + |1 - 0.8|) / 2
        0.15
    """
    probabilities, labels = check_probabilities(probabilities, labels)
    n_bins = _check_int("n_bins", n_bins, 1)
    confidence = probabilities.max(axis=1)  # (n_samples,)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)  # (n_samples,)
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]  # (n_bins - 1,)
    bin_index = np.digitize(confidence, inner_edges, right=True)  # (n_samples,) values in [0, n_bins)
    gap = np.bincount(bin_index, weights=correct - confidence, minlength=n_bins)  # (n_bins,) summed acc - conf
    return float(np.abs(gap).sum() / labels.size)


def _threshold_metrics(labels: np.ndarray, predictions: np.ndarray, n_classes: int, positive_class: int) -> dict:
    """Sensitivity, specificity and F1 from hard predictions (binary w.r.t. positive_class, else macro)."""
    classes = list(range(n_classes))
    nan = np.nan
    if n_classes == 2:
        negative_class = 1 - positive_class
        recall = dict(labels=classes, average="binary", zero_division=nan)
        return {
            "sensitivity": sk.recall_score(labels, predictions, pos_label=positive_class, **recall),
            "specificity": sk.recall_score(labels, predictions, pos_label=negative_class, **recall),
            "f1": sk.f1_score(labels, predictions, pos_label=positive_class, **recall),
        }
    confusion = sk.confusion_matrix(labels, predictions, labels=classes)  # (n_classes, n_classes)
    negatives = confusion.sum() - confusion.sum(axis=1)  # (n_classes,) TN + FP per class
    true_negatives = negatives - (confusion.sum(axis=0) - np.diag(confusion))  # (n_classes,)
    with np.errstate(invalid="ignore", divide="ignore"):
        specificity = np.nanmean(np.where(negatives > 0, true_negatives / negatives, nan))
    macro = dict(labels=classes, average="macro", zero_division=nan)
    return {
        "sensitivity": sk.recall_score(labels, predictions, **macro),
        "specificity": specificity,
        "f1": sk.f1_score(labels, predictions, **macro),
    }


def _brier(probabilities: np.ndarray, labels: np.ndarray, positive_class: int) -> float:
    """Binary: brier_score_loss on the positive class; multiclass: mean over samples of summed squared error."""
    n_classes = probabilities.shape[1]
    if n_classes == 2:
        is_positive = (labels == positive_class).astype(np.int64)
        return float(sk.brier_score_loss(is_positive, probabilities[:, positive_class], pos_label=1))
    one_hot = np.eye(n_classes)[labels]  # (n_samples, n_classes)
    return float(((probabilities - one_hot) ** 2).sum(axis=1).mean())


def predicted_classes(probabilities: np.ndarray, threshold: float | None = None, positive_class: int = 1) -> np.ndarray:
    """Hard predictions, shape (n_samples,): the argmax of ``probabilities``, or, for two classes and a decision
    ``threshold``, ``positive_class`` where its probability is >= ``threshold`` and the other class elsewhere.

    >>> predicted_classes(np.array([[0.3, 0.7], [0.8, 0.2]])), predicted_classes(np.array([[0.3, 0.7], [0.8, 0.2]]), 0.75)
    (array([1, 0]), array([0, 0]))
    """
    probabilities = np.asarray(probabilities)
    if threshold is None or probabilities.shape[1] != 2:
        return probabilities.argmax(axis=1)
    return np.where(probabilities[:, positive_class] >= threshold, positive_class, 1 - positive_class)


def fit_decision_threshold(probabilities: np.ndarray, labels: np.ndarray, positive_class: int = 1) -> float:
    """The decision threshold on the positive class's probability that maximises accuracy on ``labels``.

    Candidates are the midpoints between consecutive distinct probabilities (and 0.5, the argmax rule); of those
    with the best accuracy, the one closest to 0.5. Fit it on validation data, never on the data it is scored on.

    >>> fit_decision_threshold(np.array([[0.4, 0.6], [0.3, 0.7], [0.1, 0.9], [0.05, 0.95]]), np.array([0, 0, 1, 1]))
    0.8
    """
    probabilities, labels = check_probabilities(probabilities, labels)
    if probabilities.shape[1] != 2:
        raise InvalidInputError(f"A decision threshold needs two classes; got {probabilities.shape[1]}.")
    positive_class = check_positive_class(positive_class, 2)
    scores, is_positive = probabilities[:, positive_class], labels == positive_class
    distinct = np.unique(scores)
    candidates = np.append((distinct[:-1] + distinct[1:]) / 2, 0.5)
    positives, negatives = np.sort(scores[is_positive]), np.sort(scores[~is_positive])
    # correct at threshold t: positives scored >= t plus negatives scored < t (sorted counts, O(n log n))
    correct = len(positives) - np.searchsorted(positives, candidates) + np.searchsorted(negatives, candidates)
    accuracy = correct / len(scores)
    best = candidates[accuracy == accuracy.max()]
    return float(best[np.argmin(np.abs(best - 0.5))])


def classification_metrics(
    probabilities: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str] | None = None,
    positive_class: int = 1,
    bootstrap: int = 1000,
    seed: int = 0,
    threshold: float | None = None,
) -> dict:
    """Compute discrimination, threshold and calibration metrics of a classifier as a flat JSON-ready dict.

    Binary data (n_classes == 2) is scored with respect to ``positive_class``; multiclass data uses macro
    one-vs-rest AUROC and AUPRC, macro F1, macro recall (sensitivity) and macro specificity. Predictions are the
    argmax of ``probabilities``, or for binary data with a ``threshold`` :func:`predicted_classes`. Metrics that are undefined on the data (AUROC with a single class present,
    sensitivity without positives, ...) are ``None``.

    Args:
        probabilities: Array of shape (n_samples, n_classes), rows summing to 1.
        labels: Integer class indices of shape (n_samples,).
        label_names: Optional names of the classes, one per column of ``probabilities``.
        positive_class: Index of the positive class for binary data (ignored for multiclass data).
        bootstrap: Number of bootstrap resamples for the AUROC 95% CI; 0 omits the ``auroc_ci_*`` keys.
        seed: Seed of the bootstrap; the same seed gives the same interval.
        threshold: Binary data: predict ``positive_class`` where its probability is >= this (e.g. fitted on
            validation data with :func:`fit_decision_threshold`); None: argmax.

    Returns:
        Dict with keys ``auroc``, ``auroc_ci_low``, ``auroc_ci_high`` (when ``bootstrap > 0``), ``auprc``,
        ``accuracy``, ``balanced_accuracy``, ``sensitivity``, ``specificity``, ``f1``, ``brier``, ``ece``,
        ``log_loss``, ``confusion_matrix`` (list of lists, rows = true class), ``n_samples``, ``class_counts``
        and ``label_names``.

    Raises:
        InvalidInputError: If shapes disagree, probabilities are not finite probabilities, labels are out of
            range, or a parameter is invalid.

    Examples:
        >>> import numpy as np
        >>> probabilities = np.array([[0.9, 0.1], [0.7, 0.3], [0.4, 0.6], [0.2, 0.8]])
        >>> result = classification_metrics(probabilities, np.array([0, 0, 1, 1]), bootstrap=0)
        >>> result["auroc"], result["sensitivity"], result["confusion_matrix"]
        (1.0, 1.0, [[2, 0], [0, 2]])
    """
    probabilities, labels = check_probabilities(probabilities, labels)
    n_classes = probabilities.shape[1]
    names = check_label_names(label_names, n_classes)
    positive_class = check_positive_class(positive_class, n_classes) if n_classes == 2 else positive_class
    bootstrap = _check_int("bootstrap", bootstrap, 0)
    seed = _check_int("seed", seed, 0)
    threshold = None if threshold is None else check_threshold(threshold, "threshold")
    predictions = predicted_classes(probabilities, threshold, positive_class)  # (n_samples,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined metrics are reported as None, not as warnings
        auroc, auprc = ranking_scores(probabilities, labels, positive_class)
        result = {"auroc": auroc}
        if bootstrap:
            low, high = bootstrap_auroc_ci(probabilities, labels, positive_class, bootstrap, seed)
            result.update(auroc_ci_low=low, auroc_ci_high=high)
        result.update(
            auprc=auprc,
            accuracy=sk.accuracy_score(labels, predictions),
            balanced_accuracy=sk.balanced_accuracy_score(labels, predictions),
            **_threshold_metrics(labels, predictions, n_classes, positive_class),
            brier=_brier(probabilities, labels, positive_class),
            ece=expected_calibration_error(probabilities, labels),
            log_loss=sk.log_loss(labels, probabilities, labels=list(range(n_classes))),
        )
    result = {key: _json_float(value) for key, value in result.items()}
    confusion = sk.confusion_matrix(labels, predictions, labels=list(range(n_classes)))
    result.update(
        confusion_matrix=confusion.astype(int).tolist(),
        n_samples=int(labels.size),
        class_counts=np.bincount(labels, minlength=n_classes).astype(int).tolist(),
        label_names=names,
    )
    if threshold is not None and n_classes == 2:
        result["decision_threshold"] = float(threshold)
    return result


def regression_metrics(predictions: np.ndarray, targets: np.ndarray) -> dict:
    """Mean absolute error, root mean squared error and R^2 of a regression model.

    Args:
        predictions: Array of shape (n_samples,) or (n_samples, n_outputs); multiple outputs are averaged uniformly.
        targets: Array of the same shape as ``predictions``.

    Returns:
        Dict with ``mae``, ``rmse``, ``r2`` (None when undefined, e.g. with fewer than two samples) and
        ``n_samples``.

    Raises:
        InvalidInputError: If shapes differ, are not 1-D or 2-D, are empty, or values are not finite.

    Examples:
        >>> import numpy as np
        >>> regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))["mae"]
        0.6666666666666666
    """
    predictions = np.asarray(predictions, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if predictions.shape != targets.shape or predictions.ndim not in (1, 2) or predictions.shape[0] < 1:
        raise InvalidInputError(
            "'predictions' and 'targets' must have the same shape (n_samples,) or (n_samples, n_outputs) with "
            f"n_samples >= 1; got shapes {predictions.shape} and {targets.shape}."
        )
    for name, array in (("predictions", predictions), ("targets", targets)):
        if not np.isfinite(array).all():
            n_bad = int((~np.isfinite(array)).sum())
            raise InvalidInputError(f"'{name}' must be finite; got {n_bad} NaN or inf values.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r2 = sk.r2_score(targets, predictions) if predictions.shape[0] >= 2 else float("nan")
    return {
        "mae": _json_float(sk.mean_absolute_error(targets, predictions)),
        "rmse": _json_float(math.sqrt(sk.mean_squared_error(targets, predictions))),
        "r2": _json_float(r2),
        "n_samples": int(predictions.shape[0]),
    }
