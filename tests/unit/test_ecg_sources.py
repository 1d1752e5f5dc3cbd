"""ECG sources: UCR text files (labels, separators, bad lines) and WFDB records cut into annotated beats."""

from __future__ import annotations

import numpy as np
import pytest

from medai.data.sources.ecg import load_ucr, load_wfdb_beats, read_beats
from medai.errors import DataNotFoundError, InvalidInputError


def ucr(tmp_path, text, name="toy_TRAIN.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_ucr_labels_separators_and_layout(tmp_path):
    path = ucr(tmp_path, "1 0.1  0.2 0.3\n-1\t0.5 0.4 0.3\n\n1.0000000e+00,0.0,0.1,0.2\n")
    data = load_ucr(path)
    assert data.inputs.shape == (3, 3, 1) and data.inputs.dtype == np.float32
    assert data.labels.tolist() == [1, 0, 1] and data.schema.label_names == ("-1", "1")
    assert data.schema.task_type == "binary" and data.schema.modality == "series" and data.schema.source == "ucr"
    assert data.ids.tolist() == ["toy_TRAIN-1", "toy_TRAIN-2", "toy_TRAIN-4"]
    np.testing.assert_allclose(data.inputs[2, :, 0], [0.0, 0.1, 0.2])


def test_ucr_test_file_uses_training_classes(tmp_path):
    train = load_ucr(ucr(tmp_path, "1 0 0\n2 0 0\n3 0 0\n"))
    test = load_ucr(ucr(tmp_path, "3 1 1\n", "toy_TEST.txt"), classes=train.schema.label_names)
    assert test.labels.tolist() == [2] and test.schema.task_type == "multiclass"
    with pytest.raises(InvalidInputError, match="do not fit the classes"):
        load_ucr(ucr(tmp_path, "4 1 1\n", "other.txt"), classes=train.schema.label_names)


@pytest.mark.parametrize("text, message", [
    ("1 0.1 0.2 0.3\n-1 0.5 0.4\n", "line 2: 2 values; expected 3"),
    ("1 0.1 0.2 0.3\n-1 0.5 abc 0.3\n", "line 2: not all fields are numbers"),
    ("1 0.1 nan 0.3\n", "line 1: holds NaN"),
    ("1 0.1 0.2\n1 0.3 0.4\n", "at least two classes"),
    ("\n\n", "holds no series"),
])
def test_ucr_wrong_lines_name_the_line(tmp_path, text, message):
    with pytest.raises(InvalidInputError, match=message) as caught:
        load_ucr(ucr(tmp_path, text))
    assert "0.5" not in str(caught.value)  # no values in messages
    with pytest.raises(DataNotFoundError):
        load_ucr(tmp_path / "absent.txt")


@pytest.fixture
def record(tmp_path):
    wfdb = pytest.importorskip("wfdb")
    fs, seconds = 100, 10
    t = np.arange(fs * seconds) / fs
    signal = np.stack([np.sin(2 * np.pi * t), 0.5 * np.cos(2 * np.pi * t)], axis=1)  # (1000, 2) mV
    wfdb.wrsamp("rec", fs=fs, units=["mV", "mV"], sig_name=["MLII", "V5"], p_signal=signal, fmt=["16", "16"],
                write_dir=str(tmp_path))
    samples = np.array([10, 100, 200, 300, 350, 400, 500, 600, 700, 995])
    symbols = ["N", "N", "A", "+", "V", "N", "F", "/", "~", "N"]  # first and last are too close to the edges
    wfdb.wrann("rec", "atr", samples, symbols, write_dir=str(tmp_path))
    return tmp_path / "rec"


def test_beats_windows_classes_and_report(record):
    beats = read_beats(record, length=70)
    assert beats.beats.shape == (6, 70, 2) and beats.leads == ("MLII", "V5") and beats.record == "rec"
    assert beats.samples.tolist() == [100, 200, 350, 400, 500, 600]
    assert [beats.label_names[i] for i in beats.labels] == ["N", "S", "V", "N", "F", "Q"]
    assert beats.report["skipped_non_beat"] == {"+": 1, "~": 1} and beats.report["skipped_at_edge"] == 2
    # 70 points over 0.7 s at 100 Hz: point 25 is the R peak itself
    signal = np.sin(2 * np.pi * np.arange(1000) / 100)
    np.testing.assert_allclose(beats.beats[0, :, 0], signal[75:145], atol=1e-3)
    data = load_wfdb_beats(record, grouping="binary", channels=["V5"])
    assert data.inputs.shape == (5, 128, 1) and data.schema.label_names == ("normal", "abnormal")
    assert data.labels.tolist() == [0, 1, 1, 0, 1] and data.groups.tolist() == ["rec"] * 5
    assert data.ids[0] == "rec-100" and data.schema.source == "wfdb"


def test_truncated_and_missing_wfdb_files(record):
    dat = record.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:1000])
    with pytest.raises(InvalidInputError, match="'rec.dat'.*truncated or corrupt; expected 1000 samples"):
        read_beats(record)


def test_truncated_annotation_and_bad_header(record):
    atr = record.with_suffix(".atr")
    atr.write_bytes(atr.read_bytes()[:-4])
    with pytest.raises(InvalidInputError, match="'rec.atr' is truncated"):
        read_beats(record)
    record.with_suffix(".hea").write_text("garbage\n")
    with pytest.raises(InvalidInputError, match="header 'rec.hea' is corrupt"):
        read_beats(record)
    record.with_suffix(".hea").unlink()
    with pytest.raises(DataNotFoundError, match="rec.hea"):
        read_beats(record)


def test_beat_parameters_are_validated(record):
    with pytest.raises(InvalidInputError, match="grouping"):
        read_beats(record, grouping="aamii")
    with pytest.raises(InvalidInputError, match="length"):
        read_beats(record, length=1)
    with pytest.raises(InvalidInputError, match="channels"):
        read_beats(record, channels=["V1"])


@pytest.mark.realdata
def test_ecg200_and_mitbih_record_100(real_data_dir):
    folder = real_data_dir / "ucr_ecg"
    if not folder.is_dir():
        pytest.skip("ucr_ecg is absent from the data folder")
    train = load_ucr(folder / "ECG200_TRAIN.txt")
    test = load_ucr(folder / "ECG200_TEST.txt", classes=train.schema.label_names)
    assert train.inputs.shape == (100, 96, 1) and train.class_counts().tolist() == [31, 69]
    assert test.class_counts().tolist() == [36, 64]
    assert load_ucr(folder / "ECG5000_TRAIN.txt").class_counts().tolist() == [292, 177, 10, 19, 2]
    record = real_data_dir / "ecg_wfdb_physionet_samples" / "100"
    beats = read_beats(record)
    assert beats.beats.shape == (2271, 128, 2) and beats.report["skipped_non_beat"] == {"+": 1}
    assert beats.report["class_counts"] == {"N": 2237, "S": 33, "V": 1, "F": 0, "Q": 0}
