"""The summary-statistics network, the heterogeneous series ensemble, forecasting samples and series explanations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medai.errors import InvalidInputError
from medai.models import NETWORKS, SeriesModel


def _inputs(batch=3, steps=5, variables=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.rand(batch, steps, variables, generator=generator) < 0.5).float()
    mask[0, :, 1] = 0.0  # record 0 never measures variable 1
    series = torch.randn(batch, steps, variables, generator=generator)
    filled = series.clone()
    for t in range(steps):  # forward fill, 0 (the mean) before the first observation
        previous = filled[:, t - 1] if t else torch.zeros(batch, variables)
        filled[:, t] = torch.where(mask[:, t] > 0, series[:, t], previous)
    return filled, mask


def test_summary_statistics_match_numpy():
    series, mask = _inputs()
    network = NETWORKS.create("series_summary", n_features=2, n_outputs=2,
                              statistics=["mean", "min", "max", "last", "count"])
    features = network.summarise(series, mask).numpy()  # (batch, 5 statistics * 2 variables)
    s, m = series.numpy(), mask.numpy() > 0
    for i in range(3):
        for j in range(2):
            values = s[i, m[i, :, j], j]
            expected = [values.mean(), values.min(), values.max(), s[i, -1, j]] if len(values) else [0, 0, 0, 0]
            got = features[i, [j, 2 + j, 4 + j, 6 + j]]
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
            assert features[i, 8 + j] == pytest.approx(np.log1p(len(values)) / np.log1p(5))


def test_summary_network_is_linear_without_hidden_units_and_validates_arguments():
    linear = NETWORKS.create("series_summary", n_features=2, n_outputs=2)
    assert isinstance(linear.head, torch.nn.Linear)
    with pytest.raises(InvalidInputError, match="statistics"):
        NETWORKS.create("series_summary", statistics=["median"])
    with pytest.raises(InvalidInputError, match="hidden"):
        NETWORKS.create("series_summary", hidden=-1)
    with pytest.raises(InvalidInputError, match="use_mask=True"):
        linear(torch.randn(2, 5, 2))  # the summary needs the observation mask


def test_ensemble_averages_member_probabilities():
    torch.manual_seed(0)
    ensemble = NETWORKS.create("series_ensemble", n_features=2, n_outputs=3, n_static=1,
                               members=[{"network": "grud", "hidden": 4}, {"network": "series_summary", "hidden": 3}])
    series, mask = _inputs()
    static, delta = torch.randn(3, 1), torch.rand(3, 5, 2)
    ensemble.eval()
    members = ensemble.member_outputs(series, mask, delta, static)  # (2, 3, 3)
    expected = torch.softmax(members, dim=-1).mean(dim=0)
    assert torch.allclose(ensemble(series, mask, delta, static).exp(), expected, atol=1e-6)
    regression = NETWORKS.create("series_ensemble", n_features=2, n_outputs=1, combine="mean",
                                 members=[{"network": "series_summary"}] * 2).eval()
    assert torch.allclose(regression(series, mask), regression.member_outputs(series, mask).mean(dim=0))


@pytest.mark.parametrize("members, message", [
    ([], "non-empty list"), ([{"hidden": 4}], "'network' name"), ([{"network": "series_ensemble"}], "itself"),
    ([{"network": "grudd"}], "Did you mean 'grud'"),
])
def test_ensemble_rejects_bad_members(members, message):
    with pytest.raises(InvalidInputError, match=message):
        NETWORKS.create("series_ensemble", members=members)


def test_integrated_gradients_add_up_to_the_prediction(tmp_path):
    from medai.data.dataset import Dataset, Schema
    from medai.explain.series import integrated_gradients, plot_heatmap, top_variables, top_windows

    torch.manual_seed(0)
    network = NETWORKS.create("series_ensemble", n_features=2, n_outputs=2, n_static=1,
                              members=[{"network": "grud", "hidden": 4}, {"network": "series_summary"}])
    model = SeriesModel(network, "binary").eval()
    series, mask = _inputs(batch=1, steps=12)
    extras = {"mask": mask.numpy(), "delta": np.zeros((1, 12, 2), np.float32), "static": np.ones((1, 1), np.float32)}
    record = Dataset(series.numpy(), None, np.array(["r"]), Schema("series", "binary", ("no", "yes"), (12, 2)),
                     extras=extras)
    found = integrated_gradients(model, record, target=1, steps=100)
    total = found["cells"].sum() + found["static"].sum()
    assert total == pytest.approx(found["output"] - found["baseline_output"], abs=0.02)
    names = ["HR", "MAP"]
    assert {v["variable"] for v in top_variables(found["cells"], names)} <= set(names)
    windows = top_windows(found["cells"], names, np.arange(12), width=6)
    assert all(w["hours"] in ([0, 6], [6, 12]) for w in windows)
    assert plot_heatmap(found["cells"], names, np.arange(12), tmp_path / "h.png", observed=extras["mask"][0]).is_file()


def test_forecast_metrics_compare_with_locf_on_the_same_samples():
    from medai.tasks.forecast_samples import forecast_metrics

    nan = float("nan")
    targets = np.array([[80.0, 70.0], [90.0, nan], [100.0, 60.0]])
    locf = np.array([[70.0, 70.0], [nan, 65.0], [90.0, 70.0]])
    predictions = np.array([[75.0, 71.0], [0.0, 0.0], [95.0, 65.0]])
    metrics = forecast_metrics(predictions, locf, targets, ["HR", "MAP"])
    hr, mean_arterial = metrics["per_variable"]["HR"], metrics["per_variable"]["MAP"]
    assert hr["n"] == 2 and hr["mae"] == 5.0 and hr["locf_mae"] == 10.0 and hr["mae_change"] == -0.5
    assert mean_arterial["n"] == 2 and mean_arterial["mae"] == 3.0 and mean_arterial["locf_mae"] == 5.0
