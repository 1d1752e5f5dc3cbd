"""ECG sources: UCR archive text files and annotated WFDB records cut into beats.

- :func:`load_ucr`: one series per line, the class label first, values separated by whitespace or commas
  (e.g. ``ECG200_TRAIN.txt``). Labels become 0..K-1 in numeric order; ``schema.label_names`` keeps the original
  labels (ECG200: ``("-1", "1")``). Pass ``classes=train.schema.label_names`` to map a test file alike.
- :func:`read_beats` / :func:`load_wfdb_beats`: a WFDB record (``.hea`` + signal file) with beat annotations
  (e.g. MIT-BIH ``100.atr``) cut into windows around each annotated R peak (default 0.25 s before to 0.45 s
  after), resampled to a fixed length, with classes grouped by the AAMI EC57 convention (N, S, V, F, Q) or as
  normal vs abnormal. Non-beat annotations (rhythm changes ``+``, noise ``~``, ...) are skipped and counted, as are
  beats whose window runs past either end of the signal. ``wfdb`` is imported lazily
  (``pip install 'medai[timeseries]'``).

Both return a :class:`~medai.data.Dataset` with modality ``"series"`` and inputs of shape (n, T, leads).

Examples:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy_TRAIN.txt"
    >>> _ = path.write_text("1 0.1 0.2 0.3\\n-1 0.5 0.4 0.3\\n1,0.0,0.1,0.2\\n")
    >>> data = load_ucr(path)
    >>> data.inputs.shape, data.labels.tolist(), data.schema.label_names
    ((3, 3, 1), [1, 0, 1], ('-1', '1'))
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medai.data.dataset import Dataset, Schema
from medai.errors import DataNotFoundError, InvalidInputError, check_choice, require

_SEPARATORS = re.compile(r"[\s,]+")
AAMI_CLASSES = ("N", "S", "V", "F", "Q")
AAMI_GROUPS = {  # MIT-BIH beat symbol -> AAMI EC57 class
    **dict.fromkeys("NLRej", "N"), **dict.fromkeys("AaJS", "S"), **dict.fromkeys("VE", "V"), "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}
GROUPINGS = ("aami", "binary")  # binary: N -> normal; S, V, F -> abnormal; Q (paced, unclassifiable) skipped


# ------------------------------------------------------------------------------------------------------- UCR


def load_ucr(path: str | os.PathLike, classes=None) -> Dataset:
    """Read a UCR-format file into a Dataset of univariate series.

    Args:
        path: text file, one series per line: label, then the values (whitespace or comma separated).
        classes: the original labels in class order (e.g. the training set's ``schema.label_names``); default the
            labels found, sorted numerically.

    Returns:
        Dataset: inputs (n, T, 1) float32, labels (n,) int64, ids ``<file stem>-<line>``, task ``"binary"`` for two
        classes else ``"multiclass"``.

    Raises:
        DataNotFoundError: no such file.
        InvalidInputError: a line with a non-numeric or non-finite value, a different length than the first
            series, or a label outside ``classes`` (file name and line number given).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"No UCR file at {str(path)!r}.")
    rows, numbers, length = [], [], None
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        fields = [f for f in _SEPARATORS.split(line.strip()) if f]
        if not fields:
            continue
        try:
            row = np.array(fields, dtype=np.float64)
        except ValueError:
            raise InvalidInputError(f"'{path.name}' line {number}: not all fields are numbers; expected a class "
                                    f"label then the series values, separated by spaces or commas.") from None
        if not np.isfinite(row).all():
            raise InvalidInputError(f"'{path.name}' line {number}: holds NaN or infinity; expected finite values "
                                    f"(variable-length UCR series padded with NaN are not supported).")
        if length is None:
            length = len(row)
        if len(row) != length or length < 2:
            raise InvalidInputError(f"'{path.name}' line {number}: {len(row) - 1} values; expected {length - 1} like "
                                    f"line {numbers[0] if numbers else number} (every series must be equally long).")
        rows.append(row)
        numbers.append(number)
    if not rows:
        raise InvalidInputError(f"'{path.name}' holds no series; expected lines of 'label value value ...'.")
    table = np.stack(rows)  # (n, 1 + T)
    names = [_label_text(v) for v in table[:, 0]]
    order = sorted(set(names), key=float) if classes is None else [str(c) for c in classes]
    index = {name: i for i, name in enumerate(order)}
    unknown = sorted(set(names) - set(index))
    if unknown or len(order) < 2:
        raise InvalidInputError(f"'{path.name}': labels {unknown or order} do not fit the classes {order}; expected "
                                f"at least two classes and every label among them.")
    schema = Schema(modality="series", task_type="binary" if len(order) == 2 else "multiclass",
                    label_names=tuple(order), input_shape=(length - 1, 1), source="ucr")
    return Dataset(inputs=table[:, 1:, None].astype(np.float32), labels=np.array([index[n] for n in names]),
                   ids=np.array([f"{path.stem}-{n}" for n in numbers]), schema=schema)


def _label_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# ---------------------------------------------------------------------------------------------------- WFDB beats


@dataclass
class Beats:
    """Beats cut from one WFDB record.

    Attributes:
        beats: float32 array of shape (n, length, leads), in the record's physical units (mV).
        labels: int64 array of shape (n,), index into ``label_names``.
        label_names: class names (AAMI ``N, S, V, F, Q`` or ``normal, abnormal``).
        samples: int64 array of shape (n,): annotated R-peak sample of each beat.
        leads: lead names, e.g. ``("MLII", "V5")``.
        record: record name (the group of every beat).
        report: counts of beats per class, skipped annotations by symbol and beats too close to an edge.
    """

    beats: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...]
    samples: np.ndarray
    leads: tuple[str, ...]
    record: str
    report: dict = field(default_factory=dict)

    def to_dataset(self) -> Dataset:
        """Dataset(modality "series", inputs (n, length, leads), groups = the record name)."""
        schema = Schema(modality="series", task_type="binary" if len(self.label_names) == 2 else "multiclass",
                        label_names=self.label_names, input_shape=self.beats.shape[1:], source="wfdb")
        return Dataset(inputs=self.beats, labels=self.labels, ids=np.array([f"{self.record}-{s}" for s in self.samples]),
                       schema=schema, groups=np.full(len(self.labels), self.record))


def load_wfdb_beats(record: str | os.PathLike, annotation: str = "atr", before: float = 0.25, after: float = 0.45,
                    length: int = 128, grouping: str = "aami", channels=None) -> Dataset:
    """:func:`read_beats` as a Dataset of shape (n, length, leads)."""
    return read_beats(record, annotation, before, after, length, grouping, channels).to_dataset()


def read_beats(record: str | os.PathLike, annotation: str = "atr", before: float = 0.25, after: float = 0.45,
               length: int = 128, grouping: str = "aami", channels=None) -> Beats:
    """Cut a WFDB record into fixed-length beats around its annotated R peaks.

    Args:
        record: record path without suffix (e.g. ``.../100`` for ``100.hea``, ``100.dat``, ``100.atr``).
        annotation: annotation file suffix.
        before, after: window in seconds before and after each R peak.
        length: samples per beat after linear resampling.
        grouping: ``"aami"`` (N, S, V, F, Q) or ``"binary"`` (normal N vs abnormal S, V, F; Q skipped).
        channels: lead names or indices to keep (default all).

    Raises:
        DataNotFoundError: no header, signal or annotation file.
        InvalidInputError: bad parameters; a header, signal or annotation file that is truncated or corrupt
            (the file is named with what was expected); no beat left.
    """
    wfdb = require("wfdb", "timeseries")
    check_choice("grouping", grouping, GROUPINGS)
    if not (before >= 0 and after > 0 and before + after > 0) or not (isinstance(length, int) and length >= 2):
        raise InvalidInputError(f"Beat windows need before >= 0, after > 0 (seconds) and an int length >= 2; got "
                                f"before={before!r}, after={after!r}, length={length!r}.")
    base = Path(record).expanduser()
    base = base.with_suffix("") if base.suffix in (".hea", ".dat", f".{annotation}") else base
    signal, fs, leads = _read_signal(wfdb, base, channels)
    samples, symbols = _read_annotation(wfdb, base, annotation)
    return _segment(signal, fs, leads, samples, symbols, before, after, length, grouping, base.name)


def _read_signal(wfdb, base: Path, channels) -> tuple[np.ndarray, float, tuple[str, ...]]:
    header = base.with_suffix(".hea")
    if not header.is_file():
        raise DataNotFoundError(f"No WFDB header '{header.name}' in '{header.parent}'.")
    try:
        declared = wfdb.rdheader(str(base))
    except Exception as error:
        raise InvalidInputError(f"WFDB header '{header.name}' is corrupt ({type(error).__name__}); expected a record "
                                f"line '<name> <signals> <frequency> <samples>' then one line per signal.") from None
    files = sorted(set(declared.file_name or []))
    missing = [f for f in files if not (base.parent / f).is_file()]
    if missing:
        raise DataNotFoundError(f"The signal file(s) {missing} named in '{header.name}' are missing.")
    try:
        found = wfdb.rdrecord(str(base))
    except Exception as error:
        raise InvalidInputError(f"WFDB signal file(s) {files} of '{header.name}' could not be read "
                                f"({type(error).__name__}): truncated or corrupt; expected {declared.sig_len} samples "
                                f"of {declared.n_sig} signal(s) as the header declares.") from None
    signal = found.p_signal
    if signal is None or signal.ndim != 2 or signal.shape[0] != found.sig_len:
        raise InvalidInputError(f"WFDB record '{base.name}': the signal file holds fewer samples than the "
                                f"{found.sig_len} its header declares; expected a complete file.")
    leads = tuple(found.sig_name)
    if channels is not None:
        picks = [leads.index(c) if isinstance(c, str) and c in leads else c for c in channels]
        if not all(isinstance(p, int) and 0 <= p < len(leads) for p in picks):
            raise InvalidInputError(f"The 'channels' parameter must name leads of {list(leads)} or their indices; "
                                    f"got {list(channels)!r}.")
        signal, leads = signal[:, picks], tuple(leads[p] for p in picks)
    return np.nan_to_num(signal.astype(np.float32)), float(found.fs), leads


def _read_annotation(wfdb, base: Path, annotation: str) -> tuple[np.ndarray, list[str]]:
    path = base.with_name(f"{base.name}.{annotation}")
    if not path.is_file():
        raise DataNotFoundError(f"No annotation file '{path.name}' beside the record.")
    content = path.read_bytes()
    if len(content) < 2 or content[-2:] != b"\0\0":  # MIT format ends with a zero annotation word
        raise InvalidInputError(f"Annotation file '{path.name}' is truncated: expected it to end with the MIT "
                                f"format's end-of-file marker (two zero bytes).")
    try:
        found = wfdb.rdann(str(base), annotation)
    except Exception as error:
        raise InvalidInputError(f"Annotation file '{path.name}' could not be read ({type(error).__name__}); "
                                f"expected a WFDB (MIT format) annotation file.") from None
    return np.asarray(found.sample, dtype=np.int64), list(found.symbol)


def _segment(signal, fs, leads, samples, symbols, before, after, length, grouping, name) -> Beats:
    """Windows around R peaks, resampled to ``length``; classes by ``grouping``."""
    names = AAMI_CLASSES if grouping == "aami" else ("normal", "abnormal")
    start, stop = round(before * fs), round(after * fs)
    classes = [AAMI_GROUPS.get(s) for s in symbols]
    if grouping == "binary":
        classes = [None if c in (None, "Q") else ("normal" if c == "N" else "abnormal") for c in classes]
    is_beat = np.array([c is not None for c in classes], dtype=bool)
    inside = (samples - start >= 0) & (samples + stop <= len(signal))
    keep = np.flatnonzero(is_beat & inside)
    skipped = {}
    for symbol, beat in zip(symbols, is_beat):
        if not beat:
            skipped[symbol] = skipped.get(symbol, 0) + 1
    if not len(keep):
        raise InvalidInputError(f"WFDB record '{name}' has no beat annotation with a full window; expected beat "
                                f"symbols {sorted(AAMI_GROUPS)} at least {before} s after the start and {after} s "
                                f"before the end.")
    positions = np.linspace(-start, stop, length, endpoint=False)  # (length,) sample offsets from the R peak
    where = samples[keep][:, None] + positions[None, :]  # (n, length)
    low = np.floor(where).astype(np.int64)
    weight = (where - low)[..., None].astype(np.float32)
    beats = signal[low] * (1 - weight) + signal[np.minimum(low + 1, len(signal) - 1)] * weight  # (n, length, leads)
    index = {c: i for i, c in enumerate(names)}
    labels = np.array([index[classes[i]] for i in keep], dtype=np.int64)
    report = {"beats": len(keep), "class_counts": {c: int((labels == i).sum()) for i, c in enumerate(names)},
              "skipped_non_beat": skipped, "skipped_at_edge": int((is_beat & ~inside).sum()), "fs": fs}
    return Beats(beats=beats.astype(np.float32), labels=labels, label_names=tuple(names), samples=samples[keep],
                 leads=leads, record=name, report=report)
