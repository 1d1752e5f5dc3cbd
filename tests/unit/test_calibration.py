"""Tests of medai.engine.calibration: softmax and temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest

from medai.engine import calibration
from medai.engine.calibration import fit_temperature, softmax
from medai.errors import InvalidInputError


def test_softmax_matches_definition_and_sums_to_one():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    probabilities = softmax(logits)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert probabilities.dtype == np.float64
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_softmax_is_stable_for_huge_logits_and_uses_temperature():
    np.testing.assert_allclose(softmax(np.array([[1000.0, 0.0]])), [[1.0, 0.0]])
    np.testing.assert_allclose(softmax(np.array([[2.0, 0.0]]), temperature=2.0), softmax(np.array([[1.0, 0.0]])))


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf"), "hot"])
def test_softmax_rejects_invalid_temperature(temperature):
    with pytest.raises(InvalidInputError, match="temperature"):
        softmax(np.zeros((2, 2)), temperature=temperature)


def test_softmax_rejects_non_finite_logits():
    with pytest.raises(InvalidInputError, match="finite"):
        softmax(np.array([[np.nan, 0.0]]))


def test_fit_temperature_recovers_two():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(scale=1.5, size=(4000, 3))  # (n_samples, n_classes)
    probabilities = softmax(true_logits)
    labels = (rng.random((4000, 1)) > probabilities.cumsum(axis=1)).sum(axis=1)  # sampled from the true model
    temperature = fit_temperature(2.0 * true_logits, labels)
    assert isinstance(temperature, float)
    assert temperature == pytest.approx(2.0, abs=0.2)


def test_fitted_temperature_lowers_negative_log_likelihood():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    logits = rng.normal(size=(500, 2)) * 3
    logits[np.arange(500), labels] += 2.0
    temperature = fit_temperature(logits, labels)

    def nll(t):
        return -np.log(softmax(logits, t)[np.arange(500), labels]).mean()

    assert nll(temperature) <= nll(1.0)


def test_fit_temperature_returns_one_when_fit_fails(monkeypatch):
    def fail(*args):
        raise RuntimeError("line search failed")

    monkeypatch.setattr(calibration, "_lbfgs_log_temperature", fail)
    assert fit_temperature(np.zeros((4, 2)), np.array([0, 1, 0, 1])) == 1.0
    monkeypatch.setattr(calibration, "_lbfgs_log_temperature", lambda *args: float("nan"))
    assert fit_temperature(np.zeros((4, 2)), np.array([0, 1, 0, 1])) == 1.0


@pytest.mark.parametrize(
    ("logits", "labels", "kwargs"),
    [
        (np.zeros((4, 2)), np.array([0, 1, 0]), {}),
        (np.zeros(4), np.array([0, 1, 0, 1]), {}),
        (np.array([[np.inf, 0.0], [0.0, 0.0]]), np.array([0, 1]), {}),
        (np.zeros((2, 2)), np.array([0, 2]), {}),
        (np.zeros((2, 2)), np.array([0, 1]), {"max_iter": 0}),
    ],
)
def test_fit_temperature_rejects_invalid_inputs(logits, labels, kwargs):
    with pytest.raises(InvalidInputError):
        fit_temperature(logits, labels, **kwargs)
