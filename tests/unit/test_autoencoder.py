"""Autoencoders: network contract, mask-aware loss, the estimator API, persistence, OOD flags, plots, PCA comparison.

medai.models.autoencoder is imported inside the tests, not at collection: registering its networks while
test_model_contract.py is collected would add them to that (classifier-only) parametrisation.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from medai.errors import BundleIntegrityError, DataNotFoundError, InvalidInputError

AUTOENCODERS = {  # name -> (network kwargs, example batch)
    "dense_autoencoder": ({}, lambda: {"image": torch.rand(4, 1, 28, 28)}),
    "tabular_autoencoder": ({"input_dim": 6, "mask_dim": 6}, lambda: {"table": torch.randn(4, 6)}),
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and do not fight a busy machine for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(name: str, **overrides):
    from medai.models.autoencoder import AutoencoderModel
    from medai.models.registry import NETWORKS

    kwargs, make_batch = AUTOENCODERS[name]
    torch.manual_seed(0)
    network = NETWORKS.create(name, **{**kwargs, **overrides})
    entry = NETWORKS.get(name)
    n = network.input_dim
    stats = ([0.1] * n, [2.0] * n) if entry.modality == "table" else (None, None)
    return AutoencoderModel(network, entry.modality, *stats), make_batch()


def _low_rank(n: int, seed: int = 0, rank: int = 3, features: int = 12, shift: float = 0.0) -> np.ndarray:
    """Rows near a rank-``rank`` subspace of R^features (one fixed subspace for every seed)."""
    basis = np.random.default_rng(123).normal(size=(rank, features))
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, rank)) @ basis + 0.05 * rng.normal(size=(n, features))
    if shift:  # off the subspace: push along a direction orthogonal to it
        direction = np.linalg.svd(basis, full_matrices=True)[2][-1]
        rows = rows + shift * direction * rng.choice([-1, 1], size=(n, 1))
    return rows.astype(np.float32)


# -- networks -----------------------------------------------------------------------------------------------------


def test_networks_are_registered_under_their_modality():
    from medai.models.autoencoder import DenseAutoencoder, TabularAutoencoder
    from medai.models.registry import NETWORKS

    assert NETWORKS.get("dense_autoencoder").builder is DenseAutoencoder
    assert NETWORKS.get("dense_autoencoder").modality == "image"
    assert NETWORKS.get("tabular_autoencoder").builder is TabularAutoencoder
    assert NETWORKS.get("tabular_autoencoder").modality == "table"


def test_dense_autoencoder_is_784_64_32_64_784():
    from medai.models.registry import NETWORKS

    network = NETWORKS.create("dense_autoencoder")
    widths = [(m.in_features, m.out_features) for m in network.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [(784, 64), (64, 32), (32, 64), (64, 784)]
    images = torch.rand(3, 1, 28, 28)
    assert network.encode(images).shape == (3, 32)
    reconstruction = network(images)
    assert reconstruction.shape == images.shape and 0 <= reconstruction.min() and reconstruction.max() <= 1
    assert NETWORKS.create("dense_autoencoder", output="linear").decode(torch.randn(2, 32)).shape == (2, 784)


@pytest.mark.parametrize("name", sorted(AUTOENCODERS))
def test_autoencoder_model_honours_the_model_contract(name):
    model, batch = _model(name)
    inputs = batch[model.input_key]
    output = model(batch)
    assert set(output) >= {"logits", "code", "error", "loss"}
    assert output["logits"].shape == inputs.shape
    assert output["code"].shape == (len(inputs), model.network.code_dim)
    assert output["error"].shape == (len(inputs),)
    assert output["loss"].dim() == 0 and torch.isfinite(output["loss"])
    output["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    model.eval()
    assert torch.equal(model(batch)["logits"], model(batch)["logits"])


def test_mask_aware_loss_ignores_missing_entries():
    model, batch = _model("tabular_autoencoder", corruption=0.0)
    missing = torch.zeros(4, 6, dtype=torch.bool)
    missing[0, 1] = missing[2, 4] = missing[3, 0] = True
    changed = batch["table"].clone()
    changed[missing] = 1e3
    model.train()
    first = model({"table": batch["table"], "missing": missing})
    second = model({"table": changed, "missing": missing})
    assert torch.equal(first["loss"], second["loss"]) and torch.equal(first["error"], second["error"])
    with_nan = batch["table"].clone()
    with_nan[missing] = float("nan")  # NaN in the input marks a missing value too
    third = model({"table": with_nan})
    assert torch.equal(first["loss"], third["loss"]) and torch.isfinite(third["logits"]).all()
    unmasked = model({"table": changed})
    assert not torch.equal(first["loss"], unmasked["loss"])


def test_denoising_corrupts_in_training_only():
    model, batch = _model("tabular_autoencoder", corruption=0.5)
    model.train()
    assert not torch.equal(model(batch)["loss"], model(batch)["loss"])  # fresh corruption each call
    model.eval()
    assert torch.equal(model(batch)["loss"], model(batch)["loss"])


def test_network_arguments_are_validated():
    from medai.models.registry import NETWORKS

    with pytest.raises(InvalidInputError, match="mask_dim"):
        NETWORKS.create("tabular_autoencoder", input_dim=6, mask_dim=3)
    with pytest.raises(InvalidInputError, match="corruption"):
        NETWORKS.create("tabular_autoencoder", input_dim=6, corruption=1.5)
    with pytest.raises(InvalidInputError, match="Did you mean 'sigmoid'"):
        NETWORKS.create("dense_autoencoder", output="sigmod")
    with pytest.raises(InvalidInputError, match="784 features"):
        NETWORKS.create("dense_autoencoder").encode(torch.rand(2, 1, 16, 16))


# -- the estimator ------------------------------------------------------------------------------------------------


def test_dense_autoencoder_fit_transform_inverse_score_shapes():
    from medai.reduce import Autoencoder

    images = np.random.default_rng(0).random((40, 1, 28, 28), dtype=np.float32)
    model = Autoencoder("dense", epochs=2, batch_size=16).fit(images)
    codes = model.transform(images)
    assert codes.shape == (40, 32) and codes.dtype == np.float32
    assert model.inverse_transform(codes).shape == (40, 1, 28, 28)
    scores = model.score(images)
    assert scores.shape == (40,) and np.all(scores > 0)
    assert len(model.history_) == 2 and model.input_shape_ == (1, 28, 28) and model.mean_ is None
    assert np.array_equal(model.transform(images[:7]), codes[:7])  # a sample's code never depends on its batch-mates


def test_pca_initialisation_reproduces_pca_and_training_keeps_at_least_its_quality():
    from sklearn.decomposition import PCA

    from medai.models.autoencoder import DenseAutoencoder
    from medai.reduce import Autoencoder

    rng = np.random.default_rng(0)
    images = np.clip(rng.random((120, 3)) @ rng.random((3, 64)) / 3 + 0.05 * rng.random((120, 64)), 0, 1)
    images = images.astype(np.float32)
    train, test = images[:100], images[100:]
    network = DenseAutoencoder(input_dim=64, hidden=(8,), code_dim=4, output="linear")
    network.initialise_from_pca(torch.from_numpy(train))
    pca = PCA(4).fit(train)
    with torch.no_grad():
        reconstruction = network(torch.from_numpy(test)).numpy()
    np.testing.assert_allclose(reconstruction, pca.inverse_transform(pca.transform(test)), atol=1e-4)
    with pytest.raises(InvalidInputError, match="PCA initialisation"):
        DenseAutoencoder(input_dim=64, hidden=(8,), code_dim=4).initialise_from_pca(torch.from_numpy(train))
    model = Autoencoder("dense", code_dim=4, epochs=3, batch_size=16, network_kwargs={"hidden": [8]}).fit(train)
    assert model.network_kwargs_["output"] == "clamp"  # inputs in [0, 1]: reconstructions are clipped to [0, 1]
    pca_error = np.square(np.clip(pca.inverse_transform(pca.transform(test)), 0, 1) - test).mean()
    assert model.score(test).mean() <= pca_error * 1.05


def test_tabular_autoencoder_reconstructs_low_rank_data_and_handles_missing_values():
    from medai.reduce import Autoencoder

    train, val, test = _low_rank(300, 0), _low_rank(60, 1), _low_rank(60, 2)
    model = Autoencoder("tabular", code_dim=3, epochs=30, batch_size=32).fit(train, val)
    standardised_variance = np.var(model.model_space(test)[0], axis=0).mean()  # about 1
    assert model.score(test).mean() < 0.1 * standardised_variance
    reconstruction = model.inverse_transform(model.transform(test))
    assert reconstruction.shape == test.shape
    assert np.mean((reconstruction - test) ** 2) < 0.1 * np.var(test, axis=0).mean()
    holes = test.copy()
    holes[::3, 2] = np.nan
    holes[5, :] = np.nan
    scores = model.score(holes)
    assert np.isnan(scores[5]) and np.isfinite(np.delete(scores, 5)).all()
    assert np.isfinite(model.inverse_transform(model.transform(holes))).all()  # missing values are imputed


def test_autoencoder_rejects_bad_parameters_and_inputs():
    from medai.reduce import Autoencoder

    with pytest.raises(InvalidInputError, match="Did you mean 'dense'"):
        Autoencoder("dens").fit(np.zeros((10, 4)))
    with pytest.raises(InvalidInputError, match="code_dim"):
        Autoencoder(code_dim=0).fit(np.zeros((10, 4)))
    with pytest.raises(InvalidInputError, match=r"outside \[0, 1\]"):
        Autoencoder("dense", init="random").fit(np.full((10, 4), 3.0))
    with pytest.raises(InvalidInputError, match="dense kind only"):
        Autoencoder("tabular", init="pca").fit(np.zeros((10, 4)))
    with pytest.raises(InvalidInputError, match="Did you mean 'pca'"):
        Autoencoder("dense", init="pcaa").fit(np.zeros((10, 4)))
    with pytest.raises(InvalidInputError, match="Did you mean 'dropout'"):
        Autoencoder("tabular", network_kwargs={"dropuot": 0.1}).fit(np.zeros((10, 4)))
    with pytest.raises(InvalidInputError, match="not fitted"):
        Autoencoder().transform(np.zeros((2, 4)))


def test_save_load_round_trip_and_tamper_detection(tmp_path):
    from medai.reduce import Autoencoder

    data = _low_rank(60, 0)
    data[::7, 1] = np.nan
    model = Autoencoder("tabular", code_dim=2, epochs=2, batch_size=16).fit(data)
    folder = model.save(tmp_path / "ae")
    loaded = Autoencoder.load(folder)
    assert np.array_equal(loaded.transform(data), model.transform(data))
    assert np.array_equal(loaded.score(data), model.score(data), equal_nan=True)
    assert loaded.get_params() == model.get_params() and loaded.input_shape_ == model.input_shape_
    config = json.loads((folder / "autoencoder.json").read_text())
    assert len(config["weights_sha256"]) == 64 and not list(folder.glob("*.pkl"))

    weights = folder / "autoencoder.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(BundleIntegrityError, match="checksum"):
        Autoencoder.load(folder)
    with pytest.raises(DataNotFoundError):
        Autoencoder.load(tmp_path / "missing")


# -- out-of-distribution flags ------------------------------------------------------------------------------------


def test_ood_detector_flags_inputs_far_from_the_training_data():
    from medai.reduce import Autoencoder, OODDetector

    model = Autoencoder("tabular", code_dim=3, epochs=30, batch_size=32).fit(_low_rank(300, 0), _low_rank(60, 1))
    detector = OODDetector().fit(model, _low_rank(200, 3), quantile=0.95)
    inside, outside = _low_rank(100, 4), _low_rank(100, 5, shift=2.0)
    scores_in, flags_in = detector.flag(inside)
    scores_out, flags_out = detector.flag(outside)
    is_out = np.r_[np.zeros(100), np.ones(100)]
    assert roc_auc_score(is_out, np.r_[scores_in, scores_out]) > 0.95
    assert flags_out.mean() > 0.8 and flags_in.mean() < 0.2
    data = json.loads(json.dumps(detector.to_dict()))
    assert data["threshold"] == detector.threshold_ and data["validation_errors"]["count"] == 200
    restored = OODDetector.from_dict(data, model)
    assert np.array_equal(restored.flag(outside)[1], flags_out)
    with pytest.raises(InvalidInputError, match="quantile"):
        OODDetector().fit(model, inside, quantile=1.5)


# -- reduce, plot, compare ----------------------------------------------------------------------------------------


def test_reduce_by_autoencoder_and_by_pca():
    from medai.reduce import Autoencoder, reduce

    data, labels = _low_rank(50, 0), np.arange(50) % 2
    codes, model = reduce(data, 2, labels, epochs=2)
    assert codes.shape == (50, 2) and isinstance(model, Autoencoder) and model.kind == "tabular"
    codes, pca = reduce(data, 2, method="pca")
    assert codes.shape == (50, 2) and hasattr(pca, "inverse_transform")
    with pytest.raises(InvalidInputError, match="Did you mean 'pca'"):
        reduce(data, 2, method="pcaa")


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_plot_codes_writes_a_png(tmp_path, dim):
    from medai.reduce import plot_codes

    codes = np.random.default_rng(0).normal(size=(30, dim))
    path = plot_codes(
        codes, np.arange(30) % 3, ["a", "b", "c"], tmp_path / "plots" / "codes.png", name="Autoencoder codes"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_codes(codes, None, None, tmp_path / "plain.png").stat().st_size > 0


@pytest.mark.parametrize("n_classes", [2, 3])
def test_compare_with_pca_reports_errors_and_aurocs(n_classes):
    from medai.reduce import compare_with_pca

    data = _low_rank(120, 0)
    labels = np.digitize(data[:, 0], np.quantile(data[:, 0], np.linspace(0, 1, n_classes + 1)[1:-1]))
    result = compare_with_pca(data[:80], labels[:80], data[80:], labels[80:], dim=3, epochs=3)
    assert set(result) >= {"dim", "kind", "units", "n_train", "n_test", "reconstruction_mse", "auroc"}
    assert set(result["reconstruction_mse"]) == {"autoencoder", "pca"}
    assert set(result["auroc"]) == {"autoencoder", "pca", "raw"}
    assert all(0.5 < value <= 1 for value in result["auroc"].values())
    assert result["reconstruction_mse"]["pca"] < 0.05  # PCA is exact on rank-3 data at dim 3
    json.dumps(result)
