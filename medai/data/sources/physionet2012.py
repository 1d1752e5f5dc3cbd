"""PhysioNet/CinC Challenge 2012 ICU records: one ``Time,Parameter,Value`` file per stay, hourly-binned.

:func:`load_records` reads a folder of record files (e.g. ``set-a/``), or the folder holding ``set-x/`` folders,
with the in-hospital death labels of the ``Outcomes-x.txt`` file found beside or inside it, into a
:class:`~medai.data.sources.timeseries.RawSeries`; :func:`load_record` reads one file for unlabelled prediction.
Parsing is vectorised over all files at once (:mod:`medai.data.sources._physionet_parse`); the result is cached
under :func:`medai.settings.cache_dir` keyed by the files' names, sizes and times and the parameters.

Record format: header ``Time,Parameter,Value``, times ``HH:MM`` since ICU admission. RecordID, Age, Gender,
Height, ICUType and the first Weight at 00:00 are static descriptors (-1 = missing); the 37 other parameters
(:data:`VARIABLES`, Weight included) are time series, binned per hour over the first ``hours`` hours (an
observation at exactly ``hours`` goes to the last bin). Values outside
:data:`~medai.data.sources.timeseries.PHYSIOLOGICAL_RANGES` are set missing and counted per variable.

Bad input is reported in ``series.report`` (file name, line number and reason; never a value) and skipped:

- lines: ``malformed_line`` (not 3 comma-separated fields), ``malformed_time``, ``negative_time``,
  ``unordered_time`` (earlier than a previous line of the file), ``unknown_parameter``, ``malformed_value``
  (not a finite number), ``duplicate_descriptor``; blank lines are ignored;
- records: ``unreadable_file``, ``no_observations`` (no usable line at all), ``duplicate_record_id``,
  ``missing_outcome`` (id absent from the outcomes file). A record with descriptors but no time-series value is
  kept (its series is all missing) and counted in ``records_without_series``.

:class:`~medai.errors.InvalidInputError` is raised only when no usable record remains.

Examples:
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "1.txt").write_text("Time,Parameter,Value\\n00:00,RecordID,1\\n00:00,Age,70\\n00:30,HR,80\\n"
    ...                                   "00:45,HR,90\\n02:10,Temp,36.6\\n02:20,HR,99x\\n")
    >>> _ = (folder / "Outcomes-x.txt").write_text("RecordID,In-hospital_death\\n1,1\\n")
    >>> series = load_records(folder, hours=4, cache=False)
    >>> series.values.shape, float(series.values[0, 0, list(series.variables).index("HR")]), series.labels.tolist()
    ((1, 4, 37), 85.0, [1])
    >>> series.report["lines_skipped"], series.report["problems"][0]
    ({'malformed_value': 1}, {'file': '1.txt', 'line': 7, 'reason': 'malformed_value'})
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from medai.data.sources import _physionet_parse as parse
from medai.data.sources.timeseries import (
    AGGREGATES,
    ICU_TYPES,
    PHYSIOLOGICAL_RANGES,
    STATIC_NAMES,
    RawSeries,
    bin_hourly,
    cache_path,
    concatenate,
    file_entries,
    filter_observations,
    fingerprint,
    load_series,
    save_series,
)
from medai.errors import DataNotFoundError, InvalidInputError, check_choice

VARIABLES = parse.VARIABLES
LABEL_COLUMN = "In-hospital_death"
MAX_LISTED = 50  # problems / skipped files listed by name in a report (all are counted)
CACHE_VERSION = 1


def load_records(path: str | os.PathLike, hours: int = 48, aggregate: str = "mean",
                 outcomes: str | os.PathLike | None = "auto", cache: bool = True) -> RawSeries:
    """Load a folder of PhysioNet 2012 record files into hourly series.

    Args:
        path: a folder of ``<RecordID>.txt`` files, or a folder holding ``set-*`` folders (all are loaded and
            joined, each with its own ``Outcomes-*.txt``).
        hours: number of hourly bins T from ICU admission (default 48).
        aggregate: per bin, the ``"mean"`` or the ``"last"`` observation.
        outcomes: ``"auto"`` finds ``Outcomes-*.txt`` inside the folder, or ``Outcomes-<x>.txt`` beside
            ``set-<x>/`` (unlabelled when none); a path names the file; None loads without labels.
        cache: reuse / write the parsed arrays under ``<cache_dir>/timeseries``.

    Returns:
        RawSeries with values (n, hours, 37), static (n, 8) = :data:`STATIC_NAMES`, labels (n,) int64 with
        1 = in-hospital death (or None), groups = ids = record ids.

    Raises:
        DataNotFoundError: no such folder, or no record file in it.
        InvalidInputError: bad parameters, an unreadable outcomes file, or no usable record.
    """
    _check_parameters(hours, aggregate)
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataNotFoundError(f"No PhysioNet 2012 folder at {str(folder)!r}; expected a folder of <RecordID>.txt "
                                f"files (e.g. set-a/) or one holding set-* folders (load_record reads one file).")
    sets = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("set-"))
    if sets and not _record_files(folder):
        if outcomes not in ("auto", None):
            raise InvalidInputError("An explicit outcomes file needs one record folder; pass the set-* folder itself.")
        parts = [_load_folder(s, _outcomes_for(s, outcomes), hours, aggregate, cache) for s in sets]
        return parts[0] if len(parts) == 1 else concatenate(parts)
    return _load_folder(folder, _outcomes_for(folder, outcomes), hours, aggregate, cache)


def load_record(path: str | os.PathLike, hours: int = 48, aggregate: str = "mean",
                outcomes: str | os.PathLike | None = None) -> RawSeries:
    """Load one record file (e.g. for prediction); unlabelled unless ``outcomes`` names an outcomes file.

    Returns:
        RawSeries of one record: values (1, hours, 37), static (1, 8).

    Raises:
        DataNotFoundError: no such file.
        InvalidInputError: nothing usable in the file (the message gives the reasons and line numbers).
    """
    _check_parameters(hours, aggregate)
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataNotFoundError(f"No PhysioNet 2012 record file at {str(file)!r}.")
    labels_path = None if outcomes is None else Path(outcomes).expanduser()
    return _build([file], labels_path, hours, aggregate, file.name)


def find_outcomes(folder: str | os.PathLike) -> Path | None:
    """The outcomes file of a record folder: ``Outcomes-*.txt`` inside it, else ``Outcomes-<x>.txt`` beside
    ``set-<x>``, else the only ``Outcomes-*.txt`` beside it; None when there is none (or several to choose from)."""
    folder = Path(folder)
    inside = sorted(folder.glob("Outcomes-*.txt"))
    if len(inside) == 1:
        return inside[0]
    suffix = folder.name[len("set-"):] if folder.name.startswith("set-") else None
    if suffix and (folder.parent / f"Outcomes-{suffix}.txt").is_file():
        return folder.parent / f"Outcomes-{suffix}.txt"
    beside = sorted(folder.parent.glob("Outcomes-*.txt"))
    return beside[0] if len(beside) == 1 and not suffix else None


def read_outcomes(path: str | os.PathLike) -> tuple[dict[str, int], dict]:
    """Read an outcomes file: RecordID -> in-hospital death (0/1), and a report of skipped lines.

    Raises:
        DataNotFoundError: no such file.
        InvalidInputError: no ``RecordID`` / ``In-hospital_death`` header columns.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"No outcomes file at {str(path)!r}.")
    lines = path.read_text(encoding="utf-8", errors="replace").lstrip("\ufeff").splitlines()
    header = [name.strip() for name in lines[0].split(",")] if lines else []
    if "RecordID" not in header or LABEL_COLUMN not in header:
        raise InvalidInputError(f"'{path.name}' has no 'RecordID' and '{LABEL_COLUMN}' header columns; expected the "
                                f"challenge's Outcomes file (RecordID,SAPS-I,SOFA,Length_of_stay,Survival,{LABEL_COLUMN}).")
    id_at, label_at = header.index("RecordID"), header.index(LABEL_COLUMN)
    labels, problems = {}, []
    for number, line in enumerate(lines[1:], start=2):
        fields = [field.strip() for field in line.split(",")]
        if not line.strip():
            continue
        if len(fields) != len(header) or not fields[id_at].isdigit() or fields[label_at] not in ("0", "1"):
            problems.append({"file": path.name, "line": number, "reason": "malformed_outcome"})
        elif fields[id_at] in labels:
            problems.append({"file": path.name, "line": number, "reason": "duplicate_outcome"})
        else:
            labels[fields[id_at]] = int(fields[label_at])
    return labels, {"outcomes_lines_skipped": len(problems), "outcomes_problems": problems[:MAX_LISTED]}


# --------------------------------------------------------------------------------------------------- internals


def _check_parameters(hours, aggregate) -> None:
    if isinstance(hours, bool) or not isinstance(hours, (int, np.integer)) or not 1 <= hours <= 1000:
        raise InvalidInputError(f"The 'hours' parameter must be an int in the range [1, 1000]; got {hours!r}.")
    check_choice("aggregate", aggregate, AGGREGATES)


def _record_files(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if e.name.endswith(".txt") and not e.name.startswith("Outcomes")
                 and e.is_file()]
    return [folder / name for name in sorted(names)]


def _outcomes_for(folder: Path, outcomes) -> Path | None:
    if outcomes is None:
        return None
    if isinstance(outcomes, str) and outcomes == "auto":
        return find_outcomes(folder)
    return Path(outcomes).expanduser()


def _load_folder(folder: Path, outcomes: Path | None, hours: int, aggregate: str, cache: bool) -> RawSeries:
    files = _record_files(folder)
    if not files:
        raise DataNotFoundError(f"No record files (*.txt) in '{folder}'; expected PhysioNet 2012 files named "
                                f"<RecordID>.txt with 'Time,Parameter,Value' lines.")
    base = None
    if cache:
        extra = file_entries([outcomes]) if outcomes is not None and outcomes.is_file() else [str(outcomes)]
        key = fingerprint(file_entries(files) + extra, {"hours": hours, "aggregate": aggregate, "folder": str(folder),
                          "version": CACHE_VERSION, "ranges": PHYSIOLOGICAL_RANGES})
        base = cache_path("physionet2012", key)
        cached = load_series(base)
        if cached is not None:
            return cached
    series = _build(files, outcomes, hours, aggregate, folder.name)
    if base is not None:
        try:
            save_series(series, base)
        except OSError:
            series.report["notes"].append("the cache folder is not writable; the parse was not cached")
    return series


def _build(files: list[Path], outcomes: Path | None, hours: int, aggregate: str, where: str) -> RawSeries:
    parsed = parse.parse_files(files, hours)
    report = {"source": "physionet2012", "folder": where, "hours": hours, "aggregate": aggregate,
              "outcomes_file": None if outcomes is None else outcomes.name, "notes": [], **parsed.report}
    values, out_of_range = filter_observations(parsed.values, parsed.variable, VARIABLES)
    report["out_of_range"] = out_of_range
    present = ~np.isnan(values)
    series = bin_hourly(parsed.record[present], parsed.hours[present], parsed.variable[present], values[present],
                        (len(files), hours, len(VARIABLES)), aggregate)  # (n_files, T, V)
    static = _static(parsed.descriptors, report)  # (n_files, S)
    keep, ids, labels = _select_records(parsed, outcomes, report, files)
    if not keep.any():
        raise InvalidInputError(f"No usable record in '{where}': {sum(report['records_skipped'].values())} record(s) "
                                f"skipped {report['records_skipped']}, line problems {report['lines_skipped']}, e.g. "
                                f"{report['problems'][:3] or report['skipped_records'][:3]}. Expected files of "
                                f"'Time,Parameter,Value' lines with HH:MM times.")
    report["records_loaded"] = int(keep.sum())
    if labels is not None:
        report["label_counts"] = {"survived": int((labels[keep] == 0).sum()), "died": int((labels[keep] == 1).sum())}
    return RawSeries(ids=ids[keep], values=series[keep], variables=np.array(VARIABLES), static=static[keep],
                     static_names=np.array(STATIC_NAMES), labels=None if labels is None else labels[keep],
                     groups=ids[keep], hours=np.arange(hours), report=report)


def _static(descriptors: dict[str, np.ndarray], report: dict) -> np.ndarray:
    """Descriptor values (-1 = missing) -> (n, 8) float32 [Age, Gender, Height, Weight, ICUType one-hot]."""
    n = len(descriptors["Age"])
    static = np.full((n, len(STATIC_NAMES)), np.nan, dtype=np.float32)
    counts = {}
    for j, name in enumerate(("Age", "Gender", "Height", "Weight")):
        column = descriptors[name].copy()
        column[column == -1] = np.nan
        if name == "Gender":
            outside = ~np.isin(column, (0.0, 1.0)) & ~np.isnan(column)
        else:
            low, high = PHYSIOLOGICAL_RANGES[name]
            outside = (column < low) | (column > high)
        counts[name] = int(outside.sum())
        static[:, j] = np.where(outside, np.nan, column)
    icu = descriptors["ICUType"]
    valid = np.isin(icu, np.arange(1, len(ICU_TYPES) + 1))
    counts["ICUType"] = int((valid == 0).sum() - ((icu == -1) | np.isnan(icu)).sum())
    one_hot = (icu[:, None] == np.arange(1, len(ICU_TYPES) + 1)).astype(np.float32)  # (n, 4)
    static[:, 4:] = np.where(valid[:, None], one_hot, np.nan)
    report["static_out_of_range"] = counts
    return static


def _select_records(parsed, outcomes: Path | None, report: dict, files: list[Path]):
    """Records to keep (bool (n,)), their ids (str (n,)) and labels (int64 (n,) or None); skips are reported."""
    reasons = parsed.record_problems.copy()  # (n,) str, "" = fine
    ids = parsed.ids
    seen: set[str] = set()
    for i, identifier in enumerate(ids):
        if not reasons[i]:
            if identifier in seen:
                reasons[i] = "duplicate_record_id"
            seen.add(identifier)
    labels = None
    if outcomes is not None:
        known, outcome_report = read_outcomes(outcomes)
        report.update(outcome_report)
        labels = np.array([known.get(identifier, -1) for identifier in ids], dtype=np.int64)
        reasons[(reasons == "") & (labels < 0)] = "missing_outcome"
    skipped = np.flatnonzero(reasons != "")
    report["records_skipped"] = {reason: int((reasons == reason).sum()) for reason in sorted(set(reasons[skipped]))}
    report["skipped_records"] = [{"file": files[i].name, "reason": str(reasons[i])} for i in skipped[:MAX_LISTED]]
    return reasons == "", ids, labels
