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


def _series_case(name: str, **kwargs):
    """A 3-class SeriesModel over 5 variables with mask, delta and 2 static features."""
    from medai.models import SeriesModel

    def build():
        network = NETWORKS.create(name, n_features=5, n_outputs=3, n_static=2, **kwargs)
        return SeriesModel(network, "multiclass", class_weight=[1.0, 2.0, 1.0])

    def round_trip(model, tmp_path):
        save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
        rebuilt = build()
        rebuilt.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
        return rebuilt.eval()

    return build, {"label": torch.tensor([0, 1, 2, 1])}, _series_inputs(), round_trip


def _series_inputs(batch: int = 4, steps: int = 6, variables: int = 5) -> dict[str, torch.Tensor]:
    mask = (torch.rand(batch, steps, variables) < 0.5).float()
    mask[:, 0] = 1.0
    delta = torch.cumsum(1 - mask, dim=1) / steps  # (approximately) time since the last observation
    static = torch.randn(batch, 2)
    return {"series": torch.randn(batch, steps, variables), "mask": mask, "delta": delta, "static": static}


def _molecule_config(name: str) -> dict:
    kwargs = {"n_outputs": 2, "n_extra": 3} | ({"hidden": 16} if name == "dmpnn" else {"n_bits": 64, "hidden": 16})
    return {"task": "molecular-property", "network": name, "network_kwargs": kwargs, "ensemble": 2,
            "task_types": ["classification", "regression"], "target_mean": [0.0, -2.0], "target_std": [1.0, 1.5]}


def _molecule_inputs() -> dict[str, torch.Tensor]:
    from rdkit import Chem

    from medai.chem.graphs import MolGraphFeaturiser

    mols = [Chem.MolFromSmiles(s) for s in ("CCO", "c1ccccc1N", "C", "CC(=O)Oc1ccccc1C(=O)O")]
    graph = MolGraphFeaturiser().featurise_mols(mols).batch([0, 1, 2, 3]).tensors()
    return graph | {"n_molecules": torch.tensor(4), "molecule_features": torch.rand(4, 3),
                    "fingerprint": torch.randint(0, 3, (4, 64)).float()}


def _molecule_case(name: str):
    """A 2-member ensemble for one classification and one regression task, with missing labels."""
    build, _, inputs, round_trip = _classifier_case(_molecule_config(name), _molecule_inputs())
    labels = torch.tensor([[1.0, -1.0], [float("nan"), -3.0], [0.0, float("nan")], [1.0, -2.5]])
    return build, {"label": labels}, inputs, round_trip


def _tabular_rows() -> torch.Tensor:
    numbers = torch.randn(4, 6)
    numbers[:, 3:] = (numbers[:, 3:] > 1).float()  # missing indicators
    codes = torch.tensor([[0, 1], [1, 3], [2, 0], [1, 2]], dtype=torch.float32)
    return torch.cat([numbers, codes], dim=1)


def _affinity_case(name: str):
    """A drug-target affinity model on 4 pairs (two share a drug, two a protein), codes padded with 0."""
    config = {
        "task": "drug-target-affinity", "network": name,
        "network_kwargs": {"embedding_dim": 8, "filters": [4, 6, 8], "hidden": [16, 8]},
        "encoding": {"protein_alphabet": "ACDEFGHIKLMNPQRSTVWYXBZUO", "smiles_vocabulary": 96},
        "target_normalisation": {"mean": 6.0, "std": 0.8},
    }  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    drug, protein = torch.randint(1, 95, (4, 20), generator=generator), torch.randint(1, 26, (4, 40), generator=generator)
    drug[1], protein[2] = drug[0], protein[3]
    drug[2, 12:], protein[0, 25:] = 0, 0
    build, _, _, round_trip = _classifier_case(config, torch.zeros(0))
    return build, {"label": torch.tensor([5.0, 6.5, 7.0, 5.2])}, {"drug": drug, "protein": protein}, round_trip


def _drug_recommender_case():
    """A DDI-aware medication recommender: 4 histories of up to 3 visits (codes padded with 0), 5 classes."""
    config = {"task": "drug-recommendation", "network": "drug_recommender",
              "network_kwargs": {"n_diagnoses": 9, "n_procedures": 6, "n_medications": 5, "embedding": 8, "hidden": 8}}
    generator = torch.Generator().manual_seed(0)
    inputs = {"diagnoses": torch.randint(0, 10, (4, 3, 4), generator=generator),
              "procedures": torch.randint(0, 7, (4, 3, 2), generator=generator),
              "medications": torch.randint(0, 6, (4, 3, 3), generator=generator), "lengths": torch.tensor([1, 3, 2, 3])}
    build, _, _, round_trip = _classifier_case(config, torch.zeros(0))
    return build, {"label": (torch.rand(4, 5, generator=generator) < 0.5).float()}, inputs, round_trip


CASES = {
    "drug_recommender": _drug_recommender_case,
    "classic_cnn": lambda: _classifier_case(_image_config("classic_cnn"), torch.rand(4, 1, 28, 28)),
    "compact_cnn": lambda: _classifier_case(_image_config("compact_cnn"), torch.rand(4, 1, 28, 28)),
    "resnet18": lambda: _classifier_case(_image_config("resnet18"), torch.rand(4, 1, 28, 28)),
    "ensemble": lambda: _classifier_case(_image_config("ensemble"), torch.rand(4, 1, 28, 28)),
    "tabular_mlp": lambda: _classifier_case(_tabular_config("tabular_mlp"), _tabular_rows()),
    "dense_autoencoder": lambda: _autoencoder_case("dense_autoencoder", "image", torch.rand(4, 1, 28, 28)),
    "tabular_autoencoder": lambda: _autoencoder_case("tabular_autoencoder", "table", torch.randn(4, 6), input_dim=6),
    "stacked_lstm": lambda: _series_case("stacked_lstm", hidden=8, use_mask=True, use_delta=True),
    "gru": lambda: _series_case("gru", hidden=8, num_layers=2, use_mask=True),
    "grud": lambda: _series_case("grud", hidden=8),
    "ecg_cnn1d": lambda: _series_case("ecg_cnn1d", width=4, use_mask=True),
    "series_summary": lambda: _series_case("series_summary", hidden=8, statistics=["mean", "min", "max", "last", "first",
                                                                                   "std", "count", "recent_mean"]),
    "series_ensemble": lambda: _series_case("series_ensemble", members=[{"network": "grud", "hidden": 4},
                                                                        {"network": "series_summary"}]),
    "dmpnn": lambda: _molecule_case("dmpnn"),
    "fingerprint_mlp": lambda: _molecule_case("fingerprint_mlp"),
    "deepdta": lambda: _affinity_case("deepdta"),
}


def test_every_registered_network_has_a_contract_case():
    assert set(NETWORKS.names()) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_network_honours_the_model_contract(name, tmp_path):
    build, targets, inputs, round_trip = CASES[name]()
    key = NETWORKS.get(name).modality if name != "tabular_autoencoder" else "table"
    features = inputs if isinstance(inputs, dict) else {key: inputs}  # series come with mask, delta, static
    torch.manual_seed(0)
    model = build()
    output = model({**features, **targets})
    assert "logits" in output and "loss" in output
    assert output["loss"].dim() == 0 and torch.isfinite(output["loss"])
    output["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        expected = model(features)["logits"]
        loaded = round_trip(model, tmp_path)
        assert torch.equal(loaded(features)["logits"], expected)


def test_series_regression_ignores_missing_targets_and_predicts_original_units(tmp_path):
    from medai.models import SeriesModel

    def build():
        network = NETWORKS.create("grud", n_features=5, n_outputs=2, n_static=2, hidden=8)
        return SeriesModel(network, "regression", target_mean=[100.0, -3.0], target_std=[20.0, 0.5])

    torch.manual_seed(0)
    model, features = build(), _series_inputs()
    nan = float("nan")
    targets = torch.tensor([[110.0, nan], [90.0, -3.5], [nan, nan], [130.0, -2.0]])
    output = model({**features, "label": targets})
    assert output["loss"].dim() == 0 and torch.isfinite(output["loss"])
    output["loss"].backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # The loss is the mean squared error on standardised targets over the observed ones only.
    model.eval()
    with torch.no_grad():
        standardised = model.network(**features)
        scaled = (targets - model.target_mean) / model.target_std
        expected = (standardised - scaled)[torch.isfinite(targets)].square().mean()
        assert torch.allclose(model({**features, "label": targets})["loss"], expected)
    model.train()
    # A batch without any observed target: zero loss, still differentiable.
    empty = model({**features, "label": torch.full((4, 2), nan)})["loss"]
    assert empty.item() == 0.0 and empty.requires_grad
    empty.backward()
    # Outputs are in the targets' units, and survive a safetensors round trip.
    model.eval()
    with torch.no_grad():
        logits = model(features)["logits"]
        assert torch.allclose(logits, model.network(**features) * model.target_std + model.target_mean)
        save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
        rebuilt = build()
        rebuilt.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
        assert torch.equal(rebuilt.eval()(features)["logits"], logits)


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
