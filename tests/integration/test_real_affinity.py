"""DeepDTA on real DAVIS: one short epoch on a subset of the DeepDTA split learns something."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rdkit")
pytestmark = pytest.mark.realdata


def test_one_epoch_on_a_davis_subset_ranks_pairs_better_than_chance(real_data_dir):
    from medai.chem.dta import load_deepdta_folder
    from medai.chem.metrics import affinity_metrics
    from medai.tasks import affinity_data as pairs_io
    from medai.tasks.drug_target_affinity import AffinitySettings, fit, predict_pairs

    folder = real_data_dir / "dta_davis"
    if not folder.is_dir():
        pytest.skip(f"DAVIS absent: no {folder}")
    data = load_deepdta_folder(folder)
    parts = data.split(0)
    assert {k: len(v) for k, v in parts.items()} == {"train": 20036, "val": 5010, "test": 5010}
    rng = np.random.default_rng(0)
    proteins = rng.choice(len(data.protein_ids), 80, replace=False)  # 80 of 442 kinases, all 68 drugs
    subset = {k: v[np.isin(data.protein_index[v], proteins)] for k, v in parts.items()}
    settings = AffinitySettings(epochs=1, max_sequence_length=400, seed=0, device="cpu", num_threads=1, progress=False)
    model, config, summary = fit(data, subset, settings)
    assert config["encoding"]["max_smiles_length"] == 85 and summary["best_epoch"] == 0
    drug_codes, protein_codes = pairs_io.encode(data, 85, 400)
    test = pairs_io.pairs_of(data, subset["test"], drug_codes, protein_codes)
    metrics = affinity_metrics(predict_pairs(model, test), test.labels)
    assert metrics["ci"] > 0.6 and np.isfinite(metrics["mse"])  # 0.66 with seed 0 (0.74, 0.75 with seeds 1, 2)
