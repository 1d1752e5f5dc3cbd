"""MIMIC-III ICU stays as hourly clinical time series with in-hospital mortality labels.

:func:`load_stays` reads a MIMIC-III folder (the full database or the 100-patient demo; plain ``.csv`` or
``.csv.gz``, upper- or lower-case names, e.g. ``CHARTEVENTS.csv.gz`` or ``CHARTEVENTS_reexported_from_ricu.csv.gz``)
and returns a :class:`~medai.data.sources.timeseries.RawSeries` in the layout of the PhysioNet 2012 loader:

- ITEMIDs of CHARTEVENTS, LABEVENTS and OUTPUTEVENTS map to the declared variables of
  ``medai/data/resources/mimic3_items.csv`` (itemid, table, variable, unit, conversion, label), named as in
  PhysioNet 2012 (HR, MAP, Temp, GCS, Creatinine, Urine, ...; plus SpO2), converted to the same units
  (Fahrenheit -> Celsius, lb/oz -> kg, inches -> cm, FiO2 percent -> fraction) and filtered by
  :data:`~medai.data.sources.timeseries.PHYSIOLOGICAL_RANGES` (rejections counted per variable);
- hourly bins from ICUSTAYS.INTIME over the first ``hours`` hours; label ADMISSIONS.HOSPITAL_EXPIRE_FLAG;
- static Age (from PATIENTS.DOB; ages over 89, shifted to about 300 in MIMIC, become 90 and are counted),
  Gender (F = 0, M = 1), Height and Weight (first hourly bin with a value), ICU type one-hot from FIRST_CAREUNIT
  (TSICU counts as SICU);
- groups: a keyed pseudonym of SUBJECT_ID (:func:`medai.data.sources.dicom.pseudonymize`); ids: ICUSTAY_ID.

Event tables are streamed (:mod:`medai.data.sources._mimic3_events`), so the 330-million-row CHARTEVENTS of the
full database runs in bounded memory. polars is imported lazily (``pip install 'medai[timeseries]'``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medai.data.sources import _mimic3_events as events
from medai.data.sources._physionet_parse import VARIABLES as PHYSIONET_VARIABLES
from medai.data.sources.dicom import pseudonymize
from medai.data.sources.timeseries import (
    AGGREGATES,
    ICU_TYPES,
    PHYSIOLOGICAL_RANGES,
    STATIC_NAMES,
    RawSeries,
)
from medai.errors import DataNotFoundError, InvalidInputError, check_choice, require

ITEMS_FILE = Path(__file__).resolve().parent.parent / "resources" / "mimic3_items.csv"
CONVERSIONS = {  # name -> (scale, offset, kind, GCS component bit)
    "": (1.0, 0.0, events.KIND_PLAIN, 0), "f_to_c": (5 / 9, -32 * 5 / 9, events.KIND_PLAIN, 0),
    "lb_to_kg": (0.45359237, 0.0, events.KIND_PLAIN, 0), "oz_to_kg": (0.028349523125, 0.0, events.KIND_PLAIN, 0),
    "in_to_cm": (2.54, 0.0, events.KIND_PLAIN, 0), "percent_to_fraction": (1.0, 0.0, events.KIND_PERCENT, 0),
    "gcs_eye": (1.0, 0.0, events.KIND_GCS, 1), "gcs_verbal": (1.0, 0.0, events.KIND_GCS, 2),
    "gcs_motor": (1.0, 0.0, events.KIND_GCS, 4),
}
GCS_COMPONENT_RANGE = (1.0, 6.0)
CARE_UNITS = {"CCU": "CCU", "CSRU": "CSRU", "MICU": "MICU", "SICU": "SICU", "TSICU": "SICU"}
AGE_CAP = 90.0


def read_item_map(path: str | os.PathLike | None = None) -> list[dict]:
    """The ITEMID -> variable map: rows of (itemid int, table, variable, unit, conversion, label).

    Args:
        path: a CSV with columns itemid, table, variable, unit, conversion, label; default the shipped
            ``mimic3_items.csv``.

    Raises:
        InvalidInputError: a row with an unknown table, conversion or variable (named, with the allowed ones).
    """
    path = ITEMS_FILE if path is None else Path(path)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    items = []
    for number, row in enumerate(rows, start=2):
        table, variable, conversion = row.get("table", ""), row.get("variable", ""), row.get("conversion") or ""
        where = f"'{path.name}' line {number}"
        check_choice(f"table ({where})", table, events.TABLES)
        check_choice(f"conversion ({where})", conversion, CONVERSIONS)
        check_choice(f"variable ({where})", variable, [name for name in PHYSIOLOGICAL_RANGES if name != "Age"])
        if not str(row.get("itemid", "")).isdigit():
            raise InvalidInputError(f"{where}: itemid must be a whole number; got {row.get('itemid')!r}.")
        items.append({**row, "itemid": int(row["itemid"]), "conversion": conversion})
    return items


def load_stays(folder: str | os.PathLike, hours: int = 48, aggregate: str = "mean", min_stay_hours: float = 0.0,
               stay_ids: Sequence[int] | None = None, items: str | os.PathLike | None = None) -> RawSeries:
    """Load MIMIC-III ICU stays as hourly series with in-hospital mortality labels.

    Args:
        folder: the folder holding ICUSTAYS, ADMISSIONS, PATIENTS and CHARTEVENTS (LABEVENTS and OUTPUTEVENTS
            are used when present).
        hours: number of hourly bins T from ICU admission (default 48).
        aggregate: per bin, the ``"mean"`` or the ``"last"`` observation.
        min_stay_hours: leave out stays shorter than this (counted as ``short_stay``); 0 keeps all.
        stay_ids: only these ICUSTAY_IDs (default all).
        items: an ITEMID map CSV replacing the shipped one (see :func:`read_item_map`).

    Returns:
        RawSeries: values (n, hours, V) with V the mapped variables except Height (PhysioNet 2012 order, then
        SpO2), static (n, 8) = :data:`STATIC_NAMES`, labels (n,) int64 (1 = died in hospital), ids = ICUSTAY_ID,
        groups = pseudonymised SUBJECT_ID.

    Raises:
        DataNotFoundError: a required table is missing.
        InvalidInputError: bad parameters, unreadable tables, or no stay left.
    """
    pl = require("polars", "timeseries")
    if isinstance(hours, bool) or not isinstance(hours, (int, np.integer)) or not 1 <= hours <= 1000:
        raise InvalidInputError(f"The 'hours' parameter must be an int in the range [1, 1000]; got {hours!r}.")
    check_choice("aggregate", aggregate, AGGREGATES)
    folder = Path(folder).expanduser()
    tables = {name: find_table(folder, name) for name in ("icustays", "admissions", "patients", *events.TABLES)}
    absent = [name.upper() for name in ("icustays", "admissions", "patients", "chartevents") if tables[name] is None]
    if absent:
        raise DataNotFoundError(f"MIMIC-III table(s) {absent} not found in '{folder}'; expected e.g. ICUSTAYS.csv, "
                                f"ICUSTAYS.csv.gz or icustays.csv.")
    report = {"source": "mimic3", "hours": hours, "aggregate": aggregate, "notes": [],
              "tables": {name: path.name for name, path in tables.items() if path is not None}}
    stays = _stays(tables, min_stay_hours, stay_ids, report)
    item_rows = read_item_map(items)
    variables = _variables(item_rows)
    cells = _event_cells(tables, stays, item_rows, variables, hours, report)
    values = _fill(cells, len(stays), hours, variables, aggregate)  # (n, T, V + Height)
    height = _first_observed(values[:, :, variables.index("Height")])
    weight = _first_observed(values[:, :, variables.index("Weight")])
    static = _static(stays, height, weight, report)
    keep = [j for j, name in enumerate(variables) if name != "Height"]
    labels = stays["hospital_expire_flag"].to_numpy().astype(np.int64)
    report["stays_loaded"] = len(stays)
    report["label_counts"] = {"survived": int((labels == 0).sum()), "died": int((labels == 1).sum())}
    return RawSeries(ids=stays["icustay_id"].cast(pl.String).to_numpy(), values=values[:, :, keep],
                     variables=np.array([variables[j] for j in keep]), static=static,
                     static_names=np.array(STATIC_NAMES), labels=labels,
                     groups=np.array([pseudonymize(str(s)) for s in stays["subject_id"].to_list()]),
                     hours=np.arange(hours), report=report)


def find_table(folder: Path, name: str) -> Path | None:
    """``NAME.csv``, ``NAME.csv.gz`` (any case), or ``NAME_<anything>.csv[.gz]`` in ``folder``; None when absent."""
    if not folder.is_dir():
        raise DataNotFoundError(f"No MIMIC-III folder at {str(folder)!r}.")
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith((".csv", ".csv.gz")))
    exact = [p for p in candidates if p.name.lower() in (f"{name}.csv", f"{name}.csv.gz")]
    loose = [p for p in candidates if p.name.lower().startswith(f"{name}_")]
    return (exact or loose or [None])[0]


# --------------------------------------------------------------------------------------------------- internals


def _scan(path: Path, columns: list[str]):
    pl = require("polars", "timeseries")
    frame = pl.scan_csv(path, infer_schema=False, with_column_names=lambda names: [n.lower() for n in names])
    try:
        return frame.select(columns).collect()
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as error:
        raise InvalidInputError(f"Could not read columns {columns} from '{path.name}' ({type(error).__name__}); "
                                f"expected the MIMIC-III table layout.") from None


def _stays(tables: dict, min_stay_hours: float, stay_ids, report: dict):
    """One row per usable stay: stay index, ids, intime, care unit, label, gender, dob (sorted by ICUSTAY_ID)."""
    pl = require("polars", "timeseries")
    when = {"strict": False, "format": events.TIME_FORMAT}
    first = {"keep": "first", "maintain_order": True}  # a repeated id: the first row wins
    icu = _scan(tables["icustays"], ["subject_id", "hadm_id", "icustay_id", "first_careunit", "intime", "outtime"])
    admissions = _scan(tables["admissions"], ["hadm_id", "hospital_expire_flag"])
    patients = _scan(tables["patients"], ["subject_id", "gender", "dob"])
    ids = [pl.col(c).cast(pl.Int64, strict=False) for c in ("subject_id", "hadm_id", "icustay_id")]
    stays = (icu.with_columns(*ids, pl.col("intime").str.to_datetime(**when), pl.col("outtime").str.to_datetime(**when))
             .join(admissions.with_columns(pl.col("hadm_id").cast(pl.Int64, strict=False)).unique("hadm_id", **first),
                   on="hadm_id", how="left")
             .join(patients.with_columns(pl.col("subject_id").cast(pl.Int64, strict=False),
                                         pl.col("dob").str.to_datetime(**when)).unique("subject_id", **first),
                   on="subject_id", how="left")
             .filter(pl.col("icustay_id").is_not_null()).unique("icustay_id", **first).sort("icustay_id"))
    report["stays_found"] = stays.height
    if stay_ids is not None:
        stays = stays.filter(pl.col("icustay_id").is_in([int(s) for s in stay_ids]))
        report["stays_requested"] = stays.height
    length = (pl.col("outtime") - pl.col("intime")).dt.total_seconds() / 3600
    reasons = (pl.when(pl.col("intime").is_null()).then(pl.lit("no_intime"))
               .when(~pl.col("hospital_expire_flag").is_in(["0", "1"]) | pl.col("hospital_expire_flag").is_null())
               .then(pl.lit("missing_outcome"))
               .when(pl.lit(min_stay_hours > 0) & (length.fill_null(0) < min_stay_hours)).then(pl.lit("short_stay"))
               .otherwise(pl.lit("")))
    stays = stays.with_columns(reasons.alias("reason"))
    skipped = stays.filter(pl.col("reason") != "")["reason"].value_counts()
    report["stays_skipped"] = dict(zip(skipped["reason"].to_list(), skipped["count"].to_list()))
    stays = stays.filter(pl.col("reason") == "").with_columns(pl.col("hospital_expire_flag").cast(pl.Int64))
    if stays.height == 0:
        raise InvalidInputError(f"No usable ICU stay: {report['stays_found']} found, skipped "
                                f"{report['stays_skipped']}; expected stays with an INTIME and an admission with "
                                f"HOSPITAL_EXPIRE_FLAG 0 or 1.")
    return stays.with_row_index("stay")


def _variables(item_rows: list[dict]) -> list[str]:
    """Mapped variables in PhysioNet 2012 order, then the others alphabetically (Height included, for static)."""
    mapped = {row["variable"] for row in item_rows} | {"Height", "Weight"}
    return [v for v in PHYSIONET_VARIABLES if v in mapped] + sorted(mapped - set(PHYSIONET_VARIABLES))


def _event_cells(tables: dict, stays, item_rows: list[dict], variables: list[str], hours: int, report: dict):
    pl = require("polars", "timeseries")
    parts, used = [], {}
    for table in events.TABLES:
        rows = [row for row in item_rows if row["table"] == table]
        if not rows:
            continue
        if tables[table] is None:
            report["notes"].append(f"no {table.upper()} table: its {len(rows)} mapped items are missing")
            continue
        part = events.aggregate_table(tables[table], table, stays, _items_frame(rows, variables), hours)
        used[table] = int(part["count"].sum())
        parts.append(part)
    if not parts:
        raise InvalidInputError("No event table holds a mapped item; expected CHARTEVENTS (and LABEVENTS, "
                                "OUTPUTEVENTS) rows for the ITEMIDs of the item map.")
    cells = events.combine_cells(parts)
    by_variable = cells.filter(pl.col("bin") >= 0).group_by("var").agg(pl.col("out_of_range").sum())
    out_of_range = dict(zip(by_variable["var"].to_list(), by_variable["out_of_range"].to_list()))
    report["events_used"] = used
    report["out_of_range"] = {name: int(out_of_range.get(j, 0)) for j, name in enumerate(variables)}
    report["events_without_value"] = int(cells["no_value"].sum())
    report["events_flagged_error"] = int(cells["flagged"].sum())
    report["events_unreadable_time"] = int(cells.filter(pl.col("bin") < 0)["rows"].sum())
    gcs = variables.index("GCS") if "GCS" in variables else -1
    cells, totals, incomplete = events.gcs_totals(cells, hours, gcs, *PHYSIOLOGICAL_RANGES["GCS"])
    valid = events.combine_cells([cells, totals.select(cells.columns).cast(cells.schema)]).filter(pl.col("bin") >= 0)
    report["gcs_incomplete"] = incomplete
    return valid


def _items_frame(rows: list[dict], variables: list[str]):
    pl = require("polars", "timeseries")
    columns = {"itemid": [], "var": [], "scale": [], "offset": [], "kind": [], "bit": [], "low": [], "high": []}
    for row in rows:
        scale, offset, kind, bit = CONVERSIONS[row["conversion"]]
        low, high = GCS_COMPONENT_RANGE if kind == events.KIND_GCS else PHYSIOLOGICAL_RANGES[row["variable"]]
        for key, value in zip(columns, (row["itemid"], variables.index(row["variable"]), scale, offset, kind, bit,
                                        float(low), float(high))):
            columns[key].append(value)
    return pl.DataFrame(columns, schema={"itemid": pl.Int64, "var": pl.Int32, "scale": pl.Float64,
                                         "offset": pl.Float64, "kind": pl.Int32, "bit": pl.Int32,
                                         "low": pl.Float64, "high": pl.Float64})


def _fill(cells, n: int, n_hours: int, variables: list[str], aggregate: str) -> np.ndarray:
    """Cells -> float32 (n, T, V), NaN where a bin has no in-range observation."""
    pl = require("polars", "timeseries")
    cells = cells.filter(pl.col("count") > 0)
    values = np.full((n, n_hours, len(variables)), np.nan, dtype=np.float32)
    result = cells["sum"] / cells["count"] if aggregate == "mean" else cells["last_value"]
    values[cells["stay"].to_numpy(), cells["bin"].to_numpy(), cells["var"].to_numpy()] = result.to_numpy()
    return values


def _first_observed(series: np.ndarray) -> np.ndarray:
    """(n, T) -> (n,): the first non-NaN bin value of each row, NaN when none."""
    observed = ~np.isnan(series)
    first = observed.argmax(axis=1)
    return np.where(observed.any(axis=1), series[np.arange(len(series)), first], np.nan)


def _static(stays, height: np.ndarray, weight: np.ndarray, report: dict) -> np.ndarray:
    """(n, 8) float32: Age, Gender, Height, Weight, ICU type one-hot (NaN when missing)."""
    seconds = (stays["intime"] - stays["dob"]).dt.total_seconds().to_numpy().astype(np.float64)
    age = seconds / (365.2425 * 86400)
    over = age > PHYSIOLOGICAL_RANGES["Age"][1]  # MIMIC shifts ages over 89 to about 300
    report["ages_over_89_set_to_90"] = int(over.sum())
    age = np.where(over, AGE_CAP, age)
    age[(age < 0)] = np.nan
    gender = np.array([{"F": 0.0, "M": 1.0}.get(g, np.nan) for g in stays["gender"].to_list()])
    units = [CARE_UNITS.get(str(u).strip().upper()) for u in stays["first_careunit"].to_list()]
    one_hot = np.array([[np.nan] * len(ICU_TYPES) if u is None else [float(u == t) for t in ICU_TYPES] for u in units])
    report["care_units_not_mapped"] = sum(u is None for u in units)
    columns = [age, gender, height, weight, *one_hot.reshape(len(units), len(ICU_TYPES)).T]
    return np.stack(columns, axis=1).astype(np.float32)
