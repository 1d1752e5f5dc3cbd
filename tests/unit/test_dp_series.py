"""Differential privacy for the series tasks: DPLSTM/DPGRU swaps, GRU-D per-record gradients, mortality and ECG bundles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("opacus")

from opacus.grad_sample import GradSampleModule
from opacus.layers import DPGRU, DPLSTM

from medai.bundle import load_bundle
from medai.errors import InvalidInputError
from medai.models import NETWORKS
from medai.models.recurrent import GRUD
from medai.models.series import SeriesModel
from medai.privacy.dp import _GRUD_NAMES, apply_replacements, make_private_compatible, restore_recurrent, train_private
from tests.series_records import write_physionet, write_ucr


def _batch(n=4, time=5, features=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.rand(n, time, features, generator=generator) > 0.4).float()
    return {"series": torch.randn(n, time, features, generator=generator), "mask": mask,
            "delta": torch.rand(n, time, features, generator=generator) * 3, "label": torch.arange(n) % 2}  # fmt: skip


@pytest.mark.parametrize(("network", "layer_class"), [("stacked_lstm", DPLSTM), ("gru", DPGRU)])
def test_lstm_and_gru_are_swapped_for_opacus_layers_and_restored_with_the_trained_weights(network, layer_class):
    torch.manual_seed(0)
    model = SeriesModel(NETWORKS.create(network, n_features=3, hidden=6, num_layers=2, use_mask=True, use_delta=True), "binary").eval()
    batch = _batch()
    before, keys = model(batch)["logits"], list(model.state_dict())
    replaced = make_private_compatible(model.train())
    model.eval()
    assert replaced == [{"layer": "network.rnn", "from": "LSTM" if network == "stacked_lstm" else "GRU",
                         "to": layer_class.__name__, "restored": True}]  # fmt: skip
    assert type(model.network.rnn) is layer_class and sorted(model.state_dict()) == sorted(keys)
    torch.testing.assert_close(model(batch)["logits"], before)
    with torch.no_grad():
        model.network.rnn.weight_ih_l0.add_(0.5)  # "training"
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    restore_recurrent(model)
    assert type(model.network.rnn) in (nn.LSTM, nn.GRU)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in trained.items())
    assert apply_replacements(model, replaced) is model and type(model.network.rnn) in (nn.LSTM, nn.GRU)  # nothing to rebuild


def test_grud_per_record_gradients_match_one_record_at_a_time():
    torch.manual_seed(0)
    original = SeriesModel(GRUD(n_features=3, hidden=4, dropout=0.0), "binary")
    model = SeriesModel(GRUD(n_features=3, hidden=4, dropout=0.0), "binary")
    model.load_state_dict(original.state_dict())
    assert make_private_compatible(model.train())[0]["to"] == "DPGRUD"
    assert sorted(model.state_dict()) == sorted(original.state_dict())  # GRU-D's names: checkpoints load in both
    batch = _batch(n=4)
    torch.testing.assert_close(model.eval()(batch)["logits"], original.eval()(batch)["logits"])
    wrapped = GradSampleModule(model.train(), loss_reduction="mean")
    wrapped(batch)["loss"].backward()
    names = {f"network.{new}": f"network.{old}" for new, old in _GRUD_NAMES.items()}
    per_record = {names.get(n, n): p.grad_sample for n, p in model.named_parameters()}
    assert all(g is not None and g.shape[0] == 4 for g in per_record.values())
    original.train()
    for i in range(4):  # the gradient of record i's own loss, computed alone
        original.zero_grad()
        original({k: v[i : i + 1] for k, v in batch.items()})["loss"].backward()
        for name, parameter in original.named_parameters():
            torch.testing.assert_close(per_record[name][i], parameter.grad, rtol=1e-4, atol=1e-6, msg=name)
    wrapped._close()


def test_layers_opacus_cannot_handle_are_refused_by_name():
    model = nn.Sequential(nn.Linear(4, 4), nn.MultiheadAttention(4, 2))
    with pytest.raises(InvalidInputError, match="Layer 1 .*MultiheadAttention"):
        make_private_compatible(model)


def _predict(bundle, root):
    from medai.tasks import mortality
    from medai.tasks import series_common as common

    raw = common.load_for_bundle(bundle, root, "all", "auto", labelled=False)
    return mortality.predict_proba(bundle.model, bundle.config, raw)


def test_mortality_trains_one_grud_under_dp_and_the_bundle_reloads(tmp_path):
    root = write_physionet(tmp_path / "p12", n=60)
    bundle = train_private("mortality", root, tmp_path / "bundle", {"epsilon": 8.0}, epochs=2, grud_hidden=8,
                           batch_size=16, progress=False)  # fmt: skip
    dp = bundle.config["privacy"]["dp"]
    assert 0 < dp["epsilon"] <= 8.0 + 1e-6 and dp["steps"] > 0
    assert dp["replaced_layers"] == [{"layer": "network.members.0", "from": "GRUD", "to": "DPGRUD", "restored": True}]
    assert [m["network"] for m in bundle.config["network_kwargs"]["members"]] == ["grud"] and "ood" not in bundle.config
    assert "(GRUD -> DPGRUD, for training only" in (tmp_path / "bundle" / "card.md").read_text()
    loaded = load_bundle(tmp_path / "bundle")
    assert type(loaded.model.network.members[0]) is GRUD
    np.testing.assert_array_equal(_predict(loaded, root), _predict(bundle, root))


def test_ecg_trains_one_network_under_dp(tmp_path):
    path = write_ucr(tmp_path / "toy_TRAIN.txt", n=40)
    bundle = train_private("ecg-classification", path, tmp_path / "ecg", {"epsilon": 8.0}, epochs=2, progress=False)
    dp = bundle.config["privacy"]["dp"]
    assert 0 < dp["epsilon"] <= 8.0 + 1e-6 and len(bundle.config["network_kwargs"]["members"]) == 1
    assert {r["to"] for r in dp["replaced_layers"]} == {"GroupNorm"}  # the CNN's BatchNorm1d layers
    loaded = load_bundle(tmp_path / "ecg")
    series = torch.randn(3, 48, 1)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.eval()({"series": series})["logits"],
                                   bundle.model.eval()({"series": series})["logits"], rtol=0, atol=0)  # fmt: skip


def test_series_dp_refusals(tmp_path):
    with pytest.raises(InvalidInputError, match="forecasting's loss"):
        train_private("forecasting", "x", tmp_path / "b", {"epsilon": 1.0})
    with pytest.raises(InvalidInputError, match="spend 3 times epsilon"):
        train_private("mortality", "x", tmp_path / "b", {"epsilon": 1.0}, ensemble=3)
    with pytest.raises(InvalidInputError, match="grud_members \\+ summary_members = 1"):
        train_private("mortality", "x", tmp_path / "b", {"epsilon": 1.0}, grud_members=1, summary_members=2)
