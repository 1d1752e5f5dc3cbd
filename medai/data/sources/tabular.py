"""Tables of clinical measurements (lab panels, vital signs) from CSV, TSV, Parquet and ARFF files.

:func:`read_frame` turns a file into raw text columns (missing-value markers become None); :func:`load_table`
types the columns (numeric or categorical, inferred or declared), applies the dataset's own missing-value
conventions, turns the target into integer labels and returns a :class:`Table` whose ``report`` says what was
read, converted and left out. Real datasets are listed in :data:`KNOWN_TABLES` and load by name
(``load_table("pima")``) from :func:`medai.settings.data_dir`.

Handling of bad input (documented, reported, never silent):

- missing cells: the markers in ``missing`` (default ``?``, empty, ``NA``, ``NaN``, ``nan``) and empty cells; a
  numeric ``nan`` also counts as missing. Counted per column in ``report["missing_per_column"]``;
- physiologically impossible zeros (``zero_is_missing``, e.g. Pima glucose 0): converted to missing and counted
  in ``report["impossible_zeros"]``;
- rows without a target, and rows whose features are all missing: dropped, counted in ``report["rows_dropped"]``
  (the latter's 1-based row numbers in ``report["rows_without_features"]``, for ``predict`` to report);
- text in a declared-numeric column, infinity, unknown columns, a one-class target: :class:`InvalidInputError`
  naming the column (and row), never a patient's numeric values;
- CSV rows with fewer fields than the header are padded with missing values (polars' behaviour).

Examples:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "labs.csv"
    >>> _ = path.write_text("glucose,sex,outcome\\n148,F,1\\n?,M,0\\n85,F,0\\n")
    >>> table = load_table(path, target="outcome")
    >>> table.numeric, table.categorical, table.label_names, table.report["missing_per_column"]["glucose"]
    (['glucose'], ['sex'], ('0', '1'), 1)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from medai import settings
from medai.errors import DataNotFoundError, InvalidInputError, did_you_mean, require

DEFAULT_MISSING = ("?", "", "NA", "NaN", "nan")
FORMATS = {".csv": "csv", ".data": "csv", ".txt": "csv", ".tsv": "tsv", ".tab": "tsv",
           ".parquet": "parquet", ".pq": "parquet", ".arff": "arff"}
ARFF_NUMERIC_TYPES = ("numeric", "real", "integer")
MAX_LISTED_ROWS = 1000  # the report lists at most this many row numbers of dropped rows


@dataclass
class Table:
    """Typed feature columns, integer labels and record ids of one table.

    Attributes:
        columns: feature name -> array of shape (n_rows,): float64 with NaN for missing (numeric columns) or
            object array of str with None for missing (categorical columns).
        numeric: names of the numeric feature columns, in file order.
        categorical: names of the categorical feature columns, in file order.
        target: name of the target column, or None for an unlabelled table.
        labels: int64 array of shape (n_rows,) with values in [0, len(label_names)), or None.
        label_names: display name of each class, index = label.
        ids: str array of shape (n_rows,): the id column, or ``row-<n>`` counting data rows from 1.
        sites: str array of shape (n_rows,) naming the hospital of each row, or None.
        report: JSON-ready account of the load (rows read and dropped, missing and converted cells, notes).
        classes: the raw target values in label order (e.g. ``("0", "1")``), to map evaluation files alike.
    """

    columns: dict[str, np.ndarray]
    numeric: list[str]
    categorical: list[str]
    target: str | None
    labels: np.ndarray | None
    label_names: tuple[str, ...]
    ids: np.ndarray
    sites: np.ndarray | None = None
    report: dict = field(default_factory=dict)
    classes: tuple[str, ...] = ()

    def __post_init__(self):
        n = len(self.ids)
        for name, values in [*self.columns.items(), ("labels", self.labels), ("sites", self.sites)]:
            if values is not None and len(values) != n:
                raise InvalidInputError(f"Table column '{name}' has {len(values)} rows; expected {n}, one per id.")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def feature_names(self) -> list[str]:
        """Numeric then categorical feature names."""
        return [*self.numeric, *self.categorical]

    def subset(self, indices) -> Table:
        """A new Table with the rows at ``indices`` (same columns, labels and report)."""
        indices = np.asarray(indices, dtype=np.int64)
        return replace(self, columns={name: values[indices] for name, values in self.columns.items()},
                       labels=None if self.labels is None else self.labels[indices], ids=self.ids[indices],
                       sites=None if self.sites is None else self.sites[indices],
                       report={**self.report, "subset_rows": len(indices)})


@dataclass(frozen=True)
class TableSpec:
    """How to read one table: the role of each column and the dataset's own conventions.

    Attributes:
        target: target column (None: unlabelled).
        id_column / site_column: columns holding record ids / hospital names (not features).
        categorical / numeric: columns declared categorical / numeric (others are inferred).
        exclude: columns left out of the features.
        zero_is_missing: numeric columns where 0 is physiologically impossible and means missing.
        classes: raw target values in label order (default: sorted values found, numbers numerically).
        label_names: display names of ``classes`` (default: the raw values).
        require_target: False lets the target column be absent (prediction files).
        description, files, column_names, sites, derive, reader: catalog entries only: what the set is, its
            files under the data folder, names for headerless files, one site name per file, a function that
            adds derived columns, and a function that returns raw columns instead of reading files.
    """

    target: str | None = None
    id_column: str | None = None
    site_column: str | None = None
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    zero_is_missing: tuple[str, ...] = ()
    classes: tuple[str, ...] | None = None
    label_names: tuple[str, ...] | None = None
    require_target: bool = True
    description: str = ""
    files: tuple[str, ...] = ()
    column_names: tuple[str, ...] | None = None
    sites: tuple[str, ...] = ()
    derive: Callable[[dict], dict] | None = None
    reader: Callable[[], dict] | None = None


@dataclass
class _Frame:
    """Raw text columns with what the file itself declared."""

    columns: dict[str, np.ndarray]
    fmt: str
    declared: dict[str, str] = field(default_factory=dict)  # ARFF: name -> "numeric" | "categorical"
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- reading files


def read_frame(path: str | os.PathLike, fmt: str | None = None, column_names: Sequence[str] | None = None,
               missing: Sequence[str] = DEFAULT_MISSING) -> dict[str, np.ndarray]:
    """Read a CSV, TSV, Parquet or ARFF file as raw text columns.

    Args:
        path: the file.
        fmt: ``"csv"``, ``"tsv"``, ``"parquet"`` or ``"arff"``; default from the suffix (``.data``/``.txt`` = CSV).
        column_names: names for a headerless file (or replacing the header's names), one per column.
        missing: cell texts (after stripping whitespace) that mean missing; empty cells always do.

    Returns:
        Column name -> object array of shape (n_rows,) holding stripped str, or None where missing. A CSV whose
        first row is all numbers is read as headerless with columns ``column_1``, ``column_2``, ...

    Raises:
        DataNotFoundError: no file at ``path``.
        InvalidInputError: unknown format, unreadable file, duplicate or miscounted column names.
    """
    return _read(Path(path).expanduser(), fmt, column_names, missing).columns


def _read(path: Path, fmt: str | None, column_names, missing) -> _Frame:
    if not path.is_file():
        raise DataNotFoundError(f"No table file at {str(path)!r}.")
    if fmt is None:
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise InvalidInputError(f"Cannot tell the format of '{path.name}' from its suffix; pass fmt= one of "
                                    f"'csv', 'tsv', 'parquet', 'arff' (suffixes: {', '.join(FORMATS)}).")
    elif fmt not in ("csv", "tsv", "parquet", "arff"):
        raise InvalidInputError(f"The 'fmt' parameter must be one of 'csv', 'tsv', 'parquet', 'arff'; got "
                                f"{fmt!r}.{did_you_mean(str(fmt), ('csv', 'tsv', 'parquet', 'arff'))}")
    markers = set(missing) | {""}
    if fmt == "arff":
        frame = _read_arff(path)
    elif fmt == "parquet":
        frame = _Frame(_read_parquet(path), fmt)
    else:
        frame = _Frame(_read_delimited(path, "\t" if fmt == "tsv" else ",", markers), fmt)
    if column_names is not None:
        renamed = _rename(frame.columns, column_names, path)
        frame.declared = {new: frame.declared[old] for old, new in zip(frame.columns, renamed) if old in frame.declared}
        frame.columns = renamed
    frame.columns = {name: _clean(values, markers) for name, values in frame.columns.items()}
    return frame


def _read_delimited(path: Path, separator: str, markers: set) -> dict[str, np.ndarray]:
    pl = require("polars", "tabular")
    try:
        frame = pl.read_csv(path, has_header=False, infer_schema=False, separator=separator,
                            encoding="utf8-lossy", raise_if_empty=False)
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as error:
        # polars' message may quote a line of the file, so it is not passed on
        raise InvalidInputError(f"Could not read '{path.name}' as a delimited file ({type(error).__name__}); "
                                f"expected one record per line, fields separated by {separator!r}, and no row "
                                f"with more fields than the first.") from None
    raw = [np.array(frame.get_column(name).to_list(), dtype=object) for name in frame.columns]
    if not raw or not len(raw[0]):
        return {}
    first = [None if v is None else v.strip() for v in (values[0] for values in raw)]
    headerless = (any(v is not None and v not in markers and _is_number(v) for v in first)
                  and all(v is None or v in markers or _is_number(v) for v in first))
    if headerless:
        return {f"column_{i + 1}": values for i, values in enumerate(raw)}
    names = [(v or "").lstrip("\ufeff").strip() or f"column_{i + 1}" for i, v in enumerate(first)]
    _check_unique(names, path)
    return {name: values[1:] for name, values in zip(names, raw)}


def _read_parquet(path: Path) -> dict[str, np.ndarray]:
    pl = require("polars", "tabular")
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as error:
        raise InvalidInputError(f"Could not read '{path.name}' as Parquet ({type(error).__name__}).") from None
    columns = {}
    for name in frame.columns:
        series = frame.get_column(name)
        try:
            columns[name] = np.array(series.cast(pl.String).to_list(), dtype=object)
        except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
            raise InvalidInputError(f"Column '{name}' of '{path.name}' has type {series.dtype}; expected numbers "
                                    f"or text in every table column.") from None
    return columns


def _read_arff(path: Path) -> _Frame:
    """Lenient ARFF: ``%`` comments, quoted names, nominal ``{a,b}`` types, stray spaces/tabs, trailing commas."""
    text = path.read_text(encoding="utf-8", errors="replace").lstrip("\ufeff")
    names, declared, rows, notes, in_data = [], {}, [], [], False
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("%"):
            continue
        if in_data:
            rows.append(_arff_row(line, number, len(names), path, notes))
            continue
        keyword = line.split(None, 1)[0].lower()
        if keyword.startswith("@attribute"):
            name, kind = _arff_attribute(line[len("@attribute"):].strip(), number, path)
            names.append(name)
            declared[name] = kind
        elif keyword == "@data":
            in_data = True
        elif keyword != "@relation":
            raise InvalidInputError(f"'{path.name}' is not an ARFF file: line {number} should be a comment, "
                                    f"@relation, @attribute or @data, as every line before the data must be.")
    if not names or not in_data:
        raise InvalidInputError(f"'{path.name}' is not an ARFF file: it needs @attribute lines and a @data line.")
    _check_unique(names, path)
    trimmed = sum(1 for note in notes if note == "trimmed")
    notes = [f"{trimmed} ARFF row(s) had empty trailing fields, removed"] if trimmed else []
    table = np.array(rows, dtype=object).reshape(len(rows), len(names))  # (n_rows, n_attributes)
    return _Frame({name: table[:, i].copy() for i, name in enumerate(names)}, "arff", declared, notes)


def _arff_attribute(rest: str, number: int, path: Path) -> tuple[str, str]:
    """``'name' type`` or ``name {a,b}`` -> (name, "numeric" | "categorical")."""
    if rest[:1] in ("'", '"'):
        end = rest.find(rest[0], 1)
        if end < 0:
            raise InvalidInputError(f"'{path.name}' line {number}: attribute name has no closing quote.")
        name, kind = rest[1:end], rest[end + 1:].strip()
    else:
        cut = min([i for i in (rest.find("{"), rest.find(" "), rest.find("\t")) if i >= 0], default=len(rest))
        name, kind = rest[:cut], rest[cut:].strip()
    lowered = kind.lower()
    if not name or not kind:
        raise InvalidInputError(f"'{path.name}' line {number}: expected '@attribute <name> <type>'.")
    if kind.startswith("{") or lowered.startswith(("string", "date")):
        return name, "categorical"
    if lowered.split()[0] in ARFF_NUMERIC_TYPES:
        return name, "numeric"
    raise InvalidInputError(f"'{path.name}' line {number}: attribute '{name}' has type {kind.split()[0]!r}; "
                            f"supported: numeric, real, integer, string, date and nominal {{a,b,...}}.")


def _arff_row(line: str, number: int, n_attributes: int, path: Path, notes: list) -> list[str]:
    if line.startswith("{"):
        raise InvalidInputError(f"'{path.name}' line {number}: sparse ARFF rows are not supported.")
    values = _split_quoted(line) if ("'" in line or '"' in line) else line.split(",")
    while len(values) > n_attributes and not values[-1].strip():
        values.pop()
        notes.append("trimmed")
    if len(values) != n_attributes:
        raise InvalidInputError(f"'{path.name}' line {number} has {len(values)} values; the header declares "
                                f"{n_attributes} attributes.")
    return values


def _split_quoted(line: str) -> list[str]:
    """Split one ARFF data line at commas outside single or double quotes (quotes removed)."""
    values, current, quote, escaped = [], [], None, False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
        elif quote and char == "\\":
            escaped = True
        elif quote and char == quote:
            quote = None
        elif quote:
            current.append(char)
        elif char in "'\"" and not "".join(current).strip():
            quote, current = char, []
        elif char == ",":
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    return [*values, "".join(current)]


def _rename(columns: dict, column_names, path: Path) -> dict:
    names = [str(name) for name in column_names]
    if len(names) != len(columns):
        raise InvalidInputError(f"'{path.name}' has {len(columns)} columns but column_names gives {len(names)} "
                                f"names; expected one name per column.")
    _check_unique(names, path)
    return dict(zip(names, columns.values()))


def _check_unique(names: list[str], path: Path) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidInputError(f"'{path.name}' names column(s) {repeated} more than once; expected unique names.")


def _clean(values: np.ndarray, markers: set) -> np.ndarray:
    """Strip whitespace (tabs included); missing markers and empty cells -> None."""
    stripped = [None if v is None else str(v).strip() for v in values]
    return np.array([None if v is None or v in markers else v for v in stripped], dtype=object)


def write_frame(columns: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Write columns (arrays of equal length; None/NaN = missing) to a CSV, TSV or Parquet file.

    Examples:
        >>> import pathlib, tempfile
        >>> path = write_frame({"code_1": np.array([0.5, 1.5])}, pathlib.Path(tempfile.mkdtemp()) / "c.csv")
        >>> path.read_text().splitlines()
        ['code_1', '0.5', '1.5']
    """
    pl = require("polars", "tabular")
    path = Path(path).expanduser()
    fmt = FORMATS.get(path.suffix.lower())
    if fmt not in ("csv", "tsv", "parquet"):
        raise InvalidInputError(f"write_frame writes .csv, .tsv or .parquet files; got '{path.name}'.")
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidInputError(f"Columns differ in length {lengths}; expected one value per row in each.")
    frame = pl.DataFrame([pl.Series(name, np.asarray(values).tolist()) for name, values in columns.items()])
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.write_parquet(path)
    else:
        frame.write_csv(path, separator="\t" if fmt == "tsv" else ",")
    return path


# ------------------------------------------------------------------------------------------------ typing a table


def load_table(source: str | os.PathLike, target: str | None = None, *, id_column: str | None = None,
               site_column: str | None = None, categorical: Sequence[str] | None = None,
               numeric: Sequence[str] | None = None, require_target: bool = True, exclude: Sequence[str] = (),
               zero_is_missing: Sequence[str] = (), classes: Sequence[str] | None = None,
               missing: Sequence[str] = DEFAULT_MISSING, fmt: str | None = None) -> Table:
    """Load a table file, or a known dataset by name, into a typed :class:`Table`.

    Args:
        source: a CSV/TSV/Parquet/ARFF file, or a name in :data:`KNOWN_TABLES` (e.g. ``"pima"``, ``"heart"``).
        target: the target column; optional for known tables (their default target).
        id_column: column of record ids (default: ``row-<n>``, data rows counted from 1).
        site_column: column naming the hospital of each row (multi-site data).
        categorical: columns to treat as categories even when their values are numbers.
        numeric: columns that must hold numbers: text in them raises an error naming the column and row.
            Other columns are numeric when every non-missing value is a number, categorical otherwise.
        require_target: False lets the target column be absent (files to predict on; ``labels`` is None).
        exclude: columns to leave out of the features (e.g. free text, names).
        zero_is_missing: numeric columns where 0 is physiologically impossible and means missing.
        classes: raw target values in label order, e.g. the training table's ``classes``, so that an evaluation
            file maps labels alike (it may then hold a single class; other values raise an error).
        missing: cell texts that mean missing (empty cells always do).
        fmt: file format when the suffix does not tell (``"csv"``, ``"tsv"``, ``"parquet"``, ``"arff"``).

    Returns:
        A Table; ``table.report`` lists rows dropped (missing target, all features missing), missing cells per
        column, impossible zeros converted, label counts and notes.

    Raises:
        DataNotFoundError: no such file, or a known table whose files are not under the data folder.
        InvalidInputError: unknown columns (with the nearest name and the list of columns), text in a numeric
            column, infinite values, a target with fewer than two classes, no rows left.

    Examples:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "visits.csv"
        >>> _ = path.write_text("visit,hospital,crp,sex,result\\nv1,A,12,F,pos\\nv2,B,?,M,neg\\nv3,B,7,F,\\n")
        >>> table = load_table(path, target="result", id_column="visit", site_column="hospital")
        >>> table.ids.tolist(), table.sites.tolist(), table.labels.tolist(), table.report["rows_dropped"]
        (['v1', 'v2'], ['A', 'B'], [1, 0], {'missing target': 1, 'all features missing': 0})
    """
    user = TableSpec(target=target, id_column=id_column, site_column=site_column,
                     categorical=_names(categorical), numeric=_names(numeric), exclude=_names(exclude),
                     zero_is_missing=_names(zero_is_missing), require_target=require_target,
                     classes=None if classes is None else _names(classes))
    if isinstance(source, str) and source in KNOWN_TABLES:
        spec = _merge(KNOWN_TABLES[source], user)
        return _build_table(_read_known(source, spec, missing), spec, source)
    path = Path(source).expanduser()
    if not path.exists() and isinstance(source, str) and not path.suffix and len(path.parts) == 1:
        raise DataNotFoundError(f"No file {source!r} and no known table of that name; known tables: "
                                f"{', '.join(KNOWN_TABLES)}.{did_you_mean(source, KNOWN_TABLES)}")
    return _build_table(_read(path, fmt, None, missing), user, path.name)


def as_categories(values) -> np.ndarray:
    """A column as categories: object array of str, None for missing, numbers written alike (``1.0`` -> ``"1"``).

    Numbers are rewritten only when every value is a number, so ``"1.0"`` in one hospital's file and ``"1"`` in
    another's are the same category, while text codes are kept as written.
    """
    values = np.asarray(values)
    if values.dtype.kind in "fiub":
        floats = values.astype(np.float64)
        return np.array([None if np.isnan(v) else _number_text(v) for v in floats], dtype=object)
    values = np.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values],
                      dtype=object)
    numbers, text = _to_float(values)
    if text.any() or np.isinf(numbers).any():
        return values
    return np.array([None if np.isnan(x) else _number_text(x) for x in numbers], dtype=object)


def _names(columns) -> tuple[str, ...]:
    if columns is None:
        return ()
    if isinstance(columns, str):
        return (columns,)
    return tuple(str(name) for name in columns)


def _merge(known: TableSpec, user: TableSpec) -> TableSpec:
    """A catalog spec with the caller's choices on top (the caller's declarations win)."""
    target = user.target or known.target
    same_target = target == known.target
    classes = user.classes or (known.classes if same_target else None)
    return replace(
        known, target=target, id_column=user.id_column or known.id_column,
        site_column=user.site_column or known.site_column,
        categorical=tuple(c for c in (*known.categorical, *user.categorical) if c not in user.numeric and c != target),
        numeric=tuple(c for c in (*known.numeric, *user.numeric) if c not in user.categorical and c != target),
        exclude=tuple(c for c in (*known.exclude, *user.exclude, *(() if same_target else (known.target,)))
                      if c != target),
        zero_is_missing=(*known.zero_is_missing, *user.zero_is_missing), classes=classes,
        label_names=known.label_names if same_target and classes == known.classes else None,
        require_target=user.require_target)


def _build_table(frame: _Frame, spec: TableSpec, source: str) -> Table:
    columns = frame.columns
    n_rows = len(next(iter(columns.values()))) if columns else 0
    if n_rows == 0:
        raise InvalidInputError(f"'{source}' has no data rows.")
    target = _check_roles(spec, list(columns), source)
    roles = {target, spec.id_column, spec.site_column} - {None}
    features = [name for name in columns if name not in roles and name not in spec.exclude]
    if not features:
        raise InvalidInputError(f"'{source}' has no feature column besides {sorted(roles)}; expected at least one.")
    typed, numeric, categorical, notes = _type_columns({name: columns[name] for name in features}, spec,
                                                       frame.declared, source)
    report = {"source": source, "format": frame.fmt, "rows_read": n_rows, "rows_kept": 0,
              "rows_dropped": {"missing target": 0, "all features missing": 0}, "missing_per_column": {},
              "impossible_zeros": _convert_zeros(typed, spec, source), "label_counts": {},
              "numeric": numeric, "categorical": categorical, "notes": [*frame.notes, *notes]}
    keep = np.ones(n_rows, dtype=bool)
    target_values = None if target is None else as_categories(columns[target])
    if target_values is not None:
        keep = np.array([value is not None for value in target_values], dtype=bool)
        report["rows_dropped"]["missing target"] = int((~keep).sum())
    empty = np.all([_is_missing(typed[name]) for name in features], axis=0)  # (n_rows,)
    report["rows_dropped"]["all features missing"] = int((keep & empty).sum())
    if report["rows_dropped"]["all features missing"]:  # row numbers (never ids: they may identify patients)
        report["rows_without_features"] = (np.flatnonzero(keep & empty)[:MAX_LISTED_ROWS] + 1).tolist()
    rows = np.flatnonzero(keep & ~empty)
    if not len(rows):
        raise InvalidInputError(f"No row of '{source}' is left after dropping rows without a target or without "
                                f"any feature value ({report['rows_dropped']}).")
    typed = {name: values[rows] for name, values in typed.items()}
    labels, classes, label_names = None, (), ()
    if target_values is not None:
        labels, classes, label_names = _labels(target_values[rows], spec, target, source, report)
    report["rows_kept"] = len(rows)
    report["missing_per_column"] = {name: int(_is_missing(typed[name]).sum()) for name in features}
    return Table(columns=typed, numeric=numeric, categorical=categorical, target=target, labels=labels,
                 label_names=label_names, ids=_ids(columns, spec, rows, source, report),
                 sites=_sites(columns, spec, rows, report), report=report, classes=classes)


def _check_roles(spec: TableSpec, names: list[str], source: str) -> str | None:
    """Check every named column exists (or say which do, and the nearest); return the target if present."""
    if spec.target is None and spec.require_target:
        raise InvalidInputError(f"The 'target' parameter is needed to load '{source}' for training: name one of "
                                f"its columns ({', '.join(names)}), or pass require_target=False.")
    for parameter in ("target", "id_column", "site_column"):
        column = getattr(spec, parameter)
        if column is not None and column not in names and (parameter != "target" or spec.require_target):
            raise InvalidInputError(f"The '{parameter}' parameter names column '{column}', which '{source}' does "
                                    f"not have.{did_you_mean(column, names)} Columns: {', '.join(names)}.")
    for parameter in ("categorical", "numeric", "exclude", "zero_is_missing"):
        unknown = [column for column in getattr(spec, parameter) if column not in names]
        if unknown:
            hints = "".join(did_you_mean(column, names) for column in unknown)
            raise InvalidInputError(f"The '{parameter}' parameter names column(s) {unknown} that '{source}' does "
                                    f"not have.{hints} Columns: {', '.join(names)}.")
    roles = {spec.target, spec.id_column, spec.site_column} - {None}
    both = sorted(set(spec.categorical) & set(spec.numeric)) or sorted(roles & {*spec.categorical, *spec.numeric})
    if both:
        raise InvalidInputError(f"Column(s) {both} are declared twice (numeric and categorical, or feature and "
                                f"target/id/site); expected one role per column.")
    return spec.target if spec.target in names else None


def _type_columns(raw: dict, spec: TableSpec, declared: dict, source: str):
    """Numeric columns -> float64 (NaN = missing); categorical -> str objects. Returns (typed, numeric, cat, notes)."""
    typed, numeric, categorical, notes = {}, [], [], []
    for name, values in raw.items():
        wanted = ("categorical" if name in spec.categorical else "numeric" if name in spec.numeric
                  else declared.get(name))
        numbers, text = _to_float(values)
        if wanted == "categorical" or (wanted is None and text.any()):
            typed[name] = as_categories(values)
            categorical.append(name)
            notes += _categorical_notes(name, typed[name], text)
            continue
        if text.any():
            first = int(np.flatnonzero(text)[0])
            raise InvalidInputError(
                f"Column '{name}' of '{source}' is declared numeric, but data row {first + 1} holds text"
                f"{_safe_token(values[first])} where a number was expected ({int(text.sum())} row(s) in all). "
                f"Add the marker to missing=, or declare the column categorical.")
        infinite = np.isinf(numbers)
        if infinite.any():
            raise InvalidInputError(
                f"Column '{name}' of '{source}' holds {int(infinite.sum())} infinite value(s) (first at data row "
                f"{int(np.flatnonzero(infinite)[0]) + 1}); expected finite numbers. Write missing values as '?' "
                f"or leave the cell empty.")
        if np.isnan(numbers).all():
            notes.append(f"column '{name}' has no value at all")
        typed[name] = numbers
        numeric.append(name)
    return typed, numeric, categorical, notes


def _categorical_notes(name: str, values: np.ndarray, text: np.ndarray) -> list[str]:
    present = int(sum(value is not None for value in values))
    notes = []
    if text.any() and int(text.sum()) <= 0.1 * present:
        notes.append(f"column '{name}' read as categorical because {int(text.sum())} of {present} values are not "
                     f"numbers (first at data row {int(np.flatnonzero(text)[0]) + 1}); declare it numeric= to "
                     f"have them reported, or add the marker to missing=")
    distinct = len({value for value in values if value is not None})
    if distinct > 20 and distinct > 0.5 * present:
        notes.append(f"column '{name}' has {distinct} distinct values in {present} rows; if it identifies "
                     f"records, pass it as id_column= or exclude=")
    return notes


def _convert_zeros(typed: dict, spec: TableSpec, source: str) -> dict[str, int]:
    converted = {}
    for name in spec.zero_is_missing:
        values = typed.get(name)
        if values is None or values.dtype != np.float64:
            raise InvalidInputError(f"The 'zero_is_missing' parameter names '{name}', which is not a numeric "
                                    f"feature column of '{source}'.")
        zeros = values == 0.0
        values[zeros] = np.nan
        converted[name] = int(zeros.sum())
    return converted


def _labels(values: np.ndarray, spec: TableSpec, target: str, source: str, report: dict):
    """Target values -> (int64 labels, classes, label names); classes sorted (numbers numerically)."""
    found = sorted(set(values), key=_class_order)
    if spec.classes is None:
        if len(found) < 2:
            raise InvalidInputError(f"The target column '{target}' of '{source}' has {len(found)} class {found} "
                                    f"once rows without a target are dropped; classification needs at least 2.")
        classes = tuple(found)
    else:
        classes = tuple(as_categories(np.array(spec.classes, dtype=object)))
        unknown = [value for value in found if value not in classes]
        if unknown:
            raise InvalidInputError(f"The target column '{target}' of '{source}' holds {len(unknown)} value(s) "
                                    f"outside the expected classes {list(classes)}, e.g. {unknown[:3]}.")
    index = {name: i for i, name in enumerate(classes)}
    labels = np.array([index[value] for value in values], dtype=np.int64)  # (n_rows,)
    names = tuple(spec.label_names) if spec.label_names else classes
    report["label_counts"] = {name: int((labels == i).sum()) for i, name in enumerate(names)}
    if len(classes) > 20:
        report["notes"].append(f"the target '{target}' has {len(classes)} classes; is it a measurement?")
    return labels, classes, names


def _ids(columns: dict, spec: TableSpec, rows: np.ndarray, source: str, report: dict) -> np.ndarray:
    if spec.id_column is None:
        return np.array([f"row-{i + 1}" for i in rows], dtype=str)
    values = columns[spec.id_column][rows]
    absent = sum(value is None for value in values)
    if absent:
        raise InvalidInputError(f"The id column '{spec.id_column}' of '{source}' is empty in {absent} row(s); "
                                f"every row needs an id.")
    repeats = len(values) - len(set(values))
    if repeats:
        report["notes"].append(f"{repeats} row(s) repeat an id already used in column '{spec.id_column}'")
    return values.astype(str)


def _sites(columns: dict, spec: TableSpec, rows: np.ndarray, report: dict) -> np.ndarray | None:
    if spec.site_column is None:
        return None
    values = columns[spec.site_column][rows]
    absent = sum(value is None for value in values)
    if absent:
        report["notes"].append(f"{absent} row(s) have no site in column '{spec.site_column}'; site set to 'unknown'")
    sites = np.array(["unknown" if value is None else value for value in values], dtype=str)
    report["site_counts"] = {site: int((sites == site).sum()) for site in dict.fromkeys(sites.tolist())}
    return sites


def _to_float(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object array of str/None -> (float64 with NaN for missing, bool mask of cells that are not numbers)."""
    present = np.array([value is not None for value in values], dtype=bool)
    numbers, text = np.full(len(values), np.nan), np.zeros(len(values), dtype=bool)
    try:
        numbers[present] = values[present].astype(np.float64)
        return numbers, text
    except (ValueError, TypeError):
        pass
    for i in np.flatnonzero(present):
        try:
            numbers[i] = float(values[i])
        except (ValueError, TypeError):
            text[i] = True
    return numbers, text


def _is_missing(values: np.ndarray) -> np.ndarray:
    if values.dtype == np.float64:
        return np.isnan(values)
    return np.array([value is None for value in values], dtype=bool)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def _class_order(name: str) -> tuple:
    """Sort key: numeric class names numerically and first, others alphabetically."""
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, name.lower(), name)


def _safe_token(value) -> str:
    """Quote a short text token (e.g. an unknown missing marker); never one holding digits (a measurement)."""
    text = str(value)
    return f" ('{text}')" if len(text) <= 12 and not any(char.isdigit() for char in text) else ""


# ------------------------------------------------------------------------------------------------ known tables


def _read_known(name: str, spec: TableSpec, missing: Sequence[str]) -> _Frame:
    """Raw columns of a catalog table: its files under the data folder (or its reader), then derived columns."""
    if spec.reader is not None:
        frame = _Frame({column: _clean(values, set(missing) | {""}) for column, values in spec.reader().items()},
                       "built-in")
    else:
        root = settings.data_dir()
        absent = [file for file in spec.files if root is None or not (root / file).is_file()]
        if absent:
            where = f"'{root}'" if root is not None else "no data folder (none found)"
            raise DataNotFoundError(f"The '{name}' table needs {absent} under the data folder; looked in {where}. "
                                    f"Set MEDAI_DATA_DIR to the folder that holds them.")
        parts = [_read(root / file, None, spec.column_names, missing) for file in spec.files]
        frame = parts[0]
        if len(parts) > 1:
            frame = _Frame({column: np.concatenate([part.columns[column] for part in parts])
                            for column in frame.columns}, frame.fmt, frame.declared,
                           [note for part in parts for note in part.notes])
        if spec.sites:
            counts = [len(next(iter(part.columns.values()))) for part in parts]
            frame.columns["site"] = np.array([site for site, n in zip(spec.sites, counts) for _ in range(n)],
                                             dtype=object)
            frame.columns["record_id"] = np.array([f"{site}-row-{i + 1}" for site, n in zip(spec.sites, counts)
                                                   for i in range(n)], dtype=object)
    if spec.derive is not None:
        frame.columns = spec.derive(frame.columns)
    return frame


def _heart_disease(columns: dict) -> dict:
    """Add the binary target ``disease``: "1" when ``num`` > 0 (> 50% narrowing), "0" when ``num`` = 0."""
    numbers, text = _to_float(columns["num"])
    if text.any():
        raise InvalidInputError(f"Column 'num' of the heart data holds text in {int(text.sum())} row(s); "
                                f"expected the diagnosis 0-4.")
    disease = [None if np.isnan(value) else str(int(value > 0)) for value in numbers]
    return {**columns, "disease": np.array(disease, dtype=object)}


def _breast_cancer_columns() -> dict:
    """scikit-learn's Wisconsin diagnostic breast cancer set as raw text columns (``diagnosis`` 0 = malignant)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    columns = {str(name): np.array([repr(float(v)) for v in bunch.data[:, i]], dtype=object)
               for i, name in enumerate(bunch.feature_names)}
    columns["diagnosis"] = np.array([str(int(v)) for v in bunch.target], dtype=object)
    return columns


PIMA_COLUMNS = ("Pregnancies", "Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI",
                "DiabetesPedigreeFunction", "Age", "Outcome")
HEART_COLUMNS = ("age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak", "slope",
                 "ca", "thal", "num")
HEART_SITES = ("cleveland", "hungarian", "switzerland", "va")
ILPD_COLUMNS = ("Age", "Gender", "total_bilirubin", "direct_bilirubin", "Alphos_alkaline_phosphotase", "Sgpt",
                "Sgot", "TP", "ALB", "A/G ratio", "Label")


def _heart(sites: tuple[str, ...]) -> TableSpec:
    return TableSpec(
        description=f"UCI heart disease, processed 14-attribute files ({', '.join(sites)}); disease = num > 0",
        files=tuple(f"uci_heart_disease/processed.{site}.data" for site in sites), column_names=HEART_COLUMNS,
        sites=sites, derive=_heart_disease, target="disease", classes=("0", "1"),
        label_names=("no disease", "disease"), id_column="record_id", site_column="site",
        categorical=("cp", "restecg", "slope", "thal"),
        numeric=("age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak", "ca"),
        zero_is_missing=("trestbps", "chol"), exclude=("num",))


KNOWN_TABLES: dict[str, TableSpec] = {
    "pima": TableSpec(
        description="Pima Indians diabetes (768 women, NIDDK); zeros in 5 lab columns mean missing",
        files=("pima_diabetes/pima-indians-diabetes.csv",), column_names=PIMA_COLUMNS, target="Outcome",
        classes=("0", "1"), label_names=("no diabetes", "diabetes"), numeric=PIMA_COLUMNS[:-1],
        zero_is_missing=("Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI")),
    "heart": _heart(HEART_SITES),
    **{f"heart-{site}": _heart((site,)) for site in HEART_SITES},
    "ckd": TableSpec(
        description="UCI chronic kidney disease (400 patients, Apollo Hospitals); ARFF types give numeric/nominal",
        files=("uci_chronic_kidney_disease/chronic_kidney_disease_full.arff",), target="class",
        classes=("notckd", "ckd"), label_names=("no CKD", "CKD")),  # disease = label 1
    "ilpd": TableSpec(
        description="Indian liver patient dataset (583 patients); Label 1 = liver patient, 2 = not",
        files=("uci_indian_liver_patient/indian_liver_patient_dataset_ilpd.csv",), target="Label",
        classes=("2", "1"), label_names=("no liver patient", "liver patient"), categorical=("Gender",),
        numeric=tuple(c for c in ILPD_COLUMNS if c not in ("Gender", "Label"))),
    "breast_cancer": TableSpec(
        description="Wisconsin diagnostic breast cancer (569 tumours, bundled with scikit-learn)",
        reader=_breast_cancer_columns, target="diagnosis", classes=("1", "0"), label_names=("benign", "malignant")),
}
"""Datasets that load by name with :func:`load_table`; files are looked up under :func:`medai.settings.data_dir`."""


def list_tables() -> list[dict]:
    """The known tables, with where each is found locally (None when absent), for ``medai datasets``."""
    root = settings.data_dir()
    entries = []
    for name, spec in KNOWN_TABLES.items():
        if spec.reader is not None:
            where = "bundled with scikit-learn"
        else:
            paths = [root / f for f in spec.files] if root else []
            where = str(paths[0].parent) if paths and all(p.exists() for p in paths) else None
        entries.append({"name": name, "description": spec.description, "task": "tabular-classification",
                        "target": spec.target, "local_path": where})
    return entries
