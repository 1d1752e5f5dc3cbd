"""De-identification of structured records (CSV/Parquet tables) after HIPAA Safe Harbor, with a k-anonymity report.

- the patient column and other id columns become keyed HMAC-SHA256 pseudonyms (:class:`Pseudonymizer`; the patient
  column in the ``patient`` namespace, the one DICOM PatientID uses, so tables and images still join);
- every date column moves by the patient's own offset, so intervals between one patient's events are kept;
- ages over 89 become ``"90+"``; ZIP codes keep their first 3 digits, ``"000"`` for the 3-digit areas of fewer than
  20,000 people (Safe Harbor, 45 CFR 164.514(b)(2)(i)(B));
- direct identifiers named by the user (names, phone numbers, addresses...) are dropped;
- a k-anonymity report over chosen quasi-identifiers: the smallest class size and the records in classes below k.

polars is imported lazily (``pip install 'medai[tabular]'``). Reports hold counts and column names, never values.

Examples:
    >>> import polars as pl
    >>> from medai.privacy.pseudonym import Pseudonymizer
    >>> frame = pl.DataFrame({"mrn": ["A1", "A1", "B2"], "admitted": ["2020-01-01", "2020-01-11", "2021-05-05"],
    ...                       "age": [45, 45, 93], "zip": ["02139", "02139", "03601"], "name": ["x", "x", "y"]})
    >>> out, report = deidentify_table(frame, Pseudonymizer(key=b"k" * 32), patient_column="mrn",
    ...                                date_columns=["admitted"], drop_columns=["name"], quasi_identifiers=["age"], k=2)
    >>> out["age"].to_list(), out["zip"].to_list(), "name" in out.columns
    (['45', '45', '90+'], ['021', '021', '000'], False)
    >>> (out["admitted"][1] - out["admitted"][0]).days, report["k_anonymity"]["k"]
    (10, 1)
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from medai.errors import InvalidInputError, did_you_mean, require
from medai.privacy.pseudonym import Pseudonymizer

PATIENT_NAMESPACE = "patient"
AGE_TOP_CODE = "90+"
# 3-digit ZIP areas with 20,000 people or fewer (2000 census), which Safe Harbor replaces by 000 (HHS guidance).
RESTRICTED_ZIP3 = frozenset({"036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831",
                             "878", "879", "884", "890", "893"})  # fmt: skip
AGE_NAMES = ("age", "age_years", "anchor_age", "patient_age")
ZIP_NAMES = ("zip", "zipcode", "zip_code", "postal_code", "postcode")
IDENTIFIER_HINTS = re.compile(r"name|phone|fax|e_?mail|ssn|social|address|street|mrn|medical_record|account|"
                              r"licen[cs]e|plate|vin|device|serial|url|ip_?addr|birth|dob", re.IGNORECASE)  # fmt: skip


def _check_columns(frame, parameter: str, columns: Sequence[str]) -> list[str]:
    for column in columns:
        if column not in frame.columns:
            raise InvalidInputError(f"The {parameter} {column!r} is not a column of the table; it has "
                                    f"{len(frame.columns)} columns.{did_you_mean(column, frame.columns)}")
    return list(columns)


def _auto(frame, names: Sequence[str]) -> list[str]:
    return [c for c in frame.columns if c.lower() in names]


def generalize_ages(series):
    """Ages as text: whole numbers as integers, over 89 as ``"90+"``; non-numeric values (other than 90+) -> null."""
    import polars as pl

    numbers = series.cast(pl.Utf8).str.strip_chars().cast(pl.Float64, strict=False)
    text = pl.Series(series.name, [None if v is None else (str(int(v)) if v == int(v) else str(v))
                                   for v in numbers.to_list()], dtype=pl.Utf8)  # fmt: skip
    already = series.cast(pl.Utf8).str.strip_chars() == AGE_TOP_CODE
    return (pl.DataFrame({"n": numbers, "t": text, "a": already})
            .select(pl.when(pl.col("a") | (pl.col("n") > 89)).then(pl.lit(AGE_TOP_CODE)).otherwise(pl.col("t")))
            .to_series().alias(series.name))  # fmt: skip


def generalize_zips(series):
    """ZIP codes to their first 3 digits (``"000"`` for restricted areas); fewer than 3 digits -> null."""
    import polars as pl

    if series.dtype.is_integer():
        series = series.cast(pl.Utf8).str.zfill(5)
    digits = series.cast(pl.Utf8).str.replace_all(r"[^0-9]", "").str.slice(0, 3)
    digits = pl.Series(series.name, [d if d is not None and len(d) == 3 else None for d in digits.to_list()], dtype=pl.Utf8)
    return digits.replace(list(RESTRICTED_ZIP3), ["000"] * len(RESTRICTED_ZIP3))


def _as_dates(series, date_format: str | None):
    """A date or datetime series from ``series`` (already temporal, or text); unparseable text becomes null."""
    import polars as pl

    if series.dtype.is_temporal() and series.dtype != pl.Time and not isinstance(series.dtype, pl.Duration):
        return series
    if series.dtype != pl.Utf8:
        raise InvalidInputError(f"The date column {series.name!r} holds {series.dtype}, not dates or text.")
    text = series.str.strip_chars()
    if date_format:
        datetimes = text.str.strptime(pl.Datetime, date_format, strict=False)
        has_time = any(code in date_format for code in ("%H", "%I", "%M", "%S", "%T", "%R", "%c"))
        return datetimes if has_time else datetimes.dt.date()
    as_date = text.str.to_date(strict=False)
    as_datetime = text.str.to_datetime(strict=False)
    return as_datetime if as_datetime.null_count() < as_date.null_count() else as_date


def shift_dates(frame, pseudonymizer: Pseudonymizer, patient_column: str, date_columns: Sequence[str],
                date_format: str | None = None) -> tuple:
    """Move each date by its patient's offset; dates of rows without a patient, or unreadable, become null."""
    import polars as pl

    patients = frame[patient_column].cast(pl.Utf8)
    offsets = {p: pseudonymizer.date_offset_days(p) for p in patients.drop_nulls().unique().to_list()}
    days = patients.replace_strict(offsets, default=None, return_dtype=pl.Int64)
    counts = {}
    for column in date_columns:
        original = frame[column]
        dates = _as_dates(original, date_format)
        shifted = (pl.DataFrame({"d": dates, "o": days}).select(pl.col("d") + pl.duration(days=pl.col("o")))
                   .to_series().alias(column))  # fmt: skip
        frame = frame.with_columns(shifted)
        present = original.is_not_null() & (original.cast(pl.Utf8).str.strip_chars() != "")
        counts[column] = {"shifted": int(shifted.is_not_null().sum()),
                          "removed": int((present & shifted.is_null()).sum())}  # fmt: skip
    return frame, counts


def k_anonymity(frame, quasi_identifiers: Sequence[str], k: int = 5) -> dict:
    """k-anonymity over ``quasi_identifiers``: ``k`` is the size of the smallest equivalence class (nulls form their
    own value); ``records_below_k`` counts records in classes smaller than the target ``k``."""
    import polars as pl

    if k < 1:
        raise InvalidInputError(f"k must be at least 1; got {k}.")
    columns = _check_columns(frame, "quasi-identifier", quasi_identifiers)
    if not columns or frame.height == 0:
        return {"quasi_identifiers": columns, "k_target": k, "k": None, "classes": 0, "classes_below_k": 0,
                "records_below_k": 0, "fraction_below_k": 0.0}  # fmt: skip
    sizes = frame.group_by(columns).agg(pl.len().alias("size"))["size"]
    small = sizes.filter(sizes < k)
    return {"quasi_identifiers": columns, "k_target": k, "k": int(sizes.min()), "classes": sizes.len(),
            "classes_below_k": small.len(), "records_below_k": int(small.sum()),
            "fraction_below_k": round(float(small.sum()) / frame.height, 6)}  # fmt: skip


def deidentify_table(frame, pseudonymizer: Pseudonymizer, *, patient_column: str | None = None,
                     id_columns: Sequence[str] = (), date_columns: Sequence[str] | None = None,
                     drop_columns: Sequence[str] = (), age_columns: Sequence[str] | None = None,
                     zip_columns: Sequence[str] | None = None, quasi_identifiers: Sequence[str] = (), k: int = 5,
                     date_format: str | None = None) -> tuple:
    """De-identify a polars DataFrame; returns ``(frame, report)``.

    Args:
        frame: the records, one row each.
        pseudonymizer: holds the key (the same key gives the same pseudonyms and date offsets in every table).
        patient_column: the patient identifier; pseudonymised, and the key of each row's date offset.
        id_columns: other identifiers (admissions, orders...), each pseudonymised in its own namespace.
        date_columns: text columns of dates to shift; every date/datetime column is shifted too. Needs
            ``patient_column``.
        drop_columns: direct identifiers to remove (names, phone numbers, addresses...).
        age_columns: ages to top-code at 90+ (default: columns named age, anchor_age...).
        zip_columns: ZIP codes to cut to 3 digits (default: columns named zip, zip_code, postal_code...).
        quasi_identifiers: columns of the k-anonymity report, measured after generalisation.
        k: the k-anonymity target.
        date_format: strptime format of text dates (default: ISO 8601 recognised).
    """
    import polars as pl

    _check_columns(frame, "drop column", drop_columns)
    _check_columns(frame, "id column", id_columns)
    if patient_column is not None:
        _check_columns(frame, "patient column", [patient_column])
        if patient_column in drop_columns:
            raise InvalidInputError(f"The patient column {patient_column!r} is also a drop column; it is pseudonymised "
                                    "and keys the date shifts, so keep it out of drop_columns.")
    temporal = [c for c, t in frame.schema.items() if t in (pl.Date,) or isinstance(t, pl.Datetime)]
    dates = _check_columns(frame, "date column", list(dict.fromkeys([*(date_columns or ()), *temporal])))
    dates = [c for c in dates if c not in drop_columns]
    ages = _check_columns(frame, "age column", _auto(frame, AGE_NAMES) if age_columns is None else age_columns)
    zips = _check_columns(frame, "ZIP column", _auto(frame, ZIP_NAMES) if zip_columns is None else zip_columns)
    if dates and patient_column is None:
        raise InvalidInputError(f"Shifting the date column(s) {', '.join(map(repr, dates))} needs the patient column "
                                "(dates move by one offset per patient); pass patient_column.")
    report: dict = {"rows": frame.height, "dropped_columns": list(drop_columns)}
    frame = frame.drop(list(drop_columns))
    if dates:
        frame, report["dates"] = shift_dates(frame, pseudonymizer, patient_column, dates, date_format)
    report["ages_over_89"] = {}
    for column in (c for c in ages if c not in drop_columns):
        generalized = generalize_ages(frame[column])
        report["ages_over_89"][column] = int((generalized == AGE_TOP_CODE).sum())
        frame = frame.with_columns(generalized)
    report["zip_codes"] = {}
    for column in (c for c in zips if c not in drop_columns):
        generalized = generalize_zips(frame[column])
        report["zip_codes"][column] = {"generalized": int(generalized.is_not_null().sum()),
                                       "restricted_000": int((generalized == "000").sum())}  # fmt: skip
        frame = frame.with_columns(generalized)
    report["pseudonymized"] = {}
    namespaces = ([(patient_column, PATIENT_NAMESPACE)] if patient_column else []) + [(c, c) for c in id_columns]
    for column, namespace in namespaces:
        if column in drop_columns:
            continue
        values = frame[column].cast(pl.Utf8)
        mapping = {v: pseudonymizer.pseudonym(v, namespace=namespace) for v in values.drop_nulls().unique().to_list()}
        frame = frame.with_columns(values.replace_strict(mapping, default=None, return_dtype=pl.Utf8).alias(column))
        report["pseudonymized"][column] = {"values": int(values.is_not_null().sum()), "distinct": len(mapping)}
    handled = {*report["pseudonymized"], *dates, *ages, *zips}
    report["possible_identifiers_kept"] = [c for c in frame.columns if c not in handled and IDENTIFIER_HINTS.search(c)]
    report["k_anonymity"] = k_anonymity(frame, quasi_identifiers, k)
    return frame, report


def _read(path: Path, text_columns: Sequence[str]):
    pl = require("polars", "tabular")
    from medai.privacy.crypto import is_encrypted, open_input

    name = path.name[:-4] if path.name.endswith(".enc") else path.name
    source = io.BytesIO(open_input(path)) if is_encrypted(path) else path
    suffix = Path(name).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pl.read_parquet(source), suffix
    if suffix in (".csv", ".tsv", ".txt"):
        header = pl.read_csv(source, n_rows=0, separator="\t" if suffix == ".tsv" else ",").columns
        if isinstance(source, io.BytesIO):
            source.seek(0)
        overrides = {c: pl.Utf8 for c in header if c in text_columns or c.lower() in ZIP_NAMES}
        return pl.read_csv(source, separator="\t" if suffix == ".tsv" else ",", try_parse_dates=True,
                           infer_schema_length=10000, schema_overrides=overrides), suffix  # fmt: skip
    raise InvalidInputError(f"'{path.name}' is not a table medai de-identifies: expected .csv, .tsv or .parquet.")


def deidentify_table_file(input: str | os.PathLike, output: str | os.PathLike, *, key: bytes | str | None = None,
                          report: str | os.PathLike | None = None, **options) -> dict:
    """De-identify a CSV/TSV/Parquet file (or one encrypted with ``medai encrypt``) into ``output``; the options are
    those of :func:`deidentify_table`. Identifier, date and ZIP columns are read as text (leading zeros kept)."""
    require("polars", "tabular")
    source, destination = Path(input), Path(output)
    if not source.is_file():
        raise InvalidInputError(f"No table at {source}.")
    if destination.exists() and destination.resolve() == source.resolve():
        raise InvalidInputError("The output is the input; write the de-identified table to another file.")
    text = [*options.get("id_columns", ()), *filter(None, [options.get("patient_column")]),
            *(options.get("zip_columns") or ()), *(options.get("date_columns") or ())]
    frame, _ = _read(source, text)
    frame, summary = deidentify_table(frame, Pseudonymizer(key), **options)
    destination.parent.mkdir(parents=True, exist_ok=True)
    suffix = destination.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame.write_parquet(destination)
    elif suffix in (".csv", ".tsv", ".txt"):
        frame.write_csv(destination, separator="\t" if suffix == ".tsv" else ",")
    else:
        raise InvalidInputError(f"The output '{destination.name}' must end in .csv, .tsv or .parquet.")
    summary = {"input": source.name, "output": destination.name, **summary}
    if report is not None:
        Path(report).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
