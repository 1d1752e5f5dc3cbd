"""Evaluation plots written as PNG files: ROC, precision-recall, reliability diagram, confusion matrix, training curves.

Figures are built with matplotlib's object-oriented API on an Agg canvas, so nothing touches pyplot's global state
or the interactive backend, and nothing is ever shown on screen. Every function creates the parent folder of
``path``, writes the PNG and returns its ``Path``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn import metrics as sk
from sklearn.calibration import calibration_curve

from medai.engine.metrics import (
    check_label_names,
    check_positive_class,
    check_probabilities,
    expected_calibration_error,
    predicted_classes,
)
from medai.errors import InvalidInputError

DPI = 110


def _new_figure(width: float = 6.0, height: float = 5.0) -> Figure:
    """Return a figure attached to an Agg canvas (no pyplot, no GUI backend)."""
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG to ``path`` (creating parent folders), release it and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI, format="png")
    figure.clear()
    return path


def _one_vs_rest_curves(probabilities: np.ndarray, labels: np.ndarray, positive_class: int):
    """Yield ``(class_index, is_class, scores)`` for each curve: the positive class if binary, else every class."""
    classes = [positive_class] if probabilities.shape[1] == 2 else range(probabilities.shape[1])
    for k in classes:
        yield k, labels == k, probabilities[:, k]


def _prepare(probabilities, labels, label_names, positive_class):
    """Validate the inputs shared by the ROC and precision-recall plots."""
    probabilities, labels = check_probabilities(probabilities, labels)
    names = check_label_names(label_names, probabilities.shape[1])
    if probabilities.shape[1] == 2:
        positive_class = check_positive_class(positive_class, 2)
    return probabilities, labels, names, positive_class


def plot_roc(
    probabilities: np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    label_names: Sequence[str] | None = None,
    positive_class: int = 1,
) -> Path:
    """Plot the ROC curve (binary) or one one-vs-rest ROC curve per class (multiclass), AUROC in the legend.

    Args:
        probabilities: Array of shape (n_samples, n_classes), rows summing to 1.
        labels: Integer class indices of shape (n_samples,).
        path: Where to write the PNG.
        label_names: Optional class names, one per column of ``probabilities``.
        positive_class: Positive class for binary data (ignored for multiclass data).

    Returns:
        The path of the PNG written.

    Raises:
        InvalidInputError: If the inputs are invalid.
    """
    probabilities, labels, names, positive_class = _prepare(probabilities, labels, label_names, positive_class)
    figure = _new_figure()
    axes = figure.add_subplot()
    for k, is_class, scores in _one_vs_rest_curves(probabilities, labels, positive_class):
        if is_class.all() or not is_class.any():
            continue  # undefined without both positives and negatives
        false_positive_rate, true_positive_rate, _ = sk.roc_curve(is_class, scores)
        auroc = sk.roc_auc_score(is_class, scores)
        axes.plot(false_positive_rate, true_positive_rate, lw=2, label=f"{names[k]} (AUROC = {auroc:.3f})")
    axes.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="Chance")
    _finish_axes(axes, "False positive rate (1 - specificity)", "True positive rate (sensitivity)")
    axes.set_title("ROC curve" + (" (one-vs-rest)" if probabilities.shape[1] > 2 else ""))
    axes.legend(loc="lower right", fontsize="small")
    return _save(figure, path)


def plot_precision_recall(
    probabilities: np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    label_names: Sequence[str] | None = None,
    positive_class: int = 1,
) -> Path:
    """Plot the precision-recall curve (binary) or one one-vs-rest curve per class, AUPRC and AUROC in the legend.

    Args:
        probabilities: Array of shape (n_samples, n_classes), rows summing to 1.
        labels: Integer class indices of shape (n_samples,).
        path: Where to write the PNG.
        label_names: Optional class names, one per column of ``probabilities``.
        positive_class: Positive class for binary data (ignored for multiclass data).

    Returns:
        The path of the PNG written.

    Raises:
        InvalidInputError: If the inputs are invalid.
    """
    probabilities, labels, names, positive_class = _prepare(probabilities, labels, label_names, positive_class)
    figure = _new_figure()
    axes = figure.add_subplot()
    for k, is_class, scores in _one_vs_rest_curves(probabilities, labels, positive_class):
        if is_class.all() or not is_class.any():
            continue
        precision, recall, _ = sk.precision_recall_curve(is_class, scores)
        auprc = sk.average_precision_score(is_class, scores)
        auroc = sk.roc_auc_score(is_class, scores)
        line = axes.step(recall, precision, where="post", lw=2,
                         label=f"{names[k]} (AUPRC = {auprc:.3f}, AUROC = {auroc:.3f})")[0]
        axes.axhline(is_class.mean(), ls=":", lw=1, color=line.get_color())  # precision of a random ranking
    _finish_axes(axes, "Recall (sensitivity)", "Precision (positive predictive value)")
    axes.set_title("Precision-recall curve" + (" (one-vs-rest)" if probabilities.shape[1] > 2 else ""))
    axes.legend(loc="lower left", fontsize="small", title="dotted: prevalence", title_fontsize="small")
    return _save(figure, path)


def _finish_axes(axes, xlabel: str, ylabel: str) -> None:
    """Label the axes and fix both ranges to [0, 1] with a light grid."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.01)
    axes.grid(alpha=0.3)


def plot_calibration(
    probabilities: np.ndarray, labels: np.ndarray, path: str | Path, n_bins: int = 10, positive_class: int = 1
) -> Path:
    """Plot a reliability diagram with the diagonal, above a histogram of the confidences.

    Binary data shows the probability of ``positive_class`` against its observed frequency; multiclass data
    shows the top-label confidence against the observed accuracy. The title gives the top-label ECE.

    Args:
        probabilities: Array of shape (n_samples, n_classes), rows summing to 1.
        labels: Integer class indices of shape (n_samples,).
        path: Where to write the PNG.
        n_bins: Number of equal-width bins on [0, 1] (>= 1).
        positive_class: Class whose probability is shown for binary data (ignored for multiclass data).

    Returns:
        The path of the PNG written.

    Raises:
        InvalidInputError: If the inputs, ``n_bins`` or ``positive_class`` are invalid.
    """
    probabilities, labels = check_probabilities(probabilities, labels)
    ece = expected_calibration_error(probabilities, labels, n_bins=n_bins)  # also validates n_bins
    if probabilities.shape[1] == 2:
        positive_class = check_positive_class(positive_class, 2)
        confidence, outcome = probabilities[:, positive_class], labels == positive_class
        xlabel = f"Predicted probability of class {positive_class}"
        ylabel = f"Observed frequency of class {positive_class}"
    else:
        confidence, outcome = probabilities.max(axis=1), probabilities.argmax(axis=1) == labels
        xlabel, ylabel = "Top-label confidence", "Observed accuracy"
    observed, predicted = calibration_curve(outcome, confidence, n_bins=n_bins, strategy="uniform")
    figure = _new_figure(6.0, 6.5)
    reliability, histogram = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    reliability.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="Perfect calibration")
    reliability.plot(predicted, observed, marker="o", lw=2, label="Model")
    _finish_axes(reliability, "", ylabel)
    reliability.set_title(f"Reliability diagram (top-label ECE = {ece:.3f}, {n_bins} bins)")
    reliability.legend(loc="upper left", fontsize="small")
    histogram.hist(confidence, bins=np.linspace(0, 1, n_bins + 1), color="tab:blue", alpha=0.7, edgecolor="white")
    histogram.set_xlabel(xlabel)
    histogram.set_ylabel("Samples")
    return _save(figure, path)


def plot_confusion_matrix(confusion, label_names: Sequence[str] | None, path: str | Path) -> Path:
    """Plot a confusion matrix (rows = true class, columns = predicted class) with the counts written in each cell.

    Args:
        confusion: Square array-like of non-negative counts, shape (n_classes, n_classes).
        label_names: Class names, one per row; None uses the class indices.
        path: Where to write the PNG.

    Returns:
        The path of the PNG written.

    Raises:
        InvalidInputError: If ``confusion`` is not a square matrix of finite non-negative counts, or the number of
            names differs from the number of classes.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or confusion.shape[0] < 1:
        raise InvalidInputError(f"'confusion' must have shape (n_classes, n_classes); got shape {confusion.shape}.")
    if not np.isfinite(confusion).all() or (confusion < 0).any():
        raise InvalidInputError("'confusion' must hold finite non-negative counts.")
    names = check_label_names(label_names, confusion.shape[0])
    size = 3.0 + 0.6 * len(names)
    figure = _new_figure(size + 1.0, size)
    axes = figure.add_subplot()
    image = axes.imshow(confusion, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    threshold = confusion.max() / 2 if confusion.max() > 0 else math.inf
    for (row, column), count in np.ndenumerate(confusion):
        colour = "white" if count > threshold else "black"
        axes.text(column, row, f"{count:g}", ha="center", va="center", color=colour, fontsize="medium")
    crowded = len(names) > 4
    axes.set_xticks(range(len(names)), names, rotation=45 if crowded else 0, ha="right" if crowded else "center")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("Predicted class")
    axes.set_ylabel("True class")
    axes.set_title("Confusion matrix (counts)")
    return _save(figure, path)


def _series(history: list[dict], key: str) -> tuple[list, list]:
    """Return (epochs, values) of the finite numeric values of ``key`` in ``history``."""
    epochs, values = [], []
    for index, record in enumerate(history):
        value = record.get(key)
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value):
            epochs.append(record.get("epoch", index))
            values.append(float(value))
    return epochs, values


def _check_history(history) -> list[dict]:
    """Raise InvalidInputError unless ``history`` is a non-empty list of dicts."""
    if not isinstance(history, Sequence) or not history or not all(isinstance(r, dict) for r in history):
        raise InvalidInputError(
            "'history' must be a non-empty list of dicts such as {'epoch': 0, 'train_loss': ..., 'val_loss': ...}; "
            f"got {type(history).__name__}."
        )
    return list(history)


def plot_training_curves(history: list[dict], path: str | Path) -> Path:
    """Plot loss curves (``train_loss``, ``val_loss``, ...) and every other numeric ``val_*`` metric per epoch.

    Args:
        history: One dict per epoch, e.g. ``{"epoch": 0, "train_loss": 0.7, "val_loss": 0.6, "val_auroc": 0.8}``.
            Keys ending in ``loss`` go to the left panel, other ``val_*`` keys with numeric values to the right
            (except ``val_n_samples``). Non-numeric values (lists, None, NaN) are skipped.
        path: Where to write the PNG.

    Returns:
        The path of the PNG written.

    Raises:
        InvalidInputError: If ``history`` is not a non-empty list of dicts.
    """
    history = _check_history(history)
    keys = list(dict.fromkeys(key for record in history for key in record))  # first-seen order
    loss_keys = [key for key in keys if key.endswith("loss") and _series(history, key)[1]]
    metric_keys = [
        key for key in keys
        if key.startswith("val_") and key not in loss_keys and not key.endswith("n_samples") and _series(history, key)[1]
    ]
    figure = _new_figure(11.0, 4.5)
    loss_axes, metric_axes = figure.subplots(1, 2)
    for axes, panel_keys, title in ((loss_axes, loss_keys, "Loss"), (metric_axes, metric_keys, "Validation metrics")):
        for key in panel_keys:
            axes.plot(*_series(history, key), marker="o", ms=3, lw=1.5, label=key)
        axes.set_title(title)
        axes.set_xlabel("Epoch")
        axes.set_ylabel("Loss" if axes is loss_axes else "Value")
        axes.grid(alpha=0.3)
        if panel_keys:
            axes.legend(fontsize="small")
        else:
            axes.text(0.5, 0.5, "nothing recorded", ha="center", va="center", transform=axes.transAxes)
    return _save(figure, path)


def save_evaluation_plots(
    probabilities: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str] | None,
    out_dir: str | Path,
    history: list[dict] | None = None,
    positive_class: int = 1,
    threshold: float | None = None,
) -> dict[str, Path]:
    """Write roc.png, pr.png, calibration.png, confusion_matrix.png (and training_curves.png) into ``out_dir``.

    Args:
        probabilities: Array of shape (n_samples, n_classes), rows summing to 1.
        labels: Integer class indices of shape (n_samples,).
        label_names: Class names, one per column of ``probabilities``; None uses the class indices.
        out_dir: Folder to write into (created if missing).
        history: Optional per-epoch training history (see ``plot_training_curves``).
        positive_class: Positive class for binary data.
        threshold: Binary data: the decision threshold the confusion matrix uses (None: argmax).

    Returns:
        Dict mapping ``"roc"``, ``"pr"``, ``"calibration"``, ``"confusion_matrix"`` (and ``"training_curves"``)
        to the PNG paths.

    Raises:
        InvalidInputError: If the inputs are invalid.

    Examples:
        >>> import tempfile
        >>> probabilities = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])
        >>> out_dir = tempfile.mkdtemp()
        >>> paths = save_evaluation_plots(probabilities, np.array([0, 1, 0, 1]), ["healthy", "sick"], out_dir)
        >>> sorted(paths)
        ['calibration', 'confusion_matrix', 'pr', 'roc']
    """
    probabilities, labels, names, positive_class = _prepare(probabilities, labels, label_names, positive_class)
    out_dir = Path(out_dir)
    predictions = predicted_classes(probabilities, threshold, positive_class)  # (n_samples,)
    confusion = sk.confusion_matrix(labels, predictions, labels=list(range(probabilities.shape[1])))
    paths = {
        "roc": plot_roc(probabilities, labels, out_dir / "roc.png", names, positive_class),
        "pr": plot_precision_recall(probabilities, labels, out_dir / "pr.png", names, positive_class),
        "calibration": plot_calibration(
            probabilities, labels, out_dir / "calibration.png", positive_class=positive_class
        ),
        "confusion_matrix": plot_confusion_matrix(confusion, names, out_dir / "confusion_matrix.png"),
    }
    if history is not None:
        paths["training_curves"] = plot_training_curves(history, out_dir / "training_curves.png")
    return paths
