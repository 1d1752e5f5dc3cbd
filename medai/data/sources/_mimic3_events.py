"""Streaming aggregation of MIMIC-III event tables into hourly cells (used by :mod:`.mimic3`).

Each table is filtered to the mapped ITEMIDs and joined to the wanted ICU stays before anything else, then reduced
to *partial* aggregates per (stay, hour bin, variable): sum, count, last value and time, and counts of rejected
rows. Partials of several pieces combine exactly (and are merged as they accumulate), so memory is bounded by the
number of cells, not by the number of table rows:

- a plain ``.csv`` is scanned lazily with polars (``scan_csv`` + ``collect(engine="streaming")``);
- a ``.csv.gz`` is decompressed as a stream and parsed in blocks of :data:`CHUNK_BYTES` (polars' own gzip
  reader holds the whole compressed file in memory, which grows with the table).

MetaVision GCS comes as three components charted at the same time; they are summed when all three (eye, verbal,
motor; repeats of one component at the same time are averaged) are present in range, else the set is counted in
``gcs_incomplete``.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

from medai.errors import InvalidInputError, require

CHUNK_BYTES = 8 * 2**20  # uncompressed bytes per gzip block
COMBINE_ROWS = 50_000  # merge partial cells once they hold this many rows (and twice the merged cells)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
KIND_PLAIN, KIND_PERCENT, KIND_GCS = 0, 1, 2
TABLES = {  # table -> (column joining to the stays, value column, error-flag column or None)
    "chartevents": ("icustay_id", "valuenum", "error"),
    "labevents": ("subject_id", "valuenum", None),
    "outputevents": ("icustay_id", "value", "iserror"),
}
CELL_KEYS = ("stay", "bin", "var", "moment", "bit")  # GCS components: their charttime (hours) and bit; else null, 0


def aggregate_table(path: Path, table: str, stays, items, n_hours: int):
    """Partial cells of one event table.

    Args:
        path: the table's ``.csv`` or ``.csv.gz`` file.
        table: ``"chartevents"``, ``"labevents"`` or ``"outputevents"``.
        stays: polars DataFrame (stay u32 index, icustay_id, subject_id, intime) of the wanted stays.
        items: polars DataFrame (itemid, var, scale, offset, kind, bit, low, high) of this table's items.
        n_hours: number of hourly bins T.

    Returns:
        polars DataFrame with one row per (stay, bin, var, moment, bit): sum, count, last_value, last_hours of the
        in-range values, and counts out_of_range, no_value, flagged, rows.
    """
    join, value, error = TABLES[table]
    wanted = [join, "itemid", "charttime", value] + ([error] if error else [])
    parts, rows, merged = [], 0, 0
    for raw in _pieces(path, wanted):
        parts.append(_cells(_events(raw, table, stays, items, n_hours), n_hours).collect(engine="streaming"))
        rows += parts[-1].height
        if len(parts) > 1 and rows > max(COMBINE_ROWS, 2 * merged):  # at most ~2x the cells, amortised merges
            parts = [combine_cells(parts)]
            rows = merged = parts[0].height
    return combine_cells(parts)


def combine_cells(parts: list):
    """Merge partial cells: sums and counts add up, the last value is the one with the latest time."""
    pl = require("polars", "timeseries")
    return pl.concat(parts).group_by(*CELL_KEYS).agg(
        pl.col("sum").sum(), pl.col("count").sum(), pl.col("last_value").sort_by("last_hours").last(),
        pl.col("last_hours").max(), pl.col("out_of_range").sum(), pl.col("no_value").sum(),
        pl.col("flagged").sum(), pl.col("rows").sum())


def gcs_totals(cells, n_hours: int, gcs_var: int, low: float, high: float):
    """Split off GCS component cells; complete eye + verbal + motor sets become GCS total cells.

    Returns:
        (cells without components, cells of the totals, number of incomplete component sets).
    """
    pl = require("polars", "timeseries")
    components = cells.filter(pl.col("moment").is_not_null())
    present = pl.col("count") > 0  # a component with an in-range value (repeats of it are averaged)
    sets = components.group_by("stay", "moment").agg(
        (pl.col("sum") / pl.col("count")).filter(present).sum().alias("value"),
        pl.col("bit").filter(present).sum().alias("bits"), present.sum().alias("n"))
    complete = (pl.col("n") == 3) & (pl.col("bits") == 7)  # eye, verbal and motor
    totals = sets.filter(complete).select(
        "stay", pl.col("moment").alias("hours"), pl.lit(gcs_var, dtype=pl.Int32).alias("var"), "value",
        pl.lit(False).alias("flagged"), pl.lit(KIND_PLAIN, dtype=pl.Int32).alias("kind"),
        pl.lit(0, dtype=pl.Int32).alias("bit"), pl.lit(low).alias("low"), pl.lit(high).alias("high"))
    total_cells = _cells(totals.lazy(), n_hours).collect()
    return cells.filter(pl.col("moment").is_null()), total_cells, int(sets.filter(~complete).height)


# --------------------------------------------------------------------------------------------------- internals


def _events(raw, table: str, stays, items, n_hours: int):
    """Raw text columns -> (stay, hours, var, value in declared units, flagged, kind, bit, low, high)."""
    pl = require("polars", "timeseries")
    join, value, error = TABLES[table]
    flagged = pl.col(error).cast(pl.Int64, strict=False).fill_null(0) == 1 if error else pl.lit(False)
    number = pl.col(value).cast(pl.Float64, strict=False)
    converted = number * pl.col("scale") + pl.col("offset")
    converted = pl.when((pl.col("kind") == KIND_PERCENT) & (converted > 1)).then(converted / 100).otherwise(converted)
    hours = (pl.col("charttime").str.to_datetime(TIME_FORMAT, strict=False) - pl.col("intime")).dt.total_seconds() / 3600
    return (raw.select(pl.col(join).cast(pl.Int64, strict=False), pl.col("itemid").cast(pl.Int64, strict=False),
                       "charttime", pl.col(value), flagged.alias("flagged"))
            .filter(pl.col("itemid").is_in(items["itemid"].to_list()))
            .join(stays.lazy().select("stay", join, "intime"), on=join, how="inner")
            .join(items.lazy(), on="itemid", how="inner")
            .with_columns(hours.alias("hours"), converted.alias("value"))
            .filter(pl.col("hours").is_null() | pl.col("hours").is_between(0, n_hours))
            .select("stay", "hours", "var", "value", "flagged", "kind", "bit", "low", "high"))


def _cells(events, n_hours: int):
    """Partial aggregates per CELL_KEYS; rows with an unreadable time go to bin -1 (counted only)."""
    pl = require("polars", "timeseries")
    hours = pl.col("hours")
    usable = ~pl.col("flagged") & pl.col("value").is_not_null() & hours.is_not_null()
    ok = usable & pl.col("value").is_between(pl.col("low"), pl.col("high"))
    binned = pl.when(hours.is_null()).then(-1).otherwise(pl.min_horizontal(hours.floor().cast(pl.Int32), n_hours - 1))
    moment = pl.when(pl.col("kind") == KIND_GCS).then(hours)
    return (events.with_columns(binned.cast(pl.Int32).alias("bin"), moment.alias("moment"), ok.alias("ok"),
                                usable.alias("usable"))
            .group_by(*CELL_KEYS).agg(
                pl.col("value").filter("ok").sum().alias("sum"), pl.col("ok").sum().alias("count"),
                pl.col("value").filter("ok").sort_by(hours.filter("ok")).last().alias("last_value"),
                hours.filter("ok").max().alias("last_hours"),
                (pl.col("usable") & ~pl.col("ok")).sum().alias("out_of_range"),
                (~pl.col("flagged") & pl.col("value").is_null()).sum().alias("no_value"),
                pl.col("flagged").sum().alias("flagged"), pl.len().alias("rows")))


def _pieces(path: Path, wanted: list[str]) -> Iterator:
    """LazyFrames of the ``wanted`` columns (lower-case names): one scan for a plain CSV, blocks for a gzip file."""
    pl = require("polars", "timeseries")
    header = _header(path)
    missing = [name for name in wanted if name not in header]
    if missing:
        raise InvalidInputError(f"'{path.name}' lacks the column(s) {missing}; expected the MIMIC-III columns "
                                f"{wanted} (any letter case).")
    if not path.name.lower().endswith(".gz"):
        yield pl.scan_csv(path, infer_schema=False, with_column_names=lambda names: [n.lower() for n in names],
                          truncate_ragged_lines=True).select(wanted)
        return
    columns = [header[name] for name in wanted]
    for offset, block in _gzip_blocks(path):
        try:
            frame = pl.read_csv(block, columns=columns, infer_schema=False, truncate_ragged_lines=True)
        except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as error:
            raise InvalidInputError(f"Could not parse '{path.name}' near uncompressed byte {offset} "
                                    f"({type(error).__name__}); expected comma-separated MIMIC-III rows.") from None
        yield frame.rename({header[name]: name for name in wanted}).lazy()


def _header(path: Path) -> dict[str, str]:
    """Lower-case column name -> the name as written in the file's first line."""
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as handle:
            line = handle.readline().decode("utf-8", "replace").strip().lstrip("\ufeff")
    except (OSError, EOFError) as error:
        raise InvalidInputError(f"Could not read '{path.name}' ({type(error).__name__}); expected a complete CSV or "
                                f"gzip CSV file.") from None
    return {name.strip().strip('"').lower(): name.strip().strip('"') for name in line.split(",")}


def _gzip_blocks(path: Path) -> Iterator[tuple[int, bytes]]:
    """(uncompressed offset, header + whole lines of about CHUNK_BYTES) of a gzip CSV file."""
    try:
        with gzip.open(path, "rb") as handle:
            header, offset, rest = handle.readline(), 0, b""
            while True:
                block = handle.read(CHUNK_BYTES)
                if not block:
                    break
                block = rest + block
                cut = block.rfind(b"\n") + 1
                if cut:
                    yield offset, header + block[:cut]
                    offset += cut
                rest = block[cut:]
            if rest.strip():
                yield offset, header + rest
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise InvalidInputError(f"'{path.name}' is not a complete gzip file ({type(error).__name__}); expected "
                                f"a .csv.gz as distributed by PhysioNet.") from None
