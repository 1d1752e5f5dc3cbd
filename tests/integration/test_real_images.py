"""Short runs on the real MedMNIST files under MEDAI_DATA_DIR (skipped with a reason where absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from medai import api
from medai.cli.main import app
from medai.data.sources.medmnist import load_npz, resolve_medmnist

pytestmark = pytest.mark.realdata


def _npz(real_data_dir, name: str):
    try:
        return resolve_medmnist(name, download=False)
    except Exception as error:
        pytest.skip(f"{name} not under {real_data_dir}: {error}")


def test_breastmnist_official_splits(real_data_dir):
    splits = load_npz(_npz(real_data_dir, "breastmnist"))
    assert {k: len(v) for k, v in splits.items()} == {"train": 546, "val": 78, "test": 156}
    assert splits["train"].schema.label_names == ("malignant", "normal, benign")
    assert splits["test"].class_counts().tolist() == [42, 114]


def test_short_training_on_pneumoniamnist_learns(real_data_dir, tmp_path):
    data = _npz(real_data_dir, "pneumoniamnist")
    bundle = api.train("image-classification", data, tmp_path / "pneu", epochs=2, ensemble=1, ood=False, progress=False)
    test = bundle.metrics["test"]
    assert test["n_samples"] == 624
    assert test["auroc"] > 0.85, test  # two epochs already separate the classes well
    again = api.evaluate(tmp_path / "pneu", data, split="test")
    assert again["auroc"] == test["auroc"] and again["accuracy"] == test["accuracy"]


def test_cli_end_to_end_on_breastmnist(real_data_dir, tmp_path):
    data = _npz(real_data_dir, "breastmnist")
    runner = CliRunner()
    out = tmp_path / "breast"
    result = runner.invoke(app, ["train", "--task", "image-classification", "--data", str(data), "--out", str(out), "--epochs", "3", "--ensemble", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["evaluate", str(out), "--data", str(data), "--split", "all", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_samples"] == 546 + 78 + 156
    result = runner.invoke(app, ["explain", str(out), str(data), "--index", "0", "--out", str(tmp_path / "cam.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cam.png").stat().st_size > 1000


def test_demo_writes_a_report_with_heat_maps(real_data_dir, tmp_path):
    _npz(real_data_dir, "breastmnist")
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--epochs", "1", "--datasets", "breastmnist", "--quiet"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "demo" / "report.html").read_text()
    assert page.count("data:image/png;base64") >= 5 + 4  # 5 evaluation plots + 4 Grad-CAM maps
    assert "0.901" in page  # the published ResNet-18 (28) AUROC beside ours
    assert len(list((tmp_path / "demo" / "breastmnist" / "explanations").glob("*.png"))) == 4


def test_dicom_files_shipped_with_pydicom_read_as_images():
    pydicom = pytest.importorskip("pydicom")
    from medai.data.sources.images import read_image

    for name in ("CT_small.dcm", "MR_small.dcm"):
        image = read_image(pydicom.data.get_testdata_file(name), channels=1, image_size=(32, 32))
        assert image.shape == (1, 32, 32) and 0 <= image.min() < image.max() <= 1
        assert np.isfinite(image).all()
