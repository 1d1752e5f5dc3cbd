"""TabularPreprocessor: layout, fitting on training rows only, unseen categories, saved state, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medai.data.sources.tabular import Table, load_table
from medai.errors import InvalidInputError
from medai.transforms.tabular import TabularPreprocessor


def make_table(crp, age, sex) -> Table:
    columns = {"crp": np.array(crp, dtype=np.float64), "age": np.array(age, dtype=np.float64),
               "sex": np.array(sex, dtype=object)}
    n = len(crp)
    return Table(columns=columns, numeric=["crp", "age"], categorical=["sex"], target="y",
                 labels=np.arange(n) % 2, label_names=("0", "1"), ids=np.array([f"row-{i + 1}" for i in range(n)]))


@pytest.fixture
def train():
    return make_table([1.0, 2.0, np.nan, 5.0], [40.0, 50.0, 60.0, 70.0], ["F", "M", None, "F"])


def test_layout_imputation_and_indicators(train):
    preprocessor = TabularPreprocessor(["crp", "age"], ["sex"]).fit(train)
    out = preprocessor.transform(train)
    assert out.dtype == np.float32 and out.shape == (4, 2 * 2 + 1)
    assert preprocessor.feature_names_out_ == ["crp", "age", "crp_missing", "age_missing", "sex"]
    assert preprocessor.n_numeric_ == 2 and preprocessor.cardinalities_ == [3]
    crp = np.array([1.0, 2.0, 5.0])
    assert preprocessor.medians_[0] == 2.0 and preprocessor.stds_[0] == pytest.approx(crp.std())
    assert out[2, 0] == pytest.approx((2.0 - crp.mean()) / crp.std())  # imputed with the median
    assert out[:, 2].tolist() == [0, 0, 1, 0] and out[:, 3].tolist() == [0, 0, 0, 0]
    assert out[:, 4].tolist() == [1, 2, 0, 1]  # F=1, M=2, missing=0
    np.testing.assert_allclose(out[:, 1].mean(), 0.0, atol=1e-6)  # age: no missing value


def test_fit_uses_training_rows_only(train):
    test = make_table([100.0, 200.0], [20.0, 90.0], ["M", "F"])
    everything = Table(columns={k: np.concatenate([train.columns[k], test.columns[k]]) for k in train.columns},
                       numeric=train.numeric, categorical=train.categorical, target="y", labels=None,
                       label_names=(), ids=np.concatenate([train.ids, test.ids]))
    on_train = TabularPreprocessor(["crp", "age"], ["sex"]).fit(train)
    on_all = TabularPreprocessor(["crp", "age"], ["sex"]).fit(everything)
    assert on_train.means_ != on_all.means_ and on_train.medians_ != on_all.medians_
    assert on_train.percentiles_["crp"]["95"] < 100.0
    before = on_train.to_dict()
    on_train.transform(test)
    assert on_train.to_dict() == before  # transform learns nothing


def test_unseen_categories_get_code_zero_and_are_counted(train):
    preprocessor = TabularPreprocessor(["crp", "age"], ["sex"]).fit(train)
    evaluation = make_table([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], ["X", "F", "unknown"])
    out = preprocessor.transform(evaluation)
    assert out[:, 4].tolist() == [0, 1, 0]
    assert preprocessor.last_report_["unseen_categories"] == {"sex": 2}
    assert preprocessor.last_report_["rows"] == 3


def test_missing_columns_are_named_with_expected_ones_extra_ignored(train):
    preprocessor = TabularPreprocessor(["crp", "age"], ["sex"]).fit(train)
    with pytest.raises(InvalidInputError, match=r"lacks column\(s\) \['age'\].*Expected columns: crp, age, sex"):
        preprocessor.transform({"crp": [1.0], "sex": ["F"], "agee": [3.0]})
    out = preprocessor.transform({"crp": [1.0], "age": [50.0], "sex": ["F"], "extra": ["z"]})
    assert out.shape == (1, 5)


def test_round_trip_through_json_gives_identical_output(train):
    preprocessor = TabularPreprocessor(["crp", "age"], ["sex"]).fit(train)
    restored = TabularPreprocessor.from_dict(json.loads(json.dumps(preprocessor.to_dict())))
    evaluation = make_table([np.nan, 7.0], [33.0, np.nan], ["M", "Z"])
    np.testing.assert_array_equal(restored.transform(evaluation), preprocessor.transform(evaluation))
    assert restored.feature_names_out_ == preprocessor.feature_names_out_
    assert restored.cardinalities_ == preprocessor.cardinalities_
    with pytest.raises(InvalidInputError, match="Not a saved TabularPreprocessor"):
        TabularPreprocessor.from_dict({"numeric": ["crp"]})


def test_inverse_numeric_and_training_summary(train):
    preprocessor = TabularPreprocessor(["crp", "age"], ["sex"]).fit(train)
    out = preprocessor.transform(train)
    np.testing.assert_allclose(preprocessor.inverse_numeric(out[[0, 1, 3], :2]),
                               train.columns["crp"][[0, 1, 3], None].repeat(2, 1) * [1, 0] +
                               np.c_[[0, 0, 0], train.columns["age"][[0, 1, 3]]], rtol=1e-5)
    summary = preprocessor.training_summary("crp")
    assert summary["median"] == 2.0 and set(summary["percentiles"]) == {"5", "25", "50", "75", "95"}
    assert preprocessor.training_summary("sex")["counts"] == {"F": 2, "M": 1}
    with pytest.raises(InvalidInputError, match="Did you mean 'age'"):
        preprocessor.training_summary("agge")
    with pytest.raises(InvalidInputError, match=r"shape \(\.\.\., 2\)"):
        preprocessor.inverse_numeric(np.zeros((2, 3)))


def test_numeric_categories_from_an_inferred_numeric_column_match(train, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("cp,crp,y\n1.0,2,0\n2.0,3,1\n")
    train_table = load_table(path, target="y", categorical=["cp"])
    preprocessor = TabularPreprocessor(["crp"], ["cp"]).fit(train_table)
    evaluation = load_table(path, target="y")  # cp inferred numeric here
    assert evaluation.columns["cp"].dtype == np.float64
    np.testing.assert_array_equal(preprocessor.transform(evaluation), preprocessor.transform(train_table))


def test_empty_training_column_and_bad_input(train):
    empty = make_table([np.nan, np.nan], [1.0, 2.0], [None, None])
    preprocessor = TabularPreprocessor(["crp", "age"], ["sex"]).fit(empty)
    out = preprocessor.transform(train)
    assert np.isfinite(out).all() and preprocessor.cardinalities_ == [1]
    with pytest.raises(InvalidInputError, match="not fitted"):
        TabularPreprocessor(["crp"], []).transform(train)
    with pytest.raises(InvalidInputError, match="at least one column"):
        TabularPreprocessor(["crp"], ["crp"]).fit(train)
    with pytest.raises(InvalidInputError, match=r"'crp' holds text in row 2") as caught:
        preprocessor.transform({"crp": ["1.5", "123.456 mg", None], "age": [1, 2, 3], "sex": ["F", "M", "F"]})
    assert "123.456" not in str(caught.value)
    with pytest.raises(InvalidInputError, match="infinite"):
        preprocessor.transform({"crp": [np.inf], "age": [1.0], "sex": ["F"]})


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["pima", "heart", "ckd", "ilpd", "breast_cancer"])
def test_real_tables_transform_to_finite_rows(real_data_dir, name):
    table = load_table(name)
    train_rows = np.arange(len(table)) % 5 != 0
    preprocessor = TabularPreprocessor(table.numeric, table.categorical).fit(table.subset(np.flatnonzero(train_rows)))
    out = preprocessor.transform(table.subset(np.flatnonzero(~train_rows)))
    assert out.shape == ((~train_rows).sum(), 2 * len(table.numeric) + len(table.categorical))
    assert np.isfinite(out).all()
