"""One contract over every registered network: forward keys, scalar loss, gradients, save/load round trip.

Every name in the registry must have a case here, so a new network cannot skip the contract.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

import medai.models.autoencoder  # noqa: F401  (registers the autoencoders)
from medai.bundle import load_bundle, save_bundle
from medai.models import NETWORKS


def _image_config(name: str) -> dict:
    return {
        "task": "image-classification",
        "network": name,
        "network_kwargs": {"in_channels": 1, "num_classes": 3, "image_size": [28, 28]}
        | ({"member": "compact_cnn", "size": 2} if name == "ensemble" else {}),
        "class_weight": [1.0, 2.0, 1.0],
        "label_names": ["a", "b", "c"],
        "input_shape": [1, 28, 28],
        "test_time_flip": True,
        "preprocessing": {"mean": [0.5], "std": [0.25], "image_size": [28, 28], "channels": 1},
    }


def _tabular_config(name: str) -> dict:
    return {
        "task": "tabular-classification",
        "network": name,
        "network_kwargs": {"n_numeric": 3, "cardinalities": [3, 4], "num_classes": 3},
        "input_width": 8,
        "class_weight": None,
        "label_names": ["a", "b", "c"],
    }


def _classifier_case(config: dict, inputs: torch.Tensor):
    from medai.tasks import get_task

    def build():
        return get_task(config["task"]).build_model(config)

    def round_trip(model, tmp_path):
        save_bundle(tmp_path / "bundle", model, config)
        return load_bundle(tmp_path / "bundle").model

    return build, {"label": torch.tensor([0, 1, 2, 1])}, inputs, round_trip


def _autoencoder_case(name: str, key: str, inputs: torch.Tensor, **kwargs):
    from medai.models.autoencoder import AutoencoderModel

    def build():
        return AutoencoderModel(NETWORKS.create(name, **kwargs), key)

    def round_trip(model, tmp_path):
        save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
        rebuilt = build()
        rebuilt.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
        return rebuilt.eval()

    return build, {}, inputs, round_trip


def _tabular_rows() -> torch.Tensor:
    numbers = torch.randn(4, 6)
    numbers[:, 3:] = (numbers[:, 3:] > 1).float()  # missing indicators
    codes = torch.tensor([[0, 1], [1, 3], [2, 0], [1, 2]], dtype=torch.float32)
    return torch.cat([numbers, codes], dim=1)


CASES = {
    "classic_cnn": lambda: _classifier_case(_image_config("classic_cnn"), torch.rand(4, 1, 28, 28)),
    "compact_cnn": lambda: _classifier_case(_image_config("compact_cnn"), torch.rand(4, 1, 28, 28)),
    "resnet18": lambda: _classifier_case(_image_config("resnet18"), torch.rand(4, 1, 28, 28)),
    "ensemble": lambda: _classifier_case(_image_config("ensemble"), torch.rand(4, 1, 28, 28)),
    "tabular_mlp": lambda: _classifier_case(_tabular_config("tabular_mlp"), _tabular_rows()),
    "dense_autoencoder": lambda: _autoencoder_case("dense_autoencoder", "image", torch.rand(4, 1, 28, 28)),
    "tabular_autoencoder": lambda: _autoencoder_case("tabular_autoencoder", "table", torch.randn(4, 6), input_dim=6),
}


def test_every_registered_network_has_a_contract_case():
    assert set(NETWORKS.names()) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_network_honours_the_model_contract(name, tmp_path):
    build, targets, inputs, round_trip = CASES[name]()
    key = NETWORKS.get(name).modality if name != "tabular_autoencoder" else "table"
    torch.manual_seed(0)
    model = build()
    output = model({key: inputs, **targets})
    assert "logits" in output and "loss" in output
    assert output["loss"].dim() == 0 and torch.isfinite(output["loss"])
    output["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        expected = model({key: inputs})["logits"]
        loaded = round_trip(model, tmp_path)
        assert torch.equal(loaded({key: inputs})["logits"], expected)


def test_unknown_network_suggests_the_nearest_name():
    from medai.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="Did you mean 'resnet18'"):
        NETWORKS.get("resnet-18")


def test_registry_rejects_duplicates():
    from medai.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="already registered"):
        NETWORKS.register("compact_cnn", modality="image")(object)


def test_classic_cnn_adapts_to_size_and_channels():
    network = NETWORKS.create("classic_cnn", in_channels=3, num_classes=2, image_size=150)
    assert network(torch.rand(2, 3, 150, 150)).shape == (2, 2)
    network = NETWORKS.create("classic_cnn", in_channels=1, num_classes=4, image_size=[64, 48])
    assert network(torch.rand(2, 1, 64, 48)).shape == (2, 4)
