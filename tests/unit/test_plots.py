"""Tests of medai.engine.plots: every plot writes a non-empty PNG and leaves no open figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from medai.engine import plots
from medai.errors import InvalidInputError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1000


@pytest.fixture
def binary_data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 80)
    scores = np.clip(0.3 * labels + rng.normal(0.35, 0.2, 80), 0, 1)
    return np.column_stack([1 - scores, scores]), labels


@pytest.fixture
def multiclass_data():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 90)
    logits = rng.normal(size=(90, 3))
    logits[np.arange(90), labels] += 1.5
    exponentials = np.exp(logits)
    return exponentials / exponentials.sum(axis=1, keepdims=True), labels


@pytest.mark.parametrize("plot", [plots.plot_roc, plots.plot_precision_recall])
@pytest.mark.parametrize("data", ["binary_data", "multiclass_data"])
def test_curves_write_png_in_new_folder(plot, data, request, tmp_path):
    probabilities, labels = request.getfixturevalue(data)
    path = plot(probabilities, labels, tmp_path / "new" / "curve.png")
    assert path == tmp_path / "new" / "curve.png"
    assert_png(path)


@pytest.mark.parametrize("data", ["binary_data", "multiclass_data"])
def test_calibration_plot(data, request, tmp_path):
    probabilities, labels = request.getfixturevalue(data)
    assert_png(plots.plot_calibration(probabilities, labels, tmp_path / "calibration.png", n_bins=5))


def test_single_class_labels_do_not_crash(binary_data, tmp_path):
    probabilities, _ = binary_data
    labels = np.zeros(len(probabilities), dtype=int)
    assert_png(plots.plot_roc(probabilities, labels, tmp_path / "roc.png"))
    assert_png(plots.plot_calibration(probabilities, labels, tmp_path / "calibration.png"))


def test_confusion_matrix_plot(tmp_path):
    assert_png(plots.plot_confusion_matrix([[5, 1], [2, 7]], ["healthy", "sick"], tmp_path / "cm.png"))


def test_confusion_matrix_rejects_bad_input(tmp_path):
    with pytest.raises(InvalidInputError, match="shape"):
        plots.plot_confusion_matrix([[1, 2, 3]], None, tmp_path / "cm.png")
    with pytest.raises(InvalidInputError, match="label_names"):
        plots.plot_confusion_matrix([[1, 2], [3, 4]], ["a"], tmp_path / "cm.png")


def test_training_curves_skip_non_numeric_values(tmp_path):
    history = [
        {"epoch": epoch, "train_loss": 1 / (epoch + 1), "val_loss": 1.1 / (epoch + 1), "val_auroc": 0.6 + 0.05 * epoch,
         "val_confusion_matrix": [[1, 0], [0, 1]], "val_sensitivity": None, "val_n_samples": 50}
        for epoch in range(5)
    ]
    assert_png(plots.plot_training_curves(history, tmp_path / "curves.png"))


@pytest.mark.parametrize("history", [[], None, [1, 2]])
def test_training_curves_reject_invalid_history(history, tmp_path):
    with pytest.raises(InvalidInputError, match="history"):
        plots.plot_training_curves(history, tmp_path / "curves.png")


def test_invalid_probabilities_raise(tmp_path):
    with pytest.raises(InvalidInputError):
        plots.plot_roc(np.array([[0.5, 0.5]]), np.array([0, 1]), tmp_path / "roc.png")


def test_save_evaluation_plots_writes_every_file(multiclass_data, tmp_path):
    probabilities, labels = multiclass_data
    history = [{"epoch": 0, "train_loss": 0.9, "val_loss": 0.8, "val_auroc": 0.7}]
    paths = plots.save_evaluation_plots(probabilities, labels, ["a", "b", "c"], tmp_path / "out", history=history)
    assert set(paths) == {"roc", "pr", "calibration", "confusion_matrix", "training_curves"}
    for name, path in paths.items():
        assert path.name == f"{name}.png"
        assert_png(path)
    assert plt.get_fignums() == []  # nothing left open in pyplot


def test_save_evaluation_plots_without_history(binary_data, tmp_path):
    paths = plots.save_evaluation_plots(*binary_data, None, tmp_path, positive_class=0)
    assert set(paths) == {"roc", "pr", "calibration", "confusion_matrix"}
