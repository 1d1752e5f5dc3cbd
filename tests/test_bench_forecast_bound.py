"""bench/forecast_bound.py's helpers on synthetic series whose best possible forecast is known."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import bench_module


def bench():
    return bench_module("forecast_bound")


def walk_plus_noise(rng, rows: int, hours: int, walk_sd: float, noise_sd: float) -> np.ndarray:
    level = np.cumsum(rng.normal(0, walk_sd, (rows, hours)), axis=1)
    return level + rng.normal(0, noise_sd, (rows, hours))


@pytest.mark.parametrize("noise_sd", [0.5, 1.0, 2.0])
def test_bound_recovers_the_noise_share_and_the_kalman_filter_error(noise_sd):
    rng = np.random.default_rng(0)
    values = walk_plus_noise(rng, 400, 60, 1.0, noise_sd)
    found = bench().walk_noise_bound(values)
    assert found["noise_over_walk_variance"] == pytest.approx(noise_sd**2, rel=0.1)
    # the steady-state Kalman filter is exponential smoothing with gain P / (P + r): its one-step error over LOCF's
    # on the same series must match the bound's ratio
    r = noise_sd**2
    prior = (1 + np.sqrt(1 + 4 * r)) / 2
    gain, errors, locf = prior / (prior + r), [], []
    for hour in range(10, values.shape[1] - 1):  # one-step errors after a burn-in, every hour of every series
        level = bench().smoothed(values[:, : hour + 1], gain)
        errors.append(values[:, hour + 1] - level)
        locf.append(values[:, hour + 1] - values[:, hour])
    ratio = np.sqrt(np.mean(np.square(errors)) / np.mean(np.square(locf)))
    assert found["error_ratio"] == pytest.approx(ratio, abs=0.03)
    assert found["error_ratio"] < 1


def test_bound_refuses_series_that_are_not_a_noisy_walk():
    rng = np.random.default_rng(1)
    trending = np.cumsum(np.cumsum(rng.normal(0, 1, (200, 40)), axis=1), axis=1)  # differences positively correlated
    assert bench().walk_noise_bound(trending)["error_ratio"] is None


def test_smoothing_skips_unobserved_hours():
    values = np.array([[10.0, np.nan, 20.0, np.nan], [np.nan, np.nan, np.nan, np.nan]])
    level = bench().smoothed(values, 0.5)
    assert level[0] == pytest.approx(15.0) and np.isnan(level[1])
