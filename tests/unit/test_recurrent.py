"""Series networks and SeriesModel: shapes, GRU-D decay, use of mask and static features, learning through Trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medai.data import Dataset, Schema
from medai.engine.trainer import Trainer, TrainerConfig
from medai.errors import InvalidInputError
from medai.models import NETWORKS, SeriesModel
from medai.models.recurrent import GRUD

SERIES_NETWORKS = ("stacked_lstm", "gru", "grud", "ecg_cnn1d")
SMALL = {"stacked_lstm": {"hidden": 16}, "gru": {"hidden": 16}, "grud": {"hidden": 16}, "ecg_cnn1d": {"width": 8}}


def _batch(batch: int = 3, steps: int = 10, variables: int = 4, n_static: int = 0, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.rand(batch, steps, variables, generator=generator) < 0.5).float()
    inputs = {
        "series": torch.randn(batch, steps, variables, generator=generator),
        "mask": mask,
        "delta": torch.rand(batch, steps, variables, generator=generator),
    }
    if n_static:
        inputs["static"] = torch.randn(batch, n_static, generator=generator)
    return inputs


@pytest.fixture
def one_thread():
    """Tiny recurrent models run fastest on one thread (and much slower on busy shared cores with more)."""
    threads = torch.get_num_threads()
    yield 1
    torch.set_num_threads(threads)


def test_series_networks_are_registered_for_the_series_modality():
    assert set(SERIES_NETWORKS) <= set(NETWORKS.names("series"))


@pytest.mark.parametrize("name", SERIES_NETWORKS)
@pytest.mark.parametrize("n_static", [0, 3])
def test_output_shape(name, n_static):
    network = NETWORKS.create(name, n_features=4, n_outputs=5, n_static=n_static, **SMALL[name]).eval()
    assert network(**_batch(n_static=n_static)).shape == (3, 5)


def test_ecg_network_takes_any_length_and_twelve_leads():
    network = NETWORKS.create("ecg_cnn1d", n_features=12, n_outputs=2, width=4).eval()
    assert network(torch.randn(2, 1000, 12)).shape == (2, 2)
    assert network(torch.randn(2, 1, 12)).shape == (2, 2)


def test_grud_input_decays_from_last_observation_toward_the_mean():
    network = GRUD(n_features=2, n_outputs=2, hidden=4)
    steps = 8
    series = torch.full((1, steps, 2), 2.0)  # observed 2.0 at step 0, then forward-filled
    mask = torch.zeros(1, steps, 2)
    mask[:, 0] = 1.0
    delta = torch.arange(steps, dtype=torch.float32).view(1, steps, 1).expand(1, steps, 2)
    imputed = network.impute(series, mask, delta)[0, :, 0]  # (steps,)
    assert imputed[0] == 2.0
    assert torch.all(imputed[1:] < imputed[:-1]) and torch.all(imputed > 0)
    with torch.no_grad():
        network.input_decay_weight.fill_(5.0)  # a fast decay reaches the mean (0)
    assert network.impute(series, mask, delta)[0, -1].abs().max() < 1e-6
    observed = network.impute(series, torch.ones_like(mask), delta)
    assert torch.equal(observed, series)  # observed values are kept as they are


def test_grud_hidden_state_decays_with_time_since_observation():
    torch.manual_seed(0)
    network = GRUD(n_features=3, n_outputs=2, hidden=6).eval()
    inputs = _batch(variables=3)
    with torch.no_grad():
        network.hidden_decay.weight.fill_(1.0)
        network.hidden_decay.bias.zero_()
        recent = network(inputs["series"], inputs["mask"], torch.zeros_like(inputs["delta"]))
        stale = network(inputs["series"], inputs["mask"], inputs["delta"] + 50.0)
    assert not torch.allclose(recent, stale)


@pytest.mark.parametrize("name,kwargs", [("grud", {}), ("stacked_lstm", {"use_mask": True}), ("gru", {"use_delta": True})])
def test_mask_and_delta_change_outputs_when_used(name, kwargs):
    torch.manual_seed(0)
    network = NETWORKS.create(name, n_features=4, n_outputs=2, hidden=8, **kwargs).eval()
    inputs = _batch()
    other = dict(inputs, mask=1 - inputs["mask"], delta=inputs["delta"] * 3)
    with torch.no_grad():
        assert not torch.allclose(network(**inputs), network(**other))


def test_mask_is_ignored_unless_asked_for():
    network = NETWORKS.create("stacked_lstm", n_features=4, n_outputs=2, hidden=8).eval()
    inputs = _batch()
    with torch.no_grad():
        assert torch.equal(network(**inputs), network(inputs["series"]))


@pytest.mark.parametrize("name", SERIES_NETWORKS)
def test_static_features_change_outputs(name):
    torch.manual_seed(0)
    network = NETWORKS.create(name, n_features=4, n_outputs=2, n_static=2, **SMALL[name]).eval()
    inputs = _batch(n_static=2)
    with torch.no_grad():
        assert not torch.allclose(network(**inputs), network(**dict(inputs, static=inputs["static"] + 1)))


def test_missing_or_misshapen_inputs_are_named():
    lstm = NETWORKS.create("stacked_lstm", n_features=4, use_mask=True)
    with pytest.raises(InvalidInputError, match="use_mask=True but the batch has no 'mask'"):
        lstm(torch.randn(2, 5, 4))
    with pytest.raises(InvalidInputError, match=r"shape \(batch, time, 4\); got \(2, 5, 3\)"):
        lstm(torch.randn(2, 5, 3), torch.ones(2, 5, 3))
    with pytest.raises(InvalidInputError, match="no 'delta'"):
        NETWORKS.create("grud", n_features=4)(torch.randn(2, 5, 4), torch.ones(2, 5, 4))
    with pytest.raises(InvalidInputError, match=r"'static' features of shape \(2, 3\); got none"):
        NETWORKS.create("gru", n_features=4, n_static=3)(torch.randn(2, 5, 4))


@pytest.mark.parametrize(
    "name,kwargs,message",
    [
        ("stacked_lstm", {"hidden": 0}, "'hidden' parameter of stacked_lstm must be an int >= 1; got 0"),
        ("gru", {"dropout": 1.0}, "'dropout' parameter of gru must be a float in"),
        ("grud", {"n_features": 2.5}, "'n_features' parameter of grud"),
        ("ecg_cnn1d", {"n_static": -1}, "'n_static' parameter of ecg_cnn1d must be an int >= 0"),
    ],
)
def test_bad_network_arguments_are_named(name, kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        NETWORKS.create(name, **kwargs)


def test_series_model_checks_its_arguments():
    network = NETWORKS.create("gru", n_features=4, n_outputs=3, hidden=8)
    with pytest.raises(InvalidInputError, match="Did you mean 'regression'"):
        SeriesModel(network, "regresion")
    with pytest.raises(InvalidInputError, match="n_outputs 2; got 3"):
        SeriesModel(network, "binary")
    with pytest.raises(InvalidInputError, match="'class_weight' parameter must hold 3"):
        SeriesModel(network, "multiclass", class_weight=[1.0, 2.0])
    with pytest.raises(InvalidInputError, match="'target_std' parameter must hold 3"):
        SeriesModel(network, "regression", target_std=[1.0])
    with pytest.raises(InvalidInputError, match="Did you mean 'huber'"):
        SeriesModel(network, "regression", regression_loss="hubber")


def _trend_data(n: int, seed: int, steps: int = 16, variables: int = 3, target: str = "class") -> Dataset:
    """Class 1 when variable 0 rises over the stay, 0 when it falls; 70% of values observed, forward-filled.

    For ``target="regression"``: one target 50 + 10 * slope (original units), a fifth of them missing (NaN).
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    slope = rng.uniform(0.5, 1.5, n) * np.where(labels == 1, 1.0, -1.0)
    values = rng.normal(0, 0.4, (n, steps, variables)).astype(np.float32)
    values[:, :, 0] += slope[:, None] * np.linspace(-1, 1, steps)[None, :]
    mask = (rng.random((n, steps, variables)) < 0.7).astype(np.float32)
    mask[:, 0] = 1.0
    delta = np.zeros_like(values)
    for t in range(1, steps):
        values[:, t] = np.where(mask[:, t] > 0, values[:, t], values[:, t - 1])
        delta[:, t] = np.where(mask[:, t - 1] > 0, 1.0, delta[:, t - 1] + 1.0) / steps
    extras = {"mask": mask, "delta": delta, "static": rng.normal(0, 1, (n, 2)).astype(np.float32)}
    if target == "regression":
        targets = (50 + 10 * slope).astype(np.float32).reshape(n, 1)
        targets[rng.random(n) < 0.2] = np.nan
        schema = Schema("series", "regression", ("score",), (steps, variables))
        return Dataset(values, targets, np.arange(n), schema, extras=extras)
    schema = Schema("series", "binary", ("falling", "rising"), (steps, variables))
    return Dataset(values, labels, np.arange(n), schema, extras=extras)


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("stacked_lstm", {"hidden": 16, "use_mask": True}),
        ("gru", {"hidden": 16, "use_delta": True}),
        ("grud", {"hidden": 16}),
        ("ecg_cnn1d", {"width": 8}),
    ],
)
def test_every_network_learns_a_trend_through_the_trainer(name, kwargs, one_thread):
    from medai.tasks.common import validation_metrics

    torch.manual_seed(0)
    network = NETWORKS.create(name, n_features=3, n_outputs=2, n_static=2, **kwargs)
    model = SeriesModel(network, "binary", class_weight=[1.0, 1.0])
    config = TrainerConfig(max_epochs=8, batch_size=32, learning_rate=1e-2, progress=False, num_threads=one_thread)
    trainer = Trainer(config, metric_fn=validation_metrics)
    result = trainer.fit(model, _trend_data(320, seed=0), _trend_data(96, seed=1))
    test = _trend_data(96, seed=2)
    accuracy = (trainer.predict(model, test).argmax(1) == test.labels).mean()
    assert result.best_score > 0.85 and accuracy > 0.8, (result.history[-1], accuracy)


def test_regression_predictions_come_back_in_original_units(one_thread):
    train, val = _trend_data(320, seed=0, target="regression"), _trend_data(96, seed=1, target="regression")
    observed = train.labels[np.isfinite(train.labels)]
    torch.manual_seed(0)
    network = NETWORKS.create("gru", n_features=3, n_outputs=1, n_static=2, hidden=16, use_delta=True)
    model = SeriesModel(network, "regression", target_mean=[observed.mean()], target_std=[observed.std()])
    config = TrainerConfig(max_epochs=8, batch_size=32, learning_rate=1e-2, monitor="loss", progress=False,
                           num_threads=one_thread)  # fmt: skip
    trainer = Trainer(config)
    trainer.fit(model, train, val)
    predictions = trainer.predict(model, val)  # (96, 1) in original units
    known = np.isfinite(val.labels)
    assert predictions.shape == (96, 1) and np.isfinite(predictions).all()
    error = np.abs(predictions[known] - val.labels[known]).mean()
    assert error < 0.5 * np.abs(val.labels[known] - observed.mean()).mean()


def test_integrated_gradients_run_on_network_outputs():
    attr = pytest.importorskip("captum.attr")
    torch.manual_seed(0)
    network = NETWORKS.create("grud", n_features=4, n_outputs=2, n_static=2, hidden=8)
    model = SeriesModel(network, "binary").eval()
    inputs = _batch(n_static=2)
    gradients = attr.IntegratedGradients(model.network_outputs)
    attributions, gap = gradients.attribute(
        inputs["series"],
        target=1,
        additional_forward_args=(inputs["mask"], inputs["delta"], inputs["static"]),
        n_steps=32,
        return_convergence_delta=True,
    )
    assert attributions.shape == inputs["series"].shape and torch.isfinite(attributions).all()
    assert gap.abs().max() < 0.05  # attributions add up to the change in the output
