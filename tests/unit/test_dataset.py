import numpy as np
import pytest

from medai.data.dataset import Dataset, Schema, concatenate
from medai.errors import InvalidInputError


def _series(n=6):
    schema = Schema("series", "binary", ("alive", "died"), (4, 3))
    rng = np.random.default_rng(0)
    extras = {"mask": rng.random((n, 4, 3)) > 0.5, "static": rng.random((n, 2)).astype("float32")}
    return Dataset(rng.random((n, 4, 3)).astype("float32"), np.arange(n) % 2, np.arange(n), schema, extras=extras)


def test_extras_travel_through_tensors_subset_and_concatenate():
    data = _series()
    batch = data.tensors()
    assert set(batch) == {"series", "mask", "static", "label"}
    part = data.subset([1, 3])
    np.testing.assert_array_equal(part.extras["static"], data.extras["static"][[1, 3]])
    joined = concatenate([part, data.subset([0])])
    assert joined.extras["mask"].shape == (3, 4, 3)


def test_extras_change_the_fingerprint():
    data = _series()
    other = data.subset(np.arange(len(data)))
    other.extras["static"] = other.extras["static"] + 1
    assert data.fingerprint() != other.fingerprint()


def test_extras_must_have_one_row_per_sample_and_not_shadow_keys():
    data = _series()
    with pytest.raises(InvalidInputError, match="extra array 'static'"):
        Dataset(data.inputs, data.labels, data.ids, data.schema, extras={"static": np.zeros((2, 2))})
    with pytest.raises(InvalidInputError, match="reserved"):
        Dataset(data.inputs, data.labels, data.ids, data.schema, extras={"label": np.zeros(len(data))})


def test_regression_targets_are_float_and_may_be_missing():
    schema = Schema("series", "regression", ("heart_rate", "map"), (4, 3))
    targets = np.array([[80.0, np.nan], [72.0, 90.0]])
    data = Dataset(np.zeros((2, 4, 3), "float32"), targets, ["a", "b"], schema)
    assert data.labels.dtype == np.float32 and data.labels.shape == (2, 2)
    assert not schema.is_classification
    with pytest.raises(InvalidInputError, match="class labels"):
        data.class_counts()
