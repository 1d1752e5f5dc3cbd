"""Affinity metrics: concordance index against a brute-force reference, r_m^2 by hand, the metrics dict."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medai.chem.metrics import affinity_metrics, concordance_index, mse, rm2
from medai.errors import InvalidInputError


def brute_force_ci(targets, predictions) -> float:
    """Every pair with different targets; prediction ties count one half."""
    concordant, comparable = 0.0, 0
    for i in range(len(targets)):
        for j in range(len(targets)):
            if targets[i] > targets[j]:
                comparable += 1
                concordant += 1.0 if predictions[i] > predictions[j] else 0.5 if predictions[i] == predictions[j] else 0
    return concordant / comparable if comparable else math.nan


@pytest.mark.parametrize("seed", range(40))
def test_concordance_index_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    targets = rng.integers(0, 6, n).astype(float)  # many ties in targets and predictions
    predictions = rng.integers(0, 4, n).astype(float) if seed % 2 else rng.normal(size=n)
    assert concordance_index(targets, predictions) == pytest.approx(brute_force_ci(targets, predictions), abs=1e-12)


def test_concordance_index_edge_cases_and_size():
    assert concordance_index([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    assert concordance_index([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == 0.0
    assert concordance_index([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]) == 0.5
    assert math.isnan(concordance_index([2.0, 2.0], [1.0, 3.0]))  # no comparable pair
    rng = np.random.default_rng(0)
    targets = rng.normal(size=20000)  # KIBA-test-fold size, exact
    value = concordance_index(targets, targets + rng.normal(size=20000))
    assert 0.7 < value < 0.8


def test_rm2_against_a_hand_computation():
    targets, predictions = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])
    # r2 = (sum dy dp)^2 / (sum dy^2 sum dp^2) = 1 / 4; k = sum(y p) / sum(p^2) = 13 / 14;
    # r0^2 = 1 - sum((y - k p)^2) / sum(dy^2) = 1 - (378 / 196) / 2 = 1 / 28
    assert rm2(targets, predictions) == pytest.approx(0.25 * (1 - math.sqrt(0.25 - 1 / 28)))
    assert rm2(targets, predictions, deepdta_code=True) == pytest.approx(0.25 * (1 - math.sqrt(1 / 16 - 1 / 784)))
    assert rm2(targets, 2 * targets) == pytest.approx(1.0)  # r2 = 1 and r0^2 = 1 through the origin
    assert math.isnan(rm2(targets, np.ones(3)))


def test_affinity_metrics_dict_and_input_checks():
    metrics = affinity_metrics(np.array([1.0, 2.5, 2.0]), np.array([1.0, 2.0, 3.0]))
    assert set(metrics) == {"mse", "rmse", "mae", "r2", "ci", "rm2", "n_samples"}
    assert metrics["mse"] == pytest.approx(1.25 / 3) and metrics["ci"] == pytest.approx(2 / 3)
    assert mse([1.0, 2.0], [1.0, 4.0]) == 2.0
    assert affinity_metrics(np.ones(3), np.array([1.0, 2.0, 3.0]))["rm2"] is None
    with pytest.raises(InvalidInputError, match="same shape"):
        concordance_index([1.0, 2.0], [1.0])
    with pytest.raises(InvalidInputError, match="'predictions' must be finite"):
        affinity_metrics(np.array([np.nan, 1.0]), np.array([1.0, 2.0]))
