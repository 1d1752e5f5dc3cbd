"""Bundles: round trip, checksum verification, atomic replacement, no pickle anywhere."""

from __future__ import annotations

import json

import pytest
import torch

from medai.bundle import load_bundle, read_config, save_bundle
from medai.errors import BundleIntegrityError, DataNotFoundError, InvalidInputError
from medai.tasks.image_classification import build_model

CONFIG = {
    "task": "image-classification",
    "network": "compact_cnn",
    "network_kwargs": {"in_channels": 1, "num_classes": 2, "image_size": [16, 16], "width": 4},
    "class_weight": None,
    "label_names": ["no", "yes"],
    "input_shape": [1, 16, 16],
    "preprocessing": {"mean": [0.3], "std": [0.2], "image_size": [16, 16], "channels": 1},
}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model(CONFIG).eval()
    bundle = save_bundle(tmp_path / "model", model, CONFIG, metrics={"test": {"auroc": 0.9}}, card="# card",
                         json_files={"splits.json": {"train": ["a"]}})  # fmt: skip
    return bundle, model


def test_round_trip_gives_identical_outputs(saved):
    bundle, model = saved
    loaded = load_bundle(bundle.path)
    x = {"image": torch.rand(3, 1, 16, 16)}
    assert torch.equal(loaded.model(x)["logits"], model(x)["logits"])
    assert loaded.metrics == {"test": {"auroc": 0.9}}
    assert loaded.config["weights_sha256"] == bundle.config["weights_sha256"]
    assert sorted(p.name for p in bundle.path.iterdir()) == ["card.md", "config.json", "metrics.json", "model.safetensors", "splits.json"]


def test_tampered_weights_are_detected(saved):
    bundle, _ = saved
    weights = bundle.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match="does not match the checksum"):
        load_bundle(bundle.path)


def test_missing_and_incomplete_bundles(tmp_path, saved):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_bundle(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleIntegrityError, match="not a complete medai bundle"):
        load_bundle(tmp_path / "empty")
    bundle, _ = saved
    (bundle.path / "config.json").write_text("{not json")
    with pytest.raises(BundleIntegrityError, match="not valid JSON"):
        read_config(bundle.path)


def test_newer_format_is_refused(saved):
    bundle, _ = saved
    config = json.loads((bundle.path / "config.json").read_text())
    config["format_version"] = 99
    (bundle.path / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleIntegrityError, match="Upgrade medai"):
        load_bundle(bundle.path)


def test_interrupted_save_leaves_the_previous_bundle(saved, monkeypatch):
    bundle, model = saved
    before = (bundle.path / "model.safetensors").read_bytes()

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("medai.bundle.shutil.copyfile", explode)
    with pytest.raises(KeyboardInterrupt):
        save_bundle(bundle.path, model, CONFIG, files={"plots/x.png": bundle.path / "card.md"})
    assert (bundle.path / "model.safetensors").read_bytes() == before
    leftovers = [p.name for p in bundle.path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_refuses_to_overwrite_a_folder_that_is_not_a_bundle(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.txt").write_text("precious")
    with pytest.raises(InvalidInputError, match="not a medai bundle"):
        save_bundle(tmp_path / "docs", build_model(CONFIG), CONFIG)
    assert (tmp_path / "docs" / "thesis.txt").read_text() == "precious"


def test_bundle_files_hold_no_pickle(saved):
    bundle, _ = saved
    for path in bundle.path.rglob("*"):
        if path.is_file():
            assert not path.read_bytes().startswith(b"\x80"), f"{path.name} looks like a pickle"
