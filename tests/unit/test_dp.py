"""Differential privacy (Opacus) and the membership-inference audit: accounting, layer fixes, errors, bundles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("opacus")

from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from typer.testing import CliRunner

from medai.bundle import load_bundle
from medai.cli.main import app
from medai.data import Dataset, Schema
from medai.engine.calibration import softmax
from medai.engine.trainer import Trainer, TrainerConfig
from medai.errors import InvalidInputError
from medai.models import NETWORKS, Classifier
from medai.privacy.audit import membership_inference
from medai.privacy.dp import SEARCH_ORDERS, PrivateTraining, default_delta, make_private_compatible


def _table(n: int, seed: int, noise: float = 0.5) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = ((x[:, 0] + x[:, 1] + noise * rng.normal(size=n)) > 0).astype(np.int64)
    rows = np.concatenate([x, np.zeros_like(x)], axis=1)  # values, then missing indicators (none missing)
    return Dataset(rows, y, np.arange(n), Schema("table", "binary", ("no", "yes"), (12,), "table"))


def _mlp(seed: int = 0, **kwargs) -> Classifier:
    torch.manual_seed(seed)
    return Classifier(NETWORKS.create("tabular_mlp", n_numeric=6, **kwargs), "table", [0.0] * 12, [1.0] * 12)


def _accuracy(logits, labels):
    return {"accuracy": float((logits.argmax(1) == labels).mean())}


def _fit(model, train, val, epochs=3, batch_size=32, learning_rate=2e-3, **privacy):
    config = TrainerConfig(max_epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, monitor="accuracy",
                           progress=False, privacy=privacy or None)  # fmt: skip
    return Trainer(config, metric_fn=_accuracy).fit(model, train, val)


def test_dp_training_records_the_epsilon_opacus_accountant_gives():
    train, val = _table(200, 0), _table(60, 1)
    result = _fit(_mlp(), train, val, epochs=3, batch_size=32, epsilon=3.0)
    report = result.privacy
    assert report["delta"] == default_delta(200) == 1e-5 and default_delta(20_000) == 1 / 200_000
    assert report["steps"] == 3 * 7 and report["sample_rate"] == pytest.approx(1 / 7)
    accountant = RDPAccountant()  # computed independently for the same noise, sampling rate and steps
    accountant.history = [(report["noise_multiplier"], 1 / 7, 21)]
    assert report["epsilon"] == pytest.approx(accountant.get_epsilon(report["delta"]), rel=1e-9)
    assert 2.9 < report["epsilon"] <= 3.0
    opacus_noise = get_noise_multiplier(target_epsilon=3.0, target_delta=1e-5, sample_rate=1 / 7, epochs=3, accountant="rdp")
    assert opacus_noise <= report["noise_multiplier"] < 1.02 * opacus_noise  # the search over integer orders only
    assert set(SEARCH_ORDERS) <= set(RDPAccountant.DEFAULT_ALPHAS)  # so it can only overstate epsilon
    assert "privacy" in result.to_dict() and "privacy" not in _fit(_mlp(), train, val, epochs=1).to_dict()


def test_dp_training_is_reproducible_and_still_learns():
    train, val = _table(300, 0, noise=0.2), _table(100, 1, noise=0.2)
    model_a, model_b = _mlp(), _mlp()
    result = _fit(model_a, train, val, epochs=6, batch_size=64, learning_rate=1e-2, epsilon=8.0)
    _fit(model_b, train, val, epochs=6, batch_size=64, learning_rate=1e-2, epsilon=8.0)
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values()):
        assert torch.equal(a, b)
    assert result.best_score > 0.75
    assert not any(hasattr(p, "grad_sample") for p in model_a.parameters())  # Opacus' hooks are gone


def test_batch_norm_is_replaced_and_reported():
    mlp = _mlp()
    replaced = make_private_compatible(mlp)
    assert [r["layer"] for r in replaced] == ["network.body.1", "network.body.5"]
    assert all(r["from"] == "BatchNorm1d" and r["num_groups"] == 1 for r in replaced)  # layer norm on (batch, features)
    cnn = NETWORKS.create("compact_cnn", image_size=16, width=4)
    replaced = make_private_compatible(cnn)
    assert len(replaced) == 6 and {r["to"] for r in replaced} == {"GroupNorm"}
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in cnn.modules())
    assert not any(getattr(m, "inplace", False) for m in cnn.modules())


@pytest.mark.parametrize(
    ("privacy", "message"),
    [
        ({"epsilon": 0.05}, "cannot be reached"),
        ({"epsilon": -1.0}, "dp_epsilon"),
        ({"epsilon": 1.0, "delta": 0.5}, "dp_delta"),
        ({"epsilon": 1.0, "max_grad_norm": 0.0}, "dp_max_grad_norm"),
    ],
)
def test_bad_budgets_give_clear_errors(privacy, message):
    with pytest.raises(InvalidInputError, match=message):
        PrivateTraining(privacy, _mlp(), n_train=200, batch_size=32, epochs=5)


def test_class_weights_are_refused_under_dp():
    model = Classifier(NETWORKS.create("tabular_mlp", n_numeric=6), "table", [0.0] * 12, [1.0] * 12, class_weight=[1.0, 2.0])
    with pytest.raises(InvalidInputError, match="Class weights"):
        PrivateTraining({"epsilon": 3.0}, model, n_train=200, batch_size=32, epochs=5)


def test_channels_last_is_turned_off_for_dp_training():
    model = Classifier(NETWORKS.create("compact_cnn", image_size=16, width=4), "image", [0.2], [0.3], channels_last=True)
    training = PrivateTraining({"epsilon": 3.0}, model, n_train=200, batch_size=32, epochs=5)
    assert not model.channels_last and training.channels_last_disabled  # Opacus' conv gradients were wrong with it
    assert all(p.is_contiguous() for p in model.parameters())


def _probabilities(model, data):
    return softmax(Trainer(TrainerConfig(progress=False)).predict(model, data))


def test_membership_inference_is_chance_for_records_the_model_never_saw():
    model = _mlp()
    _fit(model, _table(300, 0), _table(60, 1), epochs=5)
    members, others = _table(400, 2), _table(400, 3)  # neither set was seen
    result = membership_inference(_probabilities(model, members), members.labels, _probabilities(model, others), others.labels)
    assert abs(result["attack_auroc"] - 0.5) < 0.07
    assert result["loss_attack"]["auroc_ci_low"] < 0.5 < result["loss_attack"]["auroc_ci_high"]


def test_membership_inference_finds_an_overfit_model():
    train, held_out = _table(40, 0, noise=3.0), _table(200, 1, noise=3.0)  # noisy labels: only memorising fits them
    model = _mlp(hidden=(256, 256), dropout=0.0)
    config = TrainerConfig(max_epochs=100, batch_size=8, learning_rate=1e-2, weight_decay=0.0, monitor="loss", progress=False)
    Trainer(config).fit(model, train, train)
    result = membership_inference(_probabilities(model, train), train.labels, _probabilities(model, held_out), held_out.labels)
    assert result["loss_attack"]["auroc"] > 0.8
    assert result["loss_attack"]["advantage"] > 0.3


@pytest.fixture(scope="module")
def private_bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dp")
    data = _table(300, 0, noise=0.3)
    header = ",".join([f"x{i}" for i in range(6)] + ["outcome"])
    lines = [",".join(f"{v:.4f}" for v in row[:6]) + f",{label}" for row, label in zip(data.inputs, data.labels)]
    (folder / "table.csv").write_text("\n".join([header, *lines]) + "\n")
    result = CliRunner().invoke(app, ["train", "--task", "tabular-classification", "--data", str(folder / "table.csv"),
                                      "--target", "outcome", "--out", str(folder / "bundle"), "--epochs", "4",
                                      "--dp-epsilon", "4", "--quiet", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return folder, json.loads(result.output)


def test_train_with_dp_records_the_budget_in_config_and_card(private_bundle):
    folder, summary = private_bundle
    assert 3.5 < summary["privacy"]["epsilon"] <= 4.0 + 1e-6
    bundle = load_bundle(folder / "bundle")  # the GroupNorm layers are rebuilt; the weights' checksum holds
    dp = bundle.config["privacy"]["dp"]
    assert dp["epsilon"] == summary["privacy"]["epsilon"] and len(dp["replaced_layers"]) == 2
    assert "ood" not in bundle.config and not (folder / "bundle" / "ood").exists()
    assert bundle.config["network"] == "tabular_mlp"  # one network: an ensemble would spend epsilon per member
    assert "## Differential privacy" in (folder / "bundle" / "card.md").read_text()


def test_audit_is_written_to_the_card_and_json_and_checksums_stay_valid(private_bundle):
    folder, _ = private_bundle
    bundle_path = folder / "bundle"
    for _ in range(2):  # a second audit replaces the first
        result = CliRunner().invoke(app, ["audit", str(bundle_path), "--data", str(folder / "table.csv"), "--json"])
        assert result.exit_code == 0, result.output
    audit = json.loads(result.output)
    assert 0.3 < audit["attack_auroc"] < 0.7 and audit["n_members"] > 200 and audit["differential_privacy"]["epsilon"] > 0
    assert json.loads((bundle_path / "privacy_audit.json").read_text())["attack_auroc"] == audit["attack_auroc"]
    card = (bundle_path / "card.md").read_text()
    assert card.count("## Privacy audit") == 1 and card.count("## Differential privacy") == 1
    assert load_bundle(bundle_path).config["privacy"]["dp"]["epsilon"] > 0  # checksums verified on load


def test_dp_is_refused_where_it_does_not_apply(tmp_path):
    from medai.privacy.dp import train_private

    with pytest.raises(InvalidInputError, match="available for the tasks"):
        train_private("molecular-property", "x.csv", tmp_path / "b", {"epsilon": 1.0})
    with pytest.raises(InvalidInputError, match="spend 5 times epsilon"):
        train_private("tabular-classification", "x.csv", tmp_path / "b", {"epsilon": 1.0}, ensemble=5)
