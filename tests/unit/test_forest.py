"""TreeForests: fitted forests as flat arrays give scikit-learn's per-tree outputs exactly, and round-trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from medai.models.forest import TreeForests


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (120, 30)).astype(np.float32)  # counts, like Morgan fingerprints
    y_class = (x[:, 0] + x[:, 1] + rng.normal(0, 1, 120) > 3).astype(int)
    y_value = x[:, 2] * 0.5 - x[:, 3] + rng.normal(0, 0.3, 120)
    forests = [RandomForestClassifier(25, class_weight="balanced_subsample", random_state=0).fit(x, y_class),
               RandomForestRegressor(25, max_features=0.33, random_state=1).fit(x, y_value)]
    return x, forests


def test_tree_outputs_equal_scikit_learns_per_tree_predictions(data):
    _, (classifier, regressor) = data
    model = TreeForests.from_sklearn([classifier, regressor], ["classification", "regression"])
    new = np.random.default_rng(1).integers(0, 5, (40, 30)).astype(np.float32)
    expected = [np.stack([t.predict_proba(new)[:, 1] for t in classifier.estimators_]),
                np.stack([t.predict(new) for t in regressor.estimators_])]
    for task in (0, 1):
        assert np.array_equal(model.tree_outputs(new, task), expected[task])
    assert np.allclose(model(torch.from_numpy(new)).numpy(), np.c_[classifier.predict_proba(new)[:, 1],
                                                                   regressor.predict(new)])
    assert model.tree_outputs(new[:0], 0).shape == (25, 0)


def test_buffers_round_trip_into_a_module_built_from_the_config(data):
    x, forests = data
    model = TreeForests.from_sklearn(forests, ["classification", "regression"])
    fresh = TreeForests(model.config()["nodes"], model.config()["trees"])
    with pytest.raises(ValueError, match="do not describe trees"):  # zeros: every node its own child, a cycle
        fresh.tree_outputs(x[:5], 0)
    fresh.load_state_dict(model.state_dict())  # the cached views of the zero buffers must not survive this
    for task in (0, 1):
        assert np.array_equal(fresh.tree_outputs(x, task), model.tree_outputs(x, task))
    assert {v.dtype for v in model.state_dict().values()} == {torch.int32, torch.int64, torch.float64}


def test_fit_forest_gives_the_same_forests_on_any_number_of_threads(data):
    from medai.tasks.molecule_fit import fit_forest

    x, _ = data
    labels = np.c_[(x[:, 0] > 1).astype(float), x[:, 1] * 2.0]
    labels[::7, 0] = np.nan  # missing labels are left out per task
    one, two = ({"task_types": ["classification", "regression"]} for _ in range(2))
    single, _ = fit_forest(one, x, labels, seed=3, n_jobs=1)
    double, _ = fit_forest(two, x, labels, seed=3, n_jobs=2)
    assert one["forest"] == two["forest"]
    assert all(torch.equal(a, b) for a, b in zip(single.state_dict().values(), double.state_dict().values()))
