"""PhysioNet 2012 records: vectorised parsing, hourly bins, descriptors, bad input reported and skipped, caching."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from medai.data.sources import physionet2012
from medai.data.sources.physionet2012 import VARIABLES, load_record, load_records
from medai.data.sources.timeseries import STATIC_NAMES
from medai.errors import DataNotFoundError, InvalidInputError

HEADER = "Time,Parameter,Value\n"
DESCRIPTORS = "00:00,RecordID,{id}\n00:00,Age,{age}\n00:00,Gender,1\n00:00,Height,-1\n00:00,ICUType,3\n00:00,Weight,80\n"
PATIENT_VALUE = "987.654"  # a distinctive "patient value": it must never appear in a message or a report
HR, TEMP, WEIGHT = VARIABLES.index("HR"), VARIABLES.index("Temp"), VARIABLES.index("Weight")


def record(folder, record_id, body="", age=70, header=True, descriptors=True):
    text = (HEADER if header else "") + (DESCRIPTORS.format(id=record_id, age=age) if descriptors else "") + body
    path = folder / f"{record_id}.txt"
    path.write_text(text)
    return path


def outcomes(path, rows):
    path.write_text("RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"
                    + "".join(f"{rid},1,1,5,-1,{died}\n" for rid, died in rows))
    return path


@pytest.fixture
def set_x(tmp_path):
    folder = tmp_path / "set-x"
    folder.mkdir()
    record(folder, 1, "00:30,HR,80\n00:45,HR,90\n01:10,Temp,36.5\n02:00,Weight,82\n47:59,HR,70\n48:00,HR,72\n")
    record(folder, 2, "00:10,HR,100\n03:00,Temp,1.5e+01\n03:30,Temp,37\n")
    outcomes(tmp_path / "Outcomes-x.txt", [(1, 0), (2, 1)])
    return folder


def test_bins_means_descriptors_and_labels(set_x):
    series = load_records(set_x, cache=False)
    assert series.values.shape == (2, 48, 37) and series.values.dtype == np.float32
    assert series.ids.tolist() == ["1", "2"] and series.groups.tolist() == ["1", "2"]
    assert series.labels.tolist() == [0, 1] and series.report["label_counts"] == {"survived": 1, "died": 1}
    assert series.values[0, 0, HR] == 85.0 and series.values[0, 1, TEMP] == 36.5
    assert series.values[0, 47, HR] == 71.0  # 47:59 and 48:00 (the window's end) share the last bin
    assert series.values[0, 2, WEIGHT] == 82.0 and np.isnan(series.values[0, 0, WEIGHT])  # 00:00 weight is static
    assert list(series.static_names) == list(STATIC_NAMES)
    np.testing.assert_array_equal(series.static[0], [70, 1, np.nan, 80, 0, 0, 1, 0])  # Height -1 = missing; MICU
    assert series.values[1, 3, TEMP] == 37.0  # 15 (written 1.5e+01) is outside the Temp range
    assert series.report["out_of_range"]["Temp"] == 1 and series.report["lines_skipped"] == {}
    assert series.hours.tolist() == list(range(48))


def test_last_aggregate_and_window(set_x):
    series = load_records(set_x, hours=2, aggregate="last", cache=False)
    assert series.values.shape == (2, 2, 37) and series.values[0, 0, HR] == 90.0
    assert series.report["observations_after_window"] == 4  # 03:00 and 03:30 temp, 47:59 and 48:00 HR
    assert series.values[0, 1, WEIGHT] == 82.0  # 02:00 is the window's end: last bin


def test_malformed_lines_are_reported_with_file_and_line_and_skipped(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    body = ("00:00,Age,55\n"  # line 8: a second Age
            "00:30,HR,80\n"  # 9: fine
            "00:31,HR\n"  # 10: two fields
            f"00:32,Cholestrol,{PATIENT_VALUE}\n"  # 11: unknown parameter (misspelt)
            f"-00:10,HR,{PATIENT_VALUE}\n"  # 12: negative time
            f"0x:40,HR,{PATIENT_VALUE}\n"  # 13: malformed time
            "00:40,HR,abc\n"  # 14: malformed value
            "00:50,HR,90\n"  # 15: fine
            f"00:20,HR,{PATIENT_VALUE}\n"  # 16: earlier than line 15
            f"00:55,HR,{PATIENT_VALUE},7\n"  # 17: four fields
            "\n")  # 18: blank, ignored
    record(folder, 7, body)
    series = load_records(folder, cache=False)
    skipped = series.report["lines_skipped"]
    assert skipped == {"malformed_line": 2, "unknown_parameter": 1, "negative_time": 1, "malformed_time": 1,
                       "malformed_value": 1, "unordered_time": 1, "duplicate_descriptor": 1}
    problems = {(p["line"], p["reason"]) for p in series.report["problems"]}
    assert problems == {(8, "duplicate_descriptor"), (10, "malformed_line"), (11, "unknown_parameter"),
                        (12, "negative_time"), (13, "malformed_time"), (14, "malformed_value"), (16, "unordered_time"),
                        (17, "malformed_line")}
    assert all(p["file"] == "7.txt" for p in series.report["problems"])
    assert series.report["unknown_parameters"] == {"Cholestrol": 1}
    assert series.values[0, 0, HR] == 85.0 and series.static[0, 0] == 70.0  # only the good lines count
    assert PATIENT_VALUE not in json.dumps(series.report)


def test_bad_records_are_skipped_and_counted(tmp_path):
    folder = tmp_path / "set-y"
    folder.mkdir()
    record(folder, 1, "00:30,HR,80\n")
    record(folder, 2, "", descriptors=False)  # header only: no observations
    (folder / "3.txt").write_text("")  # empty file
    record(folder, 4, "01:00,HR,70\n")  # no outcome
    record(folder, 5, "")  # descriptors only: kept, series all missing
    (folder / "6.txt").write_text(HEADER + DESCRIPTORS.format(id=1, age=60) + "00:30,HR,99\n")  # RecordID 1 again
    outcomes(tmp_path / "Outcomes-y.txt", [(1, 1), (2, 0), (3, 0), (5, 0)])
    series = load_records(folder, cache=False)
    assert series.ids.tolist() == ["1", "5"] and series.labels.tolist() == [1, 0]
    assert series.report["records_skipped"] == {"duplicate_record_id": 1, "missing_outcome": 1, "no_observations": 2}
    assert {"file": "4.txt", "reason": "missing_outcome"} in series.report["skipped_records"]
    assert series.report["records_without_series"] == 1 and np.isnan(series.values[1]).all()
    assert series.report["records_found"] == 6 and series.report["records_loaded"] == 2


def test_nothing_usable_raises_without_patient_values(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "1.txt").write_text(HEADER + f"00:10;HR;{PATIENT_VALUE}\n")
    with pytest.raises(InvalidInputError, match="No usable record") as caught:
        load_records(folder, cache=False)
    assert PATIENT_VALUE not in str(caught.value) and "1.txt" in str(caught.value)
    with pytest.raises(DataNotFoundError):
        load_records(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="No record files"):
        load_records(tmp_path / "empty")


def test_bom_crlf_no_trailing_newline_no_header_and_long_times(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "9.txt").write_bytes(b"\xef\xbb\xbfTime,Parameter,Value\r\n00:00,RecordID,9\r\n1:30,HR,60\r\n100:00,HR,61")
    (folder / "10.txt").write_text("00:00,RecordID,10\n00:05,GCS,15")
    series = load_records(folder, hours=120, outcomes=None, cache=False)
    assert series.labels is None and series.ids.tolist() == ["10", "9"]
    assert series.values[1, 1, HR] == 60.0 and series.values[1, 100, HR] == 61.0
    assert series.values[0, 0, VARIABLES.index("GCS")] == 15.0 and series.report["lines_skipped"] == {}


def test_single_record_for_prediction(set_x, tmp_path):
    one = load_record(set_x / "2.txt")
    assert len(one) == 1 and one.labels is None and one.values[0, 0, HR] == 100.0
    labelled = load_record(set_x / "2.txt", outcomes=tmp_path / "Outcomes-x.txt")
    assert labelled.labels.tolist() == [1]
    empty = record(tmp_path, 99, "", descriptors=False)
    with pytest.raises(InvalidInputError, match="no_observations"):
        load_record(empty)
    with pytest.raises(DataNotFoundError):
        load_record(tmp_path / "nope.txt")


def test_parent_folder_and_outcome_detection(set_x, tmp_path):
    assert physionet2012.find_outcomes(set_x) == tmp_path / "Outcomes-x.txt"
    from_parent = load_records(tmp_path, cache=False)
    assert from_parent.ids.tolist() == ["1", "2"] and from_parent.labels.tolist() == [0, 1]
    unlabelled = load_records(set_x, outcomes=None, cache=False)
    assert unlabelled.labels is None


def test_outcomes_file_problems_are_reported(set_x, tmp_path):
    (tmp_path / "Outcomes-x.txt").write_text("RecordID,In-hospital_death\n1,0\n2,maybe\n1,1\n")
    series = load_records(set_x, cache=False)
    assert series.ids.tolist() == ["1"] and series.report["records_skipped"] == {"missing_outcome": 1}
    assert [p["reason"] for p in series.report["outcomes_problems"]] == ["malformed_outcome", "duplicate_outcome"]
    (tmp_path / "Outcomes-x.txt").write_text("id,death\n1,0\n")
    with pytest.raises(InvalidInputError, match="In-hospital_death"):
        load_records(set_x, cache=False)


def test_cache_round_trip_and_invalidation(set_x):
    first = load_records(set_x)
    second = load_records(set_x)
    assert second.report["from_cache"] and "from_cache" not in first.report
    np.testing.assert_array_equal(first.values, second.values)
    np.testing.assert_array_equal(first.static, second.static)
    assert second.ids.tolist() == first.ids.tolist() and second.labels.tolist() == first.labels.tolist()
    path = set_x / "2.txt"
    path.write_text(path.read_text() + "04:00,HR,111\n")
    os.utime(path, ns=(1, 1))
    third = load_records(set_x)
    assert "from_cache" not in third.report and third.values[1, 4, HR] == 111.0
    cached = list(Path(os.environ["MEDAI_CACHE_DIR"]).rglob("physionet2012-*"))
    assert {p.suffix for p in cached} == {".npz", ".json"} and not list(set_x.parent.rglob("*.npz"))
    with np.load(next(p for p in cached if p.suffix == ".npz"), allow_pickle=False) as stored:
        assert stored["values"].dtype == np.float32


@pytest.mark.parametrize("hours, aggregate", [(0, "mean"), (48, "median"), (True, "mean")])
def test_parameters_are_validated(set_x, hours, aggregate):
    with pytest.raises(InvalidInputError):
        load_records(set_x, hours=hours, aggregate=aggregate, cache=False)


@pytest.mark.realdata
def test_set_a(real_data_dir):
    folder = real_data_dir / "physionet2012_mortality" / "set-a"
    if not folder.is_dir():
        pytest.skip("physionet2012_mortality/set-a is absent from the data folder")
    series = load_records(folder, cache=False)
    assert series.values.shape == (4000, 48, 37) and int(series.labels.sum()) == 554
    assert series.report["lines_read"] == 1_757_980 and series.report["lines_skipped"] == {}
    assert series.report["records_without_series"] == 3
    assert 0.75 < np.isnan(series.values).mean() < 0.85
    assert np.nanmin(series.static[:, 0]) >= 15 and np.isnan(series.static[:, 2]).any()
