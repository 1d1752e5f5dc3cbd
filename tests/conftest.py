"""Shared fixtures: small synthetic image data made in the test, and the real-data location."""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from medai import settings


@functools.cache
def bench_module(name: str):
    """``bench/<name>.py`` as a module (bench/ is a folder of scripts, not a package), loaded once."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(__file__).resolve().parents[1] / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_images(n: int, size: int = 16, seed: int = 0, channels: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 images carry a bright blob in the top half, class 0 in the bottom half; uint8 (n, size, size[, 3]).

    Top/bottom rather than left/right: the default augmentation flips images horizontally.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 60, size=(n, size, size)).astype(np.uint8)
    for i, label in enumerate(labels):
        row = size // 4 if label else 3 * size // 4
        col = rng.integers(size // 4, 3 * size // 4)
        images[i, row - 2 : row + 2, col - 2 : col + 2] = 230
    if channels == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    return images, labels.reshape(-1, 1)


def write_npz(path: Path, sizes=(48, 16, 16), size: int = 16, channels: int = 0) -> Path:
    arrays = {}
    for seed, (split, n) in enumerate(zip(("train", "val", "test"), sizes)):
        images, labels = make_images(n, size, seed, channels)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    np.savez(path, **arrays)
    return path


@pytest.fixture
def tiny_npz(tmp_path) -> Path:
    return write_npz(tmp_path / "tiny.npz")


@pytest.fixture
def real_data_dir() -> Path:
    found = settings.data_dir()
    if found is None or not found.is_dir():
        pytest.skip("real data absent: set MEDAI_DATA_DIR to the folder holding the datasets (../shared/data)")
    return found


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache or the network from tests."""
    monkeypatch.setenv("MEDAI_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("MEDAI_OFFLINE", "1")
    monkeypatch.delenv("MEDAI_DEBUG", raising=False)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
