"""Image folders: sub-folder and CSV labels, skipped files, resizing, channels, 16-bit PNG, read_image parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medai.data.sources.images import LoadReport, load_image_folder, read_image
from medai.errors import DataNotFoundError, InvalidInputError


def gray(path: Path, value: int = 100, size=(6, 8)) -> Path:
    """A grayscale PNG of (height, width) = size with a horizontal ramp starting at ``value``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = size
    pixels = (value + np.arange(width)[None, :] * 3 + np.zeros((height, 1))).clip(0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def color(path: Path, size=(6, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def class_folders(tmp_path):
    for label, value in (("benign", 20), ("malignant", 200)):
        for index in range(3):
            gray(tmp_path / label / f"img{index}.png", value + index)
    return tmp_path


def test_labels_from_class_subfolders(class_folders):
    dataset, report = load_image_folder(class_folders)
    assert dataset.inputs.shape == (6, 1, 6, 8) and dataset.inputs.dtype == np.float32
    assert dataset.schema.label_names == ("benign", "malignant")
    assert dataset.schema.source == "image-folder" and dataset.schema.task_type == "binary"
    assert dataset.ids.tolist()[0] == "benign/img0.png"
    assert dataset.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert report.n_loaded == 6 and report.skipped == []
    assert dataset.groups is None
    assert report.to_dict()["n_loaded"] == 6


def test_labels_from_csv_with_patient_groups_and_numeric_order(tmp_path):
    for index in range(6):
        gray(tmp_path / "scans" / f"{index}.png", 10 * index)
    gray(tmp_path / "scans" / "unlabelled.png")
    labels = [10, 2, 10, 2, 1, 1]
    rows = ["filename,target,patient_id"] + [f"scans/{i}.png,{labels[i]},P{i // 2}" for i in range(6)]
    rows += ["scans/missing.png,2,P9", "scans/0.png,1,P0"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    dataset, report = load_image_folder(tmp_path)
    assert dataset.schema.label_names == ("1", "2", "10")  # numeric names in numeric order
    assert dataset.schema.task_type == "multiclass"
    assert dataset.labels.tolist() == [2, 1, 2, 1, 0, 0]
    skipped = dict(report.skipped)
    assert "not found" in skipped["scans/missing.png"]
    assert "no label" in skipped["scans/unlabelled.png"]
    assert "listed twice" in skipped["scans/0.png"]
    assert dataset.groups[0] == dataset.groups[1] != dataset.groups[2]
    assert not any("P0" in group for group in dataset.groups)  # pseudonyms, not the raw ids


def test_explicit_csv_path_and_bad_columns(tmp_path):
    gray(tmp_path / "a.png")
    gray(tmp_path / "b.png", 50)
    csv_path = tmp_path / "elsewhere.csv"
    csv_path.write_text("path,class\na.png,x\nb.png,y\n")
    dataset, _ = load_image_folder(tmp_path, labels_csv=csv_path)
    assert dataset.ids.tolist() == ["a.png", "b.png"]
    csv_path.write_text("image,diagnosis\na.png,x\n")
    with pytest.raises(InvalidInputError, match="expected a file column"):
        load_image_folder(tmp_path, labels_csv=csv_path)
    with pytest.raises(DataNotFoundError):
        load_image_folder(tmp_path, labels_csv=tmp_path / "absent.csv")


def test_corrupt_and_non_image_files_are_skipped_and_reported(class_folders):
    good = (class_folders / "benign" / "img0.png").read_bytes()
    (class_folders / "benign" / "truncated.png").write_bytes(good[: len(good) // 2])
    (class_folders / "malignant" / "notes.png").write_text("not an image at all")
    (class_folders / "malignant" / "readme.txt").write_text("ignored by extension")
    noise = np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(noise).save(class_folders / "benign" / "cut.png")
    data = (class_folders / "benign" / "cut.png").read_bytes()
    (class_folders / "benign" / "cut.png").write_bytes(data[: int(len(data) * 0.7)])  # header intact, data cut
    dataset, report = load_image_folder(class_folders, image_size=6)
    skipped = dict(report.skipped)
    assert set(skipped) == {"benign/truncated.png", "benign/cut.png", "malignant/notes.png"}
    assert "corrupt" in skipped["benign/cut.png"]
    assert "not an image" in skipped["malignant/notes.png"]
    assert "corrupt" in skipped["benign/truncated.png"]
    assert len(dataset) == 6 and any("readme.txt" in note for note in report.notes)


def test_nothing_usable_or_one_class_raises(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_text("garbage")
    with pytest.raises(InvalidInputError, match="No readable"):
        load_image_folder(tmp_path)
    gray(tmp_path / "a" / "y.png")
    with pytest.raises(InvalidInputError, match="at least 2"):
        load_image_folder(tmp_path)
    with pytest.raises(InvalidInputError, match="no class sub-folders"):
        load_image_folder(tmp_path / "a")


def test_mixed_sizes_resize_to_default_or_requested(tmp_path):
    gray(tmp_path / "a" / "small.png", size=(10, 12))
    gray(tmp_path / "b" / "large.png", size=(40, 30))
    dataset, report = load_image_folder(tmp_path)
    assert dataset.inputs.shape == (2, 1, 128, 128)
    assert any("differ in size" in note for note in report.notes)
    dataset, _ = load_image_folder(tmp_path, image_size=(16, 20))
    assert dataset.inputs.shape == (2, 1, 16, 20)
    assert 0.0 <= dataset.inputs.min() and dataset.inputs.max() <= 1.0
    with pytest.raises(InvalidInputError, match="image_size"):
        load_image_folder(tmp_path, image_size=0)
    with pytest.raises(InvalidInputError, match="channels"):
        load_image_folder(tmp_path, channels=2)


def test_rgb_and_grayscale_channel_choice(tmp_path):
    gray(tmp_path / "a" / "g.png")
    color(tmp_path / "b" / "c.png")
    dataset, _ = load_image_folder(tmp_path)
    assert dataset.schema.input_shape == (3, 6, 8)  # one colour image makes the dataset RGB
    g_row = dataset.inputs[dataset.ids.tolist().index("a/g.png")]
    np.testing.assert_array_equal(g_row[0], g_row[1])
    forced, _ = load_image_folder(tmp_path, channels=1)
    expected = np.asarray(Image.open(tmp_path / "b" / "c.png").convert("L"), dtype=np.float32) / 255
    np.testing.assert_allclose(forced.inputs[1, 0], expected, atol=1 / 255 + 1e-6)


def test_rgb_with_equal_channels_counts_as_grayscale(tmp_path):
    Image.fromarray(np.full((4, 4), 80, np.uint8)).convert("RGB").save(tmp_path / "x.jpg")
    gray(tmp_path / "y.png", size=(4, 4))
    (tmp_path / "labels.csv").write_text("file,label\nx.jpg,0\ny.png,1\n")
    dataset, _ = load_image_folder(tmp_path)
    assert dataset.schema.input_shape == (1, 4, 4)


def test_16_bit_png_uses_the_full_16_bit_range(tmp_path):
    values = np.array([[0, 1000], [32768, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    image = read_image(path)
    assert image.shape == (1, 2, 2)
    np.testing.assert_allclose(image[0], values / 65535.0, rtol=1e-6)


def test_read_image_equals_the_loaders_row(tmp_path):
    gray(tmp_path / "a" / "one.png", size=(30, 20))
    color(tmp_path / "b" / "two.bmp", size=(25, 25))
    color(tmp_path / "b" / "three.tif", size=(12, 40))
    dataset, _ = load_image_folder(tmp_path, image_size=24)
    for row, relative in enumerate(dataset.ids):
        np.testing.assert_array_equal(read_image(tmp_path / relative, 3, (24, 24)), dataset.inputs[row])


def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(DataNotFoundError, match="ghost.png"):
        read_image(tmp_path / "ghost.png", 1, 8)
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(InvalidInputError, match="'text.png': not an image"):
        read_image(tmp_path / "text.png", 1, 8)


def test_load_report_to_dict():
    report = LoadReport(n_loaded=2, skipped=[("a.png", "corrupt")], notes=["n"])
    assert report.to_dict() == {"n_loaded": 2, "n_skipped": 1, "skipped": [{"file": "a.png", "reason": "corrupt"}],
                                "notes": ["n"]}
