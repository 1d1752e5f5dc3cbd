"""Federated learning (issue 7): statistics without pooling, a 2-client Flower round in process, FedProx, bundles."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from medai.data.sources.tabular import Table
from medai.privacy import federated_sites as sites_lib
from medai.transforms.tabular import TabularPreprocessor


def _table(rows: int, seed: int, shift: float) -> Table:
    rng = np.random.default_rng(seed)
    crp, age = rng.normal(10 + shift, 3, rows), rng.normal(60, 8, rows)
    crp[rng.random(rows) < 0.1] = np.nan
    sex = rng.choice(["F", "M"], rows).astype(object)
    risk = np.nan_to_num(crp - 10, nan=0.0) / 3 + (sex == "M") - 0.5 + rng.normal(0, 0.5, rows)
    labels = (risk > 0).astype(np.int64)
    ids = np.array([f"s{seed}-{i}" for i in range(rows)])
    return Table({"crp": crp, "age": age, "sex": sex}, ["crp", "age"], ["sex"], "y", labels, ("0", "1"), ids,
                 classes=("0", "1"))


def _sites() -> list:
    return [sites_lib.split_site(f"site{k}", _table(rows, k, shift), seed=0)
            for k, (rows, shift) in enumerate([(120, 0.0), (80, 2.0)])]


def test_federated_statistics_match_pooled_preprocessing():
    tables = [_table(150, 1, 0.0), _table(90, 2, 3.0)]
    moments = sites_lib.combine_moments([sites_lib.site_moments(t) for t in tables])
    edges = sites_lib.histogram_edges(moments)
    histograms = sites_lib.combine_histograms([sites_lib.site_histograms(t, edges) for t in tables])
    state = sites_lib.preprocessing_state(moments, histograms, edges)
    pooled = {n: np.concatenate([t.columns[n] for t in tables]) for n in ("crp", "age", "sex")}
    reference = TabularPreprocessor(["crp", "age"], ["sex"]).fit(pooled)
    np.testing.assert_allclose(state["means"], reference.means_, rtol=1e-9)
    np.testing.assert_allclose(state["stds"], reference.stds_, rtol=1e-9)
    bin_width = 12 * np.asarray(reference.stds_) / sites_lib.HISTOGRAM_BINS
    assert (np.abs(np.subtract(state["medians"], reference.medians_)) <= bin_width).all()
    assert state["categories"] == reference.categories_ and state["category_counts"] == reference.category_counts_
    TabularPreprocessor.from_dict(state)  # a valid preprocessor state


def test_proximal_term_is_zero_at_the_global_weights_and_grows_with_distance():
    from medai.models import NETWORKS, Classifier
    from medai.privacy.federated_client import ProximalObjective

    model = Classifier(NETWORKS.create("tabular_mlp", n_numeric=2, cardinalities=[3]), "table", [0.0] * 5, [1.0] * 5)
    objective = ProximalObjective(model, mu=0.5)
    assert float(objective.proximal_term()) == 0.0
    with torch.no_grad():
        model.network.head.bias.add_(2.0)  # 2 outputs moved by 2: ||delta||^2 = 8
    assert float(objective.proximal_term()) == pytest.approx(0.5 / 2 * 8)
    batch = {"table": torch.zeros(4, 5), "label": torch.tensor([0, 1, 0, 1])}
    objective.train()
    with_term = float(objective(batch)["loss"])
    objective.eval()
    assert with_term == pytest.approx(float(objective(batch)["loss"]) + 2.0, abs=0.3)  # dropout/BN differ train vs eval


needs_flower = pytest.mark.skipif(importlib.util.find_spec("flwr") is None,
                                  reason="Flower (flwr) is not installed: pip install 'medai[federated]'")


def _fit_config(config: dict, settings, server_round: int) -> dict:
    return {"model_config": json.dumps(config), "local_epochs": settings.local_epochs, "batch_size": settings.batch_size,
            "learning_rate": settings.learning_rate, "weight_decay": settings.weight_decay,
            "seed": settings.seed + 1000 * server_round,
            "batch_norm": settings.batch_norm}  # fmt: skip


@needs_flower
def test_two_client_fedavg_round_is_the_weighted_average_of_local_updates():
    from medai.privacy.federated import FederatedSettings, simulate
    from medai.privacy.federated_client import get_arrays, make_numpy_client
    from medai.tasks.tabular_classification import build_model

    sites, settings = _sites(), FederatedSettings(rounds=1, local_epochs=1)
    results, traffic = simulate(sites, settings)
    torch.manual_seed(settings.seed)
    initial = get_arrays(build_model(results["config"]))
    updates = [make_numpy_client(site).fit(initial, _fit_config(results["config"], settings, 1)) for site in sites]
    counts = np.array([n for _, n, _ in updates], dtype=float)
    assert counts.tolist() == [len(s.train) for s in sites]
    expected = [sum(w * u[0][i] for w, u in zip(counts / counts.sum(), updates)) for i in range(len(initial))]
    for got, want in zip(results["arrays"], expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(results["arrays"], initial))  # the round changed the weights
    assert traffic["bytes_from_sites"] > 0 and results["pooled_test"]["n_samples"] == sum(len(s.test) for s in sites)


@needs_flower
def test_fedprox_keeps_local_weights_closer_to_the_global_model():
    from medai.privacy.federated import FederatedSettings
    from medai.privacy.federated_client import get_arrays, make_numpy_client
    from medai.privacy.federated_server import model_config_from

    sites, settings = _sites(), FederatedSettings(local_epochs=3, learning_rate=3e-2)
    moments = sites_lib.combine_moments([sites_lib.site_moments(s.train) for s in sites])
    edges = sites_lib.histogram_edges(moments)
    histograms = sites_lib.combine_histograms([sites_lib.site_histograms(s.train, edges) for s in sites])
    config = model_config_from(sites_lib.preprocessing_state(moments, histograms, edges), moments, settings)
    from medai.tasks.tabular_classification import build_model

    torch.manual_seed(0)
    initial = get_arrays(build_model(config))
    client = make_numpy_client(sites[0])
    distance = {}
    for mu in (0.0, 10.0):
        arrays, _, _ = client.fit(initial, {**_fit_config(config, settings, 1), "proximal_mu": mu})
        distance[mu] = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(arrays, initial)))
    assert distance[10.0] < distance[0.0]


@needs_flower
def test_federated_bundle_evaluates_and_predicts_like_a_tabular_bundle(tmp_path):
    from typer.testing import CliRunner

    from medai import api
    from medai.cli.main import app
    from medai.data.sources.tabular import write_frame

    tables = [_table(100, 3, 0.0), _table(70, 4, 2.0)]
    columns = {n: np.concatenate([t.columns[n] for t in tables]) for n in ("crp", "age", "sex")}
    columns |= {"id": np.concatenate([t.ids for t in tables]), "hospital": np.repeat(["A", "B"], [100, 70]),
                "y": np.concatenate([t.labels for t in tables])}
    path = write_frame({k: np.where(pd_missing(v), None, v) for k, v in columns.items()}, tmp_path / "sites.csv")
    result = CliRunner().invoke(app, ["federated", "--data", str(path), "--site-column", "hospital", "--target", "y",
                                      "--id-column", "id", "--rounds", "2", "--strategy", "fedprox",
                                      "--out", str(tmp_path / "bundle"), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert set(summary["site_test_auroc"]) == {"A", "B"}
    metrics = api.evaluate(tmp_path / "bundle", str(path), "test")
    assert metrics["n_samples"] == 34 and metrics["auroc"] is not None  # the two sites' test rows (20 + 14)
    predictions = api.predict(tmp_path / "bundle", [path])
    assert len(predictions) == 170 and set(predictions[0]["probabilities"]) == {"0", "1"}
    card = (tmp_path / "bundle" / "card.md").read_text()
    assert "fedprox" in card and "Shared by each site" in card


@needs_flower
def test_sites_are_chosen_by_file_or_by_name(tmp_path):
    from typer.testing import CliRunner

    from medai.cli.main import app
    from medai.data.sources.tabular import write_frame
    from medai.privacy.federated import FederatedSettings, select_sites

    files = []
    for name, (rows, seed, shift) in {"north": (80, 5, 0.0), "south": (60, 6, 1.5)}.items():
        t = _table(rows, seed, shift)
        columns = {n: t.columns[n] for n in ("crp", "age", "sex")} | {"id": t.ids, "y": t.labels}
        files.append(write_frame({k: np.where(pd_missing(v), None, v) for k, v in columns.items()}, tmp_path / f"{name}.csv"))
    settings = FederatedSettings(target="y", id_column="id")
    assert [s.name for s in select_sites(None, [str(f) for f in files], settings)] == ["north", "south"]
    with pytest.raises(Exception, match="at least 2 sites"):
        select_sites(None, [str(files[0])], settings)
    with pytest.raises(Exception, match="Unknown site"):
        select_sites(str(tmp_path), ["north", "east"], settings)
    result = CliRunner().invoke(app, ["federated", "--sites", str(files[0]), "--sites", str(files[1]), "--target", "y",
                                      "--id-column", "id", "--rounds", "2", "--out", str(tmp_path / "b"), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)["site_test_auroc"]) == {"north", "south"}


def pd_missing(values: np.ndarray) -> np.ndarray:
    return np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in values])


@needs_flower
def test_secure_aggregation_gives_the_fedavg_aggregate_up_to_quantisation():
    from medai.privacy.federated import FederatedSettings, simulate

    sites = [*_sites(), sites_lib.split_site("site2", _table(90, 7, 1.0), seed=0)]  # SecAgg+ needs 3 or more sites
    plain, _ = simulate(sites, FederatedSettings(rounds=1, local_epochs=1))
    secure, _ = simulate(sites, FederatedSettings(rounds=1, local_epochs=1, secure_aggregation=True))
    for a, b in zip(plain["arrays"], secure["arrays"]):
        np.testing.assert_allclose(a, b, atol=1e-3)  # quantisation step 2 * 16 / 2**22 per site


@needs_flower
def test_fixed_batch_norm_trains_with_the_global_statistics_and_keeps_them():
    from medai.privacy.federated import FederatedSettings
    from medai.privacy.federated_client import exchanged_keys, get_arrays, make_numpy_client
    from medai.privacy.federated_server import model_config_from
    from medai.tasks.tabular_classification import build_model

    sites = _sites()
    moments = sites_lib.combine_moments([sites_lib.site_moments(s.train) for s in sites])
    edges = sites_lib.histogram_edges(moments)
    histograms = sites_lib.combine_histograms([sites_lib.site_histograms(s.train, edges) for s in sites])
    config = model_config_from(sites_lib.preprocessing_state(moments, histograms, edges), moments, FederatedSettings())
    torch.manual_seed(0)
    model = build_model(config)
    keys, initial = exchanged_keys(model), get_arrays(model)
    client = make_numpy_client(sites[0])
    for mode in ("fixed", "batch"):
        arrays, _, _ = client.fit(initial, _fit_config(config, FederatedSettings(batch_norm=mode), 1))
        stats = [i for i, k in enumerate(keys) if k.endswith(("running_mean", "running_var"))]
        assert stats and any(not np.allclose(arrays[i], initial[i]) for i in range(len(keys)) if i not in stats)
        unchanged = all(np.array_equal(arrays[i], initial[i]) for i in stats)
        assert unchanged == (mode == "fixed")


@needs_flower
def test_fedavgm_first_round_is_the_fedavg_average():
    from medai.privacy.federated import FederatedSettings, simulate

    plain, _ = simulate(_sites(), FederatedSettings(rounds=1))
    momentum, _ = simulate(_sites(), FederatedSettings(rounds=1, server_momentum=0.9))
    for a, b in zip(plain["arrays"], momentum["arrays"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_cli_defaults_are_the_settings_defaults():
    """The CLI repeats FederatedSettings' defaults as literals (importing the settings would slow every `medai`
    start by ~2 s); this keeps the two from drifting apart, as they once did (30 rounds x 2 epochs in the CLI)."""
    import inspect

    from medai.cli import federated as cli
    from medai.privacy.federated import FederatedSettings

    defaults = FederatedSettings()
    for command in (cli.federated, cli.server):
        parameters = inspect.signature(command).parameters
        for name in ("rounds", "strategy", "proximal_mu", "local_epochs", "seed", "secure_aggregation"):
            assert parameters[name].default == getattr(defaults, name), (command.__name__, name)
