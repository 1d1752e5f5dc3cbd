"""One contract over every registered network: forward keys, scalar loss, gradients, save/load round trip."""

from __future__ import annotations

import pytest
import torch

from medai.bundle import load_bundle, save_bundle
from medai.models import NETWORKS, Classifier
from medai.tasks.image_classification import TASK

EXAMPLE_INPUTS = {"image": lambda: torch.rand(4, 1, 28, 28)}


def _config(name: str) -> dict:
    return {
        "task": TASK,
        "network": name,
        "network_kwargs": {"in_channels": 1, "num_classes": 3, "image_size": [28, 28]},
        "class_weight": [1.0, 2.0, 1.0],
        "label_names": ["a", "b", "c"],
        "input_shape": [1, 28, 28],
        "preprocessing": {"mean": [0.5], "std": [0.25], "image_size": [28, 28], "channels": 1},
    }


@pytest.mark.parametrize("name", NETWORKS.names())
def test_every_network_honours_the_model_contract(name, tmp_path):
    entry = NETWORKS.get(name)
    torch.manual_seed(0)
    from medai.tasks.image_classification import build_model

    model = build_model(_config(name))
    assert isinstance(model, Classifier)
    batch = {entry.modality: EXAMPLE_INPUTS[entry.modality](), "label": torch.tensor([0, 1, 2, 1])}
    output = model(batch)
    assert set(output) >= {"logits", "loss"}
    assert output["logits"].shape == (4, 3)
    assert output["loss"].dim() == 0 and torch.isfinite(output["loss"])
    output["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert "loss" not in model({entry.modality: batch[entry.modality]})

    model.eval()
    expected = model({entry.modality: batch[entry.modality]})["logits"]
    save_bundle(tmp_path / "bundle", model, _config(name))
    loaded = load_bundle(tmp_path / "bundle")
    assert torch.equal(loaded.model({entry.modality: batch[entry.modality]})["logits"], expected)


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
