"""RawSeries (subset, concatenate, alignment, cache files), hourly binning, and the TimeSeriesPreprocessor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medai.data.sources.timeseries import (
    RawSeries,
    bin_hourly,
    concatenate,
    filter_ranges,
    load_series,
    save_series,
)
from medai.errors import InvalidInputError
from medai.transforms.timeseries import TimeSeriesPreprocessor

NAN = np.nan


def raw_series(values, static=None, labels=(0, 1), ids=("a", "b"), variables=("HR", "Temp"), report=None):
    values = np.asarray(values, dtype=np.float32)
    n = len(values)
    static = np.zeros((n, 0), np.float32) if static is None else np.asarray(static, dtype=np.float32)
    names = ["Age", "Height"][: static.shape[1]]
    return RawSeries(ids=list(ids), values=values, variables=list(variables), static=static, static_names=names,
                     labels=None if labels is None else np.array(labels), groups=list(ids),
                     hours=np.arange(values.shape[1]), report=report or {"source": "test"})


@pytest.fixture
def train():
    values = [[[80, 37.0], [NAN, NAN], [100, 250.0], [NAN, 38.0]],  # Temp 250 is out of range
              [[NAN, NAN], [90, 36.0], [NAN, NAN], [NAN, NAN]]]
    return raw_series(values, static=[[60, NAN], [80, 170]])


def test_bin_hourly_mean_last_and_window_end():
    record, hours = np.array([0, 0, 0, 1]), np.array([0.1, 0.9, 2.0, 0.5])
    variable, values = np.array([0, 0, 0, 1]), np.array([1.0, 3.0, 7.0, 5.0])
    mean = bin_hourly(record, hours, variable, values, (2, 2, 2), "mean")
    last = bin_hourly(record, hours, variable, values, (2, 2, 2), "last")
    assert mean[0, 0, 0] == 2.0 and last[0, 0, 0] == 3.0 and mean[0, 1, 0] == 7.0  # 2.0 h: the last bin
    assert mean[1, 0, 1] == 5.0 and np.isnan(mean[1, 0, 0]) and mean.dtype == np.float32
    with pytest.raises(InvalidInputError, match="aggregate"):
        bin_hourly(record, hours, variable, values, (2, 2, 2), "median")


def test_filter_ranges_counts_per_variable():
    values = np.array([[[5.0, 37.0], [80.0, 60.0]]])
    filtered, counts = filter_ranges(values, ["HR", "Temp"])
    assert counts == {"HR": 1, "Temp": 1} and np.isnan(filtered[0, 0, 0]) and filtered[0, 1, 0] == 80.0
    assert values[0, 0, 0] == 5.0  # the input is not modified


def test_raw_series_validation_subset_concatenate_and_alignment(train):
    with pytest.raises(InvalidInputError, match="values has shape"):
        RawSeries(ids=["a"], values=np.zeros((2, 4, 2)), variables=["HR", "Temp"], static=np.zeros((1, 0)),
                  static_names=[], labels=None, groups=["a"], hours=np.arange(4))
    one = train.subset([1])
    assert one.ids.tolist() == ["b"] and one.labels.tolist() == [1] and one.values.shape == (1, 4, 2)
    both = concatenate([train, one])
    assert both.ids.tolist() == ["a", "b", "b"] and both.static.shape == (3, 2)
    assert RawSeries.concatenate([one, one]).labels.tolist() == [1, 1]
    aligned = train.select_variables(["Temp", "GCS"])
    assert aligned.variables.tolist() == ["Temp", "GCS"] and np.isnan(aligned.values[:, :, 1]).all()
    assert aligned.report["variables_added_empty"] == ["GCS"]
    with pytest.raises(InvalidInputError, match="different variables"):
        concatenate([train, aligned])


def test_cache_files_round_trip_without_pickle(train, tmp_path):
    save_series(train, tmp_path / "series")
    loaded = load_series(tmp_path / "series")
    np.testing.assert_array_equal(loaded.values, train.values)
    assert loaded.ids.tolist() == ["a", "b"] and loaded.labels.tolist() == [0, 1] and loaded.report["from_cache"]
    with np.load(tmp_path / "series.npz", allow_pickle=False) as stored:
        assert stored["ids"].dtype.kind == "U"
    unlabelled = train.subset([0])
    unlabelled.labels = None
    save_series(unlabelled, tmp_path / "u")
    assert load_series(tmp_path / "u").labels is None
    assert load_series(tmp_path / "absent") is None


def test_fit_transform_layout_mask_fill_and_delta(train):
    preprocessor = TimeSeriesPreprocessor().fit(train)
    assert preprocessor.mean_ == pytest.approx([90.0, 37.0]) and preprocessor.n_observed_ == [3, 3]
    data = preprocessor.transform(train)
    assert data.schema.modality == "series" and data.schema.task_type == "binary"
    assert data.schema.input_shape == (4, 2) and data.schema.label_names == ("survived", "died")
    assert data.schema.source == "test" and data.groups.tolist() == ["a", "b"]
    assert set(data.extras) == {"mask", "delta", "static"} and all(v.dtype == np.float32 for v in data.extras.values())
    mask = data.extras["mask"]
    np.testing.assert_array_equal(mask[0, :, 1], [1, 0, 0, 1])  # 250 degrees became missing
    original = preprocessor.inverse_values(data.inputs)  # the last observation carried forward
    np.testing.assert_allclose(original[0, :, 0], [80, 80, 100, 100])
    np.testing.assert_allclose(original[1, :, 0], [90, 90, 90, 90])  # training mean before the first observation
    np.testing.assert_allclose(original[0, :, 1], [37, 37, 37, 38])
    np.testing.assert_allclose(data.extras["delta"][0, :, 1] * 4, [0, 1, 2, 3])  # GRU-D: since the previous one
    np.testing.assert_allclose(data.extras["delta"][0, :, 0] * 4, [0, 1, 2, 1])
    assert preprocessor.last_report_["out_of_range"] == {"HR": 0, "Temp": 1}
    assert set(data.tensors()) == {"series", "mask", "delta", "static", "label"}


def test_static_features_imputed_standardised_with_indicators(train):
    preprocessor = TimeSeriesPreprocessor().fit(train)
    static = preprocessor.transform(train).extras["static"]
    assert static.shape == (2, 4) and preprocessor.static_feature_names_ == ["Age", "Height", "Age_missing",
                                                                             "Height_missing"]
    np.testing.assert_allclose(static[:, 0], [-1, 1])
    np.testing.assert_array_equal(static[:, 2:], [[0, 1], [0, 0]])
    assert static[0, 1] == pytest.approx(0.0)  # the training median of a single value, standardised


def test_statistics_come_from_training_only(train):
    preprocessor = TimeSeriesPreprocessor().fit(train)
    test = raw_series([[[200, 40.0], [NAN, NAN], [NAN, NAN], [NAN, NAN]]], labels=None, ids=["c"],
                      static=[[999, 150]])
    data = preprocessor.transform(test, keep_raw=True)
    assert data.labels is None and preprocessor.mean_ == pytest.approx([90.0, 37.0])
    assert data.inputs[0, 0, 0] == pytest.approx((200 - 90) / preprocessor.std_[0])
    np.testing.assert_array_equal(data.extras["raw"][0, :, 0], [200, NAN, NAN, NAN])
    assert preprocessor.last_report_["static_out_of_range"]["Age"] == 1  # 999 years
    assert data.extras["static"][0, 2] == 1.0


def test_state_round_trips_through_json(train):
    preprocessor = TimeSeriesPreprocessor(delta_scale=10.0).fit(train)
    restored = TimeSeriesPreprocessor.from_dict(json.loads(json.dumps(preprocessor.to_dict())))
    a, b = preprocessor.transform(train), restored.transform(train)
    assert a.fingerprint() == b.fingerprint()
    assert TimeSeriesPreprocessor.from_dict(TimeSeriesPreprocessor().to_dict()).ranges is None
    with pytest.raises(InvalidInputError, match="lacks"):
        TimeSeriesPreprocessor.from_dict({"fitted": {"mean_": [0.0]}})


def test_alignment_and_errors(train):
    preprocessor = TimeSeriesPreprocessor()
    with pytest.raises(InvalidInputError, match="not fitted"):
        preprocessor.transform(train)
    preprocessor.fit(train)
    swapped = train.select_variables(["Temp", "HR", "GCS"])
    np.testing.assert_array_equal(preprocessor.transform(swapped).inputs, preprocessor.transform(train).inputs)
    with pytest.raises(InvalidInputError, match="lacks \\['HR'\\]"):
        preprocessor.transform(train.select_variables(["Temp"]))
    shorter = raw_series(np.zeros((1, 3, 2)), labels=None, ids=["x"])
    with pytest.raises(InvalidInputError, match="hourly bins"):
        preprocessor.transform(shorter)
    with pytest.raises(InvalidInputError, match="delta_scale"):
        TimeSeriesPreprocessor(delta_scale=0).fit(train)
    with pytest.raises(InvalidInputError, match="low <= high"):
        TimeSeriesPreprocessor(ranges={"HR": (10, 1)}).fit(train)
    with pytest.raises(InvalidInputError, match="RawSeries"):
        TimeSeriesPreprocessor().fit(np.zeros((2, 4, 2)))


def test_constant_and_never_observed_variables_are_safe():
    values = np.full((2, 3, 2), NAN, dtype=np.float32)
    values[:, :, 0] = 1.0  # MechVent always 1
    raw = raw_series(values, variables=("MechVent", "Lactate"))
    preprocessor = TimeSeriesPreprocessor().fit(raw)
    data = preprocessor.transform(raw)
    assert preprocessor.std_ == [1.0, 1.0] and preprocessor.mean_ == [1.0, 0.0]
    assert np.isfinite(data.inputs).all() and (data.inputs == 0).all()
