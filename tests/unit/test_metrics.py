"""Tests of medai.engine.metrics on small synthetic data with hand-computed answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medai.engine.metrics import (
    classification_metrics,
    expected_calibration_error,
    regression_metrics,
    weighted_auroc,
)
from medai.errors import InvalidInputError


def binary(scores) -> np.ndarray:
    """Two-column probabilities (n_samples, 2) from positive-class scores."""
    scores = np.asarray(scores, dtype=float)
    return np.column_stack([1 - scores, scores])


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


@pytest.fixture
def known_binary():
    """10 samples: TP=3, FN=1 among 4 positives; TN=4, FP=2 among 6 negatives."""
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.55, 0.4, 0.2, 0.1, 0.05])
    return binary(scores), labels


def test_perfect_separation_scores_one():
    result = classification_metrics(binary([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), np.array([0, 0, 0, 1, 1, 1]), bootstrap=0)
    assert result["auroc"] == 1.0
    assert result["auprc"] == 1.0
    assert result["accuracy"] == 1.0
    assert result["confusion_matrix"] == [[3, 0], [0, 3]]


def test_known_confusion_matrix_gives_hand_computed_metrics(known_binary):
    result = classification_metrics(*known_binary, bootstrap=0)
    assert result["confusion_matrix"] == [[4, 2], [1, 3]]
    assert result["sensitivity"] == pytest.approx(3 / 4)
    assert result["specificity"] == pytest.approx(4 / 6)
    assert result["accuracy"] == pytest.approx(7 / 10)
    assert result["balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert result["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    assert result["n_samples"] == 10
    assert result["class_counts"] == [6, 4]


def test_positive_class_zero_swaps_sensitivity_and_specificity(known_binary):
    flipped = classification_metrics(*known_binary, positive_class=0, bootstrap=0)
    assert flipped["sensitivity"] == pytest.approx(4 / 6)
    assert flipped["specificity"] == pytest.approx(3 / 4)
    assert flipped["auroc"] == pytest.approx(classification_metrics(*known_binary, bootstrap=0)["auroc"])


def test_auroc_counts_ties_as_half_and_brier_is_mean_squared_error():
    scores = np.array([0.8, 0.4, 0.4, 0.1])
    labels = np.array([1, 1, 0, 0])
    result = classification_metrics(binary(scores), labels, bootstrap=0)
    assert result["auroc"] == pytest.approx(3.5 / 4)  # pairs: win, win, tie, win
    assert result["brier"] == pytest.approx(np.mean((scores - labels) ** 2))


def test_result_is_json_ready_with_lower_case_keys(known_binary):
    result = classification_metrics(*known_binary, label_names=["healthy", "sick"], bootstrap=20)
    json.dumps(result, allow_nan=False)
    assert all(key == key.lower() for key in result)
    assert all(isinstance(result[key], float) for key in ("auroc", "auroc_ci_low", "brier", "ece", "log_loss"))
    assert result["label_names"] == ["healthy", "sick"]


def test_bootstrap_ci_brackets_estimate_and_is_reproducible():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    probabilities = binary(np.clip(0.3 * labels + rng.normal(0.35, 0.2, 200), 0, 1))
    first = classification_metrics(probabilities, labels, bootstrap=300, seed=7)
    again = classification_metrics(probabilities, labels, bootstrap=300, seed=7)
    other = classification_metrics(probabilities, labels, bootstrap=300, seed=8)
    assert first["auroc_ci_low"] < first["auroc"] < first["auroc_ci_high"]
    assert (first["auroc_ci_low"], first["auroc_ci_high"]) == (again["auroc_ci_low"], again["auroc_ci_high"])
    assert (first["auroc_ci_low"], first["auroc_ci_high"]) != (other["auroc_ci_low"], other["auroc_ci_high"])


def test_bootstrap_zero_omits_ci_keys(known_binary):
    result = classification_metrics(*known_binary, bootstrap=0)
    assert "auroc_ci_low" not in result and "auroc_ci_high" not in result


def test_weighted_auroc_equals_sklearn_on_expanded_resamples():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 40)
    scores = np.round(rng.random(40), 1)  # many ties
    counts = rng.multinomial(40, np.full(40, 1 / 40), size=5)  # (5, 40)
    expected = [roc_auc_score(np.repeat(labels, row), np.repeat(scores, row)) for row in counts]
    np.testing.assert_allclose(weighted_auroc(labels == 1, scores, counts), expected)


def test_multiclass_metrics_match_definitions():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 150)
    logits = rng.normal(size=(150, 3))
    logits[np.arange(150), labels] += 1.5
    probabilities = softmax_rows(logits)
    result = classification_metrics(probabilities, labels, label_names=["a", "b", "c"], bootstrap=50)
    assert result["auroc"] == pytest.approx(roc_auc_score(labels, probabilities, multi_class="ovr"))
    assert result["auroc_ci_low"] < result["auroc"] < result["auroc_ci_high"]
    one_hot = np.eye(3)[labels]
    assert result["brier"] == pytest.approx(((probabilities - one_hot) ** 2).sum(axis=1).mean())
    confusion = np.array(result["confusion_matrix"])
    negatives = len(labels) - confusion.sum(axis=1)
    false_positives = confusion.sum(axis=0) - np.diag(confusion)
    assert result["specificity"] == pytest.approx(np.mean((negatives - false_positives) / negatives))
    assert result["sensitivity"] == pytest.approx(np.mean(np.diag(confusion) / confusion.sum(axis=1)))
    assert result["class_counts"] == np.bincount(labels, minlength=3).tolist()


def test_single_class_labels_give_none_auroc_but_other_metrics():
    result = classification_metrics(binary([0.2, 0.4, 0.7]), np.array([0, 0, 0]), bootstrap=50)
    assert result["auroc"] is None and result["auprc"] is None
    assert result["auroc_ci_low"] is None and result["auroc_ci_high"] is None
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["specificity"] == pytest.approx(2 / 3)
    assert result["sensitivity"] is None  # no positives
    json.dumps(result, allow_nan=False)


@pytest.mark.parametrize(
    ("probabilities", "labels", "message"),
    [
        (np.full((4,), 0.5), np.array([0, 1, 0, 1]), "shape"),
        (binary([0.1, 0.9, 0.5]), np.array([0, 1]), "labels"),
        (binary([0.1, np.nan, 0.5]), np.array([0, 1, 0]), "finite"),
        (binary([0.1, 0.9, 0.5]), np.array([0, 1, 2]), "range"),
        (binary([0.1, 0.9, 0.5]), np.array([0.0, 1.5, 0.0]), "integer"),
        (np.array([[0.5, 0.6], [0.5, 0.5]]), np.array([0, 1]), "sum to 1"),
        (np.array([[1.5, -0.5], [0.5, 0.5]]), np.array([0, 1]), "[0, 1]"),
    ],
)
def test_invalid_inputs_raise(probabilities, labels, message):
    with pytest.raises(InvalidInputError, match=message):
        classification_metrics(probabilities, labels, bootstrap=0)


def test_error_messages_do_not_contain_data_values():
    with pytest.raises(InvalidInputError) as error:
        classification_metrics(binary([0.1, 0.9, 0.5]), np.array([0, 1, 987]), bootstrap=0)
    assert "987" not in str(error.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"label_names": ["only one"]}, {"bootstrap": -1}, {"positive_class": 2}, {"seed": "zero"}],
)
def test_invalid_parameters_raise(known_binary, kwargs):
    with pytest.raises(InvalidInputError):
        classification_metrics(*known_binary, **{"bootstrap": 0, **kwargs})


def test_expected_calibration_error_by_hand():
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    # bins of width 0.1: (0.8, 0.9] holds 0.9 (correct); (0.7, 0.8] holds 0.8 (wrong); 0.7 and 0.6 are correct
    expected = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(1 - 0.6)) / 4
    assert expected_calibration_error(probabilities, labels, n_bins=10) == pytest.approx(expected)


def test_ece_small_when_calibrated_and_large_when_overconfident():
    rng = np.random.default_rng(3)
    confidence = rng.uniform(0.5, 1.0, 20_000)
    probabilities = binary(confidence)  # class 1 is always the predicted class
    calibrated_labels = (rng.random(20_000) < confidence).astype(int)
    overconfident_labels = (rng.random(20_000) < confidence - 0.25).astype(int)
    calibrated = expected_calibration_error(probabilities, calibrated_labels)
    overconfident = expected_calibration_error(probabilities, overconfident_labels)
    assert calibrated < 0.02
    assert overconfident > 0.2


def test_ece_rejects_bad_bins():
    with pytest.raises(InvalidInputError, match="n_bins"):
        expected_calibration_error(binary([0.2, 0.8]), np.array([0, 1]), n_bins=0)


def test_regression_metrics_by_hand():
    result = regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 6.0]))
    assert result["mae"] == pytest.approx(0.5)
    assert result["rmse"] == pytest.approx(1.0)
    assert result["r2"] == pytest.approx(1 - 4 / np.sum((np.array([1, 2, 3, 6]) - 3) ** 2))
    assert result["n_samples"] == 4
    assert regression_metrics(np.array([1.0]), np.array([2.0]))["r2"] is None


@pytest.mark.parametrize(
    ("predictions", "targets"),
    [(np.zeros(3), np.zeros(4)), (np.array([1.0, np.inf]), np.zeros(2)), (np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))],
)
def test_regression_metrics_reject_invalid_inputs(predictions, targets):
    with pytest.raises(InvalidInputError):
        regression_metrics(predictions, targets)


def test_fitted_decision_threshold_maximises_accuracy_and_prefers_one_near_a_half():
    from medai.engine.metrics import fit_decision_threshold, predicted_classes

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.clip(0.35 + 0.4 * labels + rng.normal(0, 0.2, 300), 0.001, 0.999)  # best cut near 0.55, not 0.5
    probabilities = np.column_stack([1 - scores, scores])
    threshold = fit_decision_threshold(probabilities, labels)
    accuracy = lambda t: float((predicted_classes(probabilities, t) == labels).mean())  # noqa: E731
    assert all(accuracy(threshold) >= accuracy(t) for t in np.linspace(0.01, 0.99, 99))
    assert accuracy(threshold) > accuracy(0.5)
    separable = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])  # every cut in (0.2, 0.7) is perfect
    assert fit_decision_threshold(separable, np.array([0, 0, 1, 1])) == 0.5
    with pytest.raises(InvalidInputError, match="two classes"):
        fit_decision_threshold(np.full((3, 3), 1 / 3), np.array([0, 1, 2]))


def test_metrics_with_a_decision_threshold_count_hard_predictions_by_it():
    probabilities = np.array([[0.3, 0.7], [0.4, 0.6], [0.2, 0.8], [0.9, 0.1]])
    labels = np.array([0, 0, 1, 0])
    plain = classification_metrics(probabilities, labels, bootstrap=0)
    tuned = classification_metrics(probabilities, labels, bootstrap=0, threshold=0.75)
    assert plain["accuracy"] == 0.5 and tuned["accuracy"] == 1.0 and tuned["decision_threshold"] == 0.75
    assert tuned["auroc"] == plain["auroc"] and "decision_threshold" not in plain
    assert tuned["confusion_matrix"] == [[3, 0], [0, 1]]
    with pytest.raises(InvalidInputError, match="strictly between 0 and 1"):
        classification_metrics(probabilities, labels, bootstrap=0, threshold=1.0)
