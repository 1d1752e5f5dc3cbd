"""MedMNIST catalog, npz loader and resolver (local data dir, cache, offline, download via a local server)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from medai.data.sources import medmnist
from medai.data.sources.medmnist import MEDMNIST_2D, list_known, load_npz, resolve_medmnist
from medai.errors import DataNotFoundError, InvalidInputError


def write_npz(path: Path, rgb: bool = False, label_shape: str = "column", splits=("train", "val", "test"), **extra):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in zip(("train", "val", "test"), (6, 3, 4)):
        if split not in splits:
            continue
        shape = (n, 5, 5, 3) if rgb else (n, 5, 5)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        labels = np.arange(n) % 2
        arrays[f"{split}_labels"] = labels[:, None] if label_shape == "column" else labels
    arrays.update(extra)
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Empty data and cache folders, network allowed unless a test sets MEDAI_OFFLINE."""
    monkeypatch.setenv("MEDAI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEDAI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MEDAI_OFFLINE", raising=False)
    (tmp_path / "data").mkdir()
    return tmp_path


def test_catalog_has_the_2d_datasets_with_verified_labels():
    expected = {"pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist", "breastmnist",
                "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist"}
    assert set(MEDMNIST_2D) == expected
    breast = MEDMNIST_2D["breastmnist"]
    assert breast.label_names == ("malignant", "normal, benign")
    assert breast.md5[28] == "750601b1f35ba3300ea97c75c52ff8f6"
    assert breast.url() == "https://zenodo.org/records/10519652/files/breastmnist.npz?download=1"
    assert breast.url(64).endswith("/breastmnist_64.npz?download=1")
    assert MEDMNIST_2D["pneumoniamnist"].label_names == ("normal", "pneumonia")
    assert not MEDMNIST_2D["chestmnist"].supported
    assert all(len(md5) == 32 for info in MEDMNIST_2D.values() for md5 in info.md5.values())


def test_load_good_file_shapes_ids_and_catalog_label_names(tmp_path):
    splits = load_npz(write_npz(tmp_path / "breastmnist.npz"))
    assert set(splits) == {"train", "val", "test"}
    train = splits["train"]
    assert train.inputs.shape == (6, 1, 5, 5) and train.inputs.dtype == np.float32
    assert 0.0 <= train.inputs.min() and train.inputs.max() <= 1.0
    assert train.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert splits["test"].ids[3] == "test/000003"
    assert train.schema.label_names == ("malignant", "normal, benign")
    assert train.schema.task_type == "binary" and train.schema.source == "medmnist-npz"


def test_rgb_images_become_channels_first_and_unknown_names_get_generic_labels(tmp_path):
    path = write_npz(tmp_path / "mydata.npz", rgb=True)
    train = load_npz(path)["train"]
    raw = np.load(path)["train_images"]
    assert train.inputs.shape == (6, 3, 5, 5)
    np.testing.assert_allclose(train.inputs[2, 1], raw[2, :, :, 1] / 255.0, rtol=1e-6)
    assert train.schema.label_names == ("class_0", "class_1")


def test_labels_of_shape_n_and_n_by_1_load_the_same(tmp_path):
    column = load_npz(write_npz(tmp_path / "a.npz", label_shape="column"))["val"]
    flat = load_npz(write_npz(tmp_path / "b.npz", label_shape="flat"))["val"]
    assert column.labels.tolist() == flat.labels.tolist()


def test_partial_splits_are_returned(tmp_path):
    splits = load_npz(write_npz(tmp_path / "x.npz", splits=("train",)))
    assert list(splits) == ["train"]


@pytest.mark.parametrize("content, message", [
    (b"this is plain text, not an archive", "not a readable .npz"),
    (None, "not a readable .npz"),  # truncated real archive
])
def test_unreadable_files_raise_clear_errors(tmp_path, content, message):
    path = tmp_path / "broken.npz"
    if content is None:
        good = write_npz(tmp_path / "good.npz").read_bytes()
        content = good[: len(good) // 2]
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=message):
        load_npz(path)


def test_single_npy_array_is_rejected(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.zeros((2, 3)))
    with pytest.raises(InvalidInputError, match="single .npy array"):
        load_npz(path)


def test_missing_keys_are_named(tmp_path):
    path = tmp_path / "wrong.npz"
    np.savez(path, images=np.zeros((2, 4, 4), np.uint8), y=np.zeros(2))
    with pytest.raises(InvalidInputError, match=r"keys found \['images', 'y'\].*train_images"):
        load_npz(path)
    np.savez(path, train_images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(InvalidInputError, match="no 'train_labels' key"):
        load_npz(path)


def test_length_mismatch_nan_and_multilabel_are_rejected(tmp_path):
    images = np.zeros((3, 4, 4), np.uint8)
    cases = {
        "mismatch": (np.zeros((2, 1)), "3 images but 2 labels"),
        "nan": (np.array([[0.0], [np.nan], [1.0]]), "NaN labels"),
        "multilabel": (np.zeros((3, 14), np.uint8), "multi-label datasets are not supported yet"),
    }
    for name, (labels, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, train_images=images, train_labels=labels)
        with pytest.raises(InvalidInputError, match=message):
            load_npz(path)


def test_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, train_images=np.zeros((1, 2, 2), np.uint8), train_labels=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InvalidInputError, match="not a readable .npz"):
        load_npz(path)


def test_resolve_existing_path_and_missing_path(tmp_path):
    path = write_npz(tmp_path / "breastmnist.npz")
    assert resolve_medmnist(path) == path
    with pytest.raises(DataNotFoundError, match="nope.npz"):
        resolve_medmnist(tmp_path / "nope.npz")


def test_resolve_by_name_in_data_dir_case_insensitive(isolated):
    folder = isolated / "data" / "medmnist_breast"
    folder.mkdir()
    expected = write_npz(folder / "breastmnist.npz")
    assert resolve_medmnist("BreastMNIST") == expected
    flat = write_npz(isolated / "data" / "octmnist_64.npz")
    assert resolve_medmnist("octmnist_64") == flat
    row = next(row for row in list_known() if row["name"] == "breastmnist")
    assert row["local_path"] == str(expected) and row["url"].startswith("https://zenodo.org/records/10519652/")


def test_unknown_name_suggests_nearest(isolated):
    with pytest.raises(InvalidInputError, match="Did you mean 'breastmnist'"):
        resolve_medmnist("brestmnist")


def test_chestmnist_is_refused_before_download(isolated):
    with pytest.raises(InvalidInputError, match="multi-label datasets are not supported yet"):
        resolve_medmnist("chestmnist")


def test_offline_missing_name_says_where_to_put_the_file(isolated, monkeypatch):
    monkeypatch.setenv("MEDAI_OFFLINE", "1")
    with pytest.raises(DataNotFoundError) as caught:
        resolve_medmnist("dermamnist")
    message = str(caught.value)
    assert "dermamnist.npz" in message and "MEDAI_OFFLINE" in message
    assert MEDMNIST_2D["dermamnist"].url() in message
    assert str(isolated / "cache" / "medmnist" / "dermamnist.npz") in message


@pytest.fixture
def local_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve_catalog_entry(monkeypatch, local_server, md5: str | None = None) -> Path:
    served, base = local_server
    payload = write_npz(served / "breastmnist.npz")
    digest = md5 or hashlib.md5(payload.read_bytes()).hexdigest()
    info = dataclasses.replace(MEDMNIST_2D["breastmnist"], md5={28: digest})
    monkeypatch.setitem(MEDMNIST_2D, "breastmnist", info)
    monkeypatch.setattr(medmnist, "ZENODO_RECORD", base)
    return payload


def test_download_verifies_md5_and_caches(isolated, monkeypatch, local_server):
    payload = _serve_catalog_entry(monkeypatch, local_server)
    path = resolve_medmnist("breastmnist")
    assert path == isolated / "cache" / "medmnist" / "breastmnist.npz"
    assert path.read_bytes() == payload.read_bytes()
    assert load_npz(path)["train"].schema.label_names == ("malignant", "normal, benign")
    assert [p.name for p in path.parent.iterdir()] == ["breastmnist.npz"]  # no temporary file left
    payload.unlink()
    assert resolve_medmnist("breastmnist") == path  # second call uses the cache


def test_download_with_wrong_md5_is_deleted(isolated, monkeypatch, local_server):
    _serve_catalog_entry(monkeypatch, local_server, md5="0" * 32)
    with pytest.raises(DataNotFoundError, match="expected 0{32}"):
        resolve_medmnist("breastmnist")
    assert list((isolated / "cache" / "medmnist").iterdir()) == []


def test_network_failure_is_data_not_found(isolated, monkeypatch, local_server):
    _serve_catalog_entry(monkeypatch, local_server)
    monkeypatch.setattr(medmnist, "ZENODO_RECORD", local_server[1] + "/missing")
    with pytest.raises(DataNotFoundError, match="Download failed.*HTTP Error 404"):
        resolve_medmnist("breastmnist")


def test_download_false_does_not_touch_network(isolated):
    with pytest.raises(DataNotFoundError, match="download=False"):
        resolve_medmnist("pathmnist", download=False)
