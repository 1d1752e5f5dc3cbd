"""The brightness and contrast check that flags images simpler than the training images (blank, saturated)."""

from __future__ import annotations

import numpy as np

from medai.tasks.common import fit_intensity_range, intensity_reasons, intensity_statistics


def images(n: int, seed: int, low: float = 0.2, high: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.uniform(low, high, size=(n, 1, 1, 1))
    return np.clip(base + rng.normal(0, 0.15, size=(n, 1, 8, 8)), 0, 1).astype(np.float32)


def test_statistics_are_each_images_mean_and_standard_deviation_over_every_channel():
    x = np.stack([np.zeros((3, 2, 2)), np.concatenate([np.zeros((1, 2, 2)), np.ones((2, 2, 2))])])
    stats = intensity_statistics(x)
    assert np.allclose(stats["mean"], [0.0, 2 / 3]) and np.allclose(stats["std"], [0.0, np.std([0] * 4 + [1] * 8)])


def test_the_range_is_the_training_range_widened_by_the_margin_and_counts_validation_alarms():
    train, val = images(200, 0), images(50, 1)
    fitted = fit_intensity_range(train, val, margin=0.1)
    means = intensity_statistics(train)["mean"]
    width = means.max() - means.min()
    assert np.isclose(fitted["mean"][0], means.min() - 0.1 * width) and np.isclose(fitted["mean"][1], means.max() + 0.1 * width)
    assert fitted["validation_flagged"] == np.mean([bool(r) for r in intensity_reasons(val, fitted)])
    assert fitted["validation_flagged"] <= 0.1  # same distribution: few alarms


def test_blank_saturated_and_washed_out_images_are_flagged_with_the_statistic_that_is_out_of_range():
    fitted = fit_intensity_range(images(200, 0), images(50, 1))
    odd = np.stack([np.zeros((1, 8, 8)), np.ones((1, 8, 8)), np.full((1, 8, 8), 0.4)]).astype(np.float32)
    blank, saturated, flat = intensity_reasons(odd, fitted)
    assert blank[0] == "no contrast: every pixel has the same value" and blank[1].startswith("brightness")
    assert len(blank) == 2 and any(r.startswith("brightness") for r in saturated)
    assert flat == ["no contrast: every pixel has the same value"]  # mid-grey: brightness normal, no contrast
    washed = np.clip(images(1, 3, 0.4, 0.4) * 0.1 + 0.36, 0, 1)  # some contrast, far less than any training image
    assert [r.split(" 0.")[0] for r in intensity_reasons(washed, fitted)[0]] == ["contrast (pixel standard deviation)"]
    assert intensity_reasons(images(5, 2), fitted) == [[]] * 5


def test_a_flat_image_is_flagged_even_where_training_images_had_almost_no_contrast():
    train = np.concatenate([images(50, 0), np.full((1, 1, 8, 8), 0.5, np.float32)])  # one flat training image
    fitted = fit_intensity_range(train, images(10, 1))
    assert fitted["std"][0] <= 0
    assert intensity_reasons(np.full((1, 1, 8, 8), 0.45, np.float32), fitted) == [["no contrast: every pixel has the same value"]]
